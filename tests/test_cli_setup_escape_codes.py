"""Error lines of every command are plain text where stderr is not a terminal: no escape codes (torch's
``weights_only`` error makes a phrase bold with them), one line."""

import subprocess
import sys

from openfields import cli_setup

# a command whose user error carries the escape codes and line break of torch's weights_only message
FAILING_COMMAND = '''
import argparse
from openfields import cli_setup
def run(args):
    raise ValueError('model.pkl: not loadable (Weights only load failed.\\n \\x1b[1mdo those steps only if '
                     'you trust the source of the checkpoint\\x1b[0m. \\x1b[31;1mred\\x1b[0m)')
cli_setup.run_cli('openfields.demo', argparse.ArgumentParser(), run, (ValueError,), argv=[], threads=False)
'''


def test_a_user_error_piped_to_a_file_carries_no_escape_codes_and_is_one_line():
    result = subprocess.run([sys.executable, '-c', FAILING_COMMAND], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert '\x1b' not in result.stderr
    assert result.stderr.splitlines() == [
        'openfields.demo: error: model.pkl: not loadable (Weights only load failed. do those steps only if you '
        'trust the source of the checkpoint. red)']


class Terminal:
    def isatty(self):
        return True


class File:
    def isatty(self):
        return False


def test_a_terminal_keeps_the_colours_a_file_does_not():
    message = 'a \x1b[1mbold\x1b[0m word,\x1b[2K cleared\n  next line'
    assert cli_setup.one_line(message, Terminal()) == 'a \x1b[1mbold\x1b[0m word,\x1b[2K cleared next line'
    assert cli_setup.one_line(message, File()) == 'a bold word, cleared next line'
    assert cli_setup.one_line('plain [1m text', object()) == 'plain [1m text'  # no escape character: kept
