"""Top-down pose estimation: one crop per individual, a single-pose decoder per crop.

``boxes`` (ground-truth boxes of annotated individuals), ``crops`` (crop geometry: image <-> crop pixels,
box jitter), ``crop_data`` (training samples, one per individual), ``pose_on_crops`` (poses in given boxes)
and ``module`` (the DataModule wrapping a keypoint dataset, and its evaluation on oracle boxes). The
detector that proposes boxes at inference lives next to them (``detectors``, ``detector_data``,
``detector_training``).
"""
