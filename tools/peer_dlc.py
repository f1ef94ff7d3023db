"""DeepLabCut 3.0.2's side of ``make bench-dlc`` (:mod:`tools.benchmark_dlc`): run by the Python of a throwaway
venv that has DeepLabCut (``../shared/reference/peer-deeplabcut.md``), never imported by openfields.

Sub-commands, each printing one JSON line last:

* ``prepare PROJECT``: PROJECT is a writable copy of a DeepLabCut project. Sets its paths, writes the ``.h5``
  labels, shuffle 1 (bottom-up ``resnet_50``: a GroupNorm ResNet-50 with a heatmap + locref head) and shuffle 2
  (``top_down_resnet_50`` with its SSDLite detector) on shuffle 1's split, both from scratch (a random-weight
  snapshot as ``weight_init``, as the reference note says; DeepLabCut would download ImageNet weights) on the CPU.
* ``train PROJECT SHUFFLE [EPOCHS]``: ``deeplabcut.train_network`` with a snapshot after every epoch (the bench
  kills it when its time is up and reads the snapshots' times); top-down: ``--detector-epochs`` first.
* ``evaluate PROJECT SHUFFLE SNAPSHOT...``: ``deeplabcut.evaluate_network`` on each named snapshot; the test
  and train errors (DeepLabCut's "RMSE", a mean pixel distance) of each.
* ``analyze PROJECT SHUFFLE VIDEO``: ``deeplabcut.analyze_videos`` with the shuffle's newest snapshot, timed.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

os.environ.setdefault('DLClight', 'True')
os.environ.setdefault('HF_HUB_OFFLINE', '1')

TASK_SHUFFLES = {1: 'resnet_50', 2: 'top_down_resnet_50'}


def _yaml():
    from ruamel.yaml import YAML  # pylint: disable=import-outside-toplevel
    yaml = YAML()
    yaml.preserve_quotes = True
    return yaml


def _edit_yaml(path: pathlib.Path, edit) -> None:
    yaml = _yaml()
    data = yaml.load(path.read_text())
    edit(data)
    with path.open('w') as stream:
        yaml.dump(data, stream)


def prepare(project: pathlib.Path) -> dict:
    import deeplabcut  # pylint: disable=import-outside-toplevel
    config = project / 'config.yaml'
    (video,) = [p.name for p in (project / 'labeled-data').iterdir() if p.is_dir()]

    def set_paths(data):
        data['project_path'] = str(project)
        data['video_sets'] = {str(project / 'videos' / f'{video}.mp4'): {'crop': '0, 640, 0, 480'}}
    _edit_yaml(config, set_paths)
    deeplabcut.convertcsv2h5(str(config), userfeedback=False)
    deeplabcut.create_training_dataset(str(config), Shuffles=[1], net_type=TASK_SHUFFLES[1],
                                       engine=deeplabcut.Engine.PYTORCH, userfeedback=False)
    deeplabcut.create_training_dataset_from_existing_split(str(config), from_shuffle=1, shuffles=[2],
                                                           net_type=TASK_SHUFFLES[2], userfeedback=False,
                                                           engine=deeplabcut.Engine.PYTORCH)
    return {shuffle: str(_from_scratch(project, shuffle)) for shuffle in TASK_SHUFFLES}


def pytorch_config(project: pathlib.Path, shuffle: int) -> pathlib.Path:
    (path,) = (project / 'dlc-models-pytorch').glob(f'iteration-0/*shuffle{shuffle}/train/pytorch_config.yaml')
    return path


def _from_scratch(project: pathlib.Path, shuffle: int) -> pathlib.Path:
    """The shuffle's pytorch_config.yaml set to the CPU and to a random-weight start (seed 0)."""
    import torch  # pylint: disable=import-outside-toplevel
    from deeplabcut.pose_estimation_pytorch.models import PoseModel  # pylint: disable=import-outside-toplevel
    path = pytorch_config(project, shuffle)
    cfg = _yaml().load(path.read_text())
    torch.manual_seed(0)
    model = PoseModel.build(cfg['model'], pretrained_backbone=False)
    weights = path.parent / 'random-init.pt'
    torch.save({'model': model.state_dict()}, weights)

    def edit(data):
        data['device'] = 'cpu'
        data['runner']['device'] = 'cpu'
        if data.get('detector'):
            data['detector']['runner']['device'] = 'cpu'
        data['train_settings']['weight_init'] = {'snapshot_path': str(weights), 'with_decoder': False,
                                                 'memory_replay': False}
    _edit_yaml(path, edit)
    return path


