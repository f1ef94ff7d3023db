"""Fields read into pixel units (:class:`FieldView`) and what the painters draw from them."""

import matplotlib.figure
from matplotlib.backends.backend_agg import FigureCanvasAgg
import numpy as np
import pytest
import torch

from openfields import headmeta
from openfields.datasets import coco_person
from openfields.show import field_painters as painters
from openfields.transforms import IMAGENET_MEAN, IMAGENET_STD

STRIDE = 8


def cif_meta():
    return headmeta.Cif(name='cif', dataset='d', keypoints=['a', 'b'], sigmas=[0.1, 0.1], base_stride=STRIDE)


def caf_meta():
    return headmeta.Caf(name='caf', dataset='d', keypoints=['a', 'b'], sigmas=[0.1, 0.1], skeleton=[(1, 2)],
                        base_stride=STRIDE)


def cif_target():
    """Two fields of 3 x 4 cells; field 1 has one positive cell (row 2, column 3) and an ignored one."""
    target = np.full((2, 5, 3, 4), np.nan, np.float32)
    target[:, 0] = 0.0
    target[1, :, 2, 3] = [1.0, 0.25, -0.5, 0.01, 2.0]  # conf, dx, dy, b_min, scale (field units)
    target[1, 0, 0, 0] = np.nan
    return target


def test_target_view_is_in_pixels_and_keeps_ignored_cells():
    view = painters.FieldView.from_target(cif_meta(), torch.from_numpy(cif_target()), 1)
    assert view.stride == STRIDE
    assert np.isnan(view.confidence[0, 0]) and view.confidence[2, 3] == 1.0
    assert np.nansum(view.confidence) == 1.0
    assert view.positions[0][:, 2, 3].tolist() == [(3 + 0.25) * STRIDE, (2 - 0.5) * STRIDE]
    assert view.scales[0][2, 3] == 2.0 * STRIDE
    assert view.confident().sum() == 1


def test_target_view_leaves_absent_scales_absent():
    target = cif_target()
    target[1, 4, 2, 3] = np.nan  # a person with fewer than three labelled keypoints has no scale target
    view = painters.FieldView.from_target(cif_meta(), target, 1)
    assert np.isnan(view.scales[0][2, 3]) and view.confident()[2, 3]


def test_eval_view_of_caf_fields_has_both_joints_and_scales():
    fields = np.zeros((1, 8, 2, 2), np.float32)  # [log_b, conf, x1, y1, x2, y2, s1, s2], absolute field units
    fields[0, :, 1, 0] = [0.0, 0.9, 0.5, 1.0, 2.0, 3.0, 1.5, 0.5]
    view = painters.FieldView.from_eval_fields(caf_meta(), fields, 0)
    assert view.positions[0][:, 1, 0].tolist() == [4.0, 8.0]
    assert view.positions[1][:, 1, 0].tolist() == [16.0, 24.0]
    assert [s[1, 0] for s in view.scales] == [12.0, 4.0]
    assert view.confident().tolist() == [[False, False], [True, False]]


def test_denormalize_inverts_the_imagenet_normalisation():
    rgb = np.random.default_rng(0).uniform(0, 1, (5, 6, 3)).astype(np.float32)
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    normalised = torch.from_numpy(((rgb - mean) / std).transpose(2, 0, 1))
    np.testing.assert_allclose(painters.denormalize(normalised), rgb, atol=1e-6)


def axes_of_size(width, height):
    figure = matplotlib.figure.Figure(figsize=(width / 100, height / 100), dpi=100)
    ax = figure.add_axes((0, 0, 1, 1))
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.set_axis_off()
    return figure, ax


def rendered(figure) -> np.ndarray:
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:, :, :3].astype(np.int64)


