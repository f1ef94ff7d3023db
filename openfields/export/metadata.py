"""What an exported model carries besides its graph: one JSON document under the key ``openfields``
(ONNX ``metadata_props``, TorchScript ``_extra_files``)::

    {'format': 'openfields.exported', 'format_version': 1,
     'head_metas': [dict, ...],        # headmeta.Base.to_dict(), in output order
     'basenet': str, 'decoders': {dataset: [name, ...] | None},
     'source': str, 'epoch': int, 'version': str,
     'kind': 'fields',                 # absent in older files: the same
     'topdown': {...}}                 # a top-down pose model only: its crop geometry and detector file

The head metas are read back with :meth:`headmeta.Base.from_dict`: the one source of truth. A top-down
export adds ``topdown``: the pose checkpoint's crop settings (``crop_width``, ``crop_height``,
``crop_padding``, ``bbox_margin``, ``box_source``) and ``detector``, the name of the exported detector file
beside this one (``model.detector.onnx``), whose own metadata has ``'kind': 'detector'``
(:mod:`.detector`). :func:`from_json` refuses a file of another kind than the one asked for.
"""

from __future__ import annotations

import json
import pathlib

from .. import headmeta
from ..version import version

KEY = 'openfields'
FORMAT = 'openfields.exported'
FORMAT_VERSION = 1
FIELDS = 'fields'  # a network whose outputs are fields (bottom-up, or the pose model of a top-down export)
DETECTOR = 'detector'  # the detector of a top-down export
DETECTOR_SUFFIX = '.detector.onnx'  # model.onnx -> model.detector.onnx
KINDS = {FIELDS: 'a pose model', DETECTOR: 'a detector'}


class ExportedModelError(ValueError):
    """A model file that is not an openfields export (or of a newer format)."""


def from_checkpoint(saved: dict, source: str | pathlib.Path) -> dict:
    """The metadata of a model exported from the checkpoint dict ``saved`` (``network.checkpoint.load``)."""
    return {
        'format': FORMAT,
        'format_version': FORMAT_VERSION,
        'kind': FIELDS,
        'head_metas': list(saved['model']['head_metas']),
        'basenet': saved['model']['basenet']['name'],
        'decoders': (saved.get('meta') or {}).get('decoders', {}),
        'image_resize': (saved.get('meta') or {}).get('image_resize', 'openfields'),
        'source': pathlib.Path(source).name,
        'epoch': int(saved.get('epoch', 0)),
        'version': version(),
    }


def to_json(metadata: dict) -> str:
    return json.dumps(metadata, sort_keys=True)


def from_json(text: str | bytes | None, path, kind: str = FIELDS) -> dict:
    """The metadata of ``path`` from its stored text; :class:`ExportedModelError` when absent or foreign, or
    of another ``kind`` (:data:`FIELDS`, :data:`DETECTOR`) than asked for."""
    if not text:
        raise ExportedModelError(f'{path}: not an openfields model (no "{KEY}" metadata; export it with '
                                 'python -m openfields.export_onnx or export_torchscript)')
    try:
        metadata = json.loads(text)
    except ValueError:
        raise ExportedModelError(f'{path}: its "{KEY}" metadata is not JSON') from None
    if not isinstance(metadata, dict) or metadata.get('format') != FORMAT:
        raise ExportedModelError(f'{path}: not an openfields model (its "{KEY}" metadata has no '
                                 f'"format": "{FORMAT}")')
    if metadata.get('format_version', 0) > FORMAT_VERSION:
        raise ExportedModelError(f'{path}: export format {metadata["format_version"]} is newer than this '
                                 f'openfields understands ({FORMAT_VERSION}); upgrade openfields')
    found = metadata.get('kind', FIELDS)
    if found != kind:
        hint = ('give the pose model exported with it (its metadata names this detector)' if found == DETECTOR
                else f'give the detector exported beside the pose model (<model>{DETECTOR_SUFFIX})')
        raise ExportedModelError(f'{path}: {KINDS.get(found, repr(found))}, not {KINDS.get(kind, kind)}: {hint}')
    return metadata


def head_metas(metadata: dict) -> list[headmeta.Base]:
    return [headmeta.Base.from_dict(d) for d in metadata['head_metas']]
