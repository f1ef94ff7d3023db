"""``python -m openfields.export_onnx``: the export command (:mod:`openfields.export.command`) with the ONNX format
(:mod:`openfields.export.onnx`)."""

from openfields.export import command
from openfields.export.onnx import EXPORTER

PROG = 'python -m openfields.export_onnx'
DESCRIPTION = 'Export a checkpoint to ONNX (dynamic height and width), verified against torch with onnxruntime.'


def parser():
    return command.parser(PROG, DESCRIPTION, EXPORTER.suffix)


def main(argv=None):
    command.main(EXPORTER, PROG, DESCRIPTION, argv)