def test_confidence_map_colours_positive_cells_and_marks_ignored_ones():
    figure, ax = axes_of_size(32, 24)  # 4 x 3 cells of 8 pixels, one pixel per image unit
    view = painters.FieldView.from_target(cif_meta(), cif_target(), 1)
    image, label = painters.confidence(ax, view, 'Oranges')
    pixels = rendered(figure)
    positive, ignored, negative = pixels[16, 24], pixels[0, 0], pixels[8, 8]  # cell centres (row, column)
    assert negative.tolist() == [255, 255, 255]  # zero confidence is transparent (white figure)
    assert positive[0] - positive[2] > 100  # orange/brown: much more red than blue
    assert ignored[1] < ignored[0] - 50 and ignored[1] < ignored[2] - 50  # magenta
    assert image.get_clim() == (0.0, 1.0) and 'ignored' in label


def test_cif_arrows_run_from_confident_cells_to_their_keypoints():
    figure, ax = axes_of_size(32, 24)
    view = painters.FieldView.from_target(cif_meta(), cif_target(), 1)
    arrows, _ = painters.cif_regression(ax, view)
    assert arrows.X.tolist() == [24.0] and arrows.Y.tolist() == [16.0]  # the positive cell, pixels
    assert arrows.U.tolist() == [0.25 * STRIDE] and arrows.V.tolist() == [-0.5 * STRIDE]


def test_caf_arrows_run_from_joint_one_to_joint_two():
    figure, ax = axes_of_size(32, 24)
    fields = np.zeros((1, 8, 3, 4), np.float32)
    fields[0, :, 1, 1] = [0.0, 0.8, 1.0, 1.0, 3.0, 2.0, 1.0, 1.0]
    fields[0, :, 2, 2] = [0.0, 0.3, 1.0, 1.0, 3.0, 2.0, 1.0, 1.0]  # below the arrow threshold
    arrows, _ = painters.caf_associations(ax, painters.FieldView.from_eval_fields(caf_meta(), fields, 0))
    assert arrows.X.tolist() == [8.0] and arrows.Y.tolist() == [8.0]
    assert arrows.U.tolist() == [16.0] and arrows.V.tolist() == [8.0]
    assert arrows.get_array().tolist() == pytest.approx([0.8])


def test_scale_circles_have_the_joint_scale_as_diameter():
    figure, ax = axes_of_size(32, 24)
    view = painters.FieldView.from_target(cif_meta(), cif_target(), 1)
    image, _ = painters.scales(ax, view, painters.max_scale([view]))
    circles = ax.collections[-1].get_paths()  # data coordinates (pixels)
    assert len(circles) == 1
    extent = circles[0].get_extents()
    assert extent.width == pytest.approx(2.0 * STRIDE, rel=1e-3)  # diameter: the scale
    assert (extent.x0 + extent.x1) / 2 == pytest.approx((3 + 0.25) * STRIDE)  # at the regressed keypoint
    assert image.get_clim() == (0.0, 2.0 * STRIDE)


def test_ground_truth_keeps_labelled_people_and_boxes_the_ignored_ones():
    meta = headmeta.Cif(name='cif', dataset='d', keypoints=coco_person.COCO_KEYPOINTS,
                        sigmas=coco_person.COCO_PERSON_SIGMAS, base_stride=STRIDE)
    person = np.zeros((17, 3), np.float32)
    person[:3] = [[10, 10, 2], [12, 9, 1], [14, 10, 2]]
    anns = [{'keypoints': person, 'bbox': np.array([9, 8, 6, 3], np.float32), 'iscrowd': 0},
            {'keypoints': np.zeros((17, 3), np.float32), 'bbox': np.array([1, 2, 3, 4], np.float32), 'iscrowd': 1},
            {'keypoints': np.zeros((17, 3), np.float32), 'bbox': np.array([5, 6, 7, 8], np.float32), 'iscrowd': 0}]
    found = painters.ground_truth_annotations(meta, anns)
    assert len(found) == 1 and found[0].data[:4, 2].tolist() == [1.0, 1.0, 1.0, 0.0]
    assert [box.tolist() for box in painters.ignored_boxes(anns)] == [[1, 2, 3, 4], [5, 6, 7, 8]]
