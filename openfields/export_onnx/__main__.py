from openfields import cli_setup

cli_setup.prepare_process()  # before torch loads: the command's modules import it

from openfields.export_onnx.cli import main  # noqa: E402

main()
