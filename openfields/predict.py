"""Predict poses on images: ``python -m openfields.predict IMAGES...``.

``IMAGES`` are files, folders (every image inside) or globs. Per image, ``--json-output`` writes the poses
as COCO-style json (keypoints, score, bbox, category) and ``--image-output`` the image with the poses drawn.
A file that is missing or not an image gets an error naming it; the others are still processed. For a
checkpoint trained on several datasets (``--dataset a-b``), ``--dataset NAME`` decodes the heads of one.

``--show`` opens every figure in a window and ``--save-all [DIR]`` writes each as a PNG: the drawn image
and, with ``--debug-indices`` / ``--debug-images``, the debug plots of the network input and the
predicted fields (openfields/show/debug.py), named ``<image>.<plot>.png``.

Memory follows the network input, not the file: an image larger than ``--long-edge`` is decoded at 1/2, 1/4
or 1/8 of its size where the format allows (JPEG) or reduced right after decoding, and its poses are mapped
back to the original pixels. An image whose network input would exceed ``--max-megapixels`` (at full size
without ``--long-edge``) is refused with an error naming it; PIL refuses files above its decompression-bomb
limit (about 179 megapixels).

Every ``--progress-interval`` seconds a line gives the images done, images/s and the time left; the last line
the time per image of each stage (load, network, decoder, output).
"""

if __name__ == '__main__':  # python -m openfields.predict: tune the process before torch loads
    from openfields import cli_setup as _cli_setup
    _cli_setup.prepare_process()

import argparse
import dataclasses
import glob
import logging
import math
import os
import pathlib
import sys
import time
import warnings

import numpy as np
import PIL.Image
import torch

from . import cli_setup, config, outputs, plugin
from .decoder import factory as decoder_factory
from .export.metadata import ExportedModelError
from .inference import pipeline as inference_pipeline
from .network import cpu_threads, precision as network_precision
from .network import checkpoint
from .network.pretrained import PretrainedWeightsMissing
from .show import canvas as canvas_module, debug
from .show.painters import draw_annotations
from .show.progress import Progress, StageTimes, cli as progress_cli
from .deeplabcut import table_output as dlc_output
from .version import version

LOG = logging.getLogger('openfields.predict')

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
# the largest network input by default: a 4900x3300 image, a few GB of activations for the larger basenets
MAX_MEGAPIXELS = 16.0


def parser() -> argparse.ArgumentParser:
    plugin.register_all()
    p = config.ArgumentParser(prog='python -m openfields.predict', description=__doc__.splitlines()[0])
    p.add_argument('--version', action='version', version=f'openfields {version()}')
    p.add_argument('images', nargs='+', help='image files, folders or globs')
    p.add_argument('--checkpoint', required=True,
                   help='trained checkpoint, .onnx (run by onnxruntime) or TorchScript file; a path or the name '
                        'of a model in the model folder (python -m openfields.models)')
    p.add_argument('--dataset', default=None,
                   help='decode only the heads trained on this dataset (for a checkpoint of several; '
                        'default: every head, the decoder picks)')
    p.add_argument('--json-output', nargs='?', const='', default=None, metavar='DIR',
                   help='write <image>.predictions.json (next to the image, or into DIR)')
    p.add_argument('--long-edge', type=int, default=None,
                   help='rescale images to this long edge (default: keep; needed for --batch-size > 1)')
    p.add_argument('--max-megapixels', type=float, default=MAX_MEGAPIXELS,
                   help='refuse an image whose network input (the image, or its --long-edge rescaling) is '
                        'larger, with an error naming it: memory grows with it. Images larger than --long-edge '
                        'are decoded at reduced size (JPEG: 1/2 to 1/8), their poses still in original pixels; '
                        'PIL refuses files above about 179 megapixels')
    p.add_argument('--batch-size', type=int, default=1)
    p.add_argument('--loader-workers', type=int, default=0)
    p.add_argument('--device', default='auto', help='auto, cpu, cuda, cuda:N, mps')
    network_precision.cli(p)
    p.add_argument('-q', '--quiet', action='store_true')
    progress_cli(p, 'predicting')
    decoder_factory.cli(p)
    inference_pipeline.cli(p)
    canvas_module.cli(p, image_output=True)
    debug.cli(p)
    dlc_output.cli(p, project_flag=True)
    return p


