"""``crowdpose``: CrowdPose (14 keypoints, ``head`` and ``neck`` last) through the core's COCO keypoint module.

Reading, augmentation, loaders and flags are those of ``cocokp`` (with the ``--crowdpose-`` prefix); what differs
is CrowdPose's own: its skeleton and sigmas (``constants``), which the json does not carry, and the
evaluation, which adds AP per crowd-index difficulty level (``metric``).
"""

from openfields import headmeta
from openfields.datasets.coco import DatasetError
from openfields.datasets.keypoint_module import CocoKeypointModule

from . import constants
from .metric import CrowdPoseCoco


def head_metas(dataset: str, upsample: int, *, base_stride: int) -> list[headmeta.Base]:
    """CIF and CAF metas of CrowdPose's keypoints, skeleton, sigmas and left/right pairs (basenet stride
    ``base_stride``)."""
    common = dict(dataset=dataset, keypoints=constants.CROWDPOSE_KEYPOINTS, sigmas=constants.CROWDPOSE_SIGMAS,
                  pose=constants.CROWDPOSE_UPRIGHT_POSE,
                  hflip=headmeta.hflip_from_names(constants.CROWDPOSE_KEYPOINTS), upsample_stride=upsample,
                  base_stride=base_stride)
    return [headmeta.Cif(name='cif', draw_skeleton=constants.CROWDPOSE_SKELETON, **common),
            headmeta.Caf(name='caf', skeleton=constants.CROWDPOSE_SKELETON, **common)]


class CrowdPose(CocoKeypointModule):
    """CrowdPose json and images: CIF + CAF heads with CrowdPose's skeleton and sigmas."""

    name = 'crowdpose'
    default_square_edge = 385
    default_paths = {
        'train_annotations': 'data-crowdpose/json/crowdpose_trainval.json',
        'val_annotations': 'data-crowdpose/json/crowdpose_test.json',
        'train_image_dir': 'data-crowdpose/images/',
        'val_image_dir': 'data-crowdpose/images/',
    }

    def make_head_metas(self) -> list[headmeta.Base]:
        if self.category.keypoints != constants.CROWDPOSE_KEYPOINTS:
            raise DatasetError(f'{self.train_annotations}: category {self.category.id} has the keypoints '
                               f'{self.category.keypoints}, not CrowdPose\'s {constants.CROWDPOSE_KEYPOINTS} '
                               '(--dataset cocokp trains any keypoint set)')
        return head_metas(self.name, self.upsample, base_stride=self.base_stride)

    def scoring_metrics(self) -> list:
        """OKS AP with CrowdPose's sigmas, overall and per difficulty (``AP_easy``, ``AP_medium``, ``AP_hard``)."""
        cif = self.head_metas[0]
        return [CrowdPoseCoco(self.val_annotations, category_id=self.category.id, sigmas=cif.sigmas,
                              keypoint_names=cif.keypoints)]
