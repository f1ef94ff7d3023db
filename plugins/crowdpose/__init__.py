"""Plugin ``crowdpose``: CrowdPose keypoints with its own skeleton, sigmas and difficulty levels."""

from openfields.datasets import register_datamodule

from .datamodule import CrowdPose


def register():
    register_datamodule(CrowdPose)
