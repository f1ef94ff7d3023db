"""A DeepLabCut 3 ``pytorch_config.yaml`` as ``--config``: each key changes its flag, unknown keys are
listed, bad sections stop the run with one line."""

import json
import logging
import pathlib
import shutil

import pytest

from openfields import train
from openfields.deeplabcut import pytorch_config as dlc_config
from openfields.training import optimize

yaml = pytest.importorskip('yaml')

# the bottom-up resnet_50 defaults as DeepLabCut's guide shows pytorch_config.yaml (abridged: no inference)
GUIDE_DEFAULTS = {
    'data': {'colormode': 'RGB', 'inference': {'normalize_images': True},
             'train': {'affine': {'p': 0.5, 'rotation': 30, 'scaling': [0.5, 1.25], 'translation': 0},
                       'crop_sampling': {'width': 448, 'height': 448, 'max_shift': 0.1, 'method': 'hybrid'},
                       'gaussian_noise': 12.75, 'motion_blur': True, 'normalize_images': True}},
    'device': 'auto', 'method': 'bu', 'net_type': 'resnet_50',
    'model': {'backbone': {'type': 'ResNet', 'model_name': 'resnet50_gn', 'output_stride': 16,
                           'freeze_bn_stats': True, 'freeze_bn_weights': False},
              'backbone_output_channels': 2048, 'heads': {'bodypart': {'type': 'HeatmapHead'}}},
    'runner': {'type': 'PoseTrainingRunner', 'gpus': None, 'key_metric': 'test.mAP', 'key_metric_asc': True,
               'eval_interval': 10, 'optimizer': {'type': 'AdamW', 'params': {'lr': 0.0005}},
               'scheduler': {'type': 'LRListScheduler',
                             'params': {'lr_list': [[1e-4], [1e-5]], 'milestones': [90, 120]}},
               'snapshots': {'max_snapshots': 5, 'save_epochs': 25, 'save_optimizer_state': False}},
    'train_settings': {'batch_size': 8, 'dataloader_workers': 0, 'dataloader_pin_memory': False,
                       'display_iters': 500, 'epochs': 200, 'seed': 42},
}


def write_yaml(path, mapping):
    path.write_text(yaml.safe_dump(mapping))
    return str(path)


def test_the_guide_defaults_set_every_mapped_flag(tmp_path):
    args = train.cli(['--config', write_yaml(tmp_path / 'pytorch_config.yaml', GUIDE_DEFAULTS)])
    assert (args.dataset, args.basenet, args.device) == ('dlc', 'resnet50_gn', 'auto')  # DeepLabCut's resnet_50
    assert (args.optimizer_class, json.loads(args.optimizer_params), args.lr) == ('AdamW', {}, 0.0005)
    assert (args.lr_schedule, args.lr_milestones, args.lr_values, args.lr_warm_up_epochs) == (
        'milestones', [90, 120], [1e-4, 1e-5], 0)
    assert (args.key_metric, args.key_metric_asc, args.eval_interval) == ('test.mAP', True, 10)
    assert (args.max_snapshots, args.save_epochs, args.save_optimizer_state) == (5, 25, False)
    assert (args.batch_size, args.loader_workers, args.display_interval, args.epochs, args.seed) == (
        8, 0, 500, 200, 42)
    assert (args.dlc_affine, args.dlc_affine_rotation, args.dlc_affine_scaling) == (0.5, 30, [0.5, 1.25])
    assert (args.dlc_square_edge, args.dlc_crop_sampling, args.dlc_crop_max_shift) == (449, 'hybrid', 0.1)
    assert (args.dlc_gaussian_noise, args.dlc_motion_blur) == (12.75, 0.5)
    assert (args.dlc_heads, args.dlc_heatmap_target, args.dlc_heatmap_locref) == ('heatmap', 'gaussian', True)


# the guide defaults on two GPUs: DataParallel's gpus list has no counterpart (one process per GPU instead)
TWO_GPUS = {**GUIDE_DEFAULTS, 'runner': {**GUIDE_DEFAULTS['runner'], 'gpus': [0, 1]}}


