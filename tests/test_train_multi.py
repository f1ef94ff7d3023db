"""``--dataset synthetic-cocokp --dataset-weights 1.0 0.5``: one network, batches by weight, logs per dataset,
and evaluation / prediction of one dataset of the checkpoint."""

import json
import pathlib

import pytest

from openfields import eval as eval_cli
from openfields import predict, train
from openfields.inference import runners
from openfields.network import checkpoint, factory, heads
from openfields.training.log import read

SHARED = pathlib.Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'coco-val-sample'
needs_shared = pytest.mark.skipif(not (SHARED / 'annotations.json').is_file(),
                                  reason=f'shared COCO sample not found at {SHARED}')


def cocokp_flags():
    return ['--cocokp-train-annotations', str(SHARED / 'annotations.json'),
            '--cocokp-val-annotations', str(SHARED / 'annotations.json'),
            '--cocokp-train-image-dir', str(SHARED / 'images'), '--cocokp-val-image-dir', str(SHARED / 'images')]


def synthetic_flags(cache_dir):
    return ['--synthetic-train-images', '10', '--synthetic-val-images', '1', '--synthetic-image-size', '64',
            '--synthetic-cache-dir', str(cache_dir)]


def multi_flags(cache_dir):
    # --cocokp-min-kp-anns 4 keeps the two sample images with at least four people: two batches of one
    return (['--dataset', 'synthetic-cocokp', '--dataset-weights', '1.0', '0.5', '--synthetic-square-edge', '33',
             '--cocokp-square-edge', '33', '--cocokp-min-kp-anns', '4', '--basenet', 'resnet18',
             '--no-basenet-pretrained',
             '--resnet-remove-last-block', '--batch-size', '1', '--epochs', '1', '--val-batches', '1',
             '--loader-workers', '0', '--display-interval', '1', '--seed', '1']
            + synthetic_flags(cache_dir) + cocokp_flags())


@pytest.fixture(scope='module')
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp('synthetic-cache')


@pytest.fixture(scope='module')
def multi_run(tmp_path_factory, cache_dir):
    if not (SHARED / 'annotations.json').is_file():
        pytest.skip(f'shared COCO sample not found at {SHARED}')
    out = tmp_path_factory.mktemp('multi') / 'model.pkl'
    train.run(train.cli(multi_flags(cache_dir) + ['--output', str(out)]))
    return out


def test_two_thirds_of_the_batches_come_from_the_first_dataset(multi_run):
    records = read(f'{multi_run}.log')
    epoch = next(r for r in records if r['type'] == 'train-epoch')
    # cocokp's third turn ends the epoch: s c s s c s s (equal weights would give s c s c s)
    assert epoch['batches_per_dataset'] == {'synthetic': 5, 'cocokp': 2}
    assert abs(epoch['batches_per_dataset']['synthetic'] - 2 / 3 * epoch['n_batches']) <= 1
    datasets = records[0]['datasets']
    assert datasets['synthetic']['weight'] == pytest.approx(2 / 3)
    assert datasets['cocokp']['weight'] == pytest.approx(1 / 3)


def test_each_batch_trains_only_the_heads_of_its_dataset(multi_run):
    batches = [r for r in read(f'{multi_run}.log') if r['type'] == 'train']
    trained = [{name.split('.')[0] for name, value in r['head_losses'].items() if value is not None}
               for r in batches]
    assert trained == [{'synthetic'}, {'cocokp'}, {'synthetic'}, {'synthetic'}, {'cocokp'}, {'synthetic'},
                       {'synthetic'}]
    for r in batches:
        assert r['loss'] == pytest.approx(sum(v for v in r['head_losses'].values() if v is not None), rel=1e-4)


def test_validation_is_reported_per_dataset(multi_run):
    records = read(f'{multi_run}.log')
    val = [r for r in records if r['type'] == 'val-epoch']
    assert [(r['epoch'], r['dataset'], r['n_batches']) for r in val] == [(1, 'synthetic', 1), (1, 'cocokp', 1)]
    for r in val:
        assert set(r['head_losses']) == {f'{r["dataset"]}.{h}.{c}' for h in ('cif', 'caf')
                                         for c in ('c', 'vec', 'scales')}
        assert r['loss'] == pytest.approx(sum(r['head_losses'].values()), rel=1e-4)


def test_datasets_with_the_same_head_names_get_distinct_heads(multi_run):
    model = factory.from_checkpoint(checkpoint.load(multi_run))
    metas = model.head_metas
    assert [m.full_name for m in metas] == ['synthetic.cif', 'synthetic.caf', 'cocokp.cif', 'cocokp.caf']
    assert metas[0].keypoints == metas[2].keypoints  # both COCO persons, still two heads


def eval_args(checkpoint_path, dataset, cache_dir, tmp_path):
    return eval_cli.parser().parse_args(
        ['--checkpoint', str(checkpoint_path), '--dataset', dataset, '--long-edge', '65', '--loader-workers', '0',
         '--device', 'cpu', '--output', str(tmp_path / f'eval-{dataset}')]
        + synthetic_flags(cache_dir) + cocokp_flags())


