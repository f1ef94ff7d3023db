"""DeepLabCut's ``net_type`` and ``model.backbone`` as openfields basenets: each backbone as named, with
ImageNet weights unless ``pretrained: false``; what openfields cannot build refused in one line."""

import pytest

from openfields import train
from openfields.deeplabcut import pytorch_config as dlc_config

yaml = pytest.importorskip('yaml')

# model.backbone as DeepLabCut 3 writes it (config/backbones/*.yaml, dekr/, rtmpose/)
RESNET_50 = {'type': 'ResNet', 'model_name': 'resnet50_gn', 'output_stride': 16, 'freeze_bn_stats': True,
             'freeze_bn_weights': False}
HRNET_W32 = {'type': 'HRNet', 'model_name': 'hrnet_w32', 'freeze_bn_stats': True, 'freeze_bn_weights': False,
             'interpolate_branches': False, 'increased_channel_count': False}
DEKR_W32 = {**HRNET_W32, 'freeze_bn_stats': False, 'interpolate_branches': True}
RTMPOSE_M = {'type': 'CSPNeXt', 'model_name': 'cspnext_p5', 'freeze_bn_stats': False, 'freeze_bn_weights': False,
             'expand_ratio': 0.5, 'deepen_factor': 0.67, 'widen_factor': 0.75, 'channel_attention': True,
             'norm_layer': 'SyncBN', 'activation_fn': 'SiLU'}


def parse(tmp_path, mapping, *flags):
    path = tmp_path / 'pytorch_config.yaml'
    path.write_text(yaml.safe_dump(mapping))
    return train.cli(['--config', str(path), *flags])


def basenet_of(args):
    return (args.basenet, args.basenet_pretrained, args.basenet_freeze_bn_stats, args.basenet_freeze_bn_weights,
            args.resnet_pool0_stride, args.resnet_block5_dilation, args.hrnet_interpolate_branches,
            args.hrnet_increased_channel_count)


@pytest.mark.parametrize('net_type, backbone, expected', [
    ('resnet_50', RESNET_50, ('resnet50_gn', 'timm', False, False, 2, 2, False, False)),
    ('hrnet_w32', HRNET_W32, ('hrnet_w32', 'timm', True, False, 0, 1, False, False)),
    ('dekr_w32', DEKR_W32, ('hrnet_w32', 'timm', False, False, 0, 1, True, False)),
    ('rtmpose_m', RTMPOSE_M, ('cspnext_m', 'auto', False, False, 0, 1, False, False)),
    ('top_down_resnet_101', {'type': 'ResNet', 'model_name': 'resnet101', 'output_stride': 16,
                             'freeze_bn_stats': True, 'freeze_bn_weights': False},
     ('resnet101', 'timm', True, False, 2, 2, False, False)),
])
def test_each_backbone_as_named(tmp_path, net_type, backbone, expected):
    assert basenet_of(parse(tmp_path, {'net_type': net_type, 'model': {'backbone': backbone}})) == expected
    assert basenet_of(parse(tmp_path, {'model': {'backbone': backbone}, 'net_type': net_type})) == expected
    assert basenet_of(parse(tmp_path, {'net_type': net_type})) == expected  # DeepLabCut's backbone of the net type


def test_pretrained_false_trains_from_scratch_and_the_command_line_wins(tmp_path):
    mapping = {'model': {'backbone': {**HRNET_W32, 'pretrained': False}}}
    assert parse(tmp_path, mapping).basenet_pretrained is False
    given = parse(tmp_path, {'model': {'backbone': HRNET_W32}}, '--basenet-pretrained', 'w.pth')
    assert given.basenet_pretrained == 'w.pth'
    assert parse(tmp_path, {'model': {'backbone': HRNET_W32}}, '--no-basenet-pretrained').basenet_pretrained is False
    args = parse(tmp_path, {'net_type': 'hrnet_w18'}, '--basenet', 'hrnet_w48', '--hrnet-increased-channel-count')
    assert (args.basenet, args.hrnet_increased_channel_count, args.basenet_pretrained) == ('hrnet_w48', True, 'timm')


