"""Where figures go: matplotlib windows (``--show``), PNG files (``--save-all [DIR]``) and, for predict,
the final drawn image (``--image-output``).

Without ``--show`` no window system is touched: figures are plain :class:`matplotlib.figure.Figure`
objects rendered by the Agg backend, so this works on a server and inside tests.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import pathlib
import re
import textwrap

import os

import matplotlib.figure
import numpy as np

from ..outputs import atomic_write

LOG = logging.getLogger(__name__)

DEFAULT_SAVE_DIR = 'all-images/'
IMAGE_FILE_FORMATS = {'.jpeg': 'JPEG', '.jpg': 'JPEG', '.png': 'PNG'}  # --image-output FILE: PIL's format
PANEL_INCHES = 4.0  # side of one panel
COLORBAR_INCHES = 1.0  # right margin of a figure, for a colour bar and its label


@dataclasses.dataclass(frozen=True)
class CanvasSettings:
    """``save_all``: folder for every figure (None: none written); ``image_output``: predict's
    final image, ``''`` next to the input image, a folder, a file (:func:`names_an_image_file`, for one input
    image), or None (not written)."""

    show: bool = False
    save_all: str | None = None
    image_output: str | None = None
    dpi: int = 100

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> 'CanvasSettings':
        if args.image_dpi < 10:
            raise ValueError(f'--image-dpi must be >= 10, got {args.image_dpi}')
        return cls(show=args.show, save_all=args.save_all, image_output=getattr(args, 'image_output', None),
                   dpi=args.image_dpi)

    @property
    def has_output(self) -> bool:
        """True when figures go somewhere (a window or files)."""
        return self.show or self.save_all is not None

    def with_default_output(self) -> 'CanvasSettings':
        """These settings, writing to ``all-images/`` when neither ``--show`` nor ``--save-all`` is given."""
        if self.has_output:
            return self
        LOG.info('debug plots go to %s (neither --show nor --save-all given)', DEFAULT_SAVE_DIR)
        return dataclasses.replace(self, save_all=DEFAULT_SAVE_DIR)


def cli(parser: argparse.ArgumentParser, *, image_output: bool = False) -> None:
    """Add the 'show' argument group; ``image_output`` adds predict's ``--image-output``."""
    group = parser.add_argument_group('show')
    group.add_argument('--show', action='store_true', default=False,
                       help='open every figure in a matplotlib window (each blocks until closed)')
    group.add_argument('--save-all', nargs='?', const=DEFAULT_SAVE_DIR, default=None, metavar='DIR',
                       help=f'write every figure as DIR/<image>.<plot>.png (flag alone: {DEFAULT_SAVE_DIR})')
    group.add_argument('--image-dpi', type=int, default=CanvasSettings.dpi,
                       help=f'resolution of saved figures ({PANEL_INCHES:g} inches per panel)')
    if image_output:
        group.add_argument('--image-output', nargs='?', const='', default=None, metavar='DIR|FILE',
                           help='write <image>.predictions.jpeg with the poses drawn (next to the image, '
                                'or into DIR); a FILE ending in ' + '/'.join(IMAGE_FILE_FORMATS) + ' (as in '
                                'OpenPifPaf\'s guide: all-images/overfitted.jpeg) is written as that file, for '
                                'one input image')


def names_an_image_file(option: str | None) -> bool:
    """``--image-output`` names a file: it ends in an image suffix (``.jpeg``, ``.jpg``, ``.png``), not in
    ``/``, and is not an existing folder; anything else is a folder."""
    return bool(option) and not option.endswith(('/', os.sep)) and not os.path.isdir(option) \
        and pathlib.Path(option).suffix.lower() in IMAGE_FILE_FORMATS


