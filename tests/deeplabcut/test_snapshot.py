"""``resume_training_from: snapshot-050.pt`` of a DeepLabCut ``pytorch_config.yaml`` (``--dlc-snapshot``): the run
starts from the snapshot's backbone and, where it matches, its body part head; a backbone that does not fit and a
file that pickles classes are refused in one line. The snapshots are made here in DeepLabCut 3.0.2's layout
(``{'model': state dict, 'metadata': {...}, 'scheduler': {...}}``, keys ``backbone.<...>`` and
``heads.bodypart.{heatmap,locref}_head.deconv_layers.<i>.*``) from openfields' own modules and timm."""

import logging
import pathlib

import numpy as np
import pytest
import torch

from openfields import headmeta, train
from openfields.deeplabcut import snapshot
from openfields.network import basenets, factory

yaml = pytest.importorskip('yaml')

DLC_PROJECT = pathlib.Path(__file__).resolve().parents[3] / 'shared' / 'data' / 'dlc-openfield'
BODYPARTS = ['snout', 'leftear', 'rightear', 'tailbase']


def dlc_file(tmp_path, resume, backbone='cspnext_s'):
    """A bottom-up cspnext_s file as DeepLabCut writes its keys (no ImageNet weights: ``pretrained: false``)."""
    mapping = {
        'net_type': backbone, 'method': 'bu', 'resume_training_from': str(resume),
        'model': {'backbone': {'type': 'CSPNeXt', 'model_name': backbone, 'deepen_factor': 0.33, 'widen_factor': 0.5,
                               'pretrained': False, 'freeze_bn_stats': False, 'freeze_bn_weights': False},
                  'heads': {'bodypart': {'type': 'HeatmapHead',
                                         'heatmap_config': {'channels': [512, 4], 'kernel_size': [3], 'strides': [2]},
                                         'locref_config': {'channels': [512, 8], 'kernel_size': [3],
                                                           'strides': [2]}}}},
    }
    path = tmp_path / 'pytorch_config.yaml'
    path.write_text(yaml.safe_dump(mapping))
    return str(path)


def heatmap_head_state(keypoints=4, in_features=512, seed=1) -> dict:
    """DeepLabCut's HeatmapHead of resnet_50's layout (one 3x3 stride-2 deconvolution per branch)."""
    generator = torch.Generator().manual_seed(seed)
    return {f'heads.bodypart.{branch}_head.deconv_layers.0.{name}': torch.randn(shape, generator=generator)
            for branch, n in (('heatmap', keypoints), ('locref', 2 * keypoints))
            for name, shape in (('weight', (in_features, n, 3, 3)), ('bias', (n,)))}


def write_snapshot(path, model_state: dict, **extra) -> pathlib.Path:
    torch.save({'metadata': {'epoch': 50, 'metrics': {}, 'losses': {}}, 'model': model_state,
                'scheduler': {'milestones': [90, 120], 'lr_list': [[1e-4], [1e-5]], 'base_lrs': [5e-4],
                              'last_epoch': 50}, **extra}, path)
    return path


def cspnext_snapshot(path, seed=0, **head) -> pathlib.Path:
    """A cspnext_s snapshot: DeepLabCut's CSPNeXt keys are openfields' below ``backbone.``."""
    torch.manual_seed(seed)
    backbone = {f'backbone.{k}': v for k, v in basenets.build('cspnext_s', {}).state_dict().items()}
    return write_snapshot(path, {**backbone, **heatmap_head_state(**head)})


def resnet18_snapshot(path) -> pathlib.Path:
    """A resnet18 snapshot: timm's ResNet below ``backbone.model.``, its classifier removed as DeepLabCut does."""
    state = basenets.build('resnet18', {}).state_dict()
    return write_snapshot(path, {f'backbone.model.{k}': v for k, v in state.items()})


def heatmap_meta(keypoints=BODYPARTS, **layout):
    upsample = int(np.prod(layout.get('deconv_strides', [2])))
    return headmeta.Heatmap(name='heatmap', dataset='dlc', keypoints=list(keypoints),
                            sigmas=[0.05] * len(keypoints), upsample_stride=upsample, **layout)


def test_resume_training_from_a_pt_file_is_a_dlc_snapshot_and_another_path_an_openfields_resume(tmp_path):
    assert train.cli(['--config', dlc_file(tmp_path, '/m/train/snapshot-050.pt')]).dlc_snapshot == (
        '/m/train/snapshot-050.pt')
    args = train.cli(['--config', dlc_file(tmp_path, '/runs/run.pkl')])
    assert (args.resume, args.dlc_snapshot) == ('/runs/run.pkl', None)


