"""Configuration reference, generated from the training parser: ``python -m tools.config_reference``.

``docs/configuration.md`` is this module's output: how ``--config FILE`` works, every flag of
``python -m openfields.train`` with its default, meaning and config-file key in one table per section
(:data:`SECTIONS`), and DeepLabCut's ``pytorch_config.yaml`` keys mapped to flags (:data:`DLC_KEYS`).

Every argparse group of the parser is assigned a section in :data:`GROUP_SECTIONS`, and flags that belong
elsewhere than their group in :data:`FLAG_SECTIONS`. The flags of a plugin installed outside the repository
(an ``openfields_*`` module or an entry point) get a section of their own, ``Plugin `<name>```, after the
repository's sections: its author cannot edit these tables, and its flags are not openfields' own. Any other
flag covered by neither table stops the generator (:class:`UnmappedFlags`): a new group or flag of the
repository is placed by hand, never silently left out. The tables are
rendered by :func:`tools.cli_reference.table`, like ``docs/cli.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import typing

from openfields import config, plugin, train
from openfields.datasets import DATAMODULES

from . import cli_reference

SECTIONS = {  # section -> what its flags decide
    'data': 'What the network sees: the dataset (`--dataset`), each dataset plugin\'s files, augmentation '
            'and variable-size batches (flags prefixed with the dataset\'s name), and the data loader.',
    'model': 'The network: basenet, heads and their training targets (encoders), the weights it starts from.',
    'runner': 'How a run is carried out: device, several processes (`--ddp`), output and checkpoints, '
              'validation, resuming, seed, config file, precision and speed (`--amp`, `--compile`).',
    'train settings': 'The optimisation: epochs, batch size, losses, optimizer, learning rate schedule, '
                      'weight averaging (EMA), gradient clipping, BatchNorm.',
    'logging': 'What a run prints and draws besides its checkpoints and its JSON-lines log: progress lines, '
               'debug plots.',
}

# argparse group title -> section (the titles of --help)
GROUP_SECTIONS = {
    'options': 'runner',
    'data': 'data',
    'dataset cocodet': 'data',
    'dataset cocokp': 'data',
    'COCO-style evaluation': 'data',
    'dataset crowdpose': 'data',
    'dataset dlc (DeepLabCut project)': 'data',
    'dataset synthetic': 'data',
    'encoders': 'model',
    'network': 'model',
    'basenets': 'model',
    'losses': 'train settings',
    'optimizer': 'train settings',
    'learning rate schedule': 'train settings',
    'trainer': 'train settings',
    'debug plots': 'logging',
    'show': 'logging',
    'resume': 'runner',
    'snapshots': 'runner',
    'distributed (--ddp)': 'runner',
    'accelerate (precision, memory layout, compilation)': 'runner',
}

# flag -> section, for flags whose group's section is not theirs
FLAG_SECTIONS = {
    '--quiet': 'logging',
    '--batch-size': 'train settings',
    '--batchnorm-eps': 'train settings',
    '--batchnorm-momentum': 'train settings',
    '--val-interval': 'runner',
    '--val-batches': 'runner',
    '--display-interval': 'logging',
    '--eval-interval': 'runner',  # declared with the trainer's flags; decides snapshots like the rest of runner
}

class DlcKey(typing.NamedTuple):
    """A ``pytorch_config.yaml`` key, the openfields flags that do its job (none: no equivalent) and how
    they differ. Flags in the note are checked against the parser too."""

    key: str
    flags: tuple[str, ...]
    note: str


DLC_KEYS = (
    DlcKey('train_settings.batch_size', ('--batch-size',),
           'DLC default 8 (the `batch_size` of DLC\'s `config.yaml` is the inference batch size). openfields '
           'default 1, images per process: with `--ddp` the global batch is that times the number of processes'),
    DlcKey('train_settings.epochs', ('--epochs',),
           'DLC default 200. **Resuming differs**: DLC trains `epochs` more epochs after the snapshot\'s '
           'epoch; `--epochs` is always the total, with or without `--resume`'),
    DlcKey('train_settings.seed', ('--seed',),
           'DLC default 42, and it makes cuDNN deterministic. Without `--seed` openfields draws one, logs it '
           'and records it in `<run>.config.json`; cuDNN settings are left as they are'),
    DlcKey('train_settings.dataloader_workers', ('--loader-workers',),
           'DLC default 0; openfields default min(batch size, CPU count)'),
    DlcKey('train_settings.dataloader_pin_memory', (),
           'no flag: openfields pins memory whenever it trains on CUDA'),
    DlcKey('train_settings.display_iters', ('--display-interval',),
           'DLC default 500, openfields 10; each progress line is also a `train` record of the JSON-lines log'),
    DlcKey('train_settings.weight_init', ('--checkpoint',),
           'start a new run (epoch 0) from a trained openfields checkpoint; heads that match are kept. '
           'SuperAnimal weights and keypoint conversion have no equivalent'),
    DlcKey('runner.optimizer.type, runner.optimizer.params.lr', ('--optimizer', '--lr'),
           'DLC default AdamW with lr 1e-4 (resnet_50: 5e-4), any `torch.optim` class; openfields: `sgd` '
           '(default, lr 1e-3, Nesterov), `adam`, `adamw`'),
    DlcKey('runner.optimizer.params (weight_decay, betas, eps)',
           ('--weight-decay', '--momentum', '--beta2', '--adam-eps'),
           'torch\'s AdamW defaults are weight_decay 0.01 and eps 1e-8; openfields\' `--weight-decay` is 0 and '
           '`--adam-eps` 1e-6: set them to match a DLC run. `--momentum` is beta1'),
    DlcKey('runner.scheduler: LRListScheduler {milestones, lr_list}',
           ('--lr-schedule', '--lr-milestones', '--lr-values', '--lr-warm-up-epochs'),
           'DLC\'s default is `--lr-schedule milestones --lr-milestones 160 190 --lr-values 1e-5 1e-6` '
           '(resnet_50: 90 120 with 1e-4 1e-5): absolute learning rates from the epoch after each milestone, '
           'one value per milestone (DLC\'s lr_list holds one per parameter group; openfields has one group). '
           'DLC has no warm-up: add `--lr-warm-up-epochs 0` (openfields\' default is 1 epoch)'),
    DlcKey('runner.scheduler: StepLR, CosineAnnealingLR',
           ('--lr-schedule', '--lr-step-size', '--lr-gamma', '--lr-cosine-min'),
           '`--lr-schedule step` is StepLR; `--lr-schedule cosine` anneals to `--lr-cosine-min` at `--epochs` '
           '(per batch, DLC per epoch). Chains of schedulers (SequentialLR) have no equivalent beyond the '
           'warm-up'),
    DlcKey('runner.snapshots.max_snapshots', ('--max-snapshots',),
           'DLC default 5: the newest regular snapshots kept, the best one not counted'),
    DlcKey('runner.snapshots.save_epochs', ('--save-epochs',),
           'DLC default 25: a regular snapshot every N epochs and after the last'),
    DlcKey('runner.snapshots.save_optimizer_state', ('--save-optimizer-state', '--no-save-optimizer-state'),
           '**DLC default false**: its snapshots hold no optimizer state, so a resumed AdamW starts its '
           'moments again. openfields\' default is on, so `--resume` continues exactly; '
           '`--no-save-optimizer-state` writes smaller snapshots, and resuming one starts the optimizer afresh'),
    DlcKey('runner.key_metric', ('--key-metric',),
           'the metric that decides the best snapshot; DLC default `test.mAP` (or `test.rmse` with '
           '`key_metric_asc: false`)'),
    DlcKey('runner.key_metric_asc', ('--key-metric-asc', '--key-metric-desc'),
           'DLC default true, which means larger is better'),
    DlcKey('runner.eval_interval', ('--eval-interval', '--val-interval'),
           'DLC default 10 (its docs say 1): validation loss and metrics every N epochs. `--val-interval` '
           '(default 1) is openfields\' validation-loss interval'),
    DlcKey('runner.device, device', ('--device',),
           'both default `auto`; DLC\'s auto uses MPS only for ResNets, openfields\': CUDA, else MPS, else CPU'),
    DlcKey('runner.gpus', ('--ddp',),
           'DLC wraps the model in DataParallel in one process; openfields runs one process per GPU '
           '(torchrun or srun, see [hpc.md](hpc.md))'),
    DlcKey('resume_training_from', ('--resume',),
           'DLC loads the snapshot\'s weights (the optimizer state only if saved). `--resume PATH` continues '
           'the run exactly (optimizer, schedule, EMA, random state, position in the epoch); `--resume auto` '
           'takes the newest checkpoint of `--output`. New run from trained weights: `--checkpoint`'),
    DlcKey('load_scheduler_state_dict', ('--no-load-scheduler-state',),
           'DLC default true: on resume the scheduler state is restored; so does `--resume` by default. '
           'With `--no-load-scheduler-state` the schedule is built from the new `--lr*` flags and placed at '
           'the resumed step (to change `--lr-milestones` on resume)'),
    DlcKey('data.train.affine {p, rotation, scaling, translation}',
           ('--dlc-affine', '--dlc-affine-rotation', '--dlc-affine-scaling', '--dlc-affine-translation'),
           'DLC\'s bottom-up default: p 0.5, rotation 30, scaling [0.5, 1.25], translation 0 (p 0.9 when '
           'omitted). Off by default here, where OpenPifPaf\'s rotation (`--dlc-rotate`) and scale jitter are '
           'on; keypoints pushed out of the image become unlabelled as in DLC'),
    DlcKey('data.train.hflip', ('--dlc-hflip',),
           'DLC `true` is p 0.5 and swaps keypoints only when `symmetries` pairs are listed. openfields swaps '
           'body parts named left.../right... and flips with p 0.5 by default when there are such pairs '
           '(`--dlc-hflip 0`: off)'),
    DlcKey('data.train.covering', ('--dlc-covering',), 'DLC `true` is p 0.5; the flag is the probability'),
    DlcKey('data.train.gaussian_noise', ('--dlc-gaussian-noise',),
           'DLC `true` is a standard deviation of 12.75 (the bottom-up default) and a number is the standard '
           'deviation in 0-255 units, as for the flag; openfields default 0 (off)'),
    DlcKey('data.train.motion_blur', ('--dlc-motion-blur',),
           'DLC `true` (the bottom-up default) is p 0.5; the flag is the probability'),
    DlcKey('data.train.hist_eq', ('--dlc-hist-eq',), 'DLC `true` is p 0.5; the flag is the probability'),
    DlcKey('data.train.crop_sampling {width, height, max_shift, method}',
           ('--dlc-square-edge', '--dlc-crop-sampling', '--dlc-crop-max-shift'),
           'DLC\'s bottom-up default: 448 x 448, max_shift 0.1, hybrid. openfields crops are square (default '
           'edge 385; sides of k * 16 + 1 pixels keep field cells on pixels: 449 for 448) and the default '
           'method `people` crops around the annotations'),
    DlcKey('data.train.auto_padding', ('--dlc-auto-padding',),
           'DLC pads to a multiple of the divisor (HRNet: 32); openfields pads each side to k * N + 1 pixels, '
           'one N for both sides, the image at a random place'),
    DlcKey('data.train.resize {height, width, keep_ratio}', ('--dlc-resize',),
           'mind the order: `--dlc-resize WIDTH HEIGHT`. The ratio is always kept (DLC\'s `keep_ratio: '
           'true`); a plain resize has no equivalent'),
    DlcKey('data.train.collate: ResizeFromDataSizeCollate',
           ('--dlc-collate-scale', '--dlc-collate-short-side', '--dlc-collate-max-ratio',
            '--dlc-collate-multiple', '--dlc-collate-to-square', '--dlc-collate-max-shift',
            '--dlc-collate-max-size'),
           '{min_scale, max_scale} is `--dlc-collate-scale MIN MAX`, {min_short_side, max_short_side} '
           '`--dlc-collate-short-side`; sides are k * N + 1 pixels rather than multiples of `multiple_of`. '
           'Each loader worker draws its own sizes (DLC\'s workers repeat one sequence). '
           'ResizeFromListCollate has no equivalent'),
    DlcKey('model.backbone, net_type', ('--basenet', '--basenet-pretrained'),
           'DLC\'s `resnet_50` is timm\'s resnet50_gn (GroupNorm), stride 16; openfields\' `resnet50` is '
           'torchvision\'s (BatchNorm), stride 16. ImageNet weights come from the torch hub cache, never '
           'downloaded. HRNet, CSPNeXt, DLCRNet and RTMPose have no equivalent'),
    DlcKey('model.heads', ('--dlc-sigma', '--dlc-upsample'),
           'DLC trains heatmaps with location refinement (and PAFs for several animals); openfields trains '
           'composite fields (CIF, CAF). Their keypoint size: `--dlc-sigma`; a head stride of 8 instead of '
           '16: `--dlc-upsample 2`'),
    DlcKey('inference.eval.pcutoff', ('--dlc-pcutoff',),
           'DLC default 0.6 (its metrics during training hard-code 0.6); openfields default: `config.yaml`\'s '
           '`pcutoff`, else 0.6'),
    DlcKey('logger: WandbLogger (and the CSV log)', ('--debug-images', '--save-all'),
           'no Weights & Biases logger: every run writes a JSON-lines log, `<run>.log`, that '
           '`python -m openfields.logs` plots ([logs.md](logs.md)). DLC\'s `image_log_interval` images are closest to '
           'the debug plots, written with `--save-all`'),
)

# the example of a config file: a DeepLabCut project with DeepLabCut's resnet_50 optimizer, schedule, batch size, seed
EXAMPLE = {
    'dataset': 'dlc',
    'dlc-project': 'path/to/dlc-project',
    'dlc-affine': 0.5,
    'dlc-crop-sampling': 'hybrid',
    'basenet': 'resnet50',
    'batch-size': 8,
    'epochs': 200,
    'optimizer': 'adamw',
    'lr': 0.0005,
    'lr-schedule': 'milestones',
    'lr-milestones': [90, 120],
    'lr-values': [0.0001, 0.00001],
    'lr-warm-up-epochs': 0,
    'seed': 42,
}


class UnmappedFlags(ValueError):
    """Flags of the parser that :data:`GROUP_SECTIONS` / :data:`FLAG_SECTIONS` place in no section."""


PLUGIN_SECTION = 'plugin '  # + the plugin's name: the section of a plugin installed outside the repository


def outside_plugin_flags() -> dict[str, str]:
    """``{flag: plugin name}`` for the flags of the loaded plugins that are not in the repository: what
    their DataModules' ``cli`` adds (the one place a plugin adds flags), read from a scratch parser."""
    owners = {}
    for loaded in plugin.plugins():
        if loaded.source == 'in-repo':
            continue
        for dataset in loaded.datasets:
            scratch = argparse.ArgumentParser(add_help=False)
            DATAMODULES[dataset].cli(scratch)
            for action in scratch._actions:
                owners.update({option: loaded.name for option in action.option_strings})
    return owners


