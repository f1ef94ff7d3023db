import argparse
import io

import pytest
import torch
import torchvision

from openfields.network import basenets, pretrained
from openfields.network import factory as network_factory
from openfields.network.batchnorm import BatchNorm2d
from openfields.network.depthwise import DepthwiseConv2d

# measured once; a change means the architecture changed
SHUFFLENETV2K16_PARAMETERS = 8_805_396
SHUFFLENETV2K30_PARAMETERS = 28_034_816


def n_parameters(module):
    return sum(p.numel() for p in module.parameters())


def parse(argv):
    parser = argparse.ArgumentParser()
    basenets.cli(parser)
    return parser.parse_args(argv)


# ---------------------------------------------------------------------------------------- registry

def test_unknown_basenet():
    with pytest.raises(ValueError, match=r"unknown --basenet 'x'; choose from: .*resnet18.*shufflenetv2k16"):
        basenets.build('x', {})


def test_register_basenet():
    try:
        basenets.register_basenet('tinyk', lambda config: basenets.ShuffleNetV2K(
            'tinyk', [1, 1, 1], [8, 16, 32, 64, 64], config))
        net = basenets.build('tinyk', {'kernel_size': 3})
        assert (net.name, net.stride, net.out_features, net.config) == ('tinyk', 16, 64, {'kernel_size': 3})
        assert basenets.config_from_args('tinyk', parse([])) == {}
    finally:  # the registry is shared by every test of the session
        basenets.BASENETS.pop('tinyk', None)
        basenets.CONFIG_FROM_ARGS.pop('tinyk', None)


def test_unknown_config_key():
    with pytest.raises(ValueError, match='unknown config keys'):
        basenets.build('resnet18', {'dilation': 2})


@pytest.mark.parametrize('name', ['shufflenetv2k16', 'resnet18'])
def test_config_is_plain(name):
    config = basenets.build(name).config
    assert all(isinstance(v, (str, int, float, bool, type(None))) for v in config.values())


# ------------------------------------------------------------------------------------------- strides

STRIDE_CASES = [
    ('shufflenetv2k16', {}, 16),
    ('shufflenetv2k16', {'kernel_size': 3}, 16),
    ('resnet18', {}, 16),
    ('resnet18', {'block5_dilation': 2}, 8),
    ('resnet18', {'remove_last_block': True}, 8),
    ('resnet18', {'input_conv_stride': 1}, 8),
    ('resnet50', {'block5_dilation': 2}, 8),
    ('resnet50', {'input_conv2_stride': 2}, 32),
    ('resnet50', {'pool0_stride': 2}, 32),
    ('resnet50', {'pool0_stride': 2, 'input_conv2_stride': 2, 'block5_dilation': 2}, 32),
    ('resnet50', {'remove_last_block': True, 'block5_dilation': 2}, 8),
]


