"""Configuration reference, generated from the training parser: ``python -m tools.config_reference``.

``docs/configuration.md`` is this module's output: how ``--config FILE`` works, every flag of
``python -m openfields.train`` with its default, meaning and config-file key in one table per section
(:data:`SECTIONS`), and DeepLabCut's ``pytorch_config.yaml`` keys mapped to flags (:data:`DLC_KEYS`, from
:mod:`openfields.deeplabcut.pytorch_config`, which also translates such a file).

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
from openfields.deeplabcut import pytorch_config as dlc_config

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
    'top-down': 'Top-down mode (`--method td`, [topdown.md](topdown.md)): the detector, its training run, the '
                'boxes of the individuals and the crops the pose model reads.',
}

# argparse group title -> section (the titles of --help)
GROUP_SECTIONS = {
    'options': 'runner',
    'top-down': 'top-down',
    'top-down boxes': 'top-down',
    'detector (top-down mode)': 'top-down',
    'detector training (top-down mode)': 'top-down',
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
    'DeepLabCut snapshot': 'model',
    'losses': 'train settings',
    'optimizer': 'train settings',
    'learning rate schedule': 'train settings',
    'trainer': 'train settings',
    'debug plots': 'logging',
    'loggers': 'logging',
    'show': 'logging',
    'resume': 'runner',
    'snapshots': 'runner',
    'scoring': 'runner',
    'distributed (--ddp)': 'runner',
    'accelerate (precision, memory layout, compilation)': 'runner',
}

# flag -> section, for flags whose group's section is not theirs
FLAG_SECTIONS = {
    '--method': 'top-down',
    '--quiet': 'logging',
    '--batch-size': 'train settings',
    '--batchnorm-eps': 'train settings',
    '--batchnorm-momentum': 'train settings',
    '--val-interval': 'runner',
    '--val-batches': 'runner',
    '--display-interval': 'logging',
    '--eval-interval': 'runner',
    '--strict-config': 'runner',  # declared with the trainer's flags; decides snapshots like the rest of runner
}

# DeepLabCut's pytorch_config.yaml keys: the table that also translates them (--config pytorch_config.yaml)
DLC_KEYS = dlc_config.DLC_KEYS

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
        '[train settings](#train-settings), [logging](#logging), [top-down](#top-down). Users of DeepLabCut 3: '
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
        'DeepLabCut 3 (PyTorch engine) configures a training run in `pytorch_config.yaml`. `--config '
        'pytorch_config.yaml` reads that file as it is (`--config dlc`: the one DeepLabCut wrote under '
        '`--dlc-project` for `--dlc-shuffle`) and translates each key below into the flags beside it (the '
        'command line still overrides them); keys without a counterpart are listed in one warning line and '
        'ignored, or stop the run with `--strict-config`. The notes say where the meaning or the default '
        'differs. Augmentation flags are those of the `dlc` dataset (`--dataset dlc`, the default of a '
        'DeepLabCut file, see [dlc.md](dlc.md)); with `--dataset NAME` they go to that dataset\'s flags.', '',
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
