"""OpenPifPaf's training-guide commands (docs: ``../shared/seeds/004_8151bd6f1ea42c5c.txt``) run with
``openfields`` in place of ``openpifpaf``, each as written, pointed at the shared COCO sample and capped to a
batch or an epoch or five; the guide's own values are checked where the caps override them.

Covered here: the overfitting ``train`` and its ``predict`` (``--image-output all-images/overfitted.jpeg``),
the ShuffleNet and detection ``train``, both ``eval --watch`` commands (cocokp, cocodet) and the ``eval.sh``
one, the test-dev submission ``eval`` (``--cocokp-eval-testdev2017``) and ``logs``. Elsewhere: the
``torch.distributed.launch ... --ddp`` and Slurm ``--ddp`` lines (tests/test_train_ddp.py, tests/test_slurm*.py),
``CUDA_VISIBLE_DEVICES=0,1`` without ``--ddp`` (refused: tests/network/test_device.py, ``make gpu-check``).
"""

import json
import pathlib
import shlex
import signal
import subprocess
import sys
import time
import zipfile

import PIL.Image
import pytest
import torch
import torchvision

from openfields import eval as eval_cli, predict, train
from openfields.network import factory as network_factory
from openfields.training.log import read

COCO_SAMPLE = pathlib.Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'coco-val-sample'

GUIDE = {
    'shufflenet': '--lr=0.0003 --momentum=0.95 --b-scale=10.0 --clip-grad-value=10 '
                  '--epochs=250 --lr-decay 220 240 --lr-decay-epochs=10 --batch-size=32 --weight-decay=1e-5 '
                  '--dataset=cocokp --cocokp-upsample=2 --cocokp-extended-scale '
                  '--cocokp-orientation-invariant=0.1 --basenet=shufflenetv2k16',
    'resnet': '--lr=0.0003 --momentum=0.95 --b-scale=3.0 --clip-grad-value=10 '
              '--epochs=150 --lr-decay 130 140 --lr-decay-epochs=10 --batch-size=16 --weight-decay=1e-5 '
              '--dataset=cocokp --cocokp-upsample=2 --cocokp-extended-scale '
              '--basenet=resnet50',
    'overfit': '--lr=0.01 --momentum=0.9 --b-scale=5.0 --epochs=1000 --lr-warm-up-epochs=100 '
               '--batch-size=4 --train-batches=1 --val-batches=1 --val-interval=100 --weight-decay=1e-5 '
               '--dataset=cocokp --cocokp-upsample=2 --cocokp-no-augmentation --basenet=shufflenetv2k16',
    'detection': '--lr=0.0003 --momentum=0.95 --clip-grad-value=10 --epochs=150 --lr-decay 130 140 '
                 '--lr-decay-epochs=10 --batch-size=64 --weight-decay=1e-5 --dataset=cocodet --cocodet-upsample=2 '
                 '--basenet=resnet18 --resnet-input-conv2-stride=2 --resnet-block5-dilation=2',
}
PREDICT = ('--checkpoint outputs/shufflenetv2k16-201007-153356-cocokp-1de9503b.pkl '
           '--debug-indices cif:5 caf:5 --debug-images --long-edge=385 --loader-workers=0 '
           '--save-all --image-output all-images/overfitted.jpeg data-mscoco/images/train2017/000000262146.jpg')
EVAL = {
    'cocokp-watch': '--watch --checkpoint "outputs/shufflenetv2k??-*-cocokp*.pkl.epoch??[0,5]" --loader-workers=2 '
                    '--decoder=cifcaf:0 --dataset=cocokp --force-complete-pose --seed-threshold=0.2',
    'eval.sh': '--watch --checkpoint "outputs/shufflenetv2k16-201023-163830-cocokp.pkl.epoch??[0,5]" '
               '--dataset=cocokp --loader-workers=2 --force-complete-pose --seed-threshold=0.2',
    'testdev': '--checkpoint shufflenetv2k30 --loader-workers=2 --decoder=cifcaf:0 --dataset=cocokp '
               '--force-complete-pose --seed-threshold=0.2 --cocokp-eval-testdev2017 '
               '--coco-no-eval-annotation-filter --write-predictions',
    'cocodet-watch': '--watch --checkpoint "outputs/resnet??-*-cocodet*.pkl.epoch??[0,5]" --loader-workers=2 '
                     '--dataset=cocodet --decoder=cifdet:0 --seed-threshold=0.1 --instance-threshold=0.1',
}
LOGS = ('outputs/resnet50block5-pif-paf-edge401-190424-122009.pkl.log '
        'outputs/resnet101block5-pif-paf-edge401-190412-151013.pkl.log '
        'outputs/resnet152block5-pif-paf-edge401-190412-121848.pkl.log')
