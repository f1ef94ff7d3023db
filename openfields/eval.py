"""Evaluate checkpoints with pycocotools: ``python -m openfields.eval``.

For each checkpoint: rebuild its network, predict every evaluation image of ``--dataset``, decode, map
the poses back to the original images and score them with COCOeval. Writes
``<checkpoint>.eval-<dataset>.stats.json`` (or ``--output PREFIX`` -> ``PREFIX.stats.json``).

``--watch`` treats ``--checkpoint`` as a glob and evaluates every matching checkpoint that has no stats
file yet, polling until interrupted. ``--oracle cif caf`` replaces the named heads' output by fields
encoded from the ground truth: it measures what the encoder + decoder pair recovers.
"""

if __name__ == '__main__':  # python -m openfields.eval: tune the process before torch loads
    from openfields import cli_setup as _cli_setup
    _cli_setup.prepare_process()

import argparse
import dataclasses
import glob
import logging
import os
import pathlib
import signal
import time
from collections.abc import Callable

import numpy as np
import torch

from . import cli_setup, config, encoder, headmeta, outputs, plugin
from .datasets import factory as datasets_factory
from .datasets.coco import DatasetError
from .decoder import factory as decoder_factory
from .decoder.oracle import fields_from_targets
from .network import cpu_threads, precision as network_precision
from .metric import scoring
from .inference import runners
from .network import checkpoint, factory as network_factory
from .network.pretrained import PretrainedWeightsMissing
from .network.device import resolve_device
from .deeplabcut import table_output as dlc_output
from .topdown import inference as topdown_inference
from .topdown.module import TopDownModule
from .topdown.pose_on_crops import crop_decoder_name
from .training import run_files
from .version import version

LOG = logging.getLogger('openfields.eval')

USER_ERRORS = (ValueError, DatasetError, checkpoint.CheckpointError, PretrainedWeightsMissing)