def image_output_path(image_path: pathlib.Path, option: str) -> tuple[pathlib.Path, str]:
    """Where ``--image-output`` puts the drawn ``image_path`` and PIL's format: the FILE it names, else
    ``<image>.predictions.jpeg`` in its folder (``''``: next to the image)."""
    if names_an_image_file(option):
        return pathlib.Path(option), IMAGE_FILE_FORMATS[pathlib.Path(option).suffix.lower()]
    folder = pathlib.Path(option) if option else image_path.parent
    return folder / f'{image_path.name}.predictions.jpeg', 'JPEG'


def file_stem(text: str) -> str:
    """``text`` with every character outside ``[A-Za-z0-9._-]`` replaced by ``_`` (a safe file name)."""
    return re.sub(r'[^A-Za-z0-9._-]', '_', text)


class Canvas:
    """Figures of one run. ``figure(name, n_panels)`` yields ``(figure, axes)``; on exit the figure is
    written to ``<save_all>/<name>.png`` (atomically) and/or shown, then closed. ``written`` lists the
    files in order."""

    def __init__(self, settings: CanvasSettings):
        self.settings = settings
        self.written: list[pathlib.Path] = []

    @contextlib.contextmanager
    def figure(self, name: str, n_panels: int = 1, title: str | None = None, colorbar: bool = False):
        """``n_panels`` square panels side by side, room on top for ``title`` and, with ``colorbar``, on
        the right for one colour bar (:meth:`colorbar`). The layout is fixed: no layout pass per figure."""
        width = PANEL_INCHES * n_panels + (COLORBAR_INCHES if colorbar else 0.2)
        # about 12 characters of a 10-point title per inch; panel titles need 0.25 inches above the axes
        title_lines = textwrap.wrap(title, width=int(12 * width)) if title else []
        height = PANEL_INCHES + 0.1 + (0.25 + 0.18 * len(title_lines) if title_lines else 0.0)
        figure = self._new_figure((width, height))
        figure.subplots_adjust(left=0.1 / width, right=(PANEL_INCHES * n_panels) / width, bottom=0.1 / height,
                               top=PANEL_INCHES / height, wspace=0.1)
        axes = list(figure.subplots(1, n_panels, squeeze=False)[0])
        if title_lines:
            figure.suptitle('\n'.join(title_lines), fontsize=10, y=1.0 - 0.05 / height, va='top')
        try:
            yield figure, axes
            self._finish(figure, name)
        finally:
            self._close(figure)

    @staticmethod
    def colorbar(figure, mappable, label: str) -> None:
        """One colour bar at the right edge of a :meth:`figure` made with ``colorbar=True``."""
        width, height = figure.get_size_inches()
        left = (width - COLORBAR_INCHES + 0.15) / width
        axes = figure.add_axes((left, 0.15 / height, 0.15 / width, (PANEL_INCHES - 0.3) / height))
        figure.colorbar(mappable, cax=axes, label=label)

    def image(self, name: str, image, title: str | None = None) -> None:
        """A PIL image (or ``(H, W, 3)`` array) as a figure of its own."""
        with self.figure(name, title=title) as (_, axes):
            axes[0].imshow(np.asarray(image))
            axes[0].set_axis_off()

    def _new_figure(self, size):
        if self.settings.show:
            import matplotlib.pyplot as plt  # only with --show: pyplot picks an interactive backend
            return plt.figure(figsize=size, dpi=self.settings.dpi)
        return matplotlib.figure.Figure(figsize=size, dpi=self.settings.dpi)

    def _finish(self, figure, name: str) -> None:
        if self.settings.save_all is not None:
            path = pathlib.Path(self.settings.save_all) / f'{file_stem(name)}.png'
            with atomic_write(path, 'wb') as f:
                figure.savefig(f, format='png', dpi=self.settings.dpi)
            self.written.append(path)
            LOG.debug('wrote %s', path)
        if self.settings.show:
            import matplotlib.pyplot as plt
            plt.show()

    def _close(self, figure) -> None:
        if self.settings.show:
            import matplotlib.pyplot as plt
            plt.close(figure)