@pytest.mark.parametrize('name, config, stride', STRIDE_CASES)
def test_stride_matches_output(name, config, stride):
    net = basenets.build(name, config).eval()
    height, width = 67, 97
    with torch.no_grad():
        features = net(torch.randn(1, 3, height, width))
    assert net.stride == stride
    assert features.shape == (1, net.out_features, (height - 1) // stride + 1, (width - 1) // stride + 1)


@pytest.mark.parametrize('name, out_features', [
    ('resnet18', 512), ('resnet50', 2048), ('shufflenetv2k16', 1392)])
def test_out_features(name, out_features):
    assert basenets.build(name).out_features == out_features


def test_remove_last_block_features():
    assert basenets.build('resnet18', {'remove_last_block': True}).out_features == 256
    assert basenets.build('resnet50', {'remove_last_block': True}).out_features == 1024


# ---------------------------------------------------------------------------------- shufflenetv2k

def test_shufflenetv2k16_architecture():
    net = basenets.build('shufflenetv2k16')
    depthwise = [m for m in net.modules()
                 if isinstance(m, torch.nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels]
    # two per downsampling (first) block of a stage, one per other block
    assert len(depthwise) == 3 * 2 + (3 + 7 + 3)
    assert all(m.kernel_size == (5, 5) for m in depthwise)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in net.modules())
    assert net.input_block[0].stride == (2, 2) and net.input_block[0].kernel_size == (3, 3)
    assert [len(s) for s in (net.stage2, net.stage3, net.stage4)] == [4, 8, 4]


def test_shufflenetv2k16_parameters():
    count = n_parameters(basenets.build('shufflenetv2k16'))
    assert count == SHUFFLENETV2K16_PARAMETERS
    assert 0.8 * 9.5e6 < count < 1.2 * 13e6


def test_shufflenetv2k30():
    net = basenets.build('shufflenetv2k30')
    assert n_parameters(net) == SHUFFLENETV2K30_PARAMETERS
    assert [len(s) for s in (net.stage2, net.stage3, net.stage4)] == [8, 16, 6]
    assert (net.stride, net.out_features) == (16, 2048)


def test_shufflenetv2k_kernel_option():
    net = basenets.build('shufflenetv2k16', {'kernel_size': 3})
    assert net.stage2[1].branch2[1][0].kernel_size == (3, 3)
    with pytest.raises(ValueError, match='odd'):
        basenets.build('shufflenetv2k16', {'kernel_size': 4})


def test_channel_shuffle():
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert basenets.channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]


def test_shufflenetv2k_trains_as_with_torch_kernels():
    """Five SGD steps from the same start with openfields' compiled depthwise weight gradient and BatchNorm
    forward and with torch's: the same weights up to float32 rounding."""
    def trained(compiled):
        torch.manual_seed(0)
        net = basenets.ShuffleNetV2K('tinyk', [2, 2, 2], [8, 16, 32, 64, 64], {'kernel_size': 5}).train()
        for module in net.modules():
            if isinstance(module, DepthwiseConv2d):
                module.compiled_weight_grad = compiled
            if isinstance(module, BatchNorm2d):
                module.compiled = compiled
        optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        generator = torch.Generator().manual_seed(1)
        for _ in range(5):
            images = torch.randn(3, 3, 65, 65, generator=generator)
            loss = (net(images) - 0.5).square().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return net.state_dict(), loss.item()

    (ours, loss_ours), (torchs, loss_torch) = trained(True), trained(False)
    assert loss_ours == pytest.approx(loss_torch, rel=1e-4)
    for name, value in torchs.items():
        if value.is_floating_point():
            assert float((ours[name] - value).abs().max()) <= 1e-4 * max(1.0, float(value.abs().max())), name
    again, _ = trained(True)  # deterministic: a second run with the compiled kernels gives the same weights
    assert all(torch.equal(again[name], value) for name, value in ours.items())


# ------------------------------------------------------------------------------------------ rebuild

@pytest.mark.parametrize('name, config', [
    ('shufflenetv2k16', {'kernel_size': 3}),
    ('resnet18', {'input_conv2_stride': 2, 'block5_dilation': 2, 'pool0_stride': 2}),
])
def test_rebuild_reproduces_outputs(name, config):
    torch.manual_seed(2)
    net = basenets.build(name, config)
    for module in net.modules():  # non-trivial running statistics
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 2.0)
    net.eval()
    # what a checkpoint stores: plain types and tensors only
    buffer = io.BytesIO()
    torch.save({'name': net.name, 'config': net.config, 'state_dict': net.state_dict()}, buffer)
    buffer.seek(0)
    stored = torch.load(buffer, weights_only=True)

    rebuilt = basenets.build(stored['name'], stored['config'])
    rebuilt.load_state_dict(stored['state_dict'])
    rebuilt.eval()
    images = torch.randn(1, 3, 49, 65)
    with torch.no_grad():
        assert torch.equal(net(images), rebuilt(images))
    assert rebuilt.stride == net.stride and rebuilt.config == net.config


