"""``cocokp``: any COCO-format keypoint dataset (a json file and an image folder), COCO 2017's person
keypoints by default. Everything but the name and the default paths is the core's
:class:`~openfields.datasets.keypoint_module.CocoKeypointModule`."""

from openfields.datasets.keypoint_module import CocoKeypointModule


class CocoKp(CocoKeypointModule):
    """COCO-format keypoints: CIF + CAF heads of one category."""

    name = 'cocokp'
    default_square_edge = 385
    default_paths = {
        'train_annotations': 'data-mscoco/annotations/person_keypoints_train2017.json',
        'val_annotations': 'data-mscoco/annotations/person_keypoints_val2017.json',
        'train_image_dir': 'data-mscoco/images/train2017/',
        'val_image_dir': 'data-mscoco/images/val2017/',
    }
