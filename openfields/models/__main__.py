"""``python -m openfields.models``: the named models ``--checkpoint NAME`` finds, with their basenet and
datasets; ``python -m openfields.models import PATH NAME`` adds one (an OpenPifPaf checkpoint, converted)."""

import argparse
import sys

from openfields import cli_setup
from openfields.models import importing, listing


def main(argv=None):
    p = argparse.ArgumentParser(prog='python -m openfields.models', description=__doc__.splitlines()[0])
    commands = p.add_subparsers(dest='command', metavar='{import}', help='without a command: list the named models')
    add = commands.add_parser('import', help='write a checkpoint (an OpenPifPaf .pkl too) into the model folder as '
                                             'NAME.pkl, an openfields checkpoint')
    add.add_argument('path', help='the checkpoint file: an OpenPifPaf 0.13 .pkl or an openfields checkpoint')
    add.add_argument('name', help='the name --checkpoint NAME will find it by')
    add.add_argument('--force', action='store_true', help='replace a model of that name')
    cli_setup.run_cli('openfields.models', p, run, (ValueError, OSError), argv=argv, threads=False)


def run(args) -> None:
    if args.command == 'import':
        importing.import_model(args.path, args.name, force=args.force)
        return
    sys.stdout.write(listing.table())


main()
