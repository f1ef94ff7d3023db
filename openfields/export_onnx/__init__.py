"""``python -m openfields.export_onnx``: the command (:mod:`.cli`) of :mod:`openfields.export.onnx`."""
