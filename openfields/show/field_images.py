"""One picture of a sample and its fields for experiment loggers (``--image-log-interval``): the input,
the target CIF confidence and the predicted one, side by side, as an RGB array."""

from __future__ import annotations

import matplotlib
import matplotlib.figure
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg

from .field_painters import background, denormalize


def confidence_map(fields, channel: int) -> np.ndarray:
    """The maximum over the fields of ``fields[:, channel]`` ``(F, C, h, w)``, NaN (ignored) as 0."""
    values = np.asarray(fields.detach().cpu().numpy() if hasattr(fields, 'detach') else fields, np.float32)
    return np.nan_to_num(values[:, channel], nan=0.0).max(axis=0)


def sample_picture(image, target_cif, predicted_cif, stride: int, title: str = '') -> np.ndarray:
    """uint8 ``(H', W', 3)``: ``image`` ``(3, H, W)`` (normalised), the target CIF confidence (channel 0 of
    ``(K, 5, h, w)``) and the predicted one (channel 1 of the eval-mode ``(K, C, h, w)``) over it."""
    rgb = denormalize(image)
    height, width = rgb.shape[:2]
    figure = matplotlib.figure.Figure(figsize=(9, 3.2), dpi=72)
    canvas = FigureCanvasAgg(figure)
    panels = [('input', None), ('target CIF', confidence_map(target_cif, 0) if target_cif is not None else None),
              ('predicted CIF', confidence_map(predicted_cif, 1))]
    for index, (name, values) in enumerate(panels):
        ax = figure.add_subplot(1, 3, index + 1)
        if values is None:
            ax.imshow(rgb)
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            background(ax, rgb)
            h, w = values.shape
            ax.imshow(values, cmap='Oranges', vmin=0.0, vmax=1.0, alpha=0.8, interpolation='nearest',
                      extent=(-stride / 2, (w - 0.5) * stride, (h - 0.5) * stride, -stride / 2))
            ax.set_xlim(-0.5, width - 0.5)
            ax.set_ylim(height - 0.5, -0.5)
        ax.set_title(name, fontsize=9)
    figure.suptitle(title, fontsize=9)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
