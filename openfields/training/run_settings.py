"""How a run is run (not what it trains, see :mod:`openfields.training.recipe`): the trainer's epochs and
intervals, snapshots, learning-rate schedule, optimizer, loaders, acceleration, loggers, resume and seed, as
one frozen :class:`RunSettings` built once from the flags of a prefix (:meth:`RunSettings.from_args` for the
pose run's flags; the detector run of top-down mode replaces the parts its ``--detector-*`` flags set, see
:meth:`openfields.topdown.detector_training.DetectorRunSettings.run_settings`).
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from ..datasets.factory import LoaderFlags
from .accelerate import AccelerateSettings
from .loggers import LoggerSettings
from .loop import TrainerSettings
from .optimize import LearningRateSchedule, OptimizerSettings
from .resume import ResumeSettings
from .snapshots import SnapshotSettings


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """Every setting of how a run trains; ``seed`` None until the run draws (or resumes) it."""

    trainer: TrainerSettings = TrainerSettings()
    snapshots: SnapshotSettings = SnapshotSettings()
    schedule: LearningRateSchedule = LearningRateSchedule()
    optimizer: OptimizerSettings = OptimizerSettings()
    loader: LoaderFlags = LoaderFlags()
    accelerate: AccelerateSettings = AccelerateSettings()
    loggers: LoggerSettings = LoggerSettings()
    resume: ResumeSettings = ResumeSettings()
    sync_batchnorm: bool = True  # --ddp-sync-bn: BatchNorm statistics over every process under --ddp
    seed: int | None = None

    @property
    def batch_size(self) -> int:
        """Images per batch and process."""
        return self.loader.batch_size

    @classmethod
    def from_args(cls, args: argparse.Namespace, device: torch.device) -> RunSettings:
        """The settings of the flags for training on ``device``; a ValueError (one line naming the flag) for
        a value that cannot run (a missing logger package included: before any file is written)."""
        return cls(trainer=TrainerSettings.from_args(args), snapshots=SnapshotSettings.from_args(args),
                   schedule=LearningRateSchedule.from_args(args), optimizer=OptimizerSettings.from_args(args),
                   loader=LoaderFlags.from_args(args), accelerate=AccelerateSettings.from_args(args, device),
                   loggers=LoggerSettings.from_args(args), resume=ResumeSettings.from_args(args),
                   sync_batchnorm=getattr(args, 'ddp_sync_bn', True), seed=args.seed)

    def record(self) -> dict:
        """Plain values of every setting (for a checkpoint's meta and the log)."""
        return dataclasses.asdict(self)
