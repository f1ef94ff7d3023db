"""Summarise a finished training run for people: ``python -m openfields.demo_summary CHECKPOINT``.

Prints the files the run wrote and its loss per epoch, so ``make demo`` ends with what it did and where.
"""

import argparse
import pathlib

from .training_log import read


def summary(checkpoint: pathlib.Path) -> str:
    records = read(f'{checkpoint}.log')
    lines = ['files:']
    lines.append(f'  final checkpoint   {checkpoint}')
    epochs = sorted(checkpoint.parent.glob(f'{checkpoint.name}.epoch[0-9][0-9][0-9]'))
    if epochs:
        lines.append(f'  epoch checkpoints  {epochs[0]} .. {epochs[-1].name} ({len(epochs)} files)')
    lines.append(f'  training log       {checkpoint}.log (JSON lines)')
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


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m openfields.demo_summary', description=__doc__)
    parser.add_argument('checkpoint', type=pathlib.Path)
    args = parser.parse_args(argv)
    print(summary(args.checkpoint))


if __name__ == '__main__':
    main()
