"""ONNX export through ``torch.onnx.export`` (the dynamo exporter, which needs ``onnxscript``).

Input ``image`` ``(batch, 3, height, width)`` with all three dynamic; outputs named after the heads
(``cocokp.cif``, ...). The metadata (:mod:`.metadata`) goes into the model's ``metadata_props``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings

import numpy as np
import torch

from ..errors import first_line
from .exporter import Exporter, MissingDependency
from . import metadata

# the newest opset onnxruntime 1.31 loads (onnx 1.23 knows 28; onnxruntime refuses 27 and 28)
OPSET = 26
INSTALL_HINT = 'ONNX export needs onnx, onnxscript and onnxruntime: pip install openfields[export]'


class ExportFailed(ValueError):
    """torch's exporter refused the network (e.g. shape-dependent Python in its forward); one line."""


def require_onnx():
    """The ``onnx`` and ``onnxruntime`` modules, or :class:`MissingDependency` with the install hint."""
    try:
        import onnx  # pylint: disable=import-outside-toplevel
        import onnxruntime  # pylint: disable=import-outside-toplevel
        import onnxscript  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    except ImportError:
        raise MissingDependency(INSTALL_HINT) from None
    return onnx, onnxruntime


def export(module: torch.nn.Module, sample: torch.Tensor, names: list[str], metadata_json: str,
           opset: int = OPSET) -> bytes:
    """The serialised ONNX model of ``module`` traced on ``sample``, with dynamic batch, height and width."""
    onnx, _ = require_onnx()
    dims = {0: torch.export.Dim('batch', min=1, max=4096),
            2: torch.export.Dim('height', min=17, max=16384), 3: torch.export.Dim('width', min=17, max=16384)}
    # the exporter prints its progress and warns about internals; its errors still raise
    with quiet_exporter():
        try:
            program = torch.onnx.export(module, (sample,), None, input_names=['image'], output_names=names,
                                        dynamic_shapes={'image': dims}, dynamo=True, opset_version=opset,
                                        verbose=False)
        except Exception as error:  # pylint: disable=broad-except  # torch's exporter raises many kinds
            raise ExportFailed(f'torch\'s ONNX exporter cannot export this network with dynamic input sizes '
                               f'({type(error).__name__}: {first_line(error, limit=300)}); nothing written. predict, video '
                               'and eval run the checkpoint itself') from None
    proto = program.model_proto
    onnx.helper.set_model_props(proto, {metadata.KEY: metadata_json})
    return proto.SerializeToString()


@contextlib.contextmanager
def quiet_exporter():
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter('ignore')
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(previous)


def session(data: bytes | str, threads: int | None = None):
    """An onnxruntime CPU session of a serialised model (bytes) or a file."""
    _, onnxruntime = require_onnx()
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only
    if threads:
        options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(data, options, providers=['CPUExecutionProvider'])


def run(data: bytes, images: np.ndarray) -> list[np.ndarray]:
    return session(data).run(None, {'image': images})


EXPORTER = Exporter(name='ONNX', suffix='.onnx', export=export, run=run)
