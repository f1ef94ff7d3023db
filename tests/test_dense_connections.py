"""Dense connections end to end (OpenPifPaf's training guide: "You can add --dense-connections to include
additional connections"): a model trained with ``--cocokp-with-dense`` decodes with its dense head under
``--dense-connections`` in predict and eval; a model without one refuses the flag in one line; on the COCO sample
with both eyes held back, oracle fields decode complete people only with the dense head."""

import json
import pathlib
import shlex
import subprocess
import sys

import pytest

from openfields import eval as eval_cli, predict as predict_cli
from openfields.inference import runners
from openfields.network import checkpoint

COCO_SAMPLE = pathlib.Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'coco-val-sample'
needs_sample = pytest.mark.skipif(not (COCO_SAMPLE / 'annotations.json').is_file(),
                                  reason=f'COCO sample data not found at {COCO_SAMPLE}')

# the guide's overfitting command, its predict command (tests/test_train_guide_commands.py runs them as written)
OVERFIT = ('--lr=0.01 --momentum=0.9 --b-scale=5.0 --epochs=1000 --lr-warm-up-epochs=100 --batch-size=4 '
           '--train-batches=1 --val-batches=1 --val-interval=100 --weight-decay=1e-5 --dataset=cocokp '
           '--cocokp-upsample=2 --cocokp-no-augmentation --basenet=shufflenetv2k16')
PREDICT = ('--debug-indices cif:5 caf:5 --debug-images --long-edge=385 --loader-workers=0 --save-all '
           '--image-output all-images/overfitted.jpeg')
SAMPLE_FLAGS = [f'--cocokp-{split}-annotations={COCO_SAMPLE / "annotations.json"}' for split in ('train', 'val')] + \
    [f'--cocokp-{split}-image-dir={COCO_SAMPLE / "images"}' for split in ('train', 'val')]