def test_keys_without_a_counterpart_are_one_warning_line(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger='openfields.config'):
        train.cli(['--config', write_yaml(tmp_path / 'pytorch_config.yaml', TWO_GPUS)])
    lines = [r.getMessage() for r in caplog.records if 'ignored' in r.getMessage()]
    assert len(lines) == 1
    assert 'runner.gpus' in lines[0] and 'model.backbone.' not in lines[0]  # the backbone is built as written
    assert 'model.heads' not in lines[0]  # the HeatmapHead is --dlc-heads heatmap
    assert 'runner.optimizer' not in lines[0] and 'data.train.affine' not in lines[0]


def test_strict_config_makes_ignored_keys_an_error(tmp_path, capsys):
    path = write_yaml(tmp_path / 'pytorch_config.yaml', TWO_GPUS)
    with pytest.raises(SystemExit) as stop:
        train.cli(['--config', path, '--strict-config'])
    assert stop.value.code == 2
    assert 'runner.gpus' in capsys.readouterr().err


def test_command_line_flags_override_the_file(tmp_path):
    args = train.cli(['--config', write_yaml(tmp_path / 'c.yaml', GUIDE_DEFAULTS), '--epochs', '3',
                      '--dlc-affine', '0'])
    assert (args.epochs, args.dlc_affine, args.batch_size) == (3, 0.0, 8)


def test_transforms_go_to_the_dataset_given_on_the_command_line(tmp_path):
    args = train.cli(['--dataset', 'cocokp', '--config', write_yaml(tmp_path / 'c.yaml', GUIDE_DEFAULTS)])
    assert (args.dataset, args.cocokp_affine, args.cocokp_square_edge, args.dlc_affine) == ('cocokp', 0.5, 449, 0.0)


@pytest.mark.parametrize('train_section, expected', [
    ({'resize': {'height': 240, 'width': 320, 'keep_ratio': False}},
     {'dlc_resize': [320, 240], 'dlc_resize_keep_ratio': False}),
    ({'hflip': True, 'hist_eq': True, 'covering': 0.3}, {'dlc_hflip': 0.5, 'dlc_hist_eq': 0.5, 'dlc_covering': 0.3}),
    ({'auto_padding': {'pad_width_divisor': 32, 'pad_height_divisor': 32}}, {'dlc_auto_padding': [32]}),
    ({'auto_padding': {'pad_width_divisor': 32, 'pad_height_divisor': 16, 'min_width': 100, 'min_height': 50,
                       'border_mode': 'reflect_101'}},
     {'dlc_auto_padding': [32, 16], 'dlc_auto_padding_min': [100, 50], 'dlc_auto_padding_border': 'reflect_101'}),
    ({'crop_sampling': {'width': 256, 'height': 128, 'method': 'density'}},
     {'dlc_crop_size': [257, 129], 'dlc_square_edge': 385, 'dlc_crop_sampling': 'density'}),
    ({'hflip': {'p': 0.3, 'symmetries': [[1, 2]]}}, {'dlc_hflip': 0.3, 'dlc_hflip_pairs': ['1:2']}),
    ({'collate': {'type': 'ResizeFromListCollate', 'scales': [256, [192, 320]], 'max_shift': 5}},
     {'dlc_collate_sizes': ['256', '320x192'], 'dlc_collate_max_shift': 5, 'dlc_collate_scale': None}),
    ({'collate': {'type': 'ResizeFromDataSizeCollate', 'min_scale': 0.4, 'max_scale': 1.0, 'min_short_side': 128,
                  'max_short_side': 1152, 'multiple_of': 32, 'to_square': False}},
     {'dlc_collate_scale': [0.4, 1.0], 'dlc_collate_short_side': [128, 1152], 'dlc_collate_multiple': 32}),
])
def test_each_data_transform_changes_its_flag(tmp_path, train_section, expected):
    args = train.cli(['--config', write_yaml(tmp_path / 'c.yaml', {'data': {'train': train_section}})])
    assert {name: getattr(args, name) for name in expected} == expected


def test_a_torch_scheduler_and_optimizer_by_name(tmp_path):
    mapping = {'runner': {'optimizer': {'type': 'RMSprop', 'params': {'lr': 0.01, 'alpha': 0.9}},
                          'scheduler': {'type': 'StepLR', 'params': {'step_size': 2, 'gamma': 0.5}},
                          'key_metric': 'test.rmse', 'key_metric_asc': False, 'load_scheduler_state_dict': False}}
    args = train.cli(['--config', write_yaml(tmp_path / 'c.yaml', mapping)])
    assert (args.optimizer_class, json.loads(args.optimizer_params), args.lr) == ('RMSprop', {'alpha': 0.9}, 0.01)
    schedule = optimize.LearningRateSchedule.from_args(args)
    assert [schedule(e) for e in (0.5, 2.0, 4.5)] == [1.0, 0.5, 0.25]
    assert (args.key_metric_desc, args.load_scheduler_state) == (True, False)


