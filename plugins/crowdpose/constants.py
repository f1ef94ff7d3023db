"""CrowdPose: keypoint names, skeleton, published OKS sigmas and a reference upright pose.

The 14 keypoints are COCO's body keypoints without the face, plus ``head`` (top of the head) and
``neck``, in the order of CrowdPose's json. The sigmas are those of CrowdPose's evaluation code (COCO's
for the body joints, 0.079 for head and neck). The skeleton is the one CrowdPose publishes (paper
figures, evaluation tools): the CrowdPose json itself carries COCO's 17-keypoint skeleton, which does not
fit these keypoints, so it is never read.
"""

from openfields.datasets import coco_person as coco

CROWDPOSE_KEYPOINTS = [
    'left_shoulder', 'right_shoulder', 'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist',
    'left_hip', 'right_hip', 'left_knee', 'right_knee', 'left_ankle', 'right_ankle', 'head', 'neck',
]

CROWDPOSE_SIGMAS = [
    0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089, 0.079, 0.079,
]

_CONNECTIONS = [
    ('head', 'neck'), ('neck', 'left_shoulder'), ('neck', 'right_shoulder'),
    ('left_shoulder', 'right_shoulder'),
    ('left_shoulder', 'left_elbow'), ('left_elbow', 'left_wrist'),
    ('right_shoulder', 'right_elbow'), ('right_elbow', 'right_wrist'),
    ('left_shoulder', 'left_hip'), ('right_shoulder', 'right_hip'), ('left_hip', 'right_hip'),
    ('left_hip', 'left_knee'), ('left_knee', 'left_ankle'),
    ('right_hip', 'right_knee'), ('right_knee', 'right_ankle'),
]
# 1-based pairs, as in COCO's categories[].skeleton
CROWDPOSE_SKELETON = [(CROWDPOSE_KEYPOINTS.index(a) + 1, CROWDPOSE_KEYPOINTS.index(b) + 1) for a, b in _CONNECTIONS]

# COCO's upright person (1.8 units tall, y down) for the body joints; the top of the head above the eyes
# and the neck between the shoulders and the nose
_POSE = dict(zip(coco.COCO_KEYPOINTS, coco.COCO_UPRIGHT_POSE), head=[0.0, -1.80, 2.0], neck=[0.0, -1.50, 2.0])
CROWDPOSE_UPRIGHT_POSE = [_POSE[name] for name in CROWDPOSE_KEYPOINTS]

# crowd index thresholds of CrowdPose's difficulty levels (the paper's): easy [0, 0.1), medium
# [0.1, 0.8), hard [0.8, 1]
CROWD_INDEX_SPLITS = (('easy', 0.0, 0.1), ('medium', 0.1, 0.8), ('hard', 0.8, float('inf')))
