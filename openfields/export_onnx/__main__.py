from openfields.export.onnx import main

main()