def test_logger_and_resume_keys(tmp_path):
    mapping = {'logger': {'type': 'WandbLogger', 'project_name': 'mice', 'run_name': 'r1', 'image_log_interval': 5},
               'resume_training_from': 'old.pkl'}
    args = train.cli(['--config', write_yaml(tmp_path / 'c.yaml', mapping)])
    assert (args.logger, args.wandb_project, args.wandb_run_name, args.image_log_interval, args.resume) == (
        ['wandb'], 'mice', 'r1', 5, 'old.pkl')


# DeepLabCut's top-down defaults (base_detector.yaml with the fasterrcnn_resnet50_fpn_v2 detector), abridged
TOP_DOWN = {
    'method': 'td',
    'data': {'bbox_margin': 25, 'train': {'top_down_crop': {'width': 256, 'height': 192},
                                          'random_bbox_transform': {'shift_factor': 0.1, 'shift_prob': 0.25,
                                                                    'scale_factor': [0.75, 1.25]}}},
    'detector': {
        'data': {'train': {'hflip': True}},
        'model': {'type': 'FasterRCNN', 'variant': 'fasterrcnn_resnet50_fpn_v2', 'pretrained': False,
                  'box_score_thresh': 0.6, 'freeze_bn_stats': True},
        'runner': {'type': 'DetectorTrainingRunner', 'key_metric': 'test.mAP@50:95', 'eval_interval': 10,
                   'optimizer': {'type': 'AdamW', 'params': {'lr': 1e-4}},
                   'scheduler': {'type': 'LRListScheduler', 'params': {'lr_list': [[1e-5]], 'milestones': [160]}}},
        'train_settings': {'batch_size': 1, 'epochs': 250, 'display_iters': 500},
        'resume_training_from': 'snapshot-detector-100.pkl'},
}


