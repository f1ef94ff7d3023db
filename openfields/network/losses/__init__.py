"""Losses of composite fields and heatmap heads: per-head components and their weighted sum."""

from .composite import CompositeLoss
from .factory import build, cli, factory
from .heatmap import HeatmapLoss
from .settings import LossSettings
from .multi_head import MultiHeadLoss, NonFiniteLossError

__all__ = ['CompositeLoss', 'HeatmapLoss', 'LossSettings', 'MultiHeadLoss', 'NonFiniteLossError', 'build', 'cli', 'factory']
