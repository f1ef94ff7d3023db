"""What ``python -m openfields.models`` prints: one row per named model (name, basenet, datasets, size,
path), and the folders searched."""

from __future__ import annotations

import pathlib

from ..inference import runners
from ..network import model_folder as folder


def describe(path: pathlib.Path) -> tuple[str, str]:
    """``(basenet, datasets)`` of a model file; ``('?', reason)`` when it is not one openfields reads."""
    try:
        runner = runners.load(str(path))
    except Exception as error:  # pylint: disable=broad-except  # a listing goes on past a bad file
        return '?', f'unreadable: {str(error).splitlines()[0][:80]}'
    datasets = ', '.join(dict.fromkeys(meta.dataset for meta in runner.head_metas))
    return runner.basenet, datasets


def table() -> str:
    rows = [('name', 'basenet', 'datasets', 'size', 'path')]
    for name, path in sorted(folder.named_models().items()):
        basenet, datasets = describe(path)
        rows.append((name, basenet, datasets, f'{path.stat().st_size / 1e6:.1f} MB', str(path)))
    own, hub = folder.model_folders()
    footer = (f'searched: {own} (${folder.ENV}), then {hub}; '
              f'put a checkpoint, .onnx or .pt file there as NAME.pkl / NAME.onnx / NAME.pt\n')
    if len(rows) == 1:
        return 'no named models.\n' + footer
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ['  '.join(cell.ljust(w) for cell, w in zip(row[:4], widths)) + '  ' + row[4] for row in rows]
    return '\n'.join(lines) + '\n' + footer
