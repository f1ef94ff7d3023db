"""``python tests/train_killed_in_write.py ARGS``: ``openfields.train`` that is killed with SIGKILL halfway
through writing the snapshot of epoch ``KILL_EPOCH`` (what a node failure or the OOM killer does)."""

import os
import signal

from openfields import outputs, train
from openfields.network import checkpoint


def kill_while_writing(epoch: int):
    original = checkpoint.write

    def write(path, data):
        if str(path).endswith(f'.epoch{epoch:03d}'):
            with open(outputs.temp_path(path), 'wb') as f:
                f.write(b'PK\x03\x04' + b'\0' * 100_000)  # the first bytes of a zip, then nothing
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
        original(path, data)

    checkpoint.write = write


if __name__ == '__main__':
    kill_while_writing(int(os.environ['KILL_EPOCH']))
    train.main()