def parser() -> argparse.ArgumentParser:
    plugin.register_all()
    p = config.ArgumentParser(prog='python -m openfields.eval', description=__doc__.splitlines()[0])
    p.add_argument('--version', action='version', version=f'openfields {version()}')
    p.add_argument('--output', default=None,
                   help='path prefix of the results: PREFIX.stats.json (default: <checkpoint>.eval-<dataset>)')
    p.add_argument('--long-edge', type=int, default=None,
                   help='rescale images to this long edge (default: the dataset\'s, 641 for COCO-style sets)')
    p.add_argument('--write-predictions', action='store_true',
                   help='also write PREFIX.pred.json and PREFIX.pred.zip (for evaluation servers)')
    p.add_argument('--watch', action='store_true',
                   help='--checkpoint is a glob: evaluate every new matching checkpoint until interrupted')
    p.add_argument('--watch-interval', type=float, default=60.0, help='seconds between polls with --watch')
    p.add_argument('--oracle', nargs='+', default=[], metavar='HEAD',
                   help='replace these heads\' output (cif, caf) by fields encoded from the ground truth')
    p.add_argument('--oracle-stride', type=int, default=None,
                   help='basenet stride for --oracle without a checkpoint (default: the --basenet\'s)')
    p.add_argument('--oracle-boxes', action='store_true',
                   help='top-down models: crop the ground-truth boxes instead of the detector\'s (the pose '
                        'model\'s errors alone, without the detector\'s misses and false alarms)')
    p.add_argument('--detector-checkpoint', default=None, metavar='PATH',
                   help='top-down models: this detector instead of the one the checkpoint records')
    p.add_argument('--device', default='auto', help='auto, cpu, cuda, cuda:N, mps')
    network_precision.cli(p)
    p.add_argument('-q', '--quiet', action='store_true', help='only warnings and errors')
    datasets_factory.cli(p, several=False)
    # the oracle encodes the ground truth the metric scores, so no labelled keypoint is suppressed
    encoder.cli(p, encoder.EncoderSettings(suppress_selfhidden=False))
    network_factory.cli(p, checkpoint_help='checkpoint to evaluate (a glob with --watch)')
    decoder_factory.cli(p)
    scoring.cli(p)
    dlc_output.cli(p, project_flag=False)  # --dlc-project is the dlc dataset's
    return p


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """One evaluation command, built once from the flags (:meth:`from_args`): what is evaluated, how, and
    where the results go. ``datamodule_for(base_stride, model_metas)`` builds ``--dataset``'s DataModule (its
    plugin reads its own flags) once the model's stride and heads are known."""

    dataset: str
    datamodule_for: Callable[..., object] = dataclasses.field(repr=False, compare=False)
    device: torch.device = torch.device('cpu')
    checkpoint: str | None = None         # a path, or a glob (--watch, or with wildcards)
    output: str | None = None             # PREFIX of PREFIX.stats.json (default: beside each checkpoint)
    long_edge: int | None = None
    write_predictions: bool = False
    watch: bool = False
    watch_interval: float = 60.0
    oracle: tuple[str, ...] = ()
    oracle_stride: int | None = None
    oracle_boxes: bool = False
    detector_checkpoint: str | None = None
    precision: str = 'float32'            # the arithmetic of a checkpoint's network and detector (--precision)
    default_stride: Callable[[], int] | None = dataclasses.field(default=None, repr=False, compare=False)
    encoder_settings: encoder.EncoderSettings = encoder.EncoderSettings(suppress_selfhidden=False)
    decoder_settings: decoder_factory.DecoderSettings = decoder_factory.DecoderSettings()
    decoder_names: tuple[str, ...] | None = None
    scoring_settings: scoring.ScoringSettings = scoring.ScoringSettings()
    loader: object = None                 # datasets' LoaderSettings (no shuffling)
    dlc_table: object = None              # DeepLabCut's table (table_output.DlcTableSettings) or None
    flags: dict = dataclasses.field(default_factory=dict, compare=False)  # every flag, for the stats file

    @classmethod
    def from_args(cls, args) -> 'EvalSettings':
        """Every flag checked before any work: an evaluation that cannot be written would be lost."""
        outputs.check_output_path(args.output, '--output')
        if '-' in args.dataset:
            raise ValueError(f'--dataset {args.dataset}: evaluation is per dataset; evaluate a checkpoint trained '
                             f'on several datasets once per dataset (--dataset {args.dataset.split("-")[0]}, ...)')
        if args.watch and not args.checkpoint:
            raise ValueError('--watch needs --checkpoint (a glob of checkpoints to evaluate)')
        if args.precision != 'float32' and not args.checkpoint:
            raise ValueError(f'--precision {args.precision} is the arithmetic of a --checkpoint\'s network; the '
                             'oracle runs none')
        device = resolve_device(args.device)
        return cls(
            dataset=args.dataset,
            datamodule_for=lambda stride, model_metas=(): datasets_factory.datamodule_from_args(
                with_model_head_family(args, model_metas), stride),
            device=device, checkpoint=args.checkpoint, output=args.output, long_edge=args.long_edge,
            write_predictions=args.write_predictions, watch=args.watch, watch_interval=args.watch_interval,
            oracle=tuple(args.oracle), oracle_stride=args.oracle_stride, oracle_boxes=args.oracle_boxes,
            detector_checkpoint=args.detector_checkpoint, precision=args.precision,
            default_stride=lambda: network_factory.base_stride(args),
            encoder_settings=encoder.EncoderSettings.from_args(args),
            decoder_settings=decoder_factory.DecoderSettings.from_args(args),
            decoder_names=tuple(args.decoder) if args.decoder else None,
            scoring_settings=scoring.ScoringSettings.from_args(args),
            loader=datasets_factory.loader_settings_from_args(args, pin_memory=device.type == 'cuda', shuffle=False),
            dlc_table=dlc_output.eval_settings(args), flags=dict(vars(args)))

    def output_prefix(self, checkpoint_path: str | None) -> str:
        if self.output:
            return self.output
        if checkpoint_path is None:
            return run_files.eval_prefix(pathlib.Path('outputs') / f'oracle-{"-".join(self.oracle)}', self.dataset)
        return run_files.eval_prefix(checkpoint_path, self.dataset)


def with_model_head_family(args: argparse.Namespace, model_metas) -> argparse.Namespace:
    """The flags, with ``--<dataset>-heads`` taken from the evaluated model when not given: its heads of
    ``--dataset`` are heatmap heads or composite fields, and the dataset builds the same kind to match them."""
    dest = f'{args.dataset.replace("-", "_")}_heads'
    if getattr(args, dest, 'no such flag') is not None:
        return args
    families = {'heatmap' if isinstance(meta, headmeta.Heatmap) else 'cif'
                for meta in model_metas if meta.dataset == args.dataset}
    if len(families) != 1:
        return args
    return argparse.Namespace(**{**vars(args), dest: families.pop()})