def test_deeplabcut_freezes_batchnorm_unless_told_not_to(tmp_path):
    args = parse(tmp_path, {'model': {'backbone': {'type': 'HRNet', 'model_name': 'hrnet_w18'}}})
    assert (args.basenet_freeze_bn_stats, args.basenet_freeze_bn_weights) == (True, True)
    args = parse(tmp_path, {'model': {'backbone': {'type': 'ResNet', 'model_name': 'resnet50'}}})
    assert (args.basenet_freeze_bn_stats, args.resnet_block5_dilation) == (True, 1)  # DLC's ResNet: stride 32


def test_model_backbone_decides_over_the_net_type(tmp_path):
    """Once the file exists the net type is DeepLabCut's label: an older resnet_50 file built a BatchNorm
    resnet50, so does openfields."""
    backbone = {'type': 'ResNet', 'model_name': 'resnet50', 'pretrained': True}
    for mapping in ({'net_type': 'resnet_50', 'model': {'backbone': backbone}},
                    {'model': {'backbone': backbone}, 'net_type': 'resnet_50'}):
        assert basenet_of(parse(tmp_path, mapping)) == ('resnet50', 'timm', True, True, 2, 1, False, False)


def test_nothing_about_the_backbone_is_listed_as_ignored(tmp_path):
    mapping = {'net_type': 'dekr_w32', 'model': {'backbone': DEKR_W32, 'backbone_output_channels': 480}}
    translation = dlc_config.translate(mapping, 'f.yaml', ['dlc'])
    assert translation.ignored == ['model.backbone_output_channels (no counterpart)']


@pytest.mark.parametrize('mapping, message', [
    ({'net_type': 'dlcrnet_ms5'}, "key net_type: 'dlcrnet_ms5' has no openfields basenet; net types openfields "
                                  'trains: resnet_50, resnet_101, hrnet_w18'),
    ({'net_type': 'animaltokenpose_base'}, "key net_type: 'animaltokenpose_base' has no openfields basenet"),
    ({'model': {'backbone': {'type': 'DLCRNet', 'model_name': 'resnet50', 'output_stride': 16}}},
     "key model.backbone.type: 'DLCRNet' has no openfields basenet; openfields builds ResNet: resnet18, resnet50, "
     'resnet50_gn, resnet101, resnet152; HRNet: hrnet_w18, hrnet_w32, hrnet_w48; CSPNeXt: cspnext_s, cspnext_m, '
     'cspnext_x'),
    ({'model': {'backbone': {'type': 'ResNet', 'model_name': 'resnet34'}}},
     "key model.backbone.model_name: 'resnet34' has no openfields basenet"),
    ({'model': {'backbone': {**RESNET_50, 'output_stride': 8}}}, 'key model.backbone.output_stride: 8:'),
    ({'model': {'backbone': {**RESNET_50, 'drop_path_rate': 0.1}}}, 'key model.backbone.drop_path_rate: 0.1:'),
    ({'model': {'backbone': {**RTMPOSE_M, 'widen_factor': 1.0}}},
     'deepen_factor 0.67 and widen_factor 1.0 (cspnext_p5) make no CSPNeXt openfields builds: cspnext_s (0.33, 0.5)'),
    ({'model': {'backbone': {**RTMPOSE_M, 'arch': 'P6'}}}, "key model.backbone.arch: 'P6': openfields builds the P5"),
    ({'model': {'backbone': {**HRNET_W32, 'stride': 8}}}, 'key model.backbone.stride: 8:'),
    ({'model': {'backbone': {**HRNET_W32, 'pretrained': 'yes'}}},
     "key model.backbone.pretrained: must be true or false, got 'yes'"),
])
def test_what_openfields_cannot_build_is_one_line_exit_2(tmp_path, capsys, mapping, message):
    with pytest.raises(SystemExit) as stop:
        parse(tmp_path, mapping)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and message in err and 'pytorch_config.yaml' in err
