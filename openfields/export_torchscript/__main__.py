from openfields.export.torchscript import main

main()
