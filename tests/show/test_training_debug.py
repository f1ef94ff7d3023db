"""Debug plots during training: ``python -m openfields.train --debug-indices ... --save-all DIR``."""

import types

import pytest
import torch
from show_samples import png_pixels

from openfields import train
from openfields.datasets.module import LoaderSettings
from openfields.show import training_debug

TINY = ['--dataset', 'synthetic', '--synthetic-train-images', '4', '--synthetic-val-images', '1',
        '--synthetic-image-size', '80', '--synthetic-square-edge', '65', '--basenet', 'shufflenetv2k16',
        '--batch-size', '1', '--epochs', '1', '--train-batches', '1', '--val-batches', '1',
        '--loader-workers', '0', '--seed', '3']


def test_first_batch_plots_the_first_training_image_unshuffled(tmp_path):
    cache, out = tmp_path / 'cache', tmp_path / 'plots'
    args = train.cli(TINY + ['--synthetic-cache-dir', str(cache), '--output', str(tmp_path / 'm.pkl'),
                             '--debug-indices', 'cif:5:confidence', 'caf:5:regression', '--save-all', str(out)])
    train.run(args)
    prefix = 'epoch001.000001.png'  # the first image of the training set
    assert sorted(p.name for p in out.iterdir()) == sorted([
        f'{prefix}.input.png', f'{prefix}.cif-5-left_shoulder.confidence.png',
        f'{prefix}.caf-5-left_shoulder-left_hip.regression.png', f'{prefix}.poses.png'])
    for path in out.iterdir():
        assert png_pixels(path).mean(axis=2).std() > 35.0, path.name
    # the guard that makes this a test of the unshuffled loader: shuffled, another image comes first
    datamodule = train.datasets_factory.datamodule_from_args(args, base_stride=16)
    _, _, metas = next(iter(datamodule.train_loader(LoaderSettings(shuffle=True, seed=3))))
    assert metas[0]['file_name'] != '000001.png'


def test_without_debug_flags_there_is_no_hook(tmp_path):
    args = train.cli(TINY + ['--save-all', str(tmp_path)])
    assert training_debug.TrainingDebug.from_args(args, model=None) is None


def test_bad_debug_indices_stop_training_with_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(TINY + ['--synthetic-cache-dir', str(tmp_path / 'cache'), '--output', str(tmp_path / 'm.pkl'),
                           '--debug-indices', 'caf:19'])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == ("openfields.train: error: --debug-indices 'caf:19': field 19 out of range "
                                       "for head synthetic.caf (19 fields: 0 to 18)\n")


class RecordingPlots:
    head_metas = [None]
    canvas = types.SimpleNamespace(written=[])

    def __init__(self):
        self.samples = []

    def sample(self, name, image, meta, sources, annotations):
        self.samples.append(name)


class OneHead(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(1))

    def forward(self, images):
        assert not self.training  # predictions come from the eval-mode network
        return [images[:, None] * self.weight]


def test_hook_plots_the_first_batches_of_the_first_and_last_epoch_only():
    plots, model = RecordingPlots(), OneHead().train()
    hook = training_debug.TrainingDebug(plots, model, n_batches=2, last_epoch=4)
    for epoch in range(2, 5):  # a run resumed after epoch 1
        for batch in range(3):
            metas = [{'file_name': f'{batch}-{b}.png', 'head_indices': [0]} for b in range(2)]
            hook(epoch, batch, torch.zeros(2, 3, 5, 5), [torch.zeros(2, 1, 1, 2, 2)], metas)
    assert plots.samples == [f'epoch{e:03d}.{batch}-{b}.png' for e in (2, 4) for batch in range(2) for b in range(2)]
    assert model.training  # the hook gives the network back in training mode
