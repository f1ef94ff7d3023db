"""``--dlc-heads heatmap``: DeepLabCut's heatmap head trained on the shared DeepLabCut project, bottom-up and
top-down, decoded by ``heatmap`` and scored with DeepLabCut's pixel error ("RMSE")."""

import json
import pathlib
import re

import PIL.Image
import pytest

from openfields import eval as eval_cli
from openfields import train
from openfields.datasets import factory as datasets_factory
from openfields.decoder.settings import DecoderSettings
from openfields.inference import pipeline
from openfields.network import checkpoint

SHARED_PROJECT = pathlib.Path(__file__).resolve().parents[3] / 'shared' / 'data' / 'dlc-openfield'
needs_shared = pytest.mark.skipif(not (SHARED_PROJECT / 'config.yaml').is_file(),
                                  reason=f'DeepLabCut sample project not found at {SHARED_PROJECT}')
PROJECT = ['--dataset', 'dlc', '--dlc-project', str(SHARED_PROJECT), '--dlc-heads', 'heatmap']
TINY = ['--basenet', 'shufflenetv2k16', '--loader-workers', '0', '--epochs', '1', '--train-batches', '1',
        '--val-batches', '1', '--batch-size', '2', '--seed', '0']


@needs_shared
def test_a_tiny_bottom_up_run_trains_the_heatmap_head_and_evaluates_its_pixel_error(tmp_path):
    out = tmp_path / 'run.pkl'
    train.run(train.cli([*PROJECT, *TINY, '--dlc-square-edge', '97', '--dlc-rescale-images', '0.25',
                         '--output', str(out)]))
    saved = checkpoint.load(out)
    assert [m['type'] for m in saved['model']['head_metas']] == ['heatmap']
    assert saved['meta']['decoders'] == {'dlc': None}  # the heatmap head's own decoder, chosen as the best
    # an untrained head scores near 0: every pose counts (DeepLabCut's single-animal read-out keeps it too);
    # eval takes the heads from the checkpoint, not from --dlc-heads' default (cif)
    assert PROJECT[-2:] == ['--dlc-heads', 'heatmap']
    eval_cli.run(eval_cli.parser().parse_args([
        '--checkpoint', str(out), *PROJECT[:-2], '--coco-eval-long-edge', '161', '--eval-n-images', '4',
        '--instance-threshold', '0', '--loader-workers', '0', '--device', 'cpu', '--output', str(tmp_path / 'e')]))
    stats = json.loads((tmp_path / 'e.stats.json').read_text())
    assert stats['decoder'] == ['heatmap:0'] and stats['n_images'] == 4
    assert stats['test_found_keypoints'] > 0 and stats['test_pixel_error'] > 0


@needs_shared
def test_a_tiny_top_down_run_decodes_each_crop_with_the_heatmap_head(tmp_path):
    out = tmp_path / 'run.pkl'
    train.run(train.cli([*PROJECT, *TINY, '--method', 'td', '--detector', 'ssdlite320_mobilenet_v3_large',
                         '--detector-pretrained', 'none', '--detector-epochs', '1', '--detector-eval-interval', '1',
                         '--detector-train-batches', '1', '--topdown-crop-width', '48', '--topdown-crop-height', '64',
                         '--output', str(out)]))
    assert [m['type'] for m in checkpoint.load(out)['model']['head_metas']] == ['heatmap']
    eval_cli.run(eval_cli.parser().parse_args([
        '--checkpoint', str(out), *PROJECT, '--eval-n-images', '2', '--oracle-boxes', '--instance-threshold', '0',
        '--output', str(tmp_path / 'e')]))
    stats = json.loads((tmp_path / 'e.stats.json').read_text())
    assert stats['method'] == 'td' and stats['test_labelled_keypoints'] == 8 and stats['decoder'] == ['heatmap']
    assert stats['test_found_keypoints'] > 0 and stats['test_pixel_error'] > 0
    # predict runs the same pipeline: the detector's boxes, the heatmap head on their crops
    model = pipeline.open_model(str(out), pipeline.PipelineSettings(
        detector_score_threshold=0.0, decoder=DecoderSettings(instance_threshold=0.0)))
    assert model.method == 'td' and model.describe().endswith('decoded by heatmap')
    frame = sorted((SHARED_PROJECT / 'labeled-data').glob('*/*.png'))[0]
    with PIL.Image.open(frame) as image:
        poses = pipeline.predict(model, [image.convert('RGB')])[0]
    assert all(pose.data.shape == (4, 3) for pose in poses)
    with pytest.raises(ValueError, match='decoded per crop by heatmap'):
        pipeline.open_model(str(out), pipeline.PipelineSettings(decoder_names=('cifmax',)))


@needs_shared
@pytest.mark.parametrize('flags, message', [
    (['--dlc-upsample', '2'], '--dlc-upsample 2: the heatmap head upsamples by its deconvolutions'),
    (['--dlc-with-dense'], '--dlc-with-dense: a dense Caf head needs --dlc-heads cif, not heatmap'),
    (['--dlc-heatmap-deconv-strides', '2', '16', '--dlc-heatmap-deconv-kernels', '3', '3',
      '--dlc-heatmap-deconv-channels', '8'], 'upsample by 32, which does not divide the basenet stride 16'),
    (['--dlc-heatmap-deconv-kernels', '4'], '--dlc-heads heatmap, --dlc-heatmap-*: dlc.heatmap: kernel size 4: openfields keeps field cell i on input pixel i * stride, which needs odd kernel sizes'),
])
def test_flags_the_heatmap_head_cannot_follow_are_refused_naming_them(flags, message):
    args = train.cli([*PROJECT, *TINY, *flags])
    with pytest.raises(ValueError, match=re.escape(message)):
        datasets_factory.datamodule_from_args(args, base_stride=16)


@needs_shared
def test_the_heatmap_head_has_the_projects_body_parts_and_the_cif_heads_flips_and_sigmas():
    args = train.cli([*PROJECT, *TINY, '--dlc-heatmap-target', 'plateau', '--dlc-heatmap-pos-dist-thresh', '12'])
    dlc = datasets_factory.datamodule_from_args(args, base_stride=16)
    (meta,) = dlc.head_metas
    assert (meta.full_name, meta.keypoints, meta.stride) == (
        'dlc.heatmap', ['snout', 'leftear', 'rightear', 'tailbase'], 8)
    assert (meta.target, meta.pos_dist_thresh, meta.sigmas) == ('plateau', 12.0, [0.2] * 4)
    assert meta.hflip == {'leftear': 'rightear', 'rightear': 'leftear'} and dlc.decoder_names() is None
