"""``python -m openfields.models``: the named models ``--checkpoint NAME`` finds, with their basenet and
datasets."""

import argparse
import sys

from openfields.models import listing


def main(argv=None):
    p = argparse.ArgumentParser(prog='python -m openfields.models', description=__doc__.splitlines()[0])
    p.parse_args(argv)
    sys.stdout.write(listing.table())


main()