# ---------------------------------------------------------------------------------------------- cli

def test_cli_defaults():
    args = parse([])
    assert args.basenet_pretrained is None
    assert basenets.config_from_args('shufflenetv2k16', args) == {'kernel_size': 5}
    assert basenets.config_from_args('resnet50', args) == basenets.RESNET_DEFAULTS


def test_cli_resnet_flags():
    args = parse(['--resnet-pool0-stride', '2', '--resnet-input-conv-stride', '1',
                  '--resnet-input-conv2-stride', '2', '--resnet-block5-dilation', '2',
                  '--resnet-remove-last-block', '--basenet-pretrained'])
    assert args.basenet_pretrained == 'auto'
    assert basenets.config_from_args('resnet18', args) == {
        'pool0_stride': 2, 'input_conv_stride': 1, 'input_conv2_stride': 2,
        'block5_dilation': 2, 'remove_last_block': True}
    assert parse(['--basenet-pretrained', 'w.pth']).basenet_pretrained == 'w.pth'
    assert basenets.config_from_args('shufflenetv2k30', parse(['--shufflenetv2k-kernel', '3'])) == {
        'kernel_size': 3}
    with pytest.raises(ValueError, match='unknown --basenet'):
        basenets.config_from_args('nope', args)


# --------------------------------------------------------------------------------------- pretrained

RESNET18_FILE = 'resnet18-f37072fd.pth'


@pytest.fixture(name='imagenet_resnet18')
def fixture_imagenet_resnet18():
    """A torchvision resnet18 (random weights) standing in for the ImageNet one."""
    torch.manual_seed(3)
    return torchvision.models.resnet18(weights=None)


@pytest.fixture(name='hub_dir')
def fixture_hub_dir(tmp_path, monkeypatch):
    hub_dir = tmp_path / 'hub'
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(hub_dir))
    return hub_dir


