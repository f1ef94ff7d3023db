"""HRNet basenets: timm's HRNet as DeepLabCut builds it, any input size, the options, BatchNorm freezing,
a short training run and its checkpoint."""

import argparse
import sys

import pytest
import torch
import torch.nn.functional as F

from openfields import train
from openfields.network import basenets, checkpoint, factory, hrnet
from openfields.training.log import read

timm = pytest.importorskip('timm')

# measured; HRNet's paper (Sun et al. 2019, table 1) gives 28.5M for its HRNet-W32 pose network
HRNET_W32_PARAMETERS = 28_535_552
HRNET_W18_PARAMETERS = 9_317_892


def n_parameters(module):
    return sum(p.numel() for p in module.parameters())


def parse(argv):
    parser = argparse.ArgumentParser()
    basenets.cli(parser)
    return parser.parse_args(argv)


def test_hrnet_w32_has_the_size_of_the_papers_pose_network():
    net = basenets.build('hrnet_w32')
    assert (net.stride, net.out_features) == (4, 32)
    assert n_parameters(net) == HRNET_W32_PARAMETERS
    assert basenets.stride('hrnet_w48') == 4  # on the meta device


@pytest.mark.parametrize('config, channels', [
    ({}, 18), ({'interpolate_branches': True}, 18 + 36 + 72 + 144), ({'increased_channel_count': True}, 128),
    ({'increased_channel_count': True, 'interpolate_branches': True}, 128 + 256 + 512 + 1024)])
def test_output_size_and_channels_at_any_input_size(config, channels):
    net = basenets.build('hrnet_w18', config)
    assert net.out_features == channels
    for height, width in ((65, 97), (33, 49), (40, 70)):
        out = net(torch.randn(1, 3, height, width))
        assert out.shape == (1, channels, (height - 1) // 4 + 1, (width - 1) // 4 + 1)


@pytest.mark.parametrize('interpolate', [False, True])
def test_the_features_are_deeplabcuts(interpolate):
    """DeepLabCut's HRNet: timm's feature extractor of branches 1-4, the first branch (or all, upsampled
    bilinearly and concatenated), on an image whose sides are multiples of 32."""
    torch.manual_seed(0)
    net = basenets.build('hrnet_w18', {'interpolate_branches': interpolate}).eval()
    reference = timm.create_model('hrnet_w18', features_only=True, feature_location='', out_indices=(1, 2, 3, 4))
    reference.load_state_dict({k[len('hrnet.'):]: v for k, v in net.state_dict().items()}, strict=False)
    reference.eval()
    image = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        branches = reference(image)
        expected = branches[0] if not interpolate else torch.cat(
            [branches[0]] + [F.interpolate(b, size=branches[0].shape[-2:], mode='bilinear') for b in branches[1:]], 1)
        assert torch.allclose(net(image), expected[:, :, :16, :24], atol=1e-5)


def test_padding_keeps_every_output_cell_on_its_pixel():
    """An image padded by hand to multiples of 32 gives the same cells as the image itself: cell i stays at
    pixel 4 i."""
    net = basenets.build('hrnet_w18').eval()
    image = torch.randn(1, 3, 65, 97)
    with torch.no_grad():
        assert torch.equal(net(image), net(F.pad(image, (0, 31, 0, 31)))[:, :, :17, :25])


def test_every_parameter_gets_a_gradient():
    """Distributed training refuses parameters without gradient: the unused fusions are not built."""
    for config in ({}, {'increased_channel_count': True}):
        net = basenets.build('hrnet_w18', config)
        net(torch.randn(2, 3, 33, 33)).sum().backward()
        assert [name for name, p in net.named_parameters() if p.grad is None] == []


def test_freeze_bn_stats_and_weights():
    net = basenets.build('hrnet_w18', {'freeze_bn_stats': True, 'freeze_bn_weights': True})
    norms = basenets.batchnorms(net)
    assert norms and all(not n.weight.requires_grad and not n.bias.requires_grad for n in norms)
    net.train()
    assert net.training and not any(n.training for n in norms)
    before = norms[0].running_mean.clone()
    net(torch.randn(2, 3, 33, 33))
    assert torch.equal(norms[0].running_mean, before)
    free = basenets.build('hrnet_w18')
    assert all(n.training and n.weight.requires_grad for n in basenets.batchnorms(free.train()))


def test_flags_set_the_config():
    args = parse(['--hrnet-interpolate-branches', '--basenet-freeze-bn-stats'])
    assert basenets.config_from_args('hrnet_w32', args) == {
        'interpolate_branches': True, 'increased_channel_count': False, 'freeze_bn_stats': True}
    with pytest.raises(ValueError, match='--hrnet-interpolate-branches .* does not apply to --basenet resnet50'):
        basenets.config_from_args('resnet50', args)
    with pytest.raises(ValueError, match='--basenet-freeze-bn-stats .* does not apply to --basenet shufflenetv2k16'):
        basenets.config_from_args('shufflenetv2k16', parse(['--basenet-freeze-bn-stats']))


def test_without_timm_one_line_names_the_basenet_and_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, 'timm', None)  # import timm raises ImportError
    with pytest.raises(basenets.BasenetDependencyMissing) as info:
        basenets.build('hrnet_w32')
    assert str(info.value) == ('basenet hrnet_w32 is built by timm, which is not installed: '
                               'pip install openfields[timm]')
    assert isinstance(info.value, ValueError)  # the commands' one line, exit status 2


def test_two_training_steps_and_the_checkpoint_rebuilds(tmp_path):
    out = tmp_path / 'hrnet.pkl'
    train.run(train.cli([
        '--dataset', 'synthetic', '--synthetic-train-images', '4', '--synthetic-val-images', '2',
        '--synthetic-image-size', '80', '--synthetic-square-edge', '65', '--basenet', 'hrnet_w18',
        '--no-basenet-pretrained',
        '--hrnet-interpolate-branches', '--batch-size', '2', '--epochs', '1', '--loader-workers', '0',
        '--seed', '3', '--lr', '1e-3', '--synthetic-cache-dir', str(tmp_path / 'cache'), '--output', str(out)]))
    epoch = next(r for r in read(f'{out}.log') if r['type'] == 'train-epoch')
    assert epoch['n_batches'] == 2 and torch.isfinite(torch.tensor(epoch['loss']))
    saved = checkpoint.load(out)
    assert saved['model']['basenet'] == {'name': 'hrnet_w18', 'config': {
        'interpolate_branches': True, 'increased_channel_count': False, 'freeze_bn_stats': False,
        'freeze_bn_weights': False}}
    model = factory.from_checkpoint(saved).eval()
    fields = model(torch.randn(1, 3, 65, 81))
    assert fields[0].shape[-2:] == (17, 21) and model.basenet.out_features == 270
    assert isinstance(model.basenet, hrnet.HRNet)