def test_the_top_down_method_and_the_detector_section_set_their_flags(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        args = train.cli(['--config', write_yaml(tmp_path / 'td.yaml', TOP_DOWN)])
    assert args.method == 'td'
    assert (args.topdown_bbox_margin, args.topdown_crop_width, args.topdown_crop_height) == (25.0, 256, 192)
    assert (args.topdown_jitter_shift, args.topdown_jitter_shift_prob, args.topdown_jitter_scale) == (
        0.1, 0.25, [0.75, 1.25])
    assert (args.detector, args.detector_pretrained, args.detector_score_threshold) == (
        'fasterrcnn_resnet50_fpn_v2', 'none', 0.6)
    assert (args.detector_epochs, args.detector_batch_size, args.detector_eval_interval) == (250, 1, 10)
    assert (args.detector_optimizer_class, json.loads(args.detector_optimizer_params), args.detector_lr) == (
        'AdamW', {}, 1e-4)
    assert (args.detector_scheduler_class, json.loads(args.detector_scheduler_params)) == (
        'LRListScheduler', {'lr_list': [[1e-5]], 'milestones': [160]})
    assert args.detector_resume == 'snapshot-detector-100.pkl'
    assert args.detector_hflip == 0.5  # the detector's augmentations are its own flags
    ignored = caplog.text
    assert 'detector.data' not in ignored and 'detector.model.freeze_bn_stats' in ignored
    assert 'detector.runner.key_metric' not in ignored  # mAP@50:95 is what picks the best detector


def test_ssdlite_without_a_variant_and_conditional_top_down_listed_as_ignored(tmp_path, caplog):
    mapping = {'method': 'ctd', 'detector': {'model': {'type': 'SSDLite'}}}
    with caplog.at_level(logging.WARNING):
        args = train.cli(['--config', write_yaml(tmp_path / 'ctd.yaml', mapping)])
    assert args.detector == 'ssdlite320_mobilenet_v3_large' and args.method == 'bu'
    assert 'method (ctd: conditional top-down has no counterpart' in caplog.text


@pytest.mark.parametrize('mapping, message', [
    ({'runner': 5}, 'key runner: must be a mapping'),
    ({'runner': {'optimizer': {'type': 'Adamm', 'params': {}}}}, "key runner.optimizer: torch.optim has no"),
    ({'runner': {'optimizer': {'type': 'SGD', 'params': {'lr': 0.1, 'bogus': 1}}}}, 'SGD rejects its params'),
    ({'runner': {'scheduler': {'type': 'NoSuchLR', 'params': {}}}}, 'key runner.scheduler: torch.optim.lr_scheduler'),
    ({'data': {'train': {'affine': {'p': 2}}}}, 'key data.train.affine.p: a probability'),
    ({'data': {'train': {'hflip': {'symmetries': [[1]]}}}}, 'key data.train.hflip.symmetries: must be a list'),
    ({'data': {'train': {'auto_padding': {'min_height': 64, 'border_mode': 'wrap'}}}},
     'key data.train.auto_padding.border_mode: \'wrap\' is not one of'),
    ({'data': {'train': {'collate': {'type': 'ResizeFromListCollate', 'scales': [[1, 2, 3]]}}}},
     'key data.train.collate.scales: [1, 2, 3] is neither'),
    ({'method': 'td', 'detector': {'model': {'type': 'YOLO'}}}, "key detector.model: detector type 'YOLO'"),
    ({'method': 'td', 'detector': {'runner': {'optimizer': {'type': 'Adamm'}}}},
     "key detector.runner.optimizer: torch.optim has no optimizer class 'Adamm'"),
])
def test_bad_input_is_one_line_naming_the_key_and_the_file(tmp_path, capsys, mapping, message):
    path = write_yaml(tmp_path / 'pytorch_config.yaml', mapping)
    with pytest.raises(SystemExit) as stop:
        train.cli(['--config', path])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and message in err and path in err and len(err.strip().splitlines()) == 1


def test_a_yaml_that_is_not_a_mapping_is_refused(tmp_path, capsys):
    path = tmp_path / 'pytorch_config.yaml'
    path.write_text('- a\n- b\n')
    with pytest.raises(SystemExit):
        train.cli(['--config', str(path)])
    assert 'must hold a mapping' in capsys.readouterr().err


def test_config_dlc_finds_the_file_of_the_shuffle(tmp_path):
    folder = tmp_path / 'project' / 'dlc-models-pytorch' / 'iteration-0' / 'openfieldOct30-trainset95shuffle2' / 'train'
    folder.mkdir(parents=True)
    write_yaml(folder / 'pytorch_config.yaml', {'train_settings': {'epochs': 7}})
    assert dlc_config.find_pytorch_config(tmp_path / 'project', 2) == folder / 'pytorch_config.yaml'
    args = train.cli(['--config', 'dlc', '--dlc-project', str(tmp_path / 'project'), '--dlc-shuffle', '2'])
    assert (args.epochs, args.dataset) == (7, 'dlc')
    with pytest.raises(dlc_config.DlcConfigError, match='shuffle 3'):
        dlc_config.find_pytorch_config(tmp_path / 'project', 3)
    shutil.rmtree(tmp_path / 'project')


DLC_PROJECT = pathlib.Path(__file__).resolve().parents[3] / 'shared' / 'data' / 'dlc-openfield'


@pytest.mark.slow
@pytest.mark.skipif(not (DLC_PROJECT / 'config.yaml').is_file(), reason=f'no DeepLabCut project at {DLC_PROJECT}')
def test_the_guide_defaults_train_the_openfield_project(tmp_path):
    # the file as DeepLabCut writes it; the command line only shrinks the run to a test's size
    path = write_yaml(tmp_path / 'pytorch_config.yaml', GUIDE_DEFAULTS)
    out = tmp_path / 'run.pkl'
    train.main(['--config', path, '--dlc-project', str(DLC_PROJECT), '--basenet', 'shufflenetv2k16',
                '--no-basenet-pretrained', '--epochs', '1', '--train-batches', '1', '--val-batches', '1', '--batch-size', '2',
                '--dlc-square-edge', '97', '--dlc-rescale-images', '0.25', '--coco-eval-long-edge', '161',
                '--output', str(out)])
    recorded = json.loads((tmp_path / 'run.pkl.config.json').read_text())
    assert (recorded['optimizer-class'], recorded['lr-milestones'], recorded['key-metric']) == (
        'AdamW', [90, 120], 'test.mAP')
    assert out.is_file()
