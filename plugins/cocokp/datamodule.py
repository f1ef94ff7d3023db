"""``cocokp``: any COCO-format keypoint dataset (a json file and an image folder), COCO 2017's person
keypoints by default. Everything but the name, the default paths and OpenPifPaf's
``--cocokp-eval-testdev2017`` is the core's :class:`~openfields.datasets.keypoint_module.CocoKeypointModule`."""

import argparse

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
    # OpenPifPaf's --cocokp-eval-testdev2017: COCO's test-dev image-info json and its images
    testdev2017_paths = {
        'val_annotations': 'data-mscoco/annotations/image_info_test-dev2017.json',
        'val_image_dir': 'data-mscoco/images/test2017/',
    }

    @classmethod
    def path_cli(cls, group):
        super().path_cli(group)
        group.add_argument('--cocokp-eval-testdev2017', default=False, action='store_true',
                           help='OpenPifPaf\'s spelling of --cocokp-eval-testdev, with COCO\'s test-dev 2017 as '
                                f'the default validation set: --cocokp-val-annotations '
                                f'{cls.testdev2017_paths["val_annotations"]} and --cocokp-val-image-dir '
                                f'{cls.testdev2017_paths["val_image_dir"]} unless given')

    @classmethod
    def from_args(cls, args: argparse.Namespace, base_stride: int) -> 'CocoKp':
        if getattr(args, 'cocokp_eval_testdev2017', False):
            testdev = {f'cocokp_{key}': path for key, path in cls.testdev2017_paths.items()
                       if getattr(args, f'cocokp_{key}') == cls.default_paths[key]}  # not given
            args = argparse.Namespace(**{**vars(args), 'cocokp_eval_testdev': True, **testdev})
        return super().from_args(args, base_stride)
