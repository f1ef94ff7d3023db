"""``python -m openfields.export_torchscript``: the command of :mod:`openfields.export.torchscript`."""
