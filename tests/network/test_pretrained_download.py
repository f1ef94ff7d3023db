"""ImageNet weights through torchvision's and the Hugging Face hub's caches (TORCH_HOME, HF_HOME in a temporary
folder): a file made here under the exact name the library expects is loaded as it is, with its source and
sha256 recorded; a download into the cache when online (the network stood in for); offline, one line."""

import hashlib

import pytest
import torch
import torchvision

from openfields import train
from openfields.training.log import read
from openfields.network import basenets, factory, pretrained

timm = pytest.importorskip('timm')
safetensors_torch = pytest.importorskip('safetensors.torch')

REVISION = 'a' * 40  # the commit the cache's refs/main names


@pytest.fixture(name='caches')
def fixture_caches(tmp_path, monkeypatch):
    """Empty torch hub and Hugging Face caches; downloads off unless a test stands in for the network."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    monkeypatch.setenv('HF_HOME', str(tmp_path / 'hf'))
    monkeypatch.delenv('HF_HUB_CACHE', raising=False)
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    return tmp_path


def hub_file(caches, repository, filename):
    """Where huggingface_hub keeps ``filename`` of ``repository`` at ``main`` in the HF_HOME cache."""
    folder = caches / 'hf' / 'hub' / f'models--{repository.replace("/", "--")}'
    (folder / 'refs').mkdir(parents=True, exist_ok=True)
    (folder / 'refs' / 'main').write_text(REVISION)
    path = folder / 'snapshots' / REVISION / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_loaded(basenet, state_dict, prefix=''):
    own = basenet.state_dict()
    compared = [k for k in state_dict if prefix + k in own]
    assert len(compared) > 100
    for key in compared:
        assert torch.equal(own[prefix + key], state_dict[key]), key


def test_hrnet_weights_from_the_hugging_face_cache(caches):
    torch.manual_seed(1)
    state_dict = {k: v.contiguous() for k, v in timm.create_model('hrnet_w18').state_dict().items()
                  if not k.startswith(('incre_modules', 'downsamp_modules', 'final_layer'))}  # 9.6M, 38 MB
    path = hub_file(caches, 'timm/hrnet_w18.ms_aug_in1k', 'model.safetensors')
    safetensors_torch.save_file(state_dict, str(path))
    choice = factory.NetworkChoice(basenet='hrnet_w18', pretrained='auto')
    assert choice.pretrained_weights.record() == {
        'basenet': 'hrnet_w18', 'source': 'auto', 'path': str(path), 'sha256': sha256(path),
        'url': 'https://huggingface.co/timm/hrnet_w18.ms_aug_in1k/resolve/main/model.safetensors'}
    network = choice.build([])
    assert_loaded(network.basenet, state_dict, prefix='hrnet.')


def test_cspnext_weights_from_deeplabcuts_repository(caches):
    torch.manual_seed(2)
    state_dict = basenets.build('cspnext_s').state_dict()
    path = hub_file(caches, 'DeepLabCut/DeepLabCut-Backbones', 'cspnext_s.pt')
    torch.save({'state_dict': state_dict}, path)  # as DeepLabCut's files hold it
    net = basenets.build('cspnext_s')
    report = pretrained.load_imagenet_weights(net, 'cspnext_s', 'auto')
    assert_loaded(net, state_dict)
    assert (report['path'], report['sha256'], report['skipped']) == (str(path), sha256(path), [])


def test_torchvision_weights_downloaded_into_the_torch_hub_cache(caches, monkeypatch):
    monkeypatch.delenv('HF_HUB_OFFLINE')
    torch.manual_seed(3)
    state_dict = torchvision.models.resnet18().state_dict()
    calls = []

    def download(url, dst, hash_prefix=None, progress=True):  # the network, standing in
        calls.append((url, dst, hash_prefix))
        torch.save(state_dict, dst)

    monkeypatch.setattr(torch.hub, 'download_url_to_file', download)
    weights = pretrained.locate('resnet18')
    expected = caches / 'torch' / 'hub' / 'checkpoints' / 'resnet18-f37072fd.pth'
    assert calls == [('https://download.pytorch.org/models/resnet18-f37072fd.pth', str(expected), 'f37072fd')]
    assert (weights.path, weights.sha256, weights.url) == (expected, sha256(expected), calls[0][0])
    net = basenets.build('resnet18')
    pretrained.load(net, weights)
    assert_loaded(net, {k: v for k, v in state_dict.items() if not k.startswith('fc.')})
    pretrained.locate('resnet18')
    assert len(calls) == 1  # cached now


def test_hub_weights_downloaded_into_the_hugging_face_cache(caches, monkeypatch):
    monkeypatch.delenv('HF_HUB_OFFLINE')
    monkeypatch.setattr(pretrained, '_unreachable', lambda host: None)  # online
    huggingface_hub = pytest.importorskip('huggingface_hub')
    state_dict = basenets.build('cspnext_s').state_dict()
    calls = []

    def download(repository, filename, cache_dir=None, library_name=None):  # the network, standing in
        calls.append((repository, filename, cache_dir))
        path = hub_file(caches, repository, filename)
        torch.save({'state_dict': state_dict}, path)
        return str(path)

    monkeypatch.setattr(huggingface_hub, 'hf_hub_download', download)
    weights = pretrained.locate('cspnext_s')
    assert calls == [('DeepLabCut/DeepLabCut-Backbones', 'cspnext_s.pt', caches / 'hf' / 'hub')]
    assert weights.url == 'https://huggingface.co/DeepLabCut/DeepLabCut-Backbones/resolve/main/cspnext_s.pt'
    pretrained.locate('cspnext_s')
    assert len(calls) == 1  # cached now


@pytest.mark.parametrize('name, missing', [
    ('hrnet_w32', 'model.safetensors of timm/hrnet_w32.ms_in1k is not in the Hugging Face cache'),
    ('resnet50', 'resnet50-0676ba61.pth'),
])
def test_offline_one_line_names_the_file_where_it_goes_and_how_to_train_from_scratch(caches, name, missing):
    with pytest.raises(pretrained.PretrainedWeightsMissing) as info:
        pretrained.locate(name)
    message = str(info.value)
    assert '\n' not in message and missing in message and 'HF_HUB_OFFLINE is set' in message
    assert '--basenet-pretrained PATH' in message and str(caches) in message
    assert '`pretrained: false` under model.backbone' in message and '--no-basenet-pretrained' in message
    assert not list((caches / 'torch').glob('**/*.pth'))


def test_a_deeplabcut_file_asks_for_imagenet_weights_offline_one_line_exit_2(caches, tmp_path, capsys):
    config = tmp_path / 'pytorch_config.yaml'
    config.write_text('model:\n  backbone:\n    type: CSPNeXt\n    model_name: cspnext_s\n'
                      '    deepen_factor: 0.33\n    widen_factor: 0.5\n')
    argv = ['--config', str(config), '--dataset', 'synthetic', '--synthetic-train-images', '2',
            '--synthetic-val-images', '1', '--synthetic-image-size', '80', '--synthetic-square-edge', '65',
            '--synthetic-cache-dir', str(tmp_path / 'cache'), '--epochs', '1', '--loader-workers', '0',
            '--output', str(tmp_path / 'run.pkl')]
    args = train.cli(argv)
    assert (args.basenet, args.basenet_pretrained, args.basenet_freeze_bn_stats) == ('cspnext_s', 'auto', True)
    with pytest.raises(SystemExit) as stop:
        train.main(argv)
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and 'cspnext_s.pt of DeepLabCut/DeepLabCut-Backbones' in lines[0]
    assert '`pretrained: false` under model.backbone' in lines[0]


def test_timm_source_for_batchnorm_resnets_has_torchvisions_keys():
    weights_spec = pretrained.spec('resnet101', 'timm')
    assert weights_spec.hub == ('timm/resnet101.a1h_in1k', 'model.safetensors')
    assert pretrained.spec('resnet101').url == 'https://download.pytorch.org/models/resnet101-63fe2227.pth'
    torch.manual_seed(4)
    state_dict = timm.create_model('resnet101').state_dict()
    net = basenets.build('resnet101')
    report = pretrained.load_state_dict(net, 'resnet101', state_dict, 'timm', 'timm')
    assert report['skipped'] == ['fc.bias', 'fc.weight']
    assert_loaded(net, {k: v for k, v in state_dict.items() if not k.startswith('fc.')})
    with pytest.raises(ValueError, match='timm has no ImageNet weights for basenet .cspnext_m.'):
        pretrained.spec('cspnext_m', 'timm')
    with pytest.raises(ValueError, match='ShuffleNetV2K basenets are trained from scratch; give --no-basenet-pre'):
        pretrained.spec('shufflenetv2k16', 'timm')


def test_a_path_names_the_file_it_loads(tmp_path):
    torch.manual_seed(5)
    state_dict = basenets.build('cspnext_s').state_dict()
    path = tmp_path / 'mine.pt'
    torch.save({'state_dict': state_dict}, path)
    weights = pretrained.locate('cspnext_s', str(path))
    assert weights.record() == {'basenet': 'cspnext_s', 'source': str(path), 'url': None, 'path': str(path),
                                'sha256': sha256(path)}


def test_the_run_log_records_the_weights_source_and_sha256(caches, tmp_path):
    """A DeepLabCut file's backbone with its ImageNet file in the (temporary) cache: the run trains from it and
    its log's process record, and the checkpoint's meta, name the file and its sha256."""
    torch.manual_seed(6)
    path = hub_file(caches, 'DeepLabCut/DeepLabCut-Backbones', 'cspnext_s.pt')
    torch.save({'state_dict': basenets.build('cspnext_s').state_dict()}, path)
    config = tmp_path / 'pytorch_config.yaml'
    config.write_text('model:\n  backbone:\n    type: CSPNeXt\n    model_name: cspnext_s\n'
                      '    deepen_factor: 0.33\n    widen_factor: 0.5\n')
    out = tmp_path / 'run.pkl'
    train.main(['--config', str(config), '--dataset', 'synthetic', '--synthetic-train-images', '2',
                '--synthetic-val-images', '2', '--synthetic-image-size', '80', '--synthetic-square-edge', '65',
                '--synthetic-cache-dir', str(tmp_path / 'cache'), '--epochs', '1', '--batch-size', '2',
                '--val-batches', '1', '--loader-workers', '0', '--output', str(out)])
    process = next(r for r in read(f'{out}.log') if r['type'] == 'process')
    expected = {'basenet': 'cspnext_s', 'source': 'auto', 'path': str(path), 'sha256': sha256(path),
                'url': 'https://huggingface.co/DeepLabCut/DeepLabCut-Backbones/resolve/main/cspnext_s.pt'}
    assert process['basenet_weights'] == expected
    assert torch.load(out, weights_only=True)['meta']['basenet_weights'] == expected
