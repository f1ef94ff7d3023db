"""COCO person keypoints: names, skeleton, published OKS sigmas and a reference upright pose.

The sigmas are the per-keypoint constants published with the COCO keypoint
evaluation (``kappa / 2`` in OKS); the skeleton is the one shipped in COCO's
``person_keypoints_*.json`` (1-based pairs).
"""

COCO_KEYPOINTS = [
    'nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear',
    'left_shoulder', 'right_shoulder', 'left_elbow', 'right_elbow',
    'left_wrist', 'right_wrist', 'left_hip', 'right_hip',
    'left_knee', 'right_knee', 'left_ankle', 'right_ankle',
]

COCO_PERSON_SKELETON = [
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13),
    (6, 7), (6, 8), (7, 9), (8, 10), (9, 11), (2, 3), (1, 2), (1, 3),
    (2, 4), (3, 5), (4, 6), (5, 7),
]

# The 25 extra connections of OpenPifPaf's dense COCO person head ("caf25", --cocokp-with-dense): pairs of
# keypoints usually close together that the sparse skeleton joins only through a third one (nose-ears,
# nose-shoulders, across the torso, elbows, wrists, knees and ankles pairwise, ...). A person whose
# connecting keypoint is hidden (an eye between nose and ear) stays in one piece through them.
DENSE_COCO_PERSON_CONNECTIONS = [
    (1, 4), (1, 5), (4, 5), (1, 6), (1, 7), (2, 6), (3, 7),
    (6, 13), (7, 12), (6, 10), (7, 11), (8, 9), (10, 11),
    (10, 12), (11, 13), (10, 14), (11, 15), (12, 15), (13, 14),
    (12, 16), (13, 17), (14, 17), (15, 16), (14, 15), (16, 17),
]

COCO_PERSON_SIGMAS = [
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
    0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
]

# Three most confident joints count three times in an annotation's score.
COCO_PERSON_SCORE_WEIGHTS = [3.0] * 3 + [1.0] * 14

# A person standing upright, facing the camera, about 1.8 units tall; y grows
# downwards as in images. Used to estimate a whole-body size from the visible
# keypoints of partly visible people, and to draw the skeleton.
COCO_UPRIGHT_POSE = [
    [0.0, -1.64, 2.0],    # nose
    [0.04, -1.68, 2.0],  # left_eye: the person faces the camera, so left is at +x
    [-0.04, -1.68, 2.0],   # right_eye
    [0.09, -1.65, 2.0],  # left_ear
    [-0.09, -1.65, 2.0],   # right_ear
    [0.2, -1.42, 2.0],   # left_shoulder
    [-0.2, -1.42, 2.0],    # right_shoulder
    [0.26, -1.12, 2.0],  # left_elbow
    [-0.26, -1.12, 2.0],   # right_elbow
    [0.29, -0.84, 2.0],  # left_wrist
    [-0.29, -0.84, 2.0],   # right_wrist
    [0.12, -0.88, 2.0],  # left_hip
    [-0.12, -0.88, 2.0],   # right_hip
    [0.13, -0.46, 2.0],  # left_knee
    [-0.13, -0.46, 2.0],   # right_knee
    [0.14, -0.04, 2.0],  # left_ankle
    [-0.14, -0.04, 2.0],   # right_ankle
]

# Sigma used for every keypoint of a COCO-format category without published
# sigmas (the mean of COCO's person sigmas, rounded).
DEFAULT_SIGMA = 0.05


def person_category(data: dict, path, category_id: int | None = None):
    """COCO's 17 person keypoints for the ``person`` category of an image-info json (COCO test-dev's
    categories declare no keypoints); ``category_id`` picks the category instead of the name."""
    from .coco import DatasetError, KeypointCategory  # pylint: disable=import-outside-toplevel
    person = next((c for c in data['categories'] if (c.get('id') == category_id if category_id is not None
                                                      else c.get('name') == 'person')), None)
    if person is None:
        raise DatasetError(f'{path}: no category declares "keypoints" and none is '
                           f'{"id " + str(category_id) if category_id is not None else "person"}')
    return KeypointCategory(id=int(person['id']), name=str(person.get('name', 'person')), keypoints=COCO_KEYPOINTS,
                            skeleton=list(COCO_PERSON_SKELETON), sigmas=None)