def expand_inputs(inputs: list[str]) -> tuple[list[pathlib.Path], list[str]]:
    """Image paths from files, folders and globs; and an error message per input that gave nothing."""
    paths, errors = [], []
    for item in inputs:
        if os.path.isdir(item):
            found = sorted(p for p in pathlib.Path(item).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
            errors += [] if found else [f'{item}: folder holds no image ({", ".join(IMAGE_EXTENSIONS)})']
        elif glob.has_magic(item):
            found = sorted(pathlib.Path(p) for p in glob.glob(item) if os.path.isfile(p))
            errors += [] if found else [f'{item}: matches no file']
        elif os.path.isfile(item):
            found = [pathlib.Path(item)]
        else:
            found, errors = [], errors + [f'{item}: file not found']
        paths += found
    return paths, errors


class ImageTooLarge(ValueError):
    """An image whose network input is above ``--max-megapixels``."""


def open_image(path, long_edge: int | None, max_pixels: float) -> tuple[PIL.Image.Image, dict]:
    """The RGB image, reduced by an integer factor ``s`` where it is at least twice ``long_edge``, and the
    ``meta`` that maps its pixels to the original's: reduced pixel ``x`` covers original pixels ``x * s`` to
    ``x * s + s - 1``, so ``scale = 1 / s`` and ``offset = (s - 1) / 2s`` (transforms/geometry.py).

    The reduced long edge stays >= ``long_edge`` (the pipeline's resize does the rest). JPEG decodes at
    1/2, 1/4 or 1/8 of the size (``Image.draft``: the full image is never in memory); other formats
    decode in full and are reduced right away (``Image.reduce``). Raises :class:`ImageTooLarge` from the
    header, before decoding, when the network input would be above ``max_pixels``.
    """
    with open(path, 'rb') as f, warnings.catch_warnings():
        # PIL warns from 89 megapixels on; the limit that matters here is the network input's
        warnings.simplefilter('ignore', PIL.Image.DecompressionBombWarning)
        image = PIL.Image.open(f)
        width, height = image.size
        fit = 1.0 if long_edge is None else long_edge / max(width, height)  # the pipeline's resize
        if round(width * fit) * round(height * fit) > max_pixels:
            raise ImageTooLarge(
                f'{path}: {width}x{height} pixels ({width * height / 1e6:.1f} megapixels) is above '
                f'--max-megapixels {max_pixels / 1e6:g} at the network input; predict it smaller with '
                f'--long-edge, or raise --max-megapixels')
        draft = image.draft('RGB', (math.ceil(width * fit), math.ceil(height * fit))) if fit <= 0.5 else None
        scale = round(width / draft[1][2]) if draft else 1  # draft: None unless JPEG
        image.load()  # decoded once, at the drafted size; no copy when already RGB
    if image.mode != 'RGB':
        image = image.convert('RGB')
    factor = max(image.size) // long_edge if long_edge else 1
    if factor >= 2:
        image, scale = image.reduce(factor), scale * factor
    if scale == 1:
        return image, {}
    return image, {'scale': np.full(2, 1.0 / scale), 'offset': np.full(2, (scale - 1) / (2.0 * scale)),
                   'width_height': np.array([width, height])}


class ImageFiles(torch.utils.data.Dataset):
    """Images from disk, opened by :func:`open_image` and prepared by the model's pipeline
    (:meth:`openfields.inference.pipeline.BottomUp.prepare` or ``TopDown.prepare``); a file that cannot be
    read or is too large gives ``{'error': message}`` (reported, the others go on)."""

    def __init__(self, paths, prepare, long_edge: int | None = None, max_pixels: float = MAX_MEGAPIXELS * 1e6):
        self.paths = paths
        self.prepare = prepare
        self.long_edge, self.max_pixels = long_edge, max_pixels

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        path = self.paths[index]
        try:
            image, geometry = open_image(path, self.long_edge, self.max_pixels)
        except ImageTooLarge as error:
            return {'error': str(error)}
        except (OSError, PIL.UnidentifiedImageError, PIL.Image.DecompressionBombError, ValueError) as error:
            return {'error': f'{path}: not a readable image ({error})'}
        return self.prepare(image, {'local_file_path': str(path), 'dataset_index': index, **geometry})


def collate(batch):
    """``(prepared samples, error messages)`` of a batch: the pipeline stacks what it needs."""
    return [sample for sample in batch if not isinstance(sample, dict)], \
        [sample['error'] for sample in batch if isinstance(sample, dict)]


def output_path(image_path: pathlib.Path, option: str, suffix: str) -> pathlib.Path:
    if option:
        folder = pathlib.Path(option)
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f'{image_path.name}{suffix}'
    return image_path.with_name(f'{image_path.name}{suffix}')


def check_one_image_for_a_file(image_output: str | None, inputs: list[str]) -> None:
    """``--image-output FILE`` (OpenPifPaf's spelling) draws one image: with several a ValueError."""
    if canvas_module.names_an_image_file(image_output):
        n_images = len(expand_inputs(inputs)[0])
        if n_images > 1:
            raise ValueError(f'--image-output {image_output}: names one file but {n_images} images are given; '
                             'for several give a folder (e.g. --image-output all-images/)')


def write_outputs(json_output: str | None, canvas: canvas_module.Canvas, meta, predictions):
    """``<image>.predictions.json`` (``json_output``: a folder, '' beside the image, None: none), the drawn
    image (``--image-output``) and the figure (``--show`` / ``--save-all``)."""
    path = pathlib.Path(meta['local_file_path'])
    if json_output is not None:
        out = output_path(path, json_output, '.predictions.json')
        outputs.write_json(out, [a.json_data() for a in predictions], indent=None)
        LOG.info('wrote %s', out)
    settings = canvas.settings
    if settings.image_output is None and not settings.has_output:
        return
    with PIL.Image.open(path) as image:
        drawn = draw_annotations(image, predictions)
    if settings.image_output is not None:
        out, image_format = canvas_module.image_output_path(path, settings.image_output)
        with outputs.atomic_write(out, 'wb') as f:
            drawn.save(f, format=image_format, **({'quality': 90} if image_format == 'JPEG' else {}))
        LOG.info('wrote %s', out)
    if settings.has_output:
        canvas.image(f'{path.name}.predictions', drawn, title=f'{path.name}: {len(predictions)} poses')


def figures(settings: canvas_module.CanvasSettings, debug_settings: debug.DebugSettings, model, decoder_settings):
    """The canvas of every figure and the debug plots (None without debug flags); debug plots without
    --show or --save-all go to all-images/."""
    if not debug_settings.enabled:
        return canvas_module.Canvas(settings), None
    if not model.plots_fields:
        raise ValueError(f'--debug-indices / --debug-images: {model.source} is a top-down model; the debug plots of '
                         'the fields are drawn for bottom-up models')
    selections = debug.select_fields(debug_settings, model.head_metas)
    canvas = canvas_module.Canvas(settings.with_default_output())
    return canvas, debug.DebugPlots(canvas, model.head_metas, selections, decoder_settings)


def run(args) -> int:
    """Predict every image; returns the number of inputs that failed."""
    # malformed --debug-indices or --image-dpi and unwritable output folders fail before the model loads
    debug_settings, canvas_settings = debug.DebugSettings.from_args(args), canvas_module.CanvasSettings.from_args(args)
    image_file = canvas_module.names_an_image_file(args.image_output)  # else a folder
    for flag, path, folder in (('--json-output', args.json_output, True),
                               ('--image-output', args.image_output, not image_file),
                               ('--save-all', args.save_all, True)):
        outputs.check_output_path(path or None, flag, folder=folder)  # '': next to each image
    check_one_image_for_a_file(args.image_output, args.images)
    table_settings = dlc_output.DlcTableSettings.from_args(args)
    settings = inference_pipeline.PipelineSettings.from_args(args, pad='tight' if args.batch_size == 1 else 'center')
    model = inference_pipeline.open_model(args.checkpoint, settings)
    LOG.info('%s', model.describe())
    cpu_threads.log_choice()
    canvas, plots = figures(canvas_settings, debug_settings, model, settings.decoder)
    tables = dlc_output.collectors(table_settings, model.head_metas, args.checkpoint)
    paths, errors = expand_inputs(args.images)
    for message in errors:
        LOG.error(message)
    dataset = ImageFiles(paths, model.prepare, args.long_edge, args.max_megapixels * 1e6)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, num_workers=args.loader_workers,
                                         collate_fn=collate)
    progress = Progress('predicting', len(paths), interval_s=args.progress_interval)
    errors += predict_all(model, loader, progress, Writers(args.json_output, canvas, tables), plots)
    for table in tables:
        table.write_files()
    return len(errors)