def train(project: pathlib.Path, shuffle: int, epochs: int | None, detector_epochs: int) -> dict:
    """The file's schedule of ``epochs`` (default: the file's) with every epoch's snapshot kept."""
    import deeplabcut  # pylint: disable=import-outside-toplevel
    if epochs is None:
        epochs = int(_yaml().load(pytorch_config(project, shuffle).read_text())['train_settings']['epochs'])
    kwargs = {'detector_epochs': detector_epochs, 'detector_save_epochs': detector_epochs} if shuffle == 2 else {}
    deeplabcut.train_network(str(project / 'config.yaml'), shuffle=shuffle, epochs=epochs, save_epochs=1,
                             max_snapshots_to_keep=epochs, display_iters=1, device='cpu', **kwargs)
    return {'trained': shuffle}


def evaluate(project: pathlib.Path, shuffle: int, snapshots: list[str]) -> dict:
    """DeepLabCut's own evaluation of each snapshot: its results csv, one row per snapshot."""
    import deeplabcut  # pylint: disable=import-outside-toplevel
    import pandas  # pylint: disable=import-outside-toplevel
    deeplabcut.evaluate_network(str(project / 'config.yaml'), shuffles=[shuffle], snapshots_to_evaluate=snapshots,
                                device='cpu', plotting=False)
    (table,) = (project / 'evaluation-results-pytorch').glob('iteration-0/CombinedEvaluation-results.csv')
    rows = pandas.read_csv(table)
    rows = rows[rows['Shuffle number'] == shuffle]
    results = {}
    for _, row in rows.iterrows():  # DeepLabCut 3.0.2's columns
        results[str(int(row['Training epochs']))] = {
            'test_rmse': float(row['test rmse']), 'train_rmse': float(row['train rmse']),
            'test_rmse_pcutoff': float(row['test rmse_pcutoff']), 'test_map': float(row['test mAP'])}
    return results


def analyze(project: pathlib.Path, shuffle: int, video: pathlib.Path, batch_size: int) -> dict:
    """``deeplabcut.analyze_videos`` on ``video`` with the shuffle's newest snapshot: its wall time (the
    call, model loading included) and the frames it wrote."""
    import time  # pylint: disable=import-outside-toplevel
    import deeplabcut  # pylint: disable=import-outside-toplevel
    import pandas  # pylint: disable=import-outside-toplevel
    destination = video.parent / f'dlc-shuffle{shuffle}'
    destination.mkdir(exist_ok=True)
    for old in destination.iterdir():
        old.unlink()
    start = time.perf_counter()
    deeplabcut.analyze_videos(str(project / 'config.yaml'), [str(video)], shuffle=shuffle, device='cpu',
                              batch_size=batch_size, destfolder=str(destination), auto_track=False)
    seconds = time.perf_counter() - start
    (table,) = destination.glob('*.h5')
    return {'seconds': seconds, 'frames': len(pandas.read_hdf(table))}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0])
    commands = parser.add_subparsers(dest='command', required=True)
    commands.add_parser('prepare').add_argument('project', type=pathlib.Path)
    train_parser = commands.add_parser('train')
    train_parser.add_argument('project', type=pathlib.Path)
    train_parser.add_argument('shuffle', type=int)
    train_parser.add_argument('epochs', type=int, nargs='?', default=None)
    train_parser.add_argument('--detector-epochs', type=int, default=1)
    evaluate_parser = commands.add_parser('evaluate')
    evaluate_parser.add_argument('project', type=pathlib.Path)
    evaluate_parser.add_argument('shuffle', type=int)
    evaluate_parser.add_argument('snapshots', nargs='+')
    analyze_parser = commands.add_parser('analyze')
    analyze_parser.add_argument('project', type=pathlib.Path)
    analyze_parser.add_argument('shuffle', type=int)
    analyze_parser.add_argument('video', type=pathlib.Path)
    analyze_parser.add_argument('--batch-size', type=int, default=4)
    args = parser.parse_args(argv)
    if args.command == 'analyze':
        result = analyze(args.project.resolve(), args.shuffle, args.video.resolve(), args.batch_size)
    elif args.command == 'prepare':
        result = prepare(args.project.resolve())
    elif args.command == 'train':
        result = train(args.project.resolve(), args.shuffle, args.epochs, args.detector_epochs)
    else:
        result = evaluate(args.project.resolve(), args.shuffle, args.snapshots)
    sys.stdout.write(json.dumps(result) + '\n')


if __name__ == '__main__':
    main()
