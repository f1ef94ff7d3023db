"""``python -m openfields.models``: the named models ``--checkpoint NAME`` finds, with their basenet and
datasets."""

import argparse
import sys

from openfields import cli_setup
from openfields.models import listing


def main(argv=None):
    p = argparse.ArgumentParser(prog='python -m openfields.models', description=__doc__.splitlines()[0])
    cli_setup.run_cli('openfields.models', p, print_table, (), argv=argv, threads=False)


def print_table(args) -> None:
    sys.stdout.write(listing.table())


main()
