"""Losses of composite fields: per-head components and their weighted sum."""

from .composite import CompositeLoss
from .factory import build, cli, factory
from .settings import LossSettings
from .multi_head import MultiHeadLoss, NonFiniteLossError

__all__ = ['CompositeLoss', 'LossSettings', 'MultiHeadLoss', 'NonFiniteLossError', 'build', 'cli', 'factory']
