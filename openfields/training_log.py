"""The JSON-lines training log ``<checkpoint>.log``.

One JSON object per line, each with a ``type``:

* ``process`` (first line, and again when a run is resumed): ``argv``, ``args`` (every resolved flag value),
  ``version``, ``plugin_versions``, ``hostname``, ``datasets`` ({dataset name: resolved settings}; with several
  datasets each also holds its normalised ``weight``), ``world_size``, ``global_batch_size`` (``--batch-size``
  times the world size), ``launcher``, ``device``, ``resumed_from``;
* ``resume``: the ``checkpoint`` a resumed run continues and its position (``epoch``, ``batches``);
* ``config``: ``field_names`` (the loss components ``<dataset>.<head>.<component>``);
* ``train`` (every ``--display-interval`` batches): ``epoch``, ``batch``, ``n_batches``, ``lr``, ``loss``,
  ``head_losses`` ({component: value}; None for the heads of datasets other than the batch's),
  ``data_time``, ``time`` (compute seconds of the batch);
* ``train-epoch``: ``epoch``, ``loss``, ``head_losses`` (means over the batches that trained each
  component), ``n_batches``, ``batches_per_dataset`` ({dataset name: batches}), ``n_clipped_grad``, ``time``;
* ``val-epoch``: one per dataset and validated epoch, ``epoch``, ``dataset`` (its name), ``loss``,
  ``head_losses`` (means over the ranks, only the heads of that dataset), ``n_batches``, ``time``;
* ``test`` (``--eval-interval``): one per dataset and evaluated epoch, ``epoch``, ``dataset``, ``metrics``
  ({``test.<score>``: float}, the scores the dataset's metrics declare, e.g. ``test.AP``; NaN for an
  undefined one, written as ``'nan'``; pycocotools' -1 as it is);
* ``error``: a message that ended the run;
* ``stopped``: a stop signal ended the run; ``signal``, ``checkpoint`` to resume from.

Each record is appended with a single ``write`` of a complete line followed by a flush, so a run killed
at any moment leaves every earlier line intact (readers skip an incomplete last line).
"""

import json
import math
import os
import pathlib
import time


def _jsonable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, 'item') and getattr(value, 'ndim', 1) == 0:  # numpy / torch scalars
        return _jsonable(value.item())
    return str(value)


class TrainingLog:
    """Appends records to a JSON-lines file; ``path=None`` writes nothing (non-zero ranks)."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = pathlib.Path(path) if path is not None else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record_type: str, **fields) -> None:
        if self.path is None:
            return
        record = {'type': record_type, 'time_unix': round(time.time(), 3), **fields}
        line = json.dumps(_jsonable(record), allow_nan=False) + '\n'
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode('utf-8'))
        finally:
            os.close(fd)


def read(path: str | os.PathLike) -> list[dict]:
    """All complete records of a log (an incomplete or corrupt line is skipped)."""
    records = []
    with open(path, encoding='utf-8') as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records