def run(module: str, argv: list[str], cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', module, *argv], cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope='module')
def dense_model(tmp_path_factory) -> pathlib.Path:
    """The guide's overfitting command with ``--cocokp-with-dense``, capped to two one-batch epochs."""
    folder = tmp_path_factory.mktemp('dense')
    caps = ['--epochs=2', '--lr-warm-up-epochs=1', '--batch-size=2', '--cocokp-square-edge=97', '--loader-workers=0',
            '--output=dense.pkl', '-q']
    result = run('openfields.train', shlex.split(OVERFIT) + ['--cocokp-with-dense'] + SAMPLE_FLAGS + caps, folder)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder / 'dense.pkl'


@needs_sample
@pytest.mark.slow  # the three tests of a trained dense model: about a minute (make test-slow)
def test_with_dense_trains_the_caf25_head_and_its_loss(dense_model):
    metas = checkpoint.head_metas(checkpoint.load(dense_model))
    assert [(m.name, m.n_fields) for m in metas] == [('cif', 17), ('caf', 19), ('caf25', 25)]
    assert metas[2].sparse_skeleton == metas[1].skeleton
    records = [json.loads(line) for line in pathlib.Path(f'{dense_model}.log').read_text().splitlines()]
    losses = next(r for r in records if r['type'] == 'train-epoch')['head_losses']
    dense = {name: value for name, value in losses.items() if name.startswith('cocokp.caf25.')}
    assert sorted(dense) == ['cocokp.caf25.c', 'cocokp.caf25.scales', 'cocokp.caf25.vec']
    assert all(value > 0 for value in dense.values())  # the dense head is trained


@needs_sample
@pytest.mark.slow
def test_guide_predict_with_dense_connections_decodes_with_the_dense_head(dense_model):
    image = COCO_SAMPLE / 'images' / '000000000785.jpg'
    # the guide's command with the dense head's plot, and the flag added at the end, as the guide says
    argv = [f'--checkpoint={dense_model}', *shlex.split(PREDICT.replace('caf:5', 'caf:5 caf25:5')), str(image),
            '--dense-connections']
    result = run('openfields.predict', argv, dense_model.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (dense_model.parent / 'all-images' / 'overfitted.jpeg').is_file()
    assert any(p.name.startswith(f'{image.name}.caf25-5-') for p in (dense_model.parent / 'all-images').iterdir())


@needs_sample
@pytest.mark.slow
def test_eval_with_dense_connections_takes_the_models_dense_head(dense_model):
    settings = eval_cli.EvalSettings.from_args(eval_cli.parser().parse_args(
        ['--checkpoint', str(dense_model), '--dataset', 'cocokp', '--dense-connections', *SAMPLE_FLAGS]))
    runner = runners.load(str(dense_model), settings.device)
    datamodule = settings.datamodule_for(runner.base_stride)
    assert [m.name for m in datamodule.head_metas] == ['cif', 'caf']  # no --cocokp-with-dense on the command line
    assert [m.name for m in eval_cli.setup(settings, datamodule, runner, str(dense_model)).metas] == \
        ['cif', 'caf', 'caf25']
    settings = eval_cli.EvalSettings.from_args(eval_cli.parser().parse_args(
        ['--checkpoint', str(dense_model), '--dataset', 'cocokp', *SAMPLE_FLAGS]))
    assert [m.name for m in eval_cli.setup(settings, datamodule, runner, str(dense_model)).metas] == ['cif', 'caf']


@needs_sample
@pytest.mark.parametrize('module', ['openfields.predict', 'openfields.eval'])
def test_dense_connections_without_a_dense_head_is_one_line_exit_2_and_writes_nothing(module, tiny_checkpoint,
                                                                                      tmp_path, capsys):
    if module == 'openfields.predict':
        argv = ['--checkpoint', str(tiny_checkpoint), '--dense-connections', '--json-output', str(tmp_path / 'out'),
                str(COCO_SAMPLE / 'images' / '000000000785.jpg')]
    else:
        argv = ['--checkpoint', str(tiny_checkpoint), '--dataset', 'cocokp', '--dense-connections', *SAMPLE_FLAGS,
                '--output', str(tmp_path / 'out' / 'eval')]
    with pytest.raises(SystemExit) as stop:
        (predict_cli if module == 'openfields.predict' else eval_cli).main(argv)
    assert stop.value.code == 2
    assert [line for line in capsys.readouterr().err.splitlines() if 'error' in line] == [
        f'{module}: error: --dense-connections: no dense Caf head for cocokp.cif among the heads cocokp.cif, '
        'cocokp.caf; train one with --cocokp-with-dense, or leave the flag out']
    assert not (tmp_path / 'out').exists()


@pytest.fixture(scope='module')
def eyes_held_back(tmp_path_factory) -> pathlib.Path:
    """The COCO sample with both eyes of every person unlabelled: the sparse skeleton reaches the nose only
    through an eye (the guide's example of a person split in two)."""
    data = json.loads((COCO_SAMPLE / 'annotations.json').read_text())
    for annotation in data['annotations']:
        for joint in (1, 2):
            annotation['keypoints'][3 * joint:3 * joint + 3] = [0, 0, 0]
    path = tmp_path_factory.mktemp('held-back') / 'no-eyes.json'
    path.write_text(json.dumps(data))
    return path


def oracle_ap(annotations: pathlib.Path, output: pathlib.Path, *flags: str) -> float:
    argv = ['--dataset', 'cocokp', f'--cocokp-val-annotations={annotations}',
            f'--cocokp-val-image-dir={COCO_SAMPLE / "images"}', f'--cocokp-train-annotations={annotations}',
            '--oracle', 'cif', 'caf', 'caf25', '--cocokp-with-dense', '--fragment-merge-distance=0',
            '--output', str(output), '--loader-workers=0', *flags]
    settings = eval_cli.EvalSettings.from_args(eval_cli.parser().parse_args(argv))
    return eval_cli.evaluate(settings, None)['AP']


@needs_sample
def test_dense_connections_keep_people_whole_when_the_keypoint_that_joins_them_is_held_back(eyes_held_back, tmp_path):
    """Without fragment merging (OpenPifPaf's decoder has none), each nose is cut off its person: the poses
    lack it and AP drops; the dense head's nose-ear and nose-shoulder edges keep it (measured: 0.882 -> 1.0)."""
    without = oracle_ap(eyes_held_back, tmp_path / 'sparse')
    with_dense = oracle_ap(eyes_held_back, tmp_path / 'dense', '--dense-connections')
    assert without < 0.95 and with_dense > 0.99
    # the sample as labelled: some people lack a joining keypoint already (0.980 -> 1.0)
    labelled = COCO_SAMPLE / 'annotations.json'
    assert oracle_ap(labelled, tmp_path / 'a') < oracle_ap(labelled, tmp_path / 'b', '--dense-connections')