@pytest.mark.skipif(not (DLC_PROJECT / 'config.yaml').is_file(), reason=f'no DeepLabCut project at {DLC_PROJECT}')
def test_a_dlc_file_with_resume_training_from_trains_from_exactly_the_snapshots_weights(tmp_path, monkeypatch,
                                                                                      caplog):
    path = cspnext_snapshot(tmp_path / 'snapshot-050.pt')
    started = []  # the network's weights as the run built it, before its first step

    def build(self, metas, build=factory.NetworkChoice.build):
        model = build(self, metas)
        started.append({k: v.clone() for k, v in model.state_dict().items()})
        return model

    monkeypatch.setattr(factory.NetworkChoice, 'build', build)
    out = tmp_path / 'out' / 'run.pkl'
    with caplog.at_level(logging.INFO, logger='openfields.deeplabcut.snapshot'):
        # the seed differs from the snapshot's: a fresh network would have other weights
        train.main(['--config', dlc_file(tmp_path, path), '--dlc-project', str(DLC_PROJECT), '--seed', '7',
                    '--epochs', '1', '--train-batches', '1', '--val-batches', '1', '--batch-size', '1',
                    '--loader-workers', '0', '--dlc-square-edge', '65', '--dlc-rescale-images', '0.25',
                    '--device', 'cpu', '--output', str(out)])
    saved = torch.load(path, weights_only=True)['model']
    state = started[0]
    own_backbone = {k: v for k, v in state.items() if k.startswith('basenet.')}
    assert len(own_backbone) == sum(k.startswith('backbone.') for k in saved) == 242
    for key, value in own_backbone.items():
        assert torch.equal(value, saved['backbone.' + key[len('basenet.'):]]), key
    for branch in ('heatmap', 'locref'):
        for name in ('weight', 'bias'):
            assert torch.equal(state[f'heads.0.{branch}.0.{name}'],
                               saved[f'heads.bodypart.{branch}_head.deconv_layers.0.{name}'])
    messages = [r.getMessage() for r in caplog.records]
    assert any(f'DeepLabCut snapshot {path} (epoch 50): backbone loaded into basenet cspnext_s (242 tensors)' in m
               for m in messages)
    assert f'head dlc.heatmap loaded from head bodypart of DeepLabCut snapshot {path}' in messages
    assert out.is_file()


def choice(tmp_path, snapshot_path):
    return factory.NetworkChoice.from_args(train.cli(['--config', dlc_file(tmp_path, snapshot_path)]))


def test_the_head_is_loaded_when_its_shapes_match(tmp_path):
    path = cspnext_snapshot(tmp_path / 'snapshot-050.pt')
    model = choice(tmp_path, path).build([heatmap_meta()])
    saved = torch.load(path, weights_only=True)['model']
    assert torch.equal(model.heads[0].locref[0].weight, saved['heads.bodypart.locref_head.deconv_layers.0.weight'])


def weight_init_file(tmp_path, weight_init: dict) -> str:
    """The cspnext_s file with ``train_settings.weight_init`` in place of ``resume_training_from``."""
    mapping = yaml.safe_load(pathlib.Path(dlc_file(tmp_path, 'x.pt')).read_text())
    del mapping['resume_training_from']
    mapping['train_settings'] = {'weight_init': weight_init}
    path = tmp_path / 'weight_init.yaml'
    path.write_text(yaml.safe_dump(mapping))
    return str(path)


@pytest.mark.parametrize('with_decoder', [False, True])
def test_weight_init_starts_from_the_snapshots_backbone_and_its_heads_only_with_decoder(tmp_path, with_decoder):
    """DeepLabCut's weight_init (how its from-scratch and transfer runs start): the snapshot's backbone in place
    of ImageNet weights; its heads with ``with_decoder: true`` (DeepLabCut's default: false)."""
    path = cspnext_snapshot(tmp_path / 'init.pt')
    args = train.cli(['--config', weight_init_file(tmp_path, {'snapshot_path': str(path), 'with_decoder': with_decoder,
                                                              'memory_replay': False, 'dataset': None})])
    assert (args.dlc_snapshot, args.dlc_snapshot_backbone_only) == (str(path), not with_decoder)
    torch.manual_seed(123)
    model = factory.NetworkChoice.from_args(args).build([heatmap_meta()])
    saved = torch.load(path, weights_only=True)['model']
    assert torch.equal(model.basenet.state_dict()['stem.0.conv.weight'], saved['backbone.stem.0.conv.weight'])
    head_loaded = torch.equal(model.heads[0].locref[0].weight,
                              saved['heads.bodypart.locref_head.deconv_layers.0.weight'])
    assert head_loaded == with_decoder


@pytest.mark.parametrize('weight_init, key', [
    ({'snapshot_path': 'a.pt', 'dataset': 'superanimal_topviewmouse'}, 'train_settings.weight_init.dataset'),
    ({'snapshot_path': 'a.pt', 'memory_replay': True}, 'train_settings.weight_init.memory_replay'),
    ({'snapshot_path': 'a.pt', 'detector_snapshot_path': 'd.pt'}, 'train_settings.weight_init.detector_snapshot_path'),
    ({'with_decoder': True}, 'train_settings.weight_init.snapshot_path'),
])
def test_superanimal_weight_init_is_refused_in_one_line_naming_the_key(tmp_path, capsys, weight_init, key):
    with pytest.raises(SystemExit) as info:
        train.cli(['--config', weight_init_file(tmp_path, weight_init)])
    assert info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f'key {key}' in lines[0]


