"""Time a CIF-CAF decoder on saved fields: ``python -m tools.peer_decode FIELDS_DIR [--decoder openpifpaf]``.

The fields are what ``python -m tools.benchmark_decode --save-fields FIELDS_DIR`` writes (``<name>.cif.npy``,
``<name>.caf.npy``: COCO person CIF ``(17, 5, h, w)`` and CAF ``(19, 8, h, w)`` at stride 8, eval-mode head
outputs). Both decoders read the same channels: confidence 1, positions 2-5, CAF scales 6-7 (channel 0, the
log-b spread, is unused by both).

``--decoder openfields`` (run with the project's venv) times ``openfields.decoder.cifcaf.CifCaf``;
``--decoder openpifpaf`` (run with a throwaway venv holding OpenPifPaf 0.13.11, see
shared/reference/peer-openpifpaf.md) times ``openpifpaf.decoder.CifCaf``, its C++ decoder, twice: the Python
call a user makes (C++ plus the conversion to annotations) and the C++ call alone. Default flags for both
(same thresholds: seeds 0.2, CIF and CAF 0.3, keypoints 0.15). One thread; median and minimum over
``--repeats`` calls after ``--warm-up`` calls; one JSON object per input on stdout, with the decoded poses'
count and scores (``--poses`` adds the keypoints).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import time

import numpy as np
import torch


def openfields_decoder(max_votes_fraction: float | None = None):
    from openfields.datasets import coco_person
    from openfields.datasets.coco import KeypointCategory
    from openfields.datasets.keypoint_module import head_metas_for
    from openfields.decoder.cifcaf import CifCaf
    from openfields.decoder.settings import DecoderSettings
    category = KeypointCategory(id=1, name='person', keypoints=coco_person.COCO_KEYPOINTS,
                                skeleton=coco_person.COCO_PERSON_SKELETON, sigmas=None)
    cif_meta, caf_meta = head_metas_for(category, 'cocokp', 2, base_stride=16)
    assert cif_meta.stride == caf_meta.stride == 8
    settings = DecoderSettings() if max_votes_fraction is None else DecoderSettings(
        max_votes_fraction=max_votes_fraction)
    decode = CifCaf(cif_meta, caf_meta, settings)

    def call(cif, caf):
        return [(a.data, a.score) for a in decode([cif, caf])]
    return {'decoder': call}


def openpifpaf_decoders():
    import openpifpaf
    from openpifpaf.plugins.coco import constants
    cif = openpifpaf.headmeta.Cif('cif', 'cocokp', keypoints=constants.COCO_KEYPOINTS,
                                  sigmas=constants.COCO_PERSON_SIGMAS, pose=constants.COCO_UPRIGHT_POSE,
                                  draw_skeleton=constants.COCO_PERSON_SKELETON,
                                  score_weights=constants.COCO_PERSON_SCORE_WEIGHTS)
    caf = openpifpaf.headmeta.Caf('caf', 'cocokp', keypoints=constants.COCO_KEYPOINTS,
                                  sigmas=constants.COCO_PERSON_SIGMAS, pose=constants.COCO_UPRIGHT_POSE,
                                  skeleton=constants.COCO_PERSON_SKELETON)
    cif.head_index, caf.head_index = 0, 1
    cif.base_stride = caf.base_stride = 8
    cif.upsample_stride = caf.upsample_stride = 1
    assert cif.stride == caf.stride == 8
    decoder = openpifpaf.decoder.CifCaf([cif], [caf])

    def call(cif_field, caf_field):
        return [(a.data, a.score) for a in decoder([cif_field, caf_field])]

    def cpp(cif_field, caf_field):
        annotations, _ = decoder.cpp_decoder.call_with_initial_annotations(cif_field, 8, caf_field, 8, None, None)
        return annotations
    return {'decoder': call, 'cpp': cpp}


def time_calls(function, cif, caf, warm_up: int, repeats: int):
    result = None
    for _ in range(warm_up):
        result = function(cif, caf)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function(cif, caf)
        times.append(1000 * (time.perf_counter() - start))
    return times, result


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m tools.peer_decode', description=__doc__.splitlines()[0])
    parser.add_argument('fields', help='folder of <name>.cif.npy / <name>.caf.npy')
    parser.add_argument('--decoder', choices=('openfields', 'openpifpaf'), default='openpifpaf')
    parser.add_argument('--names', nargs='*', default=None, help='inputs to time (default: every pair)')
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--warm-up', type=int, default=3)
    parser.add_argument('--poses', action='store_true', help='print the decoded keypoints too')
    parser.add_argument('--max-votes-fraction', type=float, default=None,
                        help='openfields only: its --max-votes-fraction (0: every confident cell votes, as in '
                             'OpenPifPaf; default: its default, 0.2)')
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    folder = pathlib.Path(args.fields)
    names = args.names or sorted(p.name[:-len('.cif.npy')] for p in folder.glob('*.cif.npy'))
    decoders = (openfields_decoder(args.max_votes_fraction) if args.decoder == 'openfields'
                else openpifpaf_decoders())
    for name in names:
        cif, caf = np.load(folder / f'{name}.cif.npy'), np.load(folder / f'{name}.caf.npy')
        if args.decoder == 'openpifpaf':
            cif, caf = torch.from_numpy(cif), torch.from_numpy(caf)
        row = {'input': name, 'decoder': args.decoder, 'max_votes_fraction': args.max_votes_fraction}
        for what, function in decoders.items():
            times, result = time_calls(function, cif, caf, args.warm_up, args.repeats)
            row[f'{what}_ms_median'] = round(statistics.median(times), 3)
            row[f'{what}_ms_min'] = round(min(times), 3)
            if what == 'decoder':
                row['poses'] = len(result)
                row['scores'] = [round(float(score), 6) for _, score in result]
                if args.poses:
                    row['keypoints'] = [np.asarray(data).round(4).tolist() for data, _ in result]
        print(json.dumps(row), flush=True)


if __name__ == '__main__':
    main()
