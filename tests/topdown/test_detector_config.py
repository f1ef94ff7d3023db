"""The detector run as configured: DeepLabCut's ``detector:`` section (augmentation, optimizer, any scheduler,
snapshots, scheduler state on resume) trains the detector of the shared DeepLabCut project as it says; the
detector's flags and the pose run's settings they replace."""

import json
import pathlib

import PIL.Image
import pytest
import torch

from openfields import train
from openfields.datasets import factory as datasets_factory
from openfields.datasets.coco import CocoKeypoints, keypoint_category
from openfields.topdown import detector_data, detector_training
from openfields.topdown.boxes import BoxSettings
from openfields.training import distributed
from openfields.training.log import read_log
from openfields.training.run_settings import RunSettings

DLC_PROJECT = pathlib.Path(__file__).resolve().parents[3] / 'shared' / 'data' / 'dlc-openfield'
needs_project = pytest.mark.skipif(not (DLC_PROJECT / 'config.yaml').is_file(),
                                   reason=f'no DeepLabCut project at {DLC_PROJECT}')

# a top-down pytorch_config.yaml as DeepLabCut writes its detector section, shrunk to a test's size
DETECTOR_YAML = """
method: td
detector:
  data:
    colormode: RGB
    inference:
      normalize_images: true
    train:
      affine:
        p: 1.0
        rotation: 30
        scaling: [ 0.5, 1.25 ]
        translation: 40
      hflip: true
      gaussian_noise: 12.75
      normalize_images: true
  model:
    type: SSDLite
    pretrained: false
  runner:
    type: DetectorTrainingRunner
    eval_interval: 3
    optimizer:
      type: AdamW
      params:
        lr: 1e-3
    scheduler:
      type: LRListScheduler
      params:
        lr_list: [ [ 5e-4 ], [ 1e-4 ] ]
        milestones: [ 1, 2 ]
    snapshots:
      max_snapshots: 1
      save_epochs: 1
      save_optimizer_state: false
  train_settings:
    batch_size: 2
    dataloader_workers: 0
    display_iters: 1
    epochs: 3
"""
SHRINK = ['--detector-train-batches', '2', '--val-batches', '1', '--loader-workers', '0', '--seed', '1']


def detector_run(tmp_path, config: str, *extra) -> pathlib.Path:
    """Train the detector of ``config`` on the shared project the way ``--method td`` does."""
    args = train.cli(['--config', config, '--dlc-project', str(DLC_PROJECT), *SHRINK,
                      '--output', str(tmp_path / 'run.pkl'), *extra])
    train.seed_everything(args.seed)
    base = datasets_factory.datamodule_from_args(args, 16)
    device = torch.device('cpu')
    return detector_training.detector_for(detector_training.DetectorChoice.from_args(args),
                                          RunSettings.from_args(args, device),
                                          distributed.Context(distributed.Launch()), device, base, args.output)


def epoch_rates(log_path) -> dict[int, list[float]]:
    rates = {}
    for record in read_log(log_path).records:
        if record['type'] == 'train':
            rates.setdefault(record['epoch'], []).append(record['lr'])
    return rates