@pytest.mark.parametrize('meta, reason', [
    (heatmap_meta(BODYPARTS + ['tail']), 'heatmap_head.deconv_layers.0.weight is (512, 4, 3, 3), the head\'s '
                                         '(512, 5, 3, 3)'),
    (heatmap_meta(deconv_kernels=[], deconv_strides=[], final_conv_kernel=1),
     'heatmap_head.deconv_layers.0.weight: no such layer in its layout'),
    (heatmap_meta(deconv_channels=[64], final_conv_kernel=1), 'openfields puts a ReLU between'),
])
def test_a_head_that_does_not_match_starts_fresh_with_one_line_naming_it(tmp_path, caplog, meta, reason):
    path = cspnext_snapshot(tmp_path / 'snapshot-050.pt')
    torch.manual_seed(0)
    fresh = factory.assemble(basenets.build('cspnext_s', {}), [meta]).heads[0].state_dict()
    network = choice(tmp_path, path)
    with caplog.at_level(logging.INFO, logger='openfields.deeplabcut.snapshot'):
        torch.manual_seed(0)
        model = network.build([meta])
    lines = [m for m in caplog.messages if 'head dlc.heatmap' in m]
    assert len(lines) == 1 and reason in lines[0]
    assert lines[0].startswith(f'head dlc.heatmap starts fresh: it does not match DeepLabCut snapshot {path} (')
    assert all(torch.equal(v, fresh[k]) for k, v in model.heads[0].state_dict().items())


def test_a_composite_field_head_starts_fresh_with_one_line(tmp_path, caplog):
    path = cspnext_snapshot(tmp_path / 'snapshot-050.pt')
    cif = headmeta.Cif(name='cif', dataset='dlc', keypoints=BODYPARTS, sigmas=[0.05] * 4)
    with caplog.at_level(logging.INFO, logger='openfields.deeplabcut.snapshot'):
        choice(tmp_path, path).build([cif])
    assert f'head dlc.cif starts fresh: DeepLabCut snapshot {path} has heatmap heads only' in caplog.messages


def test_the_fusions_into_hrnets_coarse_branches_are_the_only_keys_left_out(tmp_path):
    timm = pytest.importorskip('timm')
    # DeepLabCut's HRNet backbone: timm's feature extractor of branches 1-4, whole
    dlc_hrnet = timm.create_model('hrnet_w18', pretrained=False, features_only=True, out_indices=(1, 2, 3, 4),
                                  feature_location='')
    path = write_snapshot(tmp_path / 'snapshot-050.pt',
                          {f'backbone.model.{k}': v for k, v in dlc_hrnet.state_dict().items()})
    read = snapshot.read(path, 'hrnet_w18', {})
    own = basenets.build('hrnet_w18', {}).state_dict()
    assert sorted(read.backbone) == sorted(own) and len(dlc_hrnet.state_dict()) > len(own)
    assert torch.equal(read.backbone['hrnet.conv1.weight'], dlc_hrnet.state_dict()['conv1.weight'])


def refused(tmp_path, capsys, snapshot_path, *flags) -> str:
    """The one line of a run refused before it writes anything (exit 2)."""
    out = tmp_path / 'out'
    with pytest.raises(SystemExit) as stop:
        train.main(['--config', dlc_file(tmp_path, snapshot_path), '--dlc-project', str(tmp_path / 'project'),
                    '--device', 'cpu', '--output', f'{out}/run.pkl', *flags])
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1, err
    assert not out.exists()
    return err[0]


def test_a_snapshot_of_another_backbone_is_refused_in_one_line_naming_the_file_and_the_key(tmp_path, capsys):
    path = resnet18_snapshot(tmp_path / 'snapshot-050.pt')
    line = refused(tmp_path, capsys, path)
    assert f'{path}: the DeepLabCut snapshot\'s backbone does not fit --basenet cspnext_s: it has no ' \
           'backbone.stem.0.conv.weight' in line
    # the same file fits resnet18
    assert len(snapshot.read(path, 'resnet18', {}).backbone) == len(basenets.build('resnet18', {}).state_dict())


class _Marker:
    """Unpickling it would create ``path`` (what a malicious snapshot could do with any callable)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), 'w')


def test_a_snapshot_that_pickles_a_class_is_refused_without_running_it(tmp_path, capsys):
    marker = tmp_path / 'ran'
    path = tmp_path / 'snapshot-050.pt'
    torch.save({'model': {}, 'metadata': {'epoch': 1, 'hook': _Marker(marker)}}, path)
    line = refused(tmp_path, capsys, path)
    assert f'{path}: refused as a DeepLabCut snapshot: it pickles io.open' in line
    assert 'nothing of it was run' in line and not marker.exists()


def test_numpy_float_metrics_of_older_dlc_releases_are_read(tmp_path):
    path = cspnext_snapshot(tmp_path / 'snapshot-050.pt')
    content = torch.load(path, weights_only=True)
    content['metadata']['metrics'] = {'test.mAP': np.float64(0.5), 'test.rmse': np.float32(3.0)}
    torch.save(content, path)
    assert snapshot.read(path, 'cspnext_s', {}).epoch == 50
