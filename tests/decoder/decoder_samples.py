"""People, head metas and oracle fields shared by the decoder tests; ``python decoder_samples.py``
prints the decoder timing table (ms per stage on oracle fields of a 641x427 image)."""

import numpy as np

from openfields import encoder, headmeta
from openfields.decoder import CifCaf, DecoderSettings, fields_from_targets
from openfields.datasets import coco_person

WIDTH, HEIGHT = 641, 427
POSE = np.array(coco_person.COCO_UPRIGHT_POSE)


def cif_meta():
    return headmeta.Cif(name='cif', dataset='cocokp', keypoints=coco_person.COCO_KEYPOINTS,
                        sigmas=coco_person.COCO_PERSON_SIGMAS, pose=coco_person.COCO_UPRIGHT_POSE,
                        score_weights=coco_person.COCO_PERSON_SCORE_WEIGHTS, base_stride=16, upsample_stride=2)


def caf_meta(skeleton=coco_person.COCO_PERSON_SKELETON, name='caf', **kwargs):
    return headmeta.Caf(name=name, dataset='cocokp', keypoints=coco_person.COCO_KEYPOINTS,
                        sigmas=coco_person.COCO_PERSON_SIGMAS, skeleton=skeleton,
                        pose=coco_person.COCO_UPRIGHT_POSE, base_stride=16, upsample_stride=2, **kwargs)


def person(x, y, height, v=2.0):
    """COCO person standing with feet near ``(x, y)`` pixels, ``height`` pixels tall."""
    keypoints = POSE.copy()
    keypoints[:, :2] = keypoints[:, :2] * height / 1.8 + [x, y]
    keypoints[:, 2] = v
    x0, y0 = keypoints[:, :2].min(axis=0)
    x1, y1 = keypoints[:, :2].max(axis=0)
    return {'keypoints': keypoints.astype(np.float32), 'bbox': np.array([x0, y0, x1 - x0, y1 - y0], np.float32),
            'iscrowd': 0, 'category_id': 1}


def people(n, seed=0, min_joint_distance=25.0):
    """``n`` people of 80 to 220 px at random places of the canvas; their boxes may overlap (they do
    for n >= 5) but same-type joints of two people stay ``min_joint_distance`` px apart, beyond the
    keypoint NMS radius (the joint size), so that every joint is recoverable."""
    rng = np.random.default_rng(seed)
    anns = []
    while len(anns) < n:
        height = rng.uniform(80, 220)
        x = rng.uniform(40, WIDTH - 40)
        y = rng.uniform(height + 5, HEIGHT - 5)
        candidate = person(x, y, height)
        if all(np.min(np.linalg.norm(candidate['keypoints'][:, :2] - other['keypoints'][:, :2], axis=1))
               >= min_joint_distance for other in anns):
            anns.append(candidate)
    return anns


def boxes_overlap(a, b):
    ax, ay, aw, ah = a['bbox']
    bx, by, bw, bh = b['bbox']
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


def oracle_fields(anns, metas=None):
    """Oracle eval-mode fields of the COCO CIF + CAF heads (stride 8) for ``anns`` on the canvas."""
    metas = metas or [cif_meta(), caf_meta()]
    image = np.zeros((HEIGHT, WIDTH), np.float32)
    sample_meta = {'valid_area': np.array([0.0, 0.0, WIDTH, HEIGHT])}
    fields = []
    for meta in metas:
        encode = encoder.Cif(meta) if isinstance(meta, headmeta.Cif) else encoder.Caf(meta)
        fields.append(fields_from_targets(meta, encode(image, anns, sample_meta)))
    return fields


def decoder(**settings):
    return CifCaf(cif_meta(), caf_meta(), DecoderSettings(**settings))


def mean_distances(annotation, anns):
    """Mean distance (px) of the annotation's found joints to each ground truth's labelled ones."""
    found = annotation.data[:, 2] > 0
    result = []
    for ann in anns:
        both = found & (ann['keypoints'][:, 2] > 0)
        if not np.any(both):
            result.append(np.inf)
            continue
        result.append(float(np.mean(np.linalg.norm(annotation.data[both, :2] - ann['keypoints'][both, :2], axis=1))))
    return np.array(result)


def hide(anns, joints=(9, 10, 15)):
    """The same people with ``joints`` unlabelled (wrists and left ankle by default)."""
    hidden = []
    for ann in anns:
        ann = dict(ann, keypoints=ann['keypoints'].copy())
        ann['keypoints'][list(joints), 2] = 0.0
        hidden.append(ann)
    return hidden


def benchmark(repeats=20):
    """Median ms per stage for 1 / 5 / 20 people: without force-complete, with it, and with it on
    people whose wrists and left ankle are unlabelled (so that force-complete has work to do)."""
    rows = []
    for n in (1, 5, 20):
        anns = people(n, seed=n)
        for label, force_complete, sample in (('no', False, anns), ('yes', True, anns),
                                              ('yes, 3 joints hidden', True, hide(anns))):
            fields = oracle_fields(sample)
            decode = decoder(force_complete_pose=force_complete)
            samples = []
            for _ in range(repeats + 2):
                decode(fields)
                samples.append(decode.stats)
            stages = samples[0].keys()
            median = {k: float(np.median([s[k] for s in samples[2:]])) for k in stages}
            total = float(np.median([sum(s.values()) for s in samples[2:]]))
            rows.append((n, label, median, total))
    stages = list(rows[0][2])
    print('| people | force complete | ' + ' | '.join(stages) + ' | total |')
    print('|---' * (len(stages) + 3) + '|')
    for n, label, median, total in rows:
        print(f'| {n} | {label} | ' + ' | '.join(f'{median[k]:.2f}' for k in stages) + f' | {total:.2f} |')


if __name__ == '__main__':
    benchmark()
