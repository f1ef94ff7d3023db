"""Running a trained model on images: the network runner (torch checkpoint, ONNX or TorchScript file)
behind one interface, and the step from a batch of images to poses in original pixels. ``predict`` and
``video`` share it."""
