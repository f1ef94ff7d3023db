"""``python tests/train_float64.py ARGS``: ``openfields.train`` with every computation in float64.

A test shim for comparing runs whose arithmetic is summed in a different order (one process with batch 2B
against two with B). In float32 the gradients of a freshly initialised ShuffleNet on tiny images differ
by 1e-4 to 1e-2 (relative) between two summation orders, even in one process, and a few SGD steps amplify
that; in float64 the same comparison is exact to about 1e-12, so what remains is the distributed
arithmetic itself. Only the number type changes: the code path is the one of ``openfields.train``.
"""

import contextlib

import torch

from openfields import train
from openfields.network import nets


@contextlib.contextmanager
def float64():
    """New tensors and parameters in float64; images are cast on their way into the network."""
    previous_dtype, forward = torch.get_default_dtype(), nets.Shell.forward

    def forward64(self, images, head_mask=None):
        return forward(self, images.to(torch.float64), head_mask)

    torch.set_default_dtype(torch.float64)
    nets.Shell.forward = forward64
    try:
        yield
    finally:
        nets.Shell.forward = forward
        torch.set_default_dtype(previous_dtype)


if __name__ == '__main__':
    with float64():
        train.main()