needs_sample = pytest.mark.skipif(not (COCO_SAMPLE / 'annotations.json').is_file(),
                                  reason=f'COCO sample data not found at {COCO_SAMPLE}')


def sample_flags(dataset: str) -> list[str]:
    """The guide's ``--dataset`` (cocokp, cocodet) read from the shared sample instead of data-mscoco/."""
    return [f'--{dataset}-{split}-annotations={COCO_SAMPLE / "annotations.json"}' for split in ('train', 'val')] + \
        [f'--{dataset}-{split}-image-dir={COCO_SAMPLE / "images"}' for split in ('train', 'val')]


def run(module: str, argv: list[str], cwd: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', module, *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def test_guide_commands_parse_to_the_values_they_state():
    shufflenet = train.cli(shlex.split(GUIDE['shufflenet']))
    assert (shufflenet.lr, shufflenet.momentum, shufflenet.b_scale, shufflenet.clip_grad_value) == (3e-4, 0.95, 10.0, 10.0)
    assert shufflenet.lr_decay == [220, 240] and shufflenet.cocokp_upsample == 2
    assert shufflenet.cocokp_extended_scale and shufflenet.cocokp_orientation_invariant == 0.1
    resnet = train.cli(shlex.split(GUIDE['resnet']))
    assert resnet.basenet == 'resnet50' and resnet.basenet_pretrained is None  # not given: the basenet's default
    assert network_factory.NetworkChoice.from_args(resnet).pretrained == 'auto'  # ImageNet, as in OpenPifPaf
    detection_choice = network_factory.NetworkChoice.from_args(train.cli(shlex.split(GUIDE['detection'])))
    assert detection_choice.pretrained == 'auto'
    overfit = train.cli(shlex.split(GUIDE['overfit']))
    assert overfit.train_batches == 1 and overfit.cocokp_augmentation is False and overfit.val_interval == 100
    detection = train.cli(shlex.split(GUIDE['detection']))
    assert (detection.dataset, detection.cocodet_upsample, detection.basenet) == ('cocodet', 2, 'resnet18')
    assert (detection.resnet_input_conv2_stride, detection.resnet_block5_dilation) == (2, 2)
    drawn = predict.parser().parse_args(shlex.split(PREDICT))
    assert drawn.debug_indices == ['cif:5', 'caf:5'] and drawn.debug_images and drawn.long_edge == 385
    assert (drawn.save_all, drawn.image_output) == ('all-images/', 'all-images/overfitted.jpeg')
    for name, line in EVAL.items():
        evaluation = eval_cli.parser().parse_args(shlex.split(line))
        assert evaluation.watch == name.endswith('watch') or name == 'eval.sh'
        assert evaluation.loader_workers == 2 and evaluation.force_complete_pose == (name != 'cocodet-watch')
    testdev = eval_cli.parser().parse_args(shlex.split(EVAL['testdev']))
    assert testdev.cocokp_eval_testdev2017 and not testdev.coco_eval_annotation_filter and testdev.write_predictions


def test_resnet_command_without_imagenet_weights_says_where_to_put_them(tmp_path):
    result = subprocess.run([sys.executable, '-m', 'openfields.train', *shlex.split(GUIDE['resnet']),
                             f'--cocokp-train-annotations={COCO_SAMPLE / "annotations.json"}'],
                            capture_output=True, text=True,
                            env={'TORCH_HOME': str(tmp_path), 'PATH': '', 'HF_HUB_OFFLINE': '1'})  # offline
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and 'Traceback' not in result.stderr
    assert str(tmp_path / 'hub' / 'checkpoints' / 'resnet50-0676ba61.pth') in lines[0]
    assert '--basenet-pretrained PATH' in lines[0]


@pytest.mark.skipif(not (COCO_SAMPLE / 'annotations.json').is_file(),
                    reason=f'COCO sample data not found at {COCO_SAMPLE}')
@pytest.mark.parametrize('name', sorted(GUIDE))
def test_guide_command_trains_on_the_coco_sample(name, tmp_path, imagenet_cache):
    extra, dataset = [], train.cli(shlex.split(GUIDE[name])).dataset
    if name == 'resnet':  # the hub cache gets the file torchvision would have downloaded
        weights = tmp_path / 'resnet50-imagenet.pth'
        torch.save(torchvision.models.resnet50().state_dict(), weights)
        extra = [f'--basenet-pretrained={weights}']
    out = tmp_path / f'{name}.pkl'
    short = ['--epochs=1', '--lr-decay', '1', '--train-batches=1', '--val-batches=1', '--batch-size=2',
             f'--{dataset}-square-edge=97', '--loader-workers=0', f'--output={out}',
             '--seed=1']  # some 97-pixel crops hold no box: the detection loss of such a batch is 0
    train.run(train.cli(shlex.split(GUIDE[name]) + sample_flags(dataset) + extra + short))
    records = read(f'{out}.log')
    assert records[0]['args']['basenet'] == train.cli(shlex.split(GUIDE[name])).basenet
    train_epoch = next(r for r in records if r['type'] == 'train-epoch')
    assert train_epoch['n_batches'] == 1 and train_epoch['loss'] > 0
    assert out.is_file()


@pytest.fixture(scope='module')
def runs(tmp_path_factory, imagenet_resnet18_hub) -> pathlib.Path:
    """A folder where the overfitting and the detection commands trained five epochs each (one batch) into
    their default ``outputs/<basenet>-<date>-<dataset>-<hex>.pkl``, as the guide's eval globs expect (the
    detection command's resnet18 from the ImageNet file of a torch hub cache)."""
    folder = tmp_path_factory.mktemp('guide')
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv('TORCH_HOME', str(imagenet_resnet18_hub))
        _train_guide_runs(folder)
    return folder


def _train_guide_runs(folder: pathlib.Path) -> None:
    for name in ('overfit', 'detection'):
        dataset = train.cli(shlex.split(GUIDE[name])).dataset
        caps = ['--epochs=5', '--lr-warm-up-epochs=1', '--lr-decay', '3', '4', '--lr-decay-epochs=1',
                '--train-batches=1', '--val-batches=1', '--batch-size=2', f'--{dataset}-square-edge=97',
                '--loader-workers=0', '-q']
        result = run('openfields.train', shlex.split(GUIDE[name]) + sample_flags(dataset) + caps, folder)
        assert result.returncode == 0, result.stderr[-3000:]


def checkpoint_of(runs: pathlib.Path, dataset: str) -> pathlib.Path:
    (path,) = (runs / 'outputs').glob(f'*-{dataset}-*.pkl')
    return path


@needs_sample
def test_guide_predict_writes_overfitted_jpeg_and_the_debug_plots_into_all_images(runs):
    image = COCO_SAMPLE / 'images' / '000000000785.jpg'
    argv = shlex.split(PREDICT.replace('outputs/shufflenetv2k16-201007-153356-cocokp-1de9503b.pkl',
                                       str(checkpoint_of(runs, 'cocokp')))
                       .replace('data-mscoco/images/train2017/000000262146.jpg', str(image)))
    result = run('openfields.predict', argv, runs)
    assert result.returncode == 0, result.stderr[-3000:]
    drawn = runs / 'all-images' / 'overfitted.jpeg'
    assert drawn.is_file()  # a file, not a folder of that name
    with PIL.Image.open(drawn) as written, PIL.Image.open(image) as original:
        assert written.format == 'JPEG' and written.size == original.size
    plots = {p.name for p in (runs / 'all-images').glob('*.png')}
    assert f'{image.name}.input.png' in plots
    assert any(name.startswith(f'{image.name}.cif-5-') for name in plots)
    assert any(name.startswith(f'{image.name}.caf-5-') for name in plots)


@needs_sample
def test_an_image_output_file_for_several_images_is_one_line_exit_2_before_the_model_loads(tmp_path):
    out = tmp_path / 'all-images' / 'overfitted.jpeg'
    result = run('openfields.predict', ['--checkpoint', str(tmp_path / 'missing.pkl'), '--image-output', str(out),
                                        str(COCO_SAMPLE / 'images')], tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f'openfields.predict: error: --image-output {out}: names one file but 4 images are given; for several '
        'give a folder (e.g. --image-output all-images/)']
    assert not (tmp_path / 'all-images').exists()


@needs_sample
@pytest.mark.parametrize('name', ['cocokp-watch', 'eval.sh', 'cocodet-watch'])
def test_guide_eval_watch_evaluates_the_fifth_epoch_snapshot(name, runs):
    """The guide's glob ``...pkl.epoch??[0,5]`` picks the snapshot after epoch 5 of openfields' run."""
    dataset = eval_cli.parser().parse_args(shlex.split(EVAL[name])).dataset
    line = EVAL[name].replace('outputs/shufflenetv2k16-201023-163830-cocokp.pkl',
                              f'outputs/{checkpoint_of(runs, dataset).name}')  # eval.sh names its run
    snapshot = runs / 'outputs' / f'{checkpoint_of(runs, dataset).name}.epoch005'
    stats = pathlib.Path(f'{snapshot}.eval-{dataset}.stats.json')
    stats.unlink(missing_ok=True)  # the cocokp commands evaluate the same snapshot
    caps = ['--watch-interval=0.5', '--loader-workers=0', '--coco-eval-long-edge=129']
    watcher = subprocess.Popen([sys.executable, '-m', 'openfields.eval', *shlex.split(line), *sample_flags(dataset),
                                *caps], cwd=runs, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and not stats.exists() and watcher.poll() is None:
            time.sleep(0.2)
    finally:
        watcher.send_signal(signal.SIGINT)
        output, _ = watcher.communicate(timeout=60)
    assert watcher.returncode == 130, output[-3000:]
    recorded = json.loads(stats.read_text())
    assert recorded['checkpoint'] == str(snapshot.relative_to(runs)) and recorded['n_images'] == 4
    assert recorded['dataset'] == dataset and 0.0 <= recorded['AP'] <= 1.0
    assert sorted(p.name for p in (runs / 'outputs').glob(f'*{dataset}*.stats.json')) == [stats.name]


@needs_sample
def test_guide_testdev_submission_writes_the_zip_of_every_image(runs, tmp_path):
    data = json.loads((COCO_SAMPLE / 'annotations.json').read_text())
    info = tmp_path / 'image_info_test-dev2017.json'
    info.write_text(json.dumps({'images': data['images'], 'categories': data['categories']}))
    checkpoint = tmp_path / 'shufflenetv2k30.pkl'
    checkpoint.write_bytes(checkpoint_of(runs, 'cocokp').read_bytes())
    argv = shlex.split(EVAL['testdev'].replace('shufflenetv2k30', str(checkpoint), 1)) + [
        f'--cocokp-val-annotations={info}', f'--cocokp-val-image-dir={COCO_SAMPLE / "images"}',
        f'--cocokp-train-annotations={COCO_SAMPLE / "annotations.json"}', '--loader-workers=0',
        '--coco-eval-long-edge=129']
    result = run('openfields.eval', argv, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    with zipfile.ZipFile(f'{checkpoint}.eval-cocokp.zip') as archive:  # the guide's shufflenetv2k30.eval-cocokp.zip
        (name,) = archive.namelist()
        assert name.startswith('person_keypoints_') and name.endswith('_results.json')


@needs_sample
def test_testdev2017_reads_cocos_test_dev_json_unless_told_otherwise(runs, tmp_path):
    argv = shlex.split(EVAL['testdev'].replace('shufflenetv2k30', str(checkpoint_of(runs, 'cocokp')), 1)) + [
        f'--cocokp-train-annotations={COCO_SAMPLE / "annotations.json"}']
    result = run('openfields.eval', argv, tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == ('openfields.eval: error: --cocokp-val-annotations: annotation file '
                                              'not found: data-mscoco/annotations/image_info_test-dev2017.json')


@needs_sample
def test_guide_logs_compares_the_runs(runs):
    logs = sorted(str(p.relative_to(runs)) for p in (runs / 'outputs').glob('*.pkl.log'))
    assert len(logs) == 2 and len(shlex.split(LOGS)) == 3  # the guide compares three of its own runs
    result = run('openfields.logs', logs, runs)
    assert result.returncode == 0, result.stderr[-3000:]
    assert all(pathlib.Path(log).name[:-len('.pkl.log')] in result.stdout for log in logs)
    written = [line for line in result.stdout.splitlines() if line.endswith('.png')]
    assert written and all((runs / line).is_file() or pathlib.Path(line).is_file() for line in written)
