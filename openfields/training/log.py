"""The JSON-lines training log ``<checkpoint>.log``.

One JSON object per line, each with a ``type``:

* ``process`` (first line, and again when a run is resumed): ``argv``, ``args`` (every resolved flag value),
  ``version``, ``plugin_versions``, ``hostname``, ``datasets`` ({dataset name: resolved settings}; with several
  datasets each also holds its normalised ``weight``), ``world_size``, ``global_batch_size`` (``--batch-size``
  times the world size), ``launcher``, ``device``, ``cpu_threads`` and ``omp_wait_policy`` (see
  ``openfields/network/cpu_threads.py``), ``resumed_from``, ``basenet_weights`` (the ImageNet file a fresh basenet
  started from: ``basenet``, ``source``, ``url``, ``path``, ``sha256``; null without one);
* ``resume``: the ``checkpoint`` a resumed run continues and its position (``epoch``, ``batches``);
* ``config``: ``field_names`` (the loss components ``<dataset>.<head>.<component>``);
* ``train`` (every ``--display-interval`` batches): ``epoch``, ``batch``, ``n_batches``, ``lr``, ``loss``,
  ``head_losses`` ({component: value}; None for the heads of datasets other than the batch's),
  ``data_time``, ``time`` (compute seconds of the batch), ``threads`` (torch's CPU threads for the batch: fewer
  while other processes keep CPUs busy, see ``openfields/network/cpu_threads.py``);
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

import dataclasses
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
    """Appends records to a JSON-lines file; ``path=None`` writes nothing (non-zero ranks). ``loggers``
    (:class:`~openfields.training.loggers.Loggers`, ``--logger``) get every record too: one call site
    feeds the log and every experiment logger."""

    def __init__(self, path: str | os.PathLike | None, loggers=None):
        self.path = pathlib.Path(path) if path is not None else None
        self.loggers = loggers if path is not None else None
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
        if self.loggers is not None:
            self.loggers.record(record_type, fields)

    def close(self) -> None:
        """Finish the loggers (the W&B run, the TensorBoard writer)."""
        if self.loggers is not None:
            self.loggers.close()
            self.loggers = None


# ---------------------------------------------------------------------------------------------------------
# reading: the one reader of the log (openfields.logs, the tests)

RECORD_TYPES = ('process', 'resume', 'config', 'train', 'train-epoch', 'val-epoch', 'test', 'stopped', 'error')
EPOCH_RECORD_TYPES = ('train', 'train-epoch', 'val-epoch', 'test')


class NotALog(ValueError):
    """A file that is not a training log (binary, or no record of a known type)."""


@dataclasses.dataclass
class LogContents:
    """The records of a log as they count, and what the reader left out.

    ``records``: in file order, without the records a resumed run did again: a ``resume`` record at
    position (epoch E, batches B) drops the earlier records of epochs after E and the ``train`` records of
    epoch E + 1 from batch B on (logs without ``resume`` records: the first epoch record after a later
    ``process`` record drops the earlier records of that epoch and after). ``corrupt``: (line number,
    reason) of lines skipped. ``cut_last_line``: the last line has no newline and is not a whole record (a
    write was cut: the run was killed mid-write, or is writing now).
    """
    records: list[dict]
    corrupt: list[tuple[int, str]]
    cut_last_line: bool = False
    superseded: int = 0  # records dropped because a resumed run did their work again
    all_records: list[dict] | None = None  # every record in file order, the redone ones too (wall time)


def _is_binary(head: bytes) -> bool:
    """NUL bytes near the start of a file that does not start like a log (a checkpoint, an image).
    A log cut by a crash can end in NUL bytes: it still starts with ``{``."""
    return b'\0' in head and not head.lstrip().startswith(b'{')


def _parse_line(raw: bytes) -> tuple[dict | None, str | None]:
    """``(record, None)`` for a usable record, else ``(None, reason)``."""
    try:
        record = json.loads(raw.decode('utf-8'))
    except UnicodeDecodeError:
        return None, 'not UTF-8 text'
    except json.JSONDecodeError as error:
        return None, f'not JSON ({error.msg})'
    if not isinstance(record, dict) or not isinstance(record.get('type'), str):
        return None, 'not a JSON object with a "type"'
    if record['type'] in EPOCH_RECORD_TYPES and (not isinstance(record.get('epoch'), int)
                                                 or isinstance(record.get('epoch'), bool)):
        return None, f'"{record["type"]}" record without an integer "epoch"'
    if record['type'] == 'train' and not isinstance(record.get('batch'), int):
        return None, '"train" record without an integer "batch"'
    return record, None


def _redone_by(record: dict, epoch: int, batches: int) -> bool:
    """Whether a resumed run that continues at (``epoch`` done, ``batches`` of the next) does ``record`` again."""
    if record['type'] not in EPOCH_RECORD_TYPES:
        return False
    if record['epoch'] > epoch + 1 or (record['epoch'] == epoch + 1 and record['type'] != 'train'):
        return True
    return record['type'] == 'train' and record['epoch'] == epoch + 1 and record['batch'] >= batches


def _without_redone(records: list[dict]) -> tuple[list[dict], int]:
    kept, dropped, restarted = [], 0, False
    for record in records:
        position = None
        if record['type'] == 'resume' and isinstance(record.get('epoch'), int):
            position = (record['epoch'], record.get('batches') if isinstance(record.get('batches'), int) else 0)
            restarted = False
        elif record['type'] == 'process':
            restarted = any(r['type'] == 'process' for r in kept)
        elif restarted and record['type'] in EPOCH_RECORD_TYPES:  # an old log: no resume record
            position, restarted = (record['epoch'] - 1, 0), False
        if position is not None:
            before = len(kept)
            kept = [r for r in kept if not _redone_by(r, *position)]
            dropped += before - len(kept)
        kept.append(record)
    return kept, dropped


def read_log(path: str | os.PathLike) -> LogContents:
    """Read a training log (see :class:`LogContents`); :class:`NotALog` for a file that is none, OSError
    when it cannot be read."""
    with open(path, 'rb') as f:
        data = f.read()
    if _is_binary(data[:4096]):
        raise NotALog(f'{path}: not a training log (binary file)')
    lines = data.splitlines(keepends=True)
    records, corrupt, cut = [], [], False
    for line_number, raw in enumerate(lines, start=1):
        if not raw.strip(b'\0 \t\r\n'):
            continue
        record, reason = _parse_line(raw.rstrip(b'\0'))
        if record is not None:
            records.append(record)
        elif line_number == len(lines) and not raw.endswith(b'\n'):
            cut = True
        else:
            corrupt.append((line_number, reason))
    if not any(r['type'] in RECORD_TYPES for r in records):
        raise NotALog(f'{path}: not a training log (no JSON-lines records of type {", ".join(RECORD_TYPES)})')
    counted, superseded = _without_redone(records)
    return LogContents(records=counted, corrupt=corrupt, cut_last_line=cut, superseded=superseded,
                       all_records=records)


def read(path: str | os.PathLike) -> list[dict]:
    """The records of a log as they count (:func:`read_log`)."""
    return read_log(path).records