def _head_key(meta) -> tuple:
    """What a checkpoint head must share with a dataset head to be evaluated on it: kind, name and the
    keypoints (or categories). Skeleton and sigmas may differ (a derived skeleton depends on the json
    it was derived from); the checkpoint's own meta then decodes."""
    return (type(meta).__name__, meta.name, tuple(getattr(meta, 'keypoints', None) or ()),
            tuple(getattr(meta, 'categories', None) or ()))


def checkpoint_head_metas(model, dataset_metas, checkpoint_path) -> list:
    """The checkpoint's heads in the order of the dataset's (a head of the same dataset first, for
    multi-dataset checkpoints); error naming both when they do not match."""
    chosen = []
    for meta in dataset_metas:
        matches = sorted((m for m in model.head_metas if _head_key(m) == _head_key(meta)),
                         key=lambda m: m.dataset != meta.dataset)
        if not matches:
            raise ValueError(f'{checkpoint_path}: its heads {[m.full_name for m in model.head_metas]} do not '
                             f'match the heads of --dataset {meta.dataset}: {meta.full_name} '
                             f'({len(getattr(meta, "keypoints", []))} keypoints) has no counterpart')
        chosen.append(matches[0])
    return chosen


def dense_heads_beside(model_metas, chosen) -> list:
    """The model's dense Caf heads of the datasets and keypoints of the ``chosen`` Caf heads, not chosen
    yet: ``--dense-connections`` decodes with them without ``--<dataset>-with-dense`` on the command line."""
    sparse = [(m.dataset, tuple(m.keypoints)) for m in chosen if isinstance(m, headmeta.Caf)]
    return [m for m in model_metas if isinstance(m, headmeta.Caf) and m.sparse_skeleton is not None
            and (m.dataset, tuple(m.keypoints)) in sparse and m not in chosen]


@dataclasses.dataclass
class Setup:
    """What one evaluation needs: the model's runner (or None for a pure oracle), the head metas, oracle
    encoders."""

    runner: runners.Runner | None
    metas: list
    head_indices: list[int]  # per meta: index of the model output (None for oracle-only)
    oracle_encoders: dict


def base_stride(settings: EvalSettings, runner: runners.Runner | None) -> int:
    """The stride the dataset's head metas are made for: the model's basenet's; for a pure oracle
    ``--oracle-stride``, else ``--basenet``'s."""
    if runner is not None:
        if runner.base_stride is None:
            raise ValueError(f'{runner.source}: its heads do not record their basenet stride; evaluate its checkpoint')
        return runner.base_stride
    if settings.oracle_stride:
        return settings.oracle_stride
    return settings.default_stride()


def setup(settings: EvalSettings, datamodule, runner: runners.Runner | None, checkpoint_path: str | None) -> Setup:
    """The model's ``runner`` (None: a pure oracle) and the heads to evaluate; the oracle encodes with the
    evaluated heads' metas (the model's: same stride and skeleton)."""
    unknown = [h for h in settings.oracle if h not in [m.name for m in datamodule.head_metas]]
    if unknown:
        raise ValueError(f'--oracle {" ".join(unknown)}: no such head in --dataset {settings.dataset} '
                         f'(heads: {[m.name for m in datamodule.head_metas]})')
    if runner is not None:
        metas = checkpoint_head_metas(runner, datamodule.head_metas, checkpoint_path)
        if settings.decoder_settings.dense_connections > 0:
            metas += dense_heads_beside(runner.head_metas, metas)
        indices = [runner.head_metas.index(m) for m in metas]
    else:
        if not settings.oracle or set(settings.oracle) != {m.name for m in datamodule.head_metas}:
            raise ValueError('--checkpoint is needed unless --oracle names every head of the dataset '
                             f'({" ".join(m.name for m in datamodule.head_metas)})')
        metas, indices = datamodule.head_metas, [None] * len(datamodule.head_metas)
    oracle_metas = [m for m in metas if m.name in settings.oracle]
    encoders = encoder.factory(oracle_metas, settings.encoder_settings,
                               bmin=getattr(datamodule, 'bmin', 0.1))
    return Setup(runner, metas, indices, {meta.name: enc for meta, enc in zip(oracle_metas, encoders)})