@dataclasses.dataclass(frozen=True)
class Writers:
    """Where each image's poses go: its json (``--json-output``), drawn image and figure, DeepLabCut's tables."""
    json_output: str | None
    canvas: canvas_module.Canvas
    tables: list


def predict_all(model, loader, progress: Progress, writers: Writers, plots=None) -> list[str]:
    """Every batch of ``loader`` through ``model`` into ``writers``; the error of each input that failed.
    The last line gives the time per image of each stage."""
    errors, n_done, start, stages = [], 0, time.perf_counter(), StageTimes()
    fields_seen = None if plots is None else lambda b, sample, fields: plots.sample(
        pathlib.Path(sample[1]['local_file_path']).name, sample[0], sample[1], [debug.Source.from_predictions(fields)])
    for samples, batch_errors in stages.timed(loader, 'load'):
        for message in batch_errors:
            LOG.error(message)
        errors += batch_errors
        if batch_errors:
            progress.update(len(batch_errors))
        for (_, meta), predictions in zip(samples, model.poses(samples, fields_seen)):
            LOG.info('%s: %d poses', meta['local_file_path'], len(predictions))
            with stages.stage('output'):
                write_outputs(writers.json_output, writers.canvas, meta, predictions)
                for table in writers.tables:
                    table.accumulate(predictions, meta)
            n_done += 1
            progress.update()
    for stage, seconds in model.seconds.items():
        stages.add(stage, seconds)
    LOG.info('%d images in %.1f s (%s)', n_done, time.perf_counter() - start, stages.line(n_done))
    return errors


def main(argv=None):
    def predict(args) -> int:
        failed = run(args)
        if failed:
            print(f'openfields.predict: {failed} input(s) could not be processed (see the errors above)',
                  file=sys.stderr)
        return 1 if failed else 0

    cli_setup.run_cli('openfields.predict', parser(), predict, argv=argv, user_errors=(
        ValueError, checkpoint.CheckpointError, ExportedModelError, PretrainedWeightsMissing))


if __name__ == '__main__':
    main()
