"""``python tests/train_failing_rank.py ARGS``: ``openfields.train`` whose rank ``FAIL_RANK`` raises in its
second training step (a test shim for how a distributed job ends when one rank fails)."""

import os

from openfields import train
from openfields.training import loop as trainer


def fail_in_second_step(rank: int):
    original = trainer.Trainer.train_batch
    calls = {'n': 0}

    def train_batch(self, images, targets):
        calls['n'] += 1
        if calls['n'] == 2 and self.distributed.rank == rank:
            raise RuntimeError(f'injected failure on rank {rank}')
        return original(self, images, targets)

    trainer.Trainer.train_batch = train_batch


if __name__ == '__main__':
    fail_in_second_step(int(os.environ['FAIL_RANK']))
    train.main()
