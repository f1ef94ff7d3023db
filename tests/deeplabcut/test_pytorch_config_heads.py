"""``model.heads`` of a DeepLabCut ``pytorch_config.yaml``: a HeatmapHead becomes ``--dlc-heads heatmap`` and its
flags; heads openfields does not have (DEKR, PAF, RTMCC) are refused in one line naming what trains instead."""

import copy
import logging

import pytest

from openfields import train
from openfields.deeplabcut import pytorch_config as dlc_config

yaml = pytest.importorskip('yaml')

# the bodypart head DeepLabCut writes for resnet_50 (its backbones' HeatmapHead defaults)
RESNET_50_HEAD = {
    'type': 'HeatmapHead', 'weight_init': 'normal',
    'predictor': {'type': 'HeatmapPredictor', 'apply_sigmoid': False, 'clip_scores': True,
                  'location_refinement': True, 'locref_std': 7.2801},
    'target_generator': {'type': 'HeatmapGaussianGenerator', 'num_heatmaps': 'num_bodyparts', 'pos_dist_thresh': 17,
                         'heatmap_mode': 'KEYPOINT', 'gradient_masking': False, 'generate_locref': True,
                         'locref_std': 7.2801},
    'criterion': {'heatmap': {'type': 'WeightedMSECriterion', 'weight': 1.0},
                  'locref': {'type': 'WeightedHuberCriterion', 'weight': 0.05}},
    'heatmap_config': {'channels': ['backbone_output_channels', 'num_bodyparts'], 'kernel_size': [3], 'strides': [2]},
    'locref_config': {'channels': ['backbone_output_channels', 'num_bodyparts x 2'], 'kernel_size': [3],
                      'strides': [2]},
}


def config_file(tmp_path, head=None, **heads):
    mapping = {'net_type': 'resnet_50', 'method': 'bu', 'model': {'heads': heads or {'bodypart': head}}}
    path = tmp_path / 'pytorch_config.yaml'
    path.write_text(yaml.safe_dump(mapping))
    return str(path)


def heatmap_flags(args) -> dict:
    return {name: value for name, value in vars(args).items() if name.startswith('dlc_heatmap') or name == 'dlc_heads'}


def test_the_resnet_50_head_is_the_heatmap_head_with_every_value_read(tmp_path):
    args = train.cli(['--config', config_file(tmp_path, RESNET_50_HEAD)])
    assert heatmap_flags(args) == {
        'dlc_heads': 'heatmap', 'dlc_heatmap_target': 'gaussian', 'dlc_heatmap_pos_dist_thresh': 17.0,
        'dlc_heatmap_locref': True, 'dlc_heatmap_locref_std': 7.2801, 'dlc_heatmap_sigmoid': False,
        'dlc_heatmap_clip_scores': True, 'dlc_heatmap_loss': 'mse', 'dlc_heatmap_locref_loss': 'huber',
        'dlc_heatmap_weight': 1.0, 'dlc_heatmap_locref_weight': 0.05, 'dlc_heatmap_deconv_channels': [],
        'dlc_heatmap_deconv_kernels': [3], 'dlc_heatmap_deconv_strides': [2], 'dlc_heatmap_final_conv': 0}


def test_a_top_down_hrnet_head_with_plateau_targets_bce_and_a_final_convolution(tmp_path):
    head = copy.deepcopy(RESNET_50_HEAD)
    head['predictor'].update(apply_sigmoid=True, location_refinement=False)
    head['target_generator'].update(type='HeatmapPlateauGenerator', pos_dist_thresh=12, generate_locref=False)
    head['criterion'] = {'heatmap': {'type': 'WeightedBCECriterion', 'weight': 2.0}}
    head['heatmap_config'] = {'channels': [32, 64], 'kernel_size': [3], 'strides': [2],
                              'final_conv': {'out_channels': 'num_bodyparts', 'kernel_size': 1}}
    del head['locref_config']
    args = train.cli(['--config', config_file(tmp_path, head)])
    flags = heatmap_flags(args)
    assert (flags['dlc_heatmap_target'], flags['dlc_heatmap_pos_dist_thresh'], flags['dlc_heatmap_locref']) == (
        'plateau', 12.0, False)
    assert (flags['dlc_heatmap_sigmoid'], flags['dlc_heatmap_loss'], flags['dlc_heatmap_weight']) == (True, 'bce', 2.0)
    assert (flags['dlc_heatmap_deconv_channels'], flags['dlc_heatmap_deconv_kernels'],
            flags['dlc_heatmap_deconv_strides'], flags['dlc_heatmap_final_conv']) == ([64], [3], [2], 1)