def section_of(action: argparse.Action, group_title: str, plugin_flags: dict[str, str] | None = None
               ) -> str | None:
    """The section of a flag: by flag, by group, by the outside plugin that adds it (``plugin_flags``,
    :func:`outside_plugin_flags`), else None (unmapped)."""
    for option in action.option_strings:
        if option in FLAG_SECTIONS:
            return FLAG_SECTIONS[option]
    if group_title in GROUP_SECTIONS:  # before the plugins: a plugin may reuse a group of the repository
        return GROUP_SECTIONS[group_title]
    for option in action.option_strings:
        if option in (plugin_flags or {}):
            return PLUGIN_SECTION + plugin_flags[option]
    if group_title.startswith('dataset '):
        return 'data'  # a DataModule of the repository
    return None


def sections(parser: argparse.ArgumentParser) -> dict[str, list[tuple[str, list[argparse.Action]]]]:
    """``{section: [(group title, its flags in that section), ...]}`` in parser order, the sections of
    :data:`SECTIONS` first, then one per plugin installed outside the repository; raises
    :class:`UnmappedFlags` naming every other flag without a section."""
    result: dict[str, list[tuple[str, list[argparse.Action]]]] = {section: [] for section in SECTIONS}
    plugin_flags = outside_plugin_flags()
    unmapped = []
    for group in parser._action_groups:
        by_section: dict[str, list[argparse.Action]] = {}
        for action in group._group_actions:
            if not action.option_strings:
                continue
            section = section_of(action, group.title, plugin_flags)
            if section is None:
                unmapped.append(f'{action.option_strings[-1]} (group {group.title!r})')
            else:
                by_section.setdefault(section, []).append(action)
        for section, actions in by_section.items():
            result.setdefault(section, []).append((group.title, actions))
    if unmapped:
        raise UnmappedFlags(f'flags in no section of the configuration reference: {", ".join(unmapped)}; '
                            'add their group to GROUP_SECTIONS (or each flag to FLAG_SECTIONS) in '
                            'tools/config_reference.py')
    return result


