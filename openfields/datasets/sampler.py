"""Which samples a process draws in an epoch, and where a resumed epoch continues.

:class:`ShardedSampler` is the sampler of every training and validation loader, one per dataset. Epoch
``e`` puts the dataset in one order (a permutation seeded by ``(seed, e)``, the same on every rank),
drops the tail that does not divide by the world size ``W``, and gives rank ``r`` the positions
``r, r + W, r + 2W, ...``. Batch ``i`` of the ``W`` ranks together is therefore exactly batch ``i`` of a
single process with ``W`` times the batch size: the same samples, whatever ``W``.

The loop talks to loaders through :func:`set_epoch` and :func:`skip_batches`. A plain DataLoader forwards
them to its ``ShardedSampler``; a loader that mixes several datasets (one ``ShardedSampler`` each) defines
``set_epoch(epoch)`` and ``skip_batches(n)`` itself: set the epoch of every sampler, and replay its own
(deterministic) choice of dataset for ``n`` batches to skip the right number in each.
"""

import torch


class ShardedSampler(torch.utils.data.Sampler):
    """This rank's share of epoch ``e``'s order of ``n_samples`` indices; see the module docstring."""

    def __init__(self, n_samples: int, *, rank: int = 0, world_size: int = 1, shuffle: bool = True,
                 seed: int = 0):
        if not 0 <= rank < world_size:
            raise ValueError(f'rank {rank} is not in a world of size {world_size}')
        super().__init__()
        self.n_samples = n_samples
        self.rank = rank
        self.world_size = world_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw epoch ``epoch``'s order next time; iteration starts at its beginning."""
        self.epoch = epoch
        self.start = 0

    def skip(self, n_indices: int) -> None:
        """Start this epoch's iteration after its first ``n_indices`` indices (a resumed epoch)."""
        if not 0 <= n_indices <= self.per_rank:
            raise ValueError(f'cannot skip {n_indices} of {self.per_rank} samples of an epoch')
        self.start = n_indices

    @property
    def per_rank(self) -> int:
        return self.n_samples // self.world_size

    def order(self) -> torch.Tensor:
        """All indices of the epoch in order (every rank computes the same)."""
        if not self.shuffle:
            return torch.arange(self.n_samples)
        generator = torch.Generator()
        generator.manual_seed(self.seed * 100_003 + self.epoch)
        return torch.randperm(self.n_samples, generator=generator)

    def __iter__(self):
        used = self.order()[:self.per_rank * self.world_size]
        return iter(used[self.rank::self.world_size][self.start:].tolist())

    def __len__(self) -> int:
        return self.per_rank - self.start


def set_epoch(loader, epoch: int) -> None:
    """Give ``loader`` epoch ``epoch``'s order (a no-op for loaders without a sampler that needs it)."""
    target = loader if hasattr(loader, 'set_epoch') else getattr(loader, 'sampler', None)
    if hasattr(target, 'set_epoch'):
        target.set_epoch(epoch)


def skip_batches(loader, n_batches: int) -> None:
    """Make ``loader``'s current epoch start after its first ``n_batches`` batches."""
    if n_batches == 0:
        return
    if hasattr(loader, 'skip_batches'):
        loader.skip_batches(n_batches)
        return
    sampler = getattr(loader, 'sampler', None)
    if not isinstance(sampler, ShardedSampler):
        raise ValueError(f'cannot resume inside an epoch of a loader without a ShardedSampler ({type(sampler)})')
    sampler.skip(n_batches * loader.batch_size)


def check_sharded(loader, world_size: int, what: str) -> None:
    """Under ``--ddp`` every loader must give each rank its share (or mix sharded loaders itself)."""
    if world_size == 1 or hasattr(loader, 'skip_batches'):
        return
    if not isinstance(getattr(loader, 'sampler', None), ShardedSampler):
        raise ValueError(f'--ddp: the {what} loader does not shard its dataset over the processes (its DataLoader '
                         'needs sampler=LoaderSettings.sampler(...)), so every process would see every image')
