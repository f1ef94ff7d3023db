"""``crowdpose``: CrowdPose (14 keypoints, ``head`` and ``neck`` last) through the ``cocokp`` code path.

Reading, augmentation, loaders and flags are cocokp's (with the ``--crowdpose-`` prefix); what differs
is CrowdPose's own: its skeleton and sigmas (``constants``), which the json does not carry, and the
evaluation, which adds AP per crowd-index difficulty level (``metric``).
"""

import argparse

from openfields import headmeta
from openfields.datasets.coco import DatasetError
from openfields.plugins.cocokp.datamodule import Augmentation, CocoKp

from . import constants
from .metric import CrowdPoseCoco


def head_metas(dataset: str, upsample: int) -> list[headmeta.Base]:
    """CIF and CAF metas of CrowdPose's keypoints, skeleton, sigmas and left/right pairs."""
    common = dict(dataset=dataset, keypoints=constants.CROWDPOSE_KEYPOINTS, sigmas=constants.CROWDPOSE_SIGMAS,
                  pose=constants.CROWDPOSE_UPRIGHT_POSE,
                  hflip=headmeta.hflip_from_names(constants.CROWDPOSE_KEYPOINTS), upsample_stride=upsample)
    return [headmeta.Cif(name='cif', draw_skeleton=constants.CROWDPOSE_SKELETON, **common),
            headmeta.Caf(name='caf', skeleton=constants.CROWDPOSE_SKELETON, **common)]


class CrowdPose(CocoKp):
    """CrowdPose json and images: CIF + CAF heads with CrowdPose's skeleton and sigmas."""

    name = 'crowdpose'
    default_square_edge = 385
    default_paths = {
        'train_annotations': 'data-crowdpose/json/crowdpose_trainval.json',
        'val_annotations': 'data-crowdpose/json/crowdpose_test.json',
        'train_image_dir': 'data-crowdpose/images/',
        'val_image_dir': 'data-crowdpose/images/',
    }

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self.category.keypoints != constants.CROWDPOSE_KEYPOINTS:
            raise DatasetError(f'{self.train_annotations}: category {self.category.id} has the keypoints '
                               f'{self.category.keypoints}, not CrowdPose\'s {constants.CROWDPOSE_KEYPOINTS} '
                               '(--dataset cocokp trains any keypoint set)')
        self.head_metas = head_metas(self.name, self.upsample)

    @classmethod
    def cli(cls, parser: argparse.ArgumentParser) -> None:
        # --coco-eval-long-edge and --coco-no-eval-annotation-filter come from cocokp (EvalSettings.cli)
        group = parser.add_argument_group(f'dataset {cls.name}')
        cls.path_cli(group)
        parser.set_defaults(**{f'{cls.name}_{key}': value for key, value in cls.default_paths.items()})
        Augmentation.cli(group, cls.name, cls.default_square_edge)
        cls.head_cli(group)

    def metrics(self) -> list:
        """OKS AP with CrowdPose's sigmas, overall and per difficulty (``AP_easy``, ``AP_medium``, ``AP_hard``)."""
        cif = self.head_metas[0]
        return [CrowdPoseCoco(self.val_annotations, category_id=self.category.id, sigmas=cif.sigmas,
                              keypoint_names=cif.keypoints)]
