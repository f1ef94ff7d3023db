"""OpenPifPaf's training-guide commands run with ``openfields`` in place of ``openpifpaf``."""

import pathlib
import shlex
import subprocess
import sys

import pytest
import torch
import torchvision

from openfields import train
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
              '--basenet=resnet50 --basenet-pretrained',
    'overfit': '--lr=0.01 --momentum=0.9 --b-scale=5.0 --epochs=1000 --lr-warm-up-epochs=100 '
               '--batch-size=4 --train-batches=1 --val-batches=1 --val-interval=100 --weight-decay=1e-5 '
               '--dataset=cocokp --cocokp-upsample=2 --cocokp-no-augmentation --basenet=shufflenetv2k16',
}


def test_guide_commands_parse_to_the_values_they_state():
    shufflenet = train.cli(shlex.split(GUIDE['shufflenet']))
    assert (shufflenet.lr, shufflenet.momentum, shufflenet.b_scale, shufflenet.clip_grad_value) == (3e-4, 0.95, 10.0, 10.0)
    assert shufflenet.lr_decay == [220, 240] and shufflenet.cocokp_upsample == 2
    assert shufflenet.cocokp_extended_scale and shufflenet.cocokp_orientation_invariant == 0.1
    resnet = train.cli(shlex.split(GUIDE['resnet']))
    assert resnet.basenet == 'resnet50' and resnet.basenet_pretrained == 'auto'
    overfit = train.cli(shlex.split(GUIDE['overfit']))
    assert overfit.train_batches == 1 and overfit.cocokp_augmentation is False and overfit.val_interval == 100


def test_resnet_command_without_imagenet_weights_says_where_to_put_them(tmp_path):
    result = subprocess.run([sys.executable, '-m', 'openfields.train', *shlex.split(GUIDE['resnet']),
                             f'--cocokp-train-annotations={COCO_SAMPLE / "annotations.json"}'],
                            capture_output=True, text=True, env={'TORCH_HOME': str(tmp_path), 'PATH': ''})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and 'Traceback' not in result.stderr
    assert str(tmp_path / 'hub' / 'checkpoints' / 'resnet50-0676ba61.pth') in lines[0]
    assert '--basenet-pretrained PATH' in lines[0]


@pytest.mark.skipif(not (COCO_SAMPLE / 'annotations.json').is_file(),
                    reason=f'COCO sample data not found at {COCO_SAMPLE}')
@pytest.mark.parametrize('name', sorted(GUIDE))
def test_guide_command_trains_on_the_coco_sample(name, tmp_path):
    extra = []
    if name == 'resnet':  # the hub cache gets the file torchvision would have downloaded
        weights = tmp_path / 'resnet50-imagenet.pth'
        torch.save(torchvision.models.resnet50().state_dict(), weights)
        extra = [f'--basenet-pretrained={weights}']
    out = tmp_path / f'{name}.pkl'
    sample = [f'--cocokp-train-annotations={COCO_SAMPLE / "annotations.json"}',
              f'--cocokp-val-annotations={COCO_SAMPLE / "annotations.json"}',
              f'--cocokp-train-image-dir={COCO_SAMPLE / "images"}',
              f'--cocokp-val-image-dir={COCO_SAMPLE / "images"}']
    short = ['--epochs=1', '--train-batches=1', '--val-batches=1', '--batch-size=2', '--cocokp-square-edge=97',
             '--loader-workers=0', f'--output={out}']
    train.run(train.cli(shlex.split(GUIDE[name]) + sample + extra + short))
    records = read(f'{out}.log')
    assert records[0]['args']['basenet'] == shlex.split(GUIDE[name])[-1 if name != 'resnet' else -2].split('=')[1]
    train_epoch = next(r for r in records if r['type'] == 'train-epoch')
    assert train_epoch['n_batches'] == 1 and train_epoch['loss'] > 0
    assert out.is_file()
