"""``python -m openfields.export_torchscript``: the export command (:mod:`openfields.export.command`) with the
TorchScript format (:mod:`openfields.export.torchscript`)."""

from openfields.export import command
from openfields.export.torchscript import EXPORTER

PROG = 'python -m openfields.export_torchscript'
DESCRIPTION = 'Export a checkpoint to TorchScript (traced; any height and width), verified against torch.'


def parser():
    return command.parser(PROG, DESCRIPTION, EXPORTER.suffix)


def main(argv=None):
    command.main(EXPORTER, PROG, DESCRIPTION, argv)
