"""TopDownModule: crops of a keypoint dataset's individuals, its flags and its evaluation on ground-truth boxes."""

import argparse
import math

import pytest
import torch

from openfields import train
from openfields.datasets import LoaderSettings
from openfields.datasets import factory as datasets_factory
from openfields.metric.scoring import ScoringSettings
from openfields.network import factory
from openfields.topdown import module
from openfields.topdown.evaluation import TopDownTestSet
from openfields.topdown.module import TopDownModule, TopDownSettings


def topdown_settings(argv=()) -> TopDownSettings:
    parser = argparse.ArgumentParser()
    module.cli(parser)
    return TopDownSettings.from_args(parser.parse_args(list(argv)))


@pytest.fixture(scope='module')
def synthetic(tmp_path_factory):
    args = train.parser().parse_args([
        '--dataset', 'synthetic', '--synthetic-train-images', '3', '--synthetic-val-images', '2',
        '--synthetic-image-size', '129', '--synthetic-people', '1', '2', '--synthetic-crowd-probability', '0',
        '--synthetic-cache-dir', str(tmp_path_factory.mktemp('synthetic'))])
    return datasets_factory.datamodule_from_args(args, 16)


def test_a_synthetic_train_batch_holds_crops_and_cif_targets_of_stride_16(synthetic):
    topdown = TopDownModule(synthetic, topdown_settings())
    assert topdown.name == 'synthetic' and [m.name for m in topdown.head_metas] == ['cif']
    images, targets, metas = next(iter(topdown.train_loader(LoaderSettings(batch_size=2))))
    assert images.shape == (2, 3, 257, 193)  # the default 193 x 257: k * 16 + 1 pixels
    assert len(targets) == 1 and targets[0].shape == (2, 17, 5, 17, 13)  # (257 - 1) / 16 + 1, (193 - 1) / 16 + 1
    assert all(meta['dataset'] == 'synthetic' and 'crop' in meta for meta in metas)


def test_caf_is_trained_only_when_asked(synthetic):
    topdown = TopDownModule(synthetic, topdown_settings(['--topdown-caf']))
    assert [m.name for m in topdown.head_metas] == ['cif', 'caf']
    images, targets, _ = next(iter(topdown.val_loader(LoaderSettings(batch_size=1))))
    assert images.shape == (1, 3, 257, 193) and targets[1].shape[0] == 1 and targets[1].shape[2:] == (9, 17, 13)


def test_evaluation_uses_ground_truth_boxes_and_the_wrapped_metrics(synthetic):
    topdown = TopDownModule(synthetic, topdown_settings())
    test_set = topdown.test_set([0], ScoringSettings())
    assert isinstance(test_set, TopDownTestSet) and test_set.names == synthetic.metric_names()
    assert topdown.checkpoint_meta() == {'crop_width': 193, 'crop_height': 257, 'crop_padding': 1.25,
                                         'bbox_margin': 20.0, 'box_source': 'auto'}
    assert topdown.describe()['top_down']['jitter_scale'] == [0.75, 1.25]


@pytest.mark.parametrize('argv, flag', [
    (['--topdown-crop-width', '0'], '--topdown-crop-width'),
    (['--topdown-jitter-scale', '1.2', '0.8'], '--topdown-jitter-scale'),
    (['--topdown-jitter-shift-prob', '2'], '--topdown-jitter-shift-prob'),
    (['--topdown-bbox-margin', '-3'], '--topdown-bbox-margin'),
])
def test_bad_values_name_their_flag(argv, flag):
    with pytest.raises(ValueError, match=flag):
        topdown_settings(argv)


def test_a_network_is_scored_on_crops_of_the_ground_truth_boxes(synthetic):
    topdown = TopDownModule(synthetic, topdown_settings())
    torch.manual_seed(0)
    network = factory.build('resnet18', {}, topdown.head_metas).eval()
    scores = topdown.test_set([0], ScoringSettings(progress_interval=-1)).score(network, torch.device('cpu'))
    assert list(scores) == synthetic.metric_names()
    assert 0.0 <= scores['AP'] <= 1.0 or math.isnan(scores['AP'])  # an untrained network: any AP, no crash


def test_crop_sides_are_rounded_up_so_that_targets_match_an_upsampling_network(tmp_path):
    """96 x 128 crops on a stride-16 basenet with upsampling 2 (head stride 8): 97 x 129 crops, whose
    targets have the size of the network's fields."""
    from openfields import train
    from openfields.datasets import factory as datasets_factory
    from openfields.network import factory as network_factory
    args = train.cli(['--dataset', 'synthetic', '--synthetic-train-images', '2', '--synthetic-val-images', '2',
                      '--synthetic-image-size', '96', '--synthetic-cache-dir', str(tmp_path), '--synthetic-upsample',
                      '2', '--basenet', 'resnet18', '--no-basenet-pretrained', '--topdown-crop-width', '96',
                      '--topdown-crop-height', '128'])
    base = datasets_factory.datamodule_from_args(args, network_factory.base_stride(args, None))
    topdown = TopDownModule(base, TopDownSettings.from_args(args))
    assert (topdown.settings.crop_width, topdown.settings.crop_height) == (97, 129)
    images, targets, _ = next(iter(topdown.val_loader(LoaderSettings(batch_size=1))))
    network = network_factory.factory(args, topdown.head_metas).eval()
    with torch.no_grad():
        fields = network(images)
    assert fields[0].shape[-2:] == targets[0].shape[-2:] == (17, 13)