def batch_fields(s: Setup, images, anns, metas) -> tuple[list[list[np.ndarray]], float]:
    """Eval-mode fields per image and head ``[image][head] -> (F, C, h, w)``; and network seconds."""
    per_image, nn_seconds = [[None] * len(s.metas) for _ in range(images.shape[0])], 0.0
    if s.runner is not None:
        per_image, nn_seconds = runners.timed_fields(s.runner, s.head_indices)(images)
    for b, fields in enumerate(per_image):
        for h, meta in enumerate(s.metas):
            if meta.name in s.oracle_encoders:
                target = s.oracle_encoders[meta.name](images[b], anns[b], metas[b]).numpy()
                fields[h] = fields_from_targets(meta, target)
    return per_image, nn_seconds


def evaluate(settings: EvalSettings, checkpoint_path: str | None) -> dict:
    """Evaluate one checkpoint or exported model (or the oracle); returns the stats that were written."""
    runner = runners.load(checkpoint_path, settings.device, settings.precision) if checkpoint_path is not None else None
    datamodule = settings.datamodule_for(base_stride(settings, runner), runner.head_metas if runner else ())
    if checkpoint_path is not None:
        datamodule.use_run_files(checkpoint_path)  # e.g. the training run's data split
    topdown = runner.topdown if runner is not None else None
    if topdown is None and (settings.oracle_boxes or settings.detector_checkpoint):
        raise ValueError(f'--oracle-boxes and --detector-checkpoint are for top-down models; '
                         f'{checkpoint_path or "the oracle"} is bottom-up')
    # the dataset's own keypoints name the table's body parts (a checkpoint's heads match them)
    metrics = datamodule.metrics() + dlc_output.collectors(settings.dlc_table, datamodule.head_metas, checkpoint_path)
    cpu_threads.log_choice()
    score = score_bottom_up if topdown is None else score_top_down
    scored, decoder_names = score(settings, datamodule, runner, checkpoint_path, metrics)
    if scored.n_images == 0:
        raise ValueError(f'--dataset {settings.dataset}: no evaluation images')
    prefix = settings.output_prefix(checkpoint_path)
    result = stats_of(settings, scored, metrics, prefix, topdown is not None,
                      {'checkpoint': checkpoint_path, 'decoder': decoder_names})
    outputs.write_json(run_files.stats_file(prefix), result)
    if settings.write_predictions:
        for metric in metrics:
            metric.write_predictions(prefix)
    LOG.info('%s: AP %.4f on %d images (network %.1f ms, decoder %.1f ms per image); wrote %s',
             checkpoint_path or 'oracle', result.get('AP', float('nan')), scored.n_images, result['nn_time_ms'],
             result['decoder_time_ms'], run_files.stats_file(prefix))
    return result


def stats_of(settings: EvalSettings, scored: scoring.Scored, metrics, prefix: str, top_down: bool, source: dict
             ) -> dict:
    """What the stats file holds: the metrics' scores, the files they wrote (a test-dev zip, DeepLabCut's
    table), times per image, what was evaluated and with which flags."""
    n_images = scored.n_images
    stats = scoring.merged_stats(metrics)
    stats.update(scoring.write_files(metrics, prefix))
    return {**stats, 'n_images': n_images,
            'nn_time_ms': round(1000 * scored.nn_seconds / n_images, 2),
            'decoder_time_ms': round(1000 * scored.decoder_seconds / n_images, 2),
            **({} if not top_down else {
                'method': 'td', 'oracle_boxes': settings.oracle_boxes, 'detector': scored.detector,
                'detector_time_ms': round(1000 * scored.detector_seconds / n_images, 2)}),
            'checkpoint': source['checkpoint'], 'dataset': settings.dataset, 'oracle': list(settings.oracle),
            'decoder': source['decoder'], 'args': settings.flags, 'version': version()}