def _key_cell(keys: dict[str, argparse.Action]) -> typing.Callable[[argparse.Action], str]:
    """The config-file key of an action, with the form of its value where that is not one value."""
    def cell(action: argparse.Action) -> str:
        names = [name for name, a in keys.items() if a is action]
        if not names:
            return '(command line only)'
        if isinstance(action, argparse.BooleanOptionalAction):
            text = ', '.join(f'`{name}`' for name in names) + ' (true/false)'
        elif action.nargs == 0:
            text = f'`{names[0]}` (true)'
        elif action.nargs in ('*', '+') or isinstance(action.nargs, int):
            text = f'`{names[0]}` (list)'
        else:
            text = f'`{names[0]}`'
        if action.dest in config.NOT_RECORDED:
            text += ', not recorded in `<run>.config.json`'
        return text
    return cell


def _intro() -> list[str]:
    example = '{\n' + ',\n'.join(f'  {json.dumps(k)}: {json.dumps(v)}' for k, v in EXAMPLE.items()) + '\n}'
    return [
        '# Configuration reference', '',
        'Generated by `python -m tools.config_reference > docs/configuration.md` (`make docs`) from the '
        'parser of `python -m openfields.train`: every training flag with its default, its meaning and its key '
        'in a config file, by section: [data](#data), [model](#model), [runner](#runner), '
        '[train settings](#train-settings), [logging](#logging). Users of DeepLabCut 3: '
        '[Coming from DeepLabCut](#coming-from-deeplabcut) maps `pytorch_config.yaml` to these flags. '
        '[cli.md](cli.md) lists the flags of every command, [training.md](training.md) explains them. Within a '
        'section, each table holds the flags of one group of `--help` and is named after it.', '',
        '## Config files', '',
        '`--config FILE` reads flag values from a JSON object, or from a YAML mapping in a `.yaml` / `.yml` '
        'file (needs PyYAML). Its keys are the ones in the tables below, the long flag names without the '
        'leading `--` (`_` may replace `-`: `lr-decay` and `lr_decay` are one key). Values are what the flag '
        'takes: a number or a string; a list for a flag with several values; for a switch, `true` when it is '
        'given (`"quiet": true`, `"dlc-no-augmentation": true`) and for a `--x` / `--no-x` pair `true` or '
        '`false` (`"nesterov": false` is `--no-nesterov`); `null` for the flag\'s unset default.', '',
        'The file replaces the defaults and **the command line overrides the file**: '
        '`python -m openfields.train --config run.json --lr 0.001` trains with 0.001 whatever the file says. '
        'A flag on the command line also drops the file\'s value of a flag it excludes (`--checkpoint` drops '
        'a `basenet`). An unknown key stops the run with one line naming it and the nearest valid keys.', '',
        'Every run writes `<run>.config.json` next to its checkpoint `<run>` (the `--output` path) with every '
        'flag\'s resolved value, a drawn `--seed` included; `--config <run>.config.json --output new.pkl` '
        'trains the same run again. `output` is not recorded, so a rerun never overwrites the run it came '
        'from.', '',
        'An example, `run.json`: a DeepLabCut project trained with the optimizer, schedule, batch size and seed '
        'of DeepLabCut\'s resnet_50 defaults and two of its augmentations:', '',
        '```json', example, '```', '',
    ]


