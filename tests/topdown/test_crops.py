"""Crop geometry: image <-> crop pixels, the pixels of the crop, box jitter."""

import numpy as np
import PIL.Image
import pytest

from openfields.topdown.crops import CropGeometry, truncated_normal


def test_the_box_is_grown_to_the_crop_aspect_ratio_then_padded():
    geometry = CropGeometry.around([10, 20, 30, 80], width=192, height=256, padding=1.25)
    # 30 x 80 is taller than 3:4: the width grows to 60, then both sides by 1.25; the centre stays
    assert (geometry.center_x, geometry.center_y) == (25.0, 60.0)
    assert (geometry.box_width, geometry.box_height) == pytest.approx((75.0, 100.0))
    assert geometry.scale == pytest.approx(2.56)


def test_box_edges_map_onto_the_crop_edges():
    geometry = CropGeometry.around([10, 20, 96, 128], width=192, height=256, padding=1.0)
    np.testing.assert_allclose(geometry.to_crop([[10, 20], [106, 148]]), [[-0.5, -0.5], [191.5, 255.5]])


@pytest.mark.parametrize('rotation', [0.0, 17.0, -90.0, 163.5])
def test_round_trip_image_crop_image_is_exact(rotation):
    rng = np.random.default_rng(0)
    # a box reaching past the left and top image border
    geometry = CropGeometry(center_x=-12.5, center_y=3.25, box_width=96.7, box_height=128.9, width=192,
                            height=256, rotation=rotation)
    keypoints = rng.uniform(-100, 300, size=(50, 2))
    back = geometry.to_image(geometry.to_crop(keypoints))
    assert np.abs(back - keypoints).max() <= 1e-3


def test_matrix_is_the_point_mapping():
    geometry = CropGeometry(center_x=40, center_y=30, box_width=60, box_height=80, width=192, height=256,
                            rotation=25.0)
    points = np.array([[0.0, 0.0], [40.0, 30.0], [13.0, -7.0]])
    mapped = points @ geometry.matrix[:, :2].T + geometry.matrix[:, 2]
    np.testing.assert_allclose(mapped, geometry.to_crop(points), atol=1e-9)


def blob_image(x: float, y: float, width=200, height=150, sigma=3.0) -> PIL.Image.Image:
    columns, rows = np.meshgrid(np.arange(width), np.arange(height))
    blob = 255 * np.exp(-((columns - x) ** 2 + (rows - y) ** 2) / (2 * sigma ** 2))
    return PIL.Image.fromarray(np.repeat(blob[:, :, None], 3, axis=2).round().astype(np.uint8))


def centroid(image: PIL.Image.Image) -> np.ndarray:
    values = np.asarray(image, dtype=np.float64)[:, :, 0]
    rows, columns = np.nonzero(values > 0)
    weights = values[rows, columns]
    return np.array([np.sum(columns * weights), np.sum(rows * weights)]) / weights.sum()


@pytest.mark.parametrize('rotation', [0.0, 30.0])
@pytest.mark.parametrize('box', [[60, 40, 50, 60], [40, 20, 180, 200]])  # magnified, shrunk
def test_a_dot_lands_in_the_crop_where_its_keypoint_maps(box, rotation):
    keypoint = np.array([83.3, 61.7])
    geometry = CropGeometry.around(box, 192, 256)
    geometry = CropGeometry(**{**geometry.as_dict(), 'rotation': rotation})
    crop = geometry.crop(blob_image(*keypoint), fill=(0, 0, 0))
    assert crop.size == (192, 256)
    # measured: about 0.01 px; half a pixel off (a pixel-corner convention) would be 0.5 to 1.5 px
    assert np.linalg.norm(centroid(crop) - geometry.to_crop(keypoint[None])[0]) <= 0.1


def test_pixels_outside_the_image_are_filled():
    geometry = CropGeometry.around([-50, -50, 60, 80], 192, 256)
    crop = np.asarray(geometry.crop(PIL.Image.new('RGB', (100, 100), (255, 255, 255))))
    assert tuple(crop[0, 0]) == (124, 116, 104)
    assert tuple(crop[-1, -1]) == (255, 255, 255)


def test_truncated_normal_stays_in_minus_one_one_with_unit_normal_shape():
    draws = truncated_normal(np.random.default_rng(1), 20000)
    assert np.abs(draws).max() <= 1.0
    # variance of N(0, 1) truncated to [-1, 1]: 1 - 2 phi(1) / (2 Phi(1) - 1) = 0.2911
    assert draws.var() == pytest.approx(0.2911, abs=0.01)
    assert abs(draws.mean()) < 0.01


def test_jitter_stays_within_its_bounds():
    geometry = CropGeometry.around([100, 100, 60, 80], 192, 256)
    rng = np.random.default_rng(2)
    jittered = [geometry.jittered(rng, shift_factor=0.16, shift_prob=0.3, scale_range=(0.75, 1.25),
                                  rotation=30.0, rotation_prob=0.5) for _ in range(3000)]
    shift_x = np.array([(j.center_x - geometry.center_x) / geometry.box_width for j in jittered])
    factor = np.array([j.box_width / geometry.box_width for j in jittered])
    rotation = np.array([j.rotation for j in jittered])
    assert np.abs(shift_x).max() <= 0.16 + 1e-9
    assert np.mean(shift_x != 0) == pytest.approx(0.3, abs=0.03)
    assert factor.min() >= 0.75 and factor.max() <= 1.25 and np.mean(factor) == pytest.approx(1.0, abs=0.01)
    np.testing.assert_allclose([j.box_height / geometry.box_height for j in jittered], factor)  # no distortion
    assert np.abs(rotation).max() <= 30.0 and np.mean(rotation != 0) == pytest.approx(0.5, abs=0.04)


def test_plain_values_rebuild_the_geometry():
    geometry = CropGeometry.around([1, 2, 3, 4], 192, 256).jittered(np.random.default_rng(3), rotation=10,
                                                                    rotation_prob=1.0)
    assert CropGeometry.from_dict(geometry.as_dict()) == geometry
    assert all(type(v) in (int, float) for v in geometry.as_dict().values())
