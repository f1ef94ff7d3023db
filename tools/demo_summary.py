"""Summarise a finished training run for people: ``python -m tools.demo_summary CHECKPOINT``.

Prints the files the run wrote and its loss per epoch, so ``make demo`` ends with what it did and where.
"""

import argparse
import json
import pathlib

from openfields.training.log import read
from openfields.training.run_files import RunFiles


def summary(checkpoint: pathlib.Path) -> str:
    files = RunFiles(checkpoint)
    records = read(files.log)
    lines = ['files:']
    lines.append(f'  final checkpoint   {checkpoint}')
    epochs = [path for _, path in files.regular_snapshots()]
    if epochs:
        lines.append(f'  epoch checkpoints  {epochs[0]} .. {epochs[-1].name} ({len(epochs)} files)')
    lines.append(f'  training log       {files.log} (JSON lines)')
    train = {r['epoch']: r['loss'] for r in records if r.get('type') == 'train-epoch'}
    val = {r['epoch']: r['loss'] for r in records if r.get('type') == 'val-epoch'}
    lines.append('loss per epoch (train / val):')
    for epoch in sorted(train):
        val_text = f'{val[epoch]:.3f}' if val.get(epoch) is not None else '-'
        lines.append(f'  epoch {epoch:3d}  {train[epoch]:.3f} / {val_text}')
    if len(train) >= 2:
        first, last = train[min(train)], train[max(train)]
        trend = 'fell' if last < first else 'did not fall'
        lines.append(f'the training loss {trend} from {first:.3f} to {last:.3f} ({first / last:.1f}x)')
    return '\n'.join(lines)


def validation_images(checkpoint: pathlib.Path, n: int) -> list[str]:
    """Paths of the first ``n`` validation images of the run's dataset (from its log)."""
    process = read(RunFiles(checkpoint).log)[0]
    (dataset,) = process['datasets'].values()
    annotations = pathlib.Path(dataset['val_annotations'])
    images = json.loads(annotations.read_text())['images'][:n]
    return [str(annotations.parent / 'images' / image['file_name']) for image in images]


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m tools.demo_summary', description=__doc__)
    parser.add_argument('checkpoint', type=pathlib.Path)
    parser.add_argument('--val-images', type=int, default=0,
                        help='instead of the summary, print the paths of this many validation images')
    parser.add_argument('--stats', type=pathlib.Path, default=None, help='an eval stats.json to summarise too')
    args = parser.parse_args(argv)
    if args.val_images:
        print(' '.join(validation_images(args.checkpoint, args.val_images)))
        return
    print(summary(args.checkpoint))
    if args.stats is not None and args.stats.is_file():
        stats = json.loads(args.stats.read_text())
        print(f'evaluation on {stats["n_images"]} validation images: AP {stats["AP"]:.3f}, AP50 '
              f'{stats["AP50"]:.3f} ({args.stats})')


if __name__ == '__main__':
    main()
