"""The ``detector:`` section of a top-down DeepLabCut ``pytorch_config.yaml`` (DeepLabCut's configuration
guide's snippets as written) and its ``logger:`` W&B arguments, translated into flags: each key reaches its
flag, keys without a counterpart are one warning line, a bad value stops the run in one line naming the key."""

import json
import logging

import pytest

from openfields import train
from openfields.topdown.detector_training import DetectorRunSettings
from openfields.training.optimize import LearningRateSchedule

# the guide's "Detector Configuration" snippet, its runner filled with the guide's runner, optimizer, scheduler
# and snapshots snippets and its train_settings with the guide's train_settings snippet; the guide's logger
GUIDE_TOP_DOWN = """
method: td
detector:
  data:  # which data augmentations will be used, same options as for the pose model
    colormode: RGB
    inference:  # default inference configuration for detectors
      normalize_images: true
    train:  # default train configuration for detectors
      affine:
        p: 0.9
        rotation: 30
        scaling: [ 0.5, 1.25 ]
        translation: 40
      hflip: true
      normalize_images: true
  model:  # the detector to train
    type: FasterRCNN
    variant: fasterrcnn_mobilenet_v3_large_fpn
    pretrained: true
  runner:  #  detector train runner configuration (same keys as for the pose model)
    type: DetectorTrainingRunner
    eval_interval: 1  # the interval between each passes through the evaluation dataset
    optimizer:
      type: SGD
      params:
        lr: 1e-3
        momentum: 0.9
    scheduler:
      type: LRListScheduler
      params:
        lr_list: [ [ 1e-5 ], [ 1e-6 ] ]
        milestones: [ 160, 190 ]
    load_scheduler_state_dict: false
    snapshots:  # parameters for the TorchSnapshotManager
      max_snapshots: 5  # the maximum number of snapshots to save (the "best" model does not count as one of them)
      save_epochs: 25  # the interval between each snapshot save
      save_optimizer_state: false  # whether the optimizer state should be saved with the model snapshots
  train_settings: # detector train settings (same keys as for the pose model)
    batch_size: 1  # the batch size used for training
    dataloader_workers: 0  # the number of workers for the PyTorch Dataloader
    dataloader_pin_memory: true  # pin DataLoader memory
    display_iters: 500  # the number of iterations (steps) between each log print
    epochs: 200  # the maximum number of epochs for which to train the model
    seed: 42  # the random seed to set for reproducibility
logger:
 type: WandbLogger
 project_name: my-dlc3-project  # the name of the project where the run should be logged
 run_name: dekr-w32-shuffle0  # the name of the run to log
 tags: ["dekr", "split=0"]
"""

STEP_LR = """
    scheduler:
      type: StepLR
      params:
        step_size: 100
        gamma: 0.1
"""


def write(tmp_path, text: str, name: str = 'pytorch_config.yaml') -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_the_guides_detector_section_sets_the_detector_flags(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger='openfields.config'):
        args = train.cli(['--config', write(tmp_path, GUIDE_TOP_DOWN)])
    assert (args.method, args.detector, args.detector_pretrained) == ('td', 'fasterrcnn_mobilenet_v3_large_fpn', 'auto')
    assert (args.detector_affine, args.detector_affine_rotation, args.detector_affine_scaling,
            args.detector_affine_translation, args.detector_hflip) == (0.9, 30, [0.5, 1.25], 40, 0.5)
    assert (args.detector_optimizer_class, json.loads(args.detector_optimizer_params), args.detector_lr) == (
        'SGD', {'momentum': 0.9}, 1e-3)
    assert (args.detector_scheduler_class, json.loads(args.detector_scheduler_params)) == (
        'LRListScheduler', {'lr_list': [[1e-5], [1e-6]], 'milestones': [160, 190]})
    assert (args.detector_max_snapshots, args.detector_save_epochs, args.detector_save_optimizer_state,
            args.detector_load_scheduler_state, args.detector_eval_interval) == (5, 25, False, False, 1)
    assert (args.detector_batch_size, args.detector_loader_workers, args.detector_display_interval,
            args.detector_epochs) == (1, 0, 500, 200)
    assert json.loads(args.wandb_init_kwargs) == {'tags': ['dekr', 'split=0']}
    assert (args.wandb_project, args.wandb_run_name) == ('my-dlc3-project', 'dekr-w32-shuffle0')
    lines = [r.getMessage() for r in caplog.records if 'ignored' in r.getMessage()]
    assert len(lines) == 1 and lines[0].endswith('detector.train_settings.seed (the detector run is seeded by --seed, '
                                                 'the pose model\'s train_settings.seed)')


