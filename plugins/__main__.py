"""List the plugins openfields loads, with their versions: ``python -m openfields.plugins``.

Exits with status 1 when a plugin failed to load (it is listed with the reason).
"""

import argparse
import logging
import sys

from openfields import cli_setup, plugin
from openfields.version import version


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='python -m openfields.plugins', description=__doc__.splitlines()[0])
    parser.add_argument('-v', '--verbose', action='store_true',
                        help='also show the tracebacks of plugins that failed to load')
    return cli_setup.run_cli('openfields.plugins', parser, listing, (), argv=argv, setup=configure_logging,
                             threads=False, exit_on_failure=False)


def configure_logging(args) -> None:
    """Failures are part of the listing; the log repeats them only with -v, with their tracebacks."""
    cli_setup.configure_logging(quiet=True, level=logging.WARNING if args.verbose else logging.CRITICAL)
    if args.verbose:
        logging.getLogger(plugin.__name__).setLevel(logging.DEBUG)


def listing(args) -> int:
    plugin.register_all()
    print(f'openfields {version()}')
    print(plugin.listing())
    return 1 if plugin.failures() else 0


if __name__ == '__main__':
    sys.exit(main())