def save_weights(model, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path


def assert_weights_equal(basenet, reference, prefixes=('conv1.', 'bn1.', 'layer')):
    reference_state = reference.state_dict()
    compared = 0
    for key, value in basenet.state_dict().items():
        if key.startswith(prefixes):
            assert torch.equal(value, reference_state[key]), key
            compared += 1
    assert compared > 0


def test_hub_cache_path_uses_torchvision_file_name(hub_dir):
    assert pretrained.hub_cache_path('resnet18') == hub_dir / 'checkpoints' / RESNET18_FILE
    assert pretrained.hub_cache_path('resnet50').name == 'resnet50-0676ba61.pth'


def test_load_from_hub_cache(hub_dir, imagenet_resnet18):
    save_weights(imagenet_resnet18, hub_dir / 'checkpoints' / RESNET18_FILE)
    net = basenets.build('resnet18')
    report = pretrained.load_imagenet_weights(net, 'resnet18', 'auto')
    assert_weights_equal(net, imagenet_resnet18)
    assert report['skipped'] == ['fc.bias', 'fc.weight'] and report['not_pretrained'] == []


def test_load_from_torch_home(tmp_path, monkeypatch, imagenet_resnet18):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    save_weights(imagenet_resnet18, tmp_path / 'hub' / 'checkpoints' / RESNET18_FILE)
    net = basenets.build('resnet18')
    pretrained.load_imagenet_weights(net, 'resnet18', 'auto')
    assert_weights_equal(net, imagenet_resnet18)


def test_load_from_path_with_modified_resnet(tmp_path, imagenet_resnet18):
    path = save_weights(imagenet_resnet18, tmp_path / 'my_weights.pth')
    net = basenets.build('resnet18', {'input_conv2_stride': 2, 'remove_last_block': True})
    report = pretrained.load_imagenet_weights(net, 'resnet18', str(path))
    assert_weights_equal(net, imagenet_resnet18)
    assert all(k.startswith('input_conv2.') for k in report['not_pretrained']) and report['not_pretrained']
    assert any(k.startswith('layer4.') for k in report['skipped'])


def parse_network(argv):
    parser = argparse.ArgumentParser()
    network_factory.cli(parser)
    return parser.parse_args(argv)


def test_resnets_start_from_imagenet_weights_by_default(hub_dir, imagenet_resnet18):
    """OpenPifPaf's ResNets start from torchvision's ImageNet weights unless --resnet-no-pretrain."""
    save_weights(imagenet_resnet18, hub_dir / 'checkpoints' / RESNET18_FILE)
    choice = network_factory.NetworkChoice.from_args(parse_network(['--basenet', 'resnet18',
                                                                    '--resnet-block5-dilation', '2']))
    assert choice.pretrained == 'auto'
    assert choice.pretrained_weights.path == hub_dir / 'checkpoints' / RESNET18_FILE
    net = choice.build([]).basenet
    assert net.stride == 8
    assert_weights_equal(net, imagenet_resnet18)


@pytest.mark.parametrize('argv, expected', [
    (['--basenet', 'resnet18', '--resnet-no-pretrain'], None),
    (['--basenet', 'resnet50', '--no-basenet-pretrained'], None),
    (['--basenet', 'resnet50', '--basenet-pretrained', 'timm'], 'timm'),
    (['--basenet', 'resnet50_gn'], 'auto'),
    (['--basenet', 'shufflenetv2k16'], None),
    ([], None),
])
def test_pretrained_defaults(argv, expected):
    assert network_factory.NetworkChoice.from_args(parse_network(argv)).pretrained == expected


def test_from_scratch_basenet_is_not_initialised_from_the_cache(hub_dir, imagenet_resnet18):
    save_weights(imagenet_resnet18, hub_dir / 'checkpoints' / RESNET18_FILE)
    choice = network_factory.NetworkChoice.from_args(parse_network(['--basenet', 'resnet18', '--resnet-no-pretrain']))
    assert choice.pretrained_weights is None
    net = choice.build([]).basenet
    assert not torch.equal(net.state_dict()['conv1.weight'], imagenet_resnet18.state_dict()['conv1.weight'])


def test_missing_weights_message(hub_dir, monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')  # offline as this machine is: no download is tried
    net = basenets.build('resnet18')
    with pytest.raises(pretrained.PretrainedWeightsMissing) as info:
        pretrained.load_imagenet_weights(net, 'resnet18', 'auto')
    message = str(info.value)
    expected_path = hub_dir / 'checkpoints' / RESNET18_FILE
    assert str(expected_path) in message
    assert 'https://download.pytorch.org/models/' + RESNET18_FILE in message
    assert '--basenet-pretrained PATH' in message
    assert '\n' not in message
    assert isinstance(info.value, RuntimeError)
    assert not expected_path.exists()  # nothing was downloaded


def test_missing_weights_explicit_path(tmp_path):
    with pytest.raises(pretrained.PretrainedWeightsMissing, match='absent.pth'):
        pretrained.load_imagenet_weights(basenets.build('resnet18'), 'resnet18', str(tmp_path / 'absent.pth'))


def test_shufflenetv2k_has_no_imagenet_weights():
    with pytest.raises(ValueError, match='trained from scratch'):
        pretrained.load_imagenet_weights(basenets.build('shufflenetv2k16'), 'shufflenetv2k16', 'auto')


def test_mismatching_weights_are_reported(tmp_path):
    path = save_weights(torchvision.models.resnet18(weights=None), tmp_path / 'r18.pth')
    with pytest.raises(RuntimeError, match='differ in shape'):
        pretrained.load_imagenet_weights(basenets.build('resnet50'), 'resnet50', str(path))
    partial = {k: v for k, v in torchvision.models.resnet18(weights=None).state_dict().items()
               if not k.startswith('layer2.')}
    torch.save(partial, path)
    with pytest.raises(RuntimeError, match=r"missing keys \['layer2\."):
        pretrained.load_imagenet_weights(basenets.build('resnet18'), 'resnet18', str(path))