@pytest.mark.parametrize('heads, key, what', [
    ({'bodypart': {'type': 'DEKRHead', 'target_generator': {'type': 'DEKRGenerator'}}},
     'model.heads.bodypart.type', 'DEKRHead: DEKR'),
    ({'bodypart': {'type': 'DLCRNetHead', 'predictor': {'type': 'PartAffinityFieldPredictor'}}},
     'model.heads.bodypart.type', 'DLCRNetHead: part affinity fields (PAF'),
    ({'bodypart': {**RESNET_50_HEAD, 'predictor': {'type': 'PartAffinityFieldPredictor'}}},
     'model.heads.bodypart.type', 'DLCRNetHead: part affinity fields (PAF'),
    ({'bodypart': {'type': 'RTMCCHead', 'input_size': [256, 256]}}, 'model.heads.bodypart.type',
     'RTMCCHead: RTMPose\'s SimCC head'),
    ({'bodypart': RESNET_50_HEAD, 'identity': {'type': 'HeatmapHead'}}, 'model.heads.identity',
     'HeatmapHead: openfields trains the body parts\' head only, it has no identity head'),
])
def test_heads_openfields_does_not_have_are_one_line_exit_2_naming_what_trains_instead(tmp_path, capsys, heads,
                                                                                         key, what):
    path = config_file(tmp_path, **heads)
    with pytest.raises(SystemExit) as stop:
        train.cli(['--config', path])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and f'{path}: key {key}: {what}' in err
    assert '`--dlc-heads cif` trains CIF + CAF instead' in err and '`--dlc-heads heatmap`' in err


def test_a_locref_branch_unlike_the_heatmap_branch_or_locref_half_on_is_refused(tmp_path, capsys):
    head = copy.deepcopy(RESNET_50_HEAD)
    head['locref_config']['kernel_size'] = [5]
    with pytest.raises(SystemExit):
        train.cli(['--config', config_file(tmp_path, head)])
    assert 'key model.heads.bodypart.locref_config: differs from heatmap_config' in capsys.readouterr().err
    head = copy.deepcopy(RESNET_50_HEAD)
    head['predictor']['location_refinement'] = False
    with pytest.raises(SystemExit):
        train.cli(['--config', config_file(tmp_path, head)])
    assert ("key model.heads.bodypart.target_generator.generate_locref: True but the predictor's "
            'location_refinement is False') in capsys.readouterr().err


def test_the_heads_flag_on_the_command_line_replaces_the_section_with_one_info_line(caplog):
    mapping = {'model': {'heads': {'bodypart': {'type': 'DEKRHead'}}}}
    with pytest.raises(dlc_config.DlcConfigError, match='DEKRHead'):
        dlc_config.translate(mapping, 'f.yaml', ['dlc'])
    with caplog.at_level(logging.INFO, logger='openfields.deeplabcut.pytorch_config'):
        translation = dlc_config.translate(mapping, 'f.yaml', ['dlc'], given={'dlc_heads'})
    assert not any(key.startswith('dlc-heat') for key in translation.values) and translation.ignored == []
    assert [r.getMessage() for r in caplog.records] == [
        'f.yaml: model.heads replaced by the heads of --dlc-heads on the command line']


def test_a_command_line_heads_flag_wins_over_a_heatmap_head_of_the_file(tmp_path):
    args = train.cli(['--config', config_file(tmp_path, RESNET_50_HEAD), '--dlc-heads', 'cif'])
    assert args.dlc_heads == 'cif'


def test_a_dekr_file_trains_the_heads_the_command_line_asks_for(tmp_path, caplog):
    """The refusal's advice works as written: the same file with --dlc-heads cif parses, one info line says so."""
    path = config_file(tmp_path, {'bodypart': {'type': 'DEKRHead', 'target_generator': {'type': 'DEKRGenerator'}}})
    with caplog.at_level(logging.INFO, logger='openfields.deeplabcut.pytorch_config'):
        args = train.cli(['--config', path, '--dlc-heads', 'cif'])
    assert args.dlc_heads == 'cif'
    assert [r.getMessage() for r in caplog.records if 'model.heads' in r.getMessage()] == [
        f'{path}: model.heads replaced by the heads of --dlc-heads on the command line']
