"""``python -m openfields.video SOURCE``: poses on every frame of a video file or a folder of frames.

:mod:`frames` reads frames (PyAV for files), :mod:`writers` writes the drawn video, :mod:`command` is the
CLI: batched inference through the model's pipeline (:mod:`openfields.inference.pipeline`), one JSON line per frame,
DeepLabCut's table, progress.
"""
