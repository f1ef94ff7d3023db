"""DeepLabCut's prediction table from ``openfields.predict`` and ``openfields.eval`` on a DeepLabCut project:
``--dlc-table PATH [PATH]`` (``.csv`` and/or ``.h5``, :mod:`openfields.deeplabcut.prediction_table`).

One row per image, labelled with its path relative to the project folder as DeepLabCut writes it
(``labeled-data/<video>/img0001.png``; an image outside the project keeps its absolute path), rows in path
order; columns ``scorer`` (``openfields_<checkpoint name>``), ``individuals`` (multi-animal projects: the
``individuals`` of ``config.yaml``, best pose first), ``bodyparts`` and ``coords`` ``x, y, likelihood`` in
pixels of the image, NaN where a body part was not found. Both CLIs collect the poses through
:class:`TableCollector`, which has the metric interface (``accumulate(predictions, meta)``), and write the
tables atomically once every image is done.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib

from .. import outputs
from . import prediction_table as dlc_table

LOG = logging.getLogger(__name__)

SUFFIXES = ('.csv', '.h5')


def cli(parser, *, project_flag: bool) -> None:
    """``--dlc-table``; ``project_flag``: also ``--dlc-project`` (a parser without the dlc dataset's flags)."""
    group = parser.add_argument_group('DeepLabCut prediction table')
    if project_flag:
        group.add_argument('--dlc-project', default=None,
                           help='DeepLabCut project folder (holding config.yaml) of the images, for --dlc-table')
    group.add_argument('--dlc-table', nargs='+', default=None, metavar='PATH',
                       help='write DeepLabCut\'s prediction table of the images of --dlc-project: .csv and/or .h5 '
                            '(needs pandas and PyTables); rows are the image paths relative to the project')


@dataclasses.dataclass(frozen=True)
class DlcTableSettings:
    """Where the tables go and the project the images belong to."""

    paths: tuple[pathlib.Path, ...]
    root: pathlib.Path  # the project folder
    individuals: tuple[str, ...] | None  # a multi-animal project's; None: single-animal layout

    @classmethod
    def from_args(cls, args) -> 'DlcTableSettings | None':
        """None without ``--dlc-table``; checks paths, suffixes and the project before any work."""
        if not args.dlc_table:
            return None
        paths = tuple(pathlib.Path(p) for p in args.dlc_table)
        for path in paths:
            if path.suffix not in SUFFIXES:
                raise ValueError(f'--dlc-table {path}: DeepLabCut tables are .csv or .h5 files')
            outputs.check_output_path(path, '--dlc-table')
        if any(path.suffix == '.h5' for path in paths):
            dlc_table.require_pandas()
        if getattr(args, 'dlc_project', None) is None:
            raise ValueError('--dlc-table needs --dlc-project PATH (the DeepLabCut project the images belong to)')
        from openfields.plugins.dlc import project  # pylint: disable=import-outside-toplevel
        config = project.load_config(project.project_root(args.dlc_project))
        return cls(paths=paths, root=config.root,
                   individuals=tuple(config.individuals) if config.multi_animal else None)


def eval_settings(args) -> DlcTableSettings | None:
    """:meth:`DlcTableSettings.from_args` for ``openfields.eval``, whose images must be a DeepLabCut project's."""
    if args.dlc_table and args.dataset != 'dlc':
        raise ValueError(f'--dlc-table needs --dataset dlc (the images of a DeepLabCut project), got --dataset '
                         f'{args.dataset}')
    return DlcTableSettings.from_args(args)


class TableCollector:
    """The poses of each image, written as DeepLabCut's table by :meth:`write_files`."""

    names: tuple[str, ...] = ()  # no scores

    def __init__(self, settings: DlcTableSettings, bodyparts: list[str], scorer: str):
        self.settings = settings
        self.bodyparts = list(bodyparts)
        self.scorer = scorer
        self.poses: dict[str, list] = {}

    def row_label(self, meta: dict) -> str:
        """The image's path relative to the project (posix), else its absolute path."""
        path = pathlib.Path(meta['local_file_path']).resolve()
        try:
            return path.relative_to(self.settings.root).as_posix()
        except ValueError:
            return str(path)

    def accumulate(self, predictions: list, meta: dict) -> None:
        self.poses.setdefault(self.row_label(meta), []).extend(predictions)

    def stats(self) -> dict:
        return {}

    def table(self) -> dlc_table.Table:
        index = sorted(self.poses)
        individuals = self.settings.individuals
        return dlc_table.from_poses([self.poses[label] for label in index], self.bodyparts, self.scorer, index,
                                    individual_names=list(individuals) if individuals is not None else None)

    def write_files(self, path_prefix=None) -> dict:
        """Every ``--dlc-table`` path; ``{'dlc_table': [paths]}`` for the stats file."""
        table = self.table()
        for path in self.settings.paths:
            dlc_table.write(path, table)
            LOG.info('wrote DeepLabCut\'s table of %d images to %s', len(table.index), path)
        return {'dlc_table': [str(p) for p in self.settings.paths]}

    def write_predictions(self, path_prefix) -> tuple[str, ...]:
        """Nothing more for ``--write-predictions``: :meth:`write_files` wrote the tables."""
        return ()


def collectors(settings: DlcTableSettings | None, head_metas: list, checkpoint_path) -> list[TableCollector]:
    """The collector of the first keypoint head's body parts, in a list (empty without ``--dlc-table``); the
    scorer is ``openfields_<checkpoint file name without suffixes>`` (``openfields_oracle`` without one)."""
    if settings is None:
        return []
    keypoints = next((m.keypoints for m in head_metas if getattr(m, 'keypoints', None)), None)
    if keypoints is None:
        raise ValueError('--dlc-table: the model has no keypoint head')
    name = pathlib.Path(str(checkpoint_path)).name.split('.')[0] if checkpoint_path else 'oracle'
    return [TableCollector(settings, keypoints, f'openfields_{name}')]