@pytest.mark.parametrize('dataset, indices', [('synthetic', [0, 1]), ('cocokp', [2, 3])])
def test_eval_picks_the_heads_of_the_named_dataset(multi_run, cache_dir, tmp_path, dataset, indices):
    settings = eval_cli.EvalSettings.from_args(eval_args(multi_run, dataset, cache_dir, tmp_path))
    runner = runners.load(str(multi_run), 'cpu')
    datamodule = settings.datamodule_for(eval_cli.base_stride(settings, runner))
    setup = eval_cli.setup(settings, datamodule, runner, str(multi_run))
    assert setup.head_indices == indices
    assert [m.dataset for m in setup.metas] == [dataset, dataset]


def test_eval_of_one_dataset_of_a_checkpoint_of_two_writes_its_stats(multi_run, cache_dir, tmp_path, monkeypatch):
    ran = []
    original = heads.CompositeField.forward
    monkeypatch.setattr(heads.CompositeField, 'forward',
                        lambda self, x: ran.append(self.meta.full_name) or original(self, x))
    eval_cli.run(eval_args(multi_run, 'cocokp', cache_dir, tmp_path))
    stats = json.loads((tmp_path / 'eval-cocokp.stats.json').read_text())
    assert stats['dataset'] == 'cocokp' and stats['n_images'] == 4 and 0.0 <= stats['AP'] <= 1.0
    assert set(ran) == {'cocokp.cif', 'cocokp.caf'}  # the synthetic heads are skipped


def test_eval_of_several_datasets_at_once_is_refused(multi_run, cache_dir, tmp_path):
    with pytest.raises(ValueError, match='evaluation is per dataset'):
        eval_cli.run(eval_args(multi_run, 'synthetic-cocokp', cache_dir, tmp_path))


def test_predict_decodes_the_heads_of_the_named_dataset(multi_run, tmp_path, monkeypatch):
    ran = []
    original = heads.CompositeField.forward
    monkeypatch.setattr(heads.CompositeField, 'forward',
                        lambda self, x: ran.append(self.meta.full_name) or original(self, x))
    image = sorted((SHARED / 'images').iterdir())[0]
    failed = predict.run(predict.parser().parse_args(
        [str(image), '--checkpoint', str(multi_run), '--dataset', 'cocokp', '--long-edge', '65', '--device', 'cpu',
         '--json-output', str(tmp_path)]))
    assert failed == 0
    assert isinstance(json.loads((tmp_path / f'{image.name}.predictions.json').read_text()), list)
    assert set(ran) == {'cocokp.cif', 'cocokp.caf'}
    with pytest.raises(ValueError, match='--dataset crowdpose: .* its datasets: cocokp, synthetic'):
        predict.run(predict.parser().parse_args([str(image), '--checkpoint', str(multi_run), '--dataset', 'crowdpose']))


@pytest.mark.parametrize('argv, message', [
    (['--dataset', 'synthetic-nodata'],
     "unknown --dataset 'nodata' (in 'synthetic-nodata'); choose from: "),
    (['--dataset', 'synthetic-synthetic'], '--dataset synthetic-synthetic: synthetic named more than once'),
    (['--dataset', 'synthetic-cocokp', '--dataset-weights', '1.0'],
     '--dataset-weights needs one weight per dataset of --dataset (synthetic, cocokp), got 1'),
    (['--dataset', 'synthetic-cocokp', '--dataset-weights', '1.0', '0'],
     '--dataset-weights: every weight must be positive, got 1.0 0.0'),
    (['--dataset', 'synthetic', '--dataset-weights', '1.0', '2.0'],
     '--dataset-weights needs one weight per dataset of --dataset (synthetic), got 2'),
])
def test_bad_dataset_names_and_weights_are_one_line_naming_the_flag(argv, message, capsys, cache_dir):
    with pytest.raises(SystemExit) as exit_info:
        train.main(['--synthetic-cache-dir', str(cache_dir)] + argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


@needs_shared
def test_eval_interval_scores_each_dataset_with_its_own_heads_and_the_key_metric_names_one(cache_dir, tmp_path):
    out = tmp_path / 'evaluated.pkl'
    train.run(train.cli(multi_flags(cache_dir) + ['--output', str(out), '--eval-interval', '1',
                                                  '--coco-eval-long-edge', '65', '--key-metric', 'test.cocokp.AR']))
    tests = {r['dataset']: r for r in read(f'{out}.log') if r['type'] == 'test'}
    assert sorted(tests) == ['cocokp', 'synthetic'] and {r['epoch'] for r in tests.values()} == {1}
    best = checkpoint.load(tmp_path / 'evaluated.best.pkl')['meta']['best']
    assert (best['metric'], best['value']) == ('test.cocokp.AR', tests['cocokp']['metrics']['test.AR'])
    for dataset, record in tests.items():  # the same numbers as openfields.eval of that dataset's heads
        stats = eval_cli.run(eval_args(tmp_path / 'evaluated.best.pkl', dataset, cache_dir, tmp_path))[0]
        assert {name: stats[name[len('test.'):]] for name in record['metrics']} == record['metrics']