@needs_project
def test_the_detector_section_trains_with_its_scheduler_augmentation_and_snapshots(tmp_path):
    config = tmp_path / 'pytorch_config.yaml'
    config.write_text(DETECTOR_YAML)
    path = detector_run(tmp_path, str(config))
    log = f'{path}.log'
    # LRListScheduler: 1e-3, then 5e-4 from the epoch after milestone 1, 1e-4 after milestone 2 (two batches each)
    assert epoch_rates(log) == {1: pytest.approx([1e-3] * 2), 2: pytest.approx([5e-4] * 2),
                                3: pytest.approx([1e-4] * 2)}
    process = next(r for r in read_log(log).records if r['type'] == 'process')
    augmentation = process['augmentation']
    assert (augmentation['affine'], augmentation['affine_translation'], augmentation['hflip'],
            augmentation['gaussian_noise']) == (1.0, 40.0, 0.5, 12.75)
    assert augmentation['image_steps'] == [
        'RandomApply(Affine(rotation=30.0, scaling=(0.5, 1.25), translation=40.0), probability=1.0)',
        'GaussianNoise(std=12.75, p=0.5)']
    run = process['run']
    assert (run['optimizer']['torch_class'], run['optimizer']['lr'], run['schedule']['torch_class'],
            run['schedule']['warm_up_epochs']) == ('AdamW', 1e-3, 'LRListScheduler', 0.0)
    assert (run['snapshots']['max_snapshots'], run['trainer']['save_epochs'], run['trainer']['display_interval']) == (
        1, 1, 1)
    # save_epochs 1 wrote a snapshot after every epoch, max_snapshots 1 kept the newest; no optimizer state in it
    snapshots = sorted(p.name for p in tmp_path.glob('run.detector.pkl.epoch*'))
    assert snapshots == ['run.detector.pkl.epoch003']
    state = torch.load(tmp_path / snapshots[0], map_location='cpu', weights_only=False)['training_state']
    assert state['trainer'].get('optimizer') is None
    tests = [r for r in read_log(log).records if r['type'] == 'test']
    assert [r['epoch'] for r in tests] == [3] and 0.0 <= tests[0]['metrics']['test.mAP@50:95'] <= 1.0


@needs_project
def test_a_resumed_detector_follows_its_new_schedule_without_the_saved_scheduler_state(tmp_path):
    first = tmp_path / 'first.yaml'
    first.write_text(DETECTOR_YAML.replace('save_optimizer_state: false', 'save_optimizer_state: true')
                     .replace('eval_interval: 3', 'eval_interval: 0'))
    detector_run(tmp_path, str(first), '--detector-epochs', '1')
    resumed = tmp_path / 'resumed.yaml'
    resumed.write_text(first.read_text().replace('lr_list: [ [ 5e-4 ], [ 1e-4 ] ]', 'lr_list: [ [ 2e-4 ], [ 5e-5 ] ]')
                       .replace('  train_settings:', '    load_scheduler_state_dict: false\n  train_settings:'))
    path = detector_run(tmp_path, str(resumed), '--detector-resume', str(tmp_path / 'run.detector.pkl.epoch001'))
    assert epoch_rates(f'{path}.log') == {1: pytest.approx([1e-3] * 2), 2: pytest.approx([2e-4] * 2),
                                          3: pytest.approx([5e-5] * 2)}


def one_image(tmp_path) -> CocoKeypoints:
    """A 120 x 90 image with one individual: keypoints (22, 12) and (47, 57), its bbox their extent (as in a
    DeepLabCut project, whose boxes are the keypoints plus the margin)."""
    PIL.Image.new('RGB', (120, 90)).save(tmp_path / '1.png')
    data = {'images': [{'id': 1, 'file_name': '1.png'}],
            'annotations': [{'id': 1, 'image_id': 1, 'category_id': 1, 'iscrowd': 0, 'bbox': [22, 12, 25, 45],
                             'keypoints': [22, 12, 2, 47, 57, 2]}],
            'categories': [{'id': 1, 'name': 'mouse', 'keypoints': ['a', 'b'], 'skeleton': [[1, 2]]}]}
    (tmp_path / 'anns.json').write_text(json.dumps(data))
    return CocoKeypoints(data, tmp_path / 'anns.json', tmp_path, keypoint_category(data, 'anns.json', None),
                         lambda *sample: sample, dataset_name='one', min_kp_anns=0)


@pytest.mark.parametrize('augmentation, expected', [
    ({}, [(22 - 10) * 2, (12 - 10) * 2, (47 + 10) * 2, (57 + 10) * 2]),  # keypoints and the 10 px margin, x2
    # the box (12, 2) - (57, 67) scaled by 0.5 about the centre (59.5, 44.5) with the image, then x2
    ({'affine': 1.0, 'affine_rotation': 0.0, 'affine_scaling': (0.5, 0.5)}, [71.5, 46.5, 116.5, 111.5]),
    ({'covering': 1.0, 'motion_blur': 1.0, 'hist_eq': 1.0, 'gaussian_noise': 20.0}, [24, 4, 114, 134]),
])
def test_the_boxes_follow_the_augmented_image(tmp_path, augmentation, expected):
    samples = detector_data.DetectionSamples(one_image(tmp_path), BoxSettings(margin=10.0, source='keypoints'),
                                             image_size=240,
                                             augmentation=detector_data.DetectorAugmentation(hflip=0.0, **augmentation))
    _, target, meta = samples[0]
    assert meta['scale'] == 2.0 and target['boxes'].tolist() == [pytest.approx(expected)]