def _dlc_table() -> list[str]:
    def flag_cell(flags):
        if not flags:
            return '(none)'
        return ', '.join(f'`{f}`' for f in flags)
    lines = [
        '## Coming from DeepLabCut', '',
        'DeepLabCut 3 (PyTorch engine) configures a training run in `pytorch_config.yaml`. The openfields flags '
        'below do the same job; the notes say where the meaning or the default differs. Augmentation flags are '
        'those of the `dlc` dataset (`--dataset dlc`, see [dlc.md](dlc.md)); every other dataset has the same '
        'ones with its own prefix.', '',
        '| `pytorch_config.yaml` | openfields | note |', '| --- | --- | --- |',
    ]
    lines += [f'| `{entry.key}` | {flag_cell(entry.flags)} | {entry.note} |' for entry in DLC_KEYS]
    return lines + ['']


def _section_heading(section: str) -> list[str]:
    if section in SECTIONS:
        return [f'## {section.capitalize()}', '', SECTIONS[section], '']
    name = section[len(PLUGIN_SECTION):]
    version = plugin.versions().get(name) or 'no version'
    return [f'## Plugin `{name}`', '',
            f'The flags of the plugin `{name}` ({version}), installed outside openfields: see its own '
            'documentation. Its config keys work like those above.', '']


def markdown(parser: argparse.ArgumentParser | None = None) -> str:
    parser = parser or train.parser()
    by_section = sections(parser)
    key_cell = _key_cell(config.keys(parser))
    lines = _intro()
    for section, groups in by_section.items():
        lines += _section_heading(section)
        for title, actions in groups:
            lines += [f'### {title}', '',
                      *cli_reference.table(actions, ('config key', key_cell)), '']
    lines += _dlc_table()
    return '\n'.join(lines)


def main():
    try:
        text = markdown()
    except UnmappedFlags as error:
        sys.exit(f'tools.config_reference: {error}')
    print(text, end='')


if __name__ == '__main__':
    main()
