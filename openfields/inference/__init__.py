"""A model in use: :func:`pipeline.open_model` opens a checkpoint, an exported ONNX or TorchScript file or
a named model, bottom-up or top-down, and returns the pipeline from images to poses in original pixels;
:mod:`runners` run its network whatever the file. ``predict``, ``video``, ``eval`` and the exports use it."""
