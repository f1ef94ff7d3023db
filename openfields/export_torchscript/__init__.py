"""``python -m openfields.export_torchscript``: the command (:mod:`.cli`) of :mod:`openfields.export.torchscript`."""
