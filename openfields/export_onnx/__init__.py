"""``python -m openfields.export_onnx``: the command of :mod:`openfields.export.onnx`."""
