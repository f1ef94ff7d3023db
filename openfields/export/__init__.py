"""Trained networks as files that run without openfields' training code: ONNX and TorchScript.

The exported graph is the network in eval mode (:class:`fields.FieldsModule`): an image batch
``(B, 3, H, W)`` in, one ``(B, F, C, h, w)`` field tensor per head out, with any ``H`` and ``W``. The head
metas travel inside the file (:mod:`metadata`) so that predict and video decode it without the checkpoint.
CLIs: ``python -m openfields.export_onnx`` and ``python -m openfields.export_torchscript``.
"""
