"""InstanceCrops: one training sample per annotated individual, encoded from that individual alone."""

import numpy as np

from openfields.datasets.collate import collate_images_targets_meta
from openfields.transforms.geometry import keypoints_to_original
from openfields.topdown.crop_data import InstanceCrops
from openfields.topdown.crops import CropGeometry, JitterSettings

from conftest import cif_encoders


def test_one_sample_per_annotated_individual(coco_sample):
    dataset, metas, data = coco_sample
    individuals = [a for a in data['annotations']
                   if not a.get('iscrowd') and any(v > 0 for v in a['keypoints'][2::3])]
    crops = InstanceCrops(dataset, metas[:1], cif_encoders(metas))
    assert len(crops) == len(individuals) < len(data['annotations'])  # crowd and unlabelled ones left out


def test_cif_target_peaks_at_the_individuals_keypoints(coco_sample):
    dataset, metas, _ = coco_sample
    crops = InstanceCrops(dataset, metas[:1], cif_encoders(metas))
    stride = metas[0].stride
    for index in range(len(crops)):
        image, (cif,), meta = crops[index]
        assert image.shape == (3, 256, 192) and cif.shape == (17, 5, 16, 12)
        image_index, ann_index = crops.samples[index]
        ann = dataset.anns_per_image[dataset.ids[image_index]][ann_index]
        in_crop = CropGeometry.from_dict(meta['crop']).to_crop(ann['keypoints'][:, :2]) / stride
        cif = cif.numpy()
        for k in np.flatnonzero(ann['keypoints'][:, 2] > 0):
            column, row = np.clip(np.rint(in_crop[k]).astype(int), 0, [11, 15])
            if not np.allclose([column, row], in_crop[k], atol=0.5):
                continue  # outside the crop's field
            assert cif[k, 0, row, column] == 1.0 == np.nanmax(cif[k, 0])
            # the regression of that cell points at the keypoint (field units)
            np.testing.assert_allclose([column + cif[k, 1, row, column], row + cif[k, 2, row, column]],
                                       in_crop[k], atol=1e-4)
        assert meta['image_id'] == dataset.ids[image_index] and meta['annotation_index'] == ann_index


def test_training_crops_are_jittered_and_batch_like_bottom_up_samples(coco_sample):
    dataset, metas, _ = coco_sample
    crops = InstanceCrops(dataset, metas[:1], cif_encoders(metas), jitter=JitterSettings(shift_prob=1.0),
                          hflip_probability=1.0)
    plain = InstanceCrops(dataset, metas[:1], cif_encoders(metas))
    images, targets, batch_metas = collate_images_targets_meta([crops[0], crops[1]])
    assert images.shape == (2, 3, 256, 192) and targets[0].shape == (2, 17, 5, 16, 12)
    assert batch_metas[0]['crop'] != plain[0][2]['crop']
    assert batch_metas[0]['hflip'] and batch_metas[0]['head_indices'] == [0]


def test_meta_maps_turned_and_mirrored_crops_back_to_the_image(coco_sample):
    dataset, metas, _ = coco_sample
    crops = InstanceCrops(dataset, metas[:1], cif_encoders(metas),
                          jitter=JitterSettings(shift_prob=1.0, rotation=40.0), hflip_probability=1.0)
    _, _, meta = crops[3]
    image_index, ann_index = crops.samples[3]
    original = dataset.anns_per_image[dataset.ids[image_index]][ann_index]['keypoints']
    (in_crop,) = meta['annotations']
    back = keypoints_to_original(in_crop['keypoints'], meta, metas[0].flip_permutation())
    labelled = back[:, 2] > 0
    assert meta['hflip'] and meta['crop']['rotation'] != 0 and labelled.sum() >= 3
    np.testing.assert_allclose(back[labelled, :2], original[labelled, :2], atol=1e-3)