def score_bottom_up(settings: EvalSettings, datamodule, runner, checkpoint_path, metrics
                    ) -> tuple[scoring.Scored, list]:
    """Whole images through the network (or the oracle) and the decoder, into ``metrics``."""
    s = setup(settings, datamodule, runner, checkpoint_path)
    decode = decoder_factory.factory(s.metas, settings.decoder_settings,
                                     names=list(settings.decoder_names or ()) or datamodule.decoder_names())
    loader = datamodule.eval_loader(settings.loader, **({} if settings.long_edge is None else
                                                        {'long_edge': settings.long_edge or None}))
    scored = scoring.accumulate(loader, lambda images, anns, metas: batch_fields(s, images, anns, metas),
                                decode, metrics, settings.scoring_settings, label=f'evaluating {checkpoint_path or "the oracle"}')
    return scored, decode.names


def score_top_down(settings: EvalSettings, datamodule, runner, checkpoint_path, metrics
                   ) -> tuple[scoring.Scored, list]:
    """Each validation image in its original size: the detector's boxes (``--oracle-boxes``: the ground
    truth's), the pose network on their crops, ``cifmax`` per crop, into ``metrics``."""
    if settings.oracle:
        raise ValueError(f'--oracle: {checkpoint_path} is a top-down model; use --oracle-boxes')
    module = TopDownModule(datamodule, topdown_inference.settings_of(runner.topdown))
    metas = checkpoint_head_metas(runner, module.head_metas, checkpoint_path)
    test_set = module.test_set([runner.head_metas.index(m) for m in metas], settings.scoring_settings,
                               settings.decoder_settings)
    test_set.head_metas = metas  # decode with the checkpoint's heads (its stride), whatever the dataset's flags
    detector = None
    if not settings.oracle_boxes:
        detector = topdown_inference.detector_path(runner.topdown, checkpoint_path, settings.detector_checkpoint)
        test_set.detector = topdown_inference.load_detector(detector, settings.device, settings.precision)
        test_set.detector_precision = settings.precision
    network_fields = runners.timed_fields(runner, test_set.head_indices)
    n_images = test_set.accumulate(metrics, lambda individuals, boxes: lambda images: network_fields(images)[0])
    seconds = test_set.seconds
    return scoring.Scored(n_images=n_images, nn_seconds=seconds['network'], decoder_seconds=seconds['decoder'],
                          detector_seconds=seconds['detector'], detector=str(detector) if detector else None), \
        [crop_decoder_name(metas[0])]


def pending_checkpoints(settings: EvalSettings) -> list[str]:
    """Checkpoints matching the glob without a stats file, oldest first."""
    matches = sorted(glob.glob(settings.checkpoint), key=lambda p: (os.path.getmtime(p), p))
    return [p for p in matches if run_files.may_be_checkpoint(p)
            and not run_files.stats_file(settings.output_prefix(p)).exists()]


def watch(settings: EvalSettings):
    """Poll ``--checkpoint`` (a glob) every ``--watch-interval`` seconds; evaluate each new checkpoint once,
    until interrupted (KeyboardInterrupt reaches :func:`main`: exit status 130)."""
    # a watcher started in the background of a shell inherits SIGINT ignored; Ctrl-C / kill -INT must stop it
    signal.signal(signal.SIGINT, signal.default_int_handler)
    warned_empty = False
    while True:
        start = time.time()
        pending = pending_checkpoints(settings)
        if not pending and not glob.glob(settings.checkpoint) and not warned_empty:
            LOG.warning('--checkpoint %s matches no file yet; waiting', settings.checkpoint)
            warned_empty = True
        for path in pending:
            try:
                evaluate(settings, path)
            except checkpoint.CheckpointError as error:  # still being written, or truncated
                LOG.warning('skipping %s for now: %s', path, error)
        time.sleep(max(0.0, settings.watch_interval - (time.time() - start)))


def run(args):
    """Evaluate ``--checkpoint`` (every match of a glob; the oracle without one), or ``--watch`` it."""
    settings = EvalSettings.from_args(args)
    if settings.watch:
        return watch(settings)
    if not settings.checkpoint:
        return [evaluate(settings, None)]
    paths = sorted(glob.glob(settings.checkpoint)) if glob.has_magic(settings.checkpoint) else [settings.checkpoint]
    if not paths:
        raise ValueError(f'--checkpoint {settings.checkpoint} matches no file')
    return [evaluate(settings, path) for path in paths]


def main(argv=None):
    def evaluate(args):
        run(args)  # the stats of each checkpoint, written to their files

    # stats already written stay when interrupted: each is written atomically
    cli_setup.run_cli('openfields.eval', parser(), evaluate, USER_ERRORS, argv=argv)


if __name__ == '__main__':
    main()