def test_the_detector_learns_at_the_rates_of_the_guides_schedulers(tmp_path):
    # LRListScheduler: absolute rates from the epoch after each milestone (1-based epochs 161 and 191)
    args = train.cli(['--config', write(tmp_path, GUIDE_TOP_DOWN)])
    schedule = DetectorRunSettings.from_args(args).schedule(LearningRateSchedule())
    assert [schedule(e) * args.detector_lr for e in (0, 159.5, 160, 189.9, 190, 199)] == pytest.approx(
        [1e-3, 1e-3, 1e-5, 1e-5, 1e-6, 1e-6])
    # StepLR: times gamma every step_size epochs, stepped once per epoch
    text = GUIDE_TOP_DOWN.replace(GUIDE_TOP_DOWN[GUIDE_TOP_DOWN.index('    scheduler:'):
                                                GUIDE_TOP_DOWN.index('    load_scheduler_state_dict')], STEP_LR)
    args = train.cli(['--config', write(tmp_path, text, 'step.yaml')])
    assert (args.detector_scheduler_class, json.loads(args.detector_scheduler_params)) == (
        'StepLR', {'gamma': 0.1, 'step_size': 100})
    schedule = DetectorRunSettings.from_args(args).schedule(LearningRateSchedule())
    assert [schedule(e) for e in (0, 99.9, 100, 199)] == pytest.approx([1.0, 1.0, 0.1, 0.1])
    assert (schedule.warm_up_epochs, schedule.shape) == (0.0, 'torch')


NESTED_BAD = """
method: td
detector:
  runner:
    scheduler:
      type: SequentialLR
      params:
        milestones: [ 2 ]
        schedulers:
        - type: LinearLR
          params: { start_factor: 0.001, total_iters: 2 }
        - type: CosineAnnealingLR
          params: { T_max: 10, eta_min: "5e-05" }
"""


@pytest.mark.parametrize('text, key', [
    (NESTED_BAD, 'key detector.runner.scheduler.params.schedulers[1].params.eta_min: CosineAnnealingLR takes a '
                 'number here'),
    (NESTED_BAD.replace('T_max: 10, eta_min: "5e-05"', 'T_max: 10, eta_min: 1e-5')
               .replace('milestones: [ 2 ]', 'milestones: [ 2, 4 ]'),
     'key detector.runner.scheduler: SequentialLR rejects its params'),
    ('detector:\n  runner:\n    optimizer: {type: Adamm, params: {lr: 1e-4}}\n',
     "key detector.runner.optimizer: torch.optim has no optimizer class 'Adamm'"),
    ('detector:\n  runner:\n    snapshots: {max_snapshots: -1}\n', 'key detector.runner.snapshots.max_snapshots: '
                                                                    'must be >= 0'),
    ('detector:\n  data:\n    train:\n      affine: {p: 2}\n', 'key detector.data.train.affine.p: a probability'),
    ('logger:\n  type: WandbLogger\n  tagz: [a]\n', "key logger.tagz: wandb.init has no parameter 'tagz'"),
    ('logger:\n  type: WandbLogger\n  wandb_kwargs: {tags: a}\n', 'key logger.wandb_kwargs.tags: wandb.init takes '
                                                                   'null or a list of strings here'),
    ('logger:\n  type: WandbLogger\n  name: x\n', "key logger.name: openfields sets wandb.init's name itself (use "
                                                 "--wandb-run-name)"),
])
def test_a_bad_detector_or_logger_key_stops_the_run_in_one_line_and_writes_nothing(tmp_path, capsys, text, key):
    if 'logger' in text:
        pytest.importorskip('wandb')
    path = write(tmp_path, text)
    with pytest.raises(SystemExit) as stop:
        train.main(['--config', path, '--output', str(tmp_path / 'out' / 'run.pkl')])
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and path in err[0] and key in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['pytorch_config.yaml']


def test_detector_keys_without_a_counterpart_are_listed_and_an_error_with_strict_config(tmp_path, caplog, capsys):
    text = ('method: td\ndetector:\n  data:\n    train:\n      crop_sampling: {width: 448}\n'
            '      collate: {type: ResizeFromDataSizeCollate, min_scale: 0.4}\n'
            '      hflip: {p: 0.3, symmetries: [[0, 1]]}\n'
            '  runner:\n    device: cpu\n    key_metric: test.mAP@50\n')
    path = write(tmp_path, text)
    with caplog.at_level(logging.WARNING, logger='openfields.config'):
        args = train.cli(['--config', path])
    assert args.detector_hflip == 0.3
    line = next(r.getMessage() for r in caplog.records if 'ignored' in r.getMessage())
    for key in ('detector.data.train.crop_sampling (the detector trains on whole images',
                'detector.data.train.collate (', 'detector.data.train.hflip.symmetries (a box has no keypoints',
                'detector.runner.device (', 'detector.runner.key_metric ('):
        assert key in line
    with pytest.raises(SystemExit) as stop:
        train.cli(['--config', path, '--strict-config'])
    assert stop.value.code == 2 and 'detector.runner.device' in capsys.readouterr().err


def test_wandb_init_arguments_of_the_logger_and_its_wandb_kwargs_mapping_are_merged(tmp_path):
    pytest.importorskip('wandb')
    text = ('logger:\n  type: WandbLogger\n  group: shuffle1\n  notes: first try\n'
            '  wandb_kwargs: {tags: [dekr], job_type: train}\n')
    args = train.cli(['--config', write(tmp_path, text)])
    assert json.loads(args.wandb_init_kwargs) == {'group': 'shuffle1', 'notes': 'first try', 'tags': ['dekr'],
                                                  'job_type': 'train'}
    assert args.logger == ['wandb']