def test_the_detector_flags_replace_the_pose_runs_settings_and_default_to_them():
    args = train.cli(['--max-snapshots', '7', '--no-load-scheduler-state', '--loader-workers', '3',
                      '--display-interval', '4', '--detector-optimizer-class', 'RMSprop',
                      '--detector-optimizer-params', '{"alpha": 0.9}', '--detector-scheduler-class', 'ExponentialLR',
                      '--detector-scheduler-params', '{"gamma": 0.5}', '--detector-lr', '0.01'])
    pose = RunSettings.from_args(args, torch.device('cpu'))
    detector = detector_training.DetectorRunSettings.from_args(args).run_settings(pose, pathlib.Path('d.pkl'))
    assert (detector.snapshots.max_snapshots, detector.resume.load_scheduler_state, detector.loader.workers,
            detector.trainer.display_interval, detector.trainer.save_epochs) == (7, False, 3, 4, None)
    assert (detector.optimizer.torch_class, json.loads(detector.optimizer.torch_params), detector.optimizer.lr) == (
        'RMSprop', {'alpha': 0.9}, 0.01)
    assert [detector.schedule(e) for e in (0, 1, 2.5)] == pytest.approx([1.0, 0.5, 0.25])
    optimizer = detector.optimizer.build([torch.nn.Parameter(torch.zeros(1))])
    assert type(optimizer).__name__ == 'RMSprop' and optimizer.defaults['alpha'] == 0.9
    own = train.cli(['--max-snapshots', '7', '--detector-max-snapshots', '2', '--detector-load-scheduler-state',
                     '--no-load-scheduler-state', '--detector-save-epochs', '5', '--detector-loader-workers', '0'])
    detector = detector_training.DetectorRunSettings.from_args(own).run_settings(
        RunSettings.from_args(own, torch.device('cpu')), pathlib.Path('d.pkl'))
    assert (detector.snapshots.max_snapshots, detector.resume.load_scheduler_state, detector.loader.workers,
            detector.trainer.save_epochs) == (2, True, 0, 5)


@pytest.mark.parametrize('flags, message', [
    (['--detector-scheduler-params', '{"gamma": 0.5}'], '--detector-scheduler-params needs --detector-scheduler-class'),
    (['--detector-scheduler-class', 'StepLR', '--detector-scheduler-params', '{"step_size": 2}',
      '--detector-lr-decay', '5'], '--detector-lr-decay and --detector-scheduler-class are two schedules'),
    (['--detector-scheduler-class', 'SequentialLR', '--detector-scheduler-params',
      '{"milestones": [2], "schedulers": [{"type": "ConstantLR", "params": {}}, '
      '{"type": "CosineAnnealingLR", "params": {"T_max": 5, "eta_min": "1e-5"}}]}'],
     '--detector-scheduler-params schedulers[1].params.eta_min: CosineAnnealingLR takes a number here'),
    (['--detector-scheduler-class', 'OneCycleLR', '--detector-scheduler-params',
      '{"max_lr": 0.01, "total_steps": 3}', '--detector-epochs', '10'], '(--detector-epochs 10)'),
    (['--detector-optimizer-class', 'SGD', '--detector-optimizer-params', '{"nesterov": true}'],
     "--detector-optimizer-class SGD rejects its params {'nesterov': True}: Nesterov momentum requires"),
    (['--detector-affine', '1.5'], '--detector-affine is a probability in [0, 1], got 1.5'),
    (['--detector-affine-scaling', '2', '1'], '--detector-affine-scaling must be 0 < MIN <= MAX'),
    (['--detector-max-snapshots', '-1'], '--detector-max-snapshots must be >= 0'),
])
def test_a_detector_flag_that_cannot_run_is_one_line_naming_it(flags, message):
    args = train.cli(flags)
    with pytest.raises(ValueError) as error:
        detector_training.DetectorChoice.from_args(args)
    assert message in str(error.value) and '\n' not in str(error.value)
