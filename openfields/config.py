"""Run configuration files: ``--config FILE`` in, ``<run>.config.json`` out.

A config file is a JSON object (or, when PyYAML is installed, a YAML mapping in a ``.yaml`` / ``.yml``
file, read as YAML 1.2 like DeepLabCut reads its files: ``1e-4`` is a number, ``yes`` a string) whose keys
are the long flag names of the command line, with or without the leading dashes and with ``-`` or ``_``
(``lr-decay``, ``--lr-decay`` and ``lr_decay`` are one key). Values are what the flag takes:

* a number or a string for a flag with one value, a list for a flag with several (``"lr-decay": [130, 140]``;
  a single value is taken as a list of one);
* ``true`` / ``false`` for a switch: whether it is given (``"cocokp-no-augmentation": true`` is
  ``--cocokp-no-augmentation``; ``"nesterov": false`` is ``--no-nesterov``);
* ``null`` for the flag's unset value (``"seed": null`` draws a seed).

The file replaces the defaults and the command line overrides the file; a flag given on the command line
also clears the file's value of the flags it is mutually exclusive with (``--checkpoint`` on the command
line drops a ``basenet`` from the file). Unknown keys are an error that names the nearest valid ones.

A DeepLabCut 3 ``pytorch_config.yaml`` (nested sections ``data``, ``runner``, ``train_settings``, ...) is
read as it is: :mod:`openfields.deeplabcut.pytorch_config` translates it into flag values; its keys without a
counterpart are reported in one warning line and ignored, or are an error with ``--strict-config``. ``--config dlc`` is the file DeepLabCut wrote for ``--dlc-project`` and
``--dlc-shuffle``.

:func:`write` records a run: every flag of the parser with its resolved value, except :data:`NOT_RECORDED`
(``output``: a run started from a recorded config never overwrites the run it came from), so
``--config <run>.config.json`` trains the same run again.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import json
import logging
import os
import pathlib
import re
import textwrap

from . import outputs

LOG = logging.getLogger(__name__)
NOT_RECORDED = ('config', 'output', 'strict_config')
DLC_PROJECT_CONFIG = 'dlc'  # --config dlc: the project's pytorch_config.yaml of --dlc-shuffle
_UNSET = object()


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and the key."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` with each flag's default, except for switches (``store_true``, ``store_false``,
    ``store_const``): their default is the destination's value, so ``--no-x`` (store_false) would read
    "(default: True)", the opposite of what giving or not giving the flag does."""

    def _get_help_string(self, action):
        if isinstance(action, (argparse._StoreConstAction, argparse._AppendConstAction)):
            return action.help
        return super()._get_help_string(action)

    def _split_lines(self, text, width):
        """Lines broken at spaces only: a flag named in a help text (``--dlc-heatmap-loss``) stays whole."""
        return textwrap.wrap(' '.join(text.split()), width, break_on_hyphens=False)


class ArgumentParser(argparse.ArgumentParser):
    """The parser of every openfields CLI: :class:`HelpFormatter` by default, and a usage error printed
    as the error and a ``--help`` hint, not the whole usage (hundreds of lines for train)."""

    def __init__(self, *args, formatter_class=HelpFormatter, **kwargs):
        super().__init__(*args, formatter_class=formatter_class, **kwargs)

    def error(self, message):
        self.exit(2, f'{self.prog}: error: {message}\ntry \'{self.prog} --help\'\n')


def cli(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--config', default=None, metavar='FILE',
                        help='JSON (or YAML) file of flag values keyed by the long flag names, or DeepLabCut 3\'s '
                             'pytorch_config.yaml as it is (dlc: the one DeepLabCut wrote for --dlc-project and '
                             '--dlc-shuffle); flags on the command line override it. Every training run writes '
                             '<output>.config.json')
    parser.add_argument('--strict-config', default=False, action='store_true',
                        help='a key of a DeepLabCut pytorch_config.yaml without an openfields counterpart is an '
                             'error (default: listed in one line and ignored)')


def read(path: str | os.PathLike) -> dict:
    """The mapping stored in a JSON or YAML file."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ConfigError(f'--config: file not found: {path}')
    text = path.read_text(encoding='utf-8')
    if path.suffix.lower() in ('.yaml', '.yml'):
        data = _read_yaml(text, path)
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f'{path}: not valid JSON ({error.msg} at line {error.lineno} column '
                              f'{error.colno})') from None
    if not isinstance(data, dict):
        raise ConfigError(f'{path}: must hold a mapping of flag names to values, not {type(data).__name__}')
    return data


def _read_yaml(text: str, path: pathlib.Path):
    try:
        import yaml  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise ConfigError(f'{path}: reading YAML needs PyYAML (pip install pyyaml); or write the config '
                          'as JSON') from None
    try:
        return yaml.load(text, Loader=_yaml12_loader(yaml))  # a SafeLoader: builds no Python objects
    except yaml.YAMLError as error:
        raise ConfigError(f'{path}: not valid YAML ({" ".join(str(error).split())})') from None


# YAML 1.2 core schema: a float has a dot or an exponent (a plain [-+]?[0-9]+ matches PyYAML's int resolver
# first, which is tried before this one)
YAML12_FLOAT = re.compile(r'^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?'
                          r'|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$')
YAML12_BOOL = re.compile(r'^(?:true|True|TRUE|false|False|FALSE)$')
_YAML_FLOAT_TAG, _YAML_BOOL_TAG = 'tag:yaml.org,2002:float', 'tag:yaml.org,2002:bool'


@functools.cache
def _yaml12_loader(yaml):
    """PyYAML's SafeLoader with YAML 1.2's floats and booleans, because DeepLabCut reads its files as YAML
    1.2 (ruamel.yaml, ``YAML(typ='safe')``): there ``1e-4``, ``5e-05`` and ``1E3`` are floats and only
    ``true`` / ``false`` are booleans, while YAML 1.1 (PyYAML's) reads the first as strings (no dot) and
    ``yes`` / ``no`` / ``on`` / ``off`` as booleans. Every config file is read this way, DeepLabCut's and
    openfields' alike: ``lr: 1e-4`` means the same in both, and a switch is ``true`` or ``false``. Ints,
    nulls and timestamps stay PyYAML's."""
    class Yaml12SafeLoader(yaml.SafeLoader):  # pylint: disable=too-many-ancestors
        pass

    Yaml12SafeLoader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_YAML_FLOAT_TAG, _YAML_BOOL_TAG)]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    Yaml12SafeLoader.add_implicit_resolver(_YAML_BOOL_TAG, YAML12_BOOL, list('tTfF'))
    Yaml12SafeLoader.add_implicit_resolver(_YAML_FLOAT_TAG, YAML12_FLOAT, list('-+.0123456789'))
    return Yaml12SafeLoader


def _is_recordable(action: argparse.Action) -> bool:
    return (bool(action.option_strings) and action.dest != argparse.SUPPRESS
            and not isinstance(action, (argparse._HelpAction, argparse._VersionAction)))


def _flag_actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Long flag name without dashes -> action."""
    return {option[2:]: action for action in parser._actions if _is_recordable(action)
            for option in action.option_strings if option.startswith('--')}


def keys(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """The keys a config file may hold -> their actions: the long flag names without the dashes (the file
    may write ``_`` for ``-``), every flag but ``--config`` and ``--help`` / ``--version``."""
    return {name: action for name, action in _flag_actions(parser).items() if name != 'config'}


def _normalise(key: str) -> str:
    return str(key).lstrip('-').replace('_', '-')


def values_from(parser: argparse.ArgumentParser, mapping: dict, source: str) -> dict:
    """``{dest: value}`` of a config mapping, converted and checked like the command line would."""
    actions = keys(parser)
    unknown = [key for key in mapping if _normalise(key) not in actions]
    if unknown:
        raise ConfigError(f'{source}: unknown keys: {", ".join(_suggestion(str(k), actions) for k in unknown)}')
    values, origin = {}, {}
    for key, value in mapping.items():
        name = _normalise(key)
        if value is False and actions[name].nargs == '?' and f'no-{name}' in actions:  # basenet-pretrained: false
            name, value = f'no-{name}', True
        action = actions[name]
        converted = _dest_value(action, name, value, f'{source}: key {key!r}')
        if action.dest in values and values[action.dest] != converted:
            raise ConfigError(f'{source}: keys {origin[action.dest]!r} and {key!r} contradict each other')
        values[action.dest], origin[action.dest] = converted, key
    return values


def _suggestion(key: str, actions: dict) -> str:
    close = difflib.get_close_matches(_normalise(key), list(actions), n=3, cutoff=0.6)
    return f'{key} (did you mean {" or ".join(close)}?)' if close else f'{key} (no flag with a similar name)'


def _dest_value(action: argparse.Action, name: str, value, where: str):
    if isinstance(action, argparse.BooleanOptionalAction):
        if value is None and action.default is None:  # a tri-state switch left unset (e.g. "as the pose run")
            return None
        if not isinstance(value, bool):
            raise ConfigError(f'{where}: a switch takes true or false, got {value!r}')
        return value if f'--{name}' == action.option_strings[0] else not value  # '--no-x': the negation
    if action.nargs == 0:  # store_true / store_false / store_const
        if not isinstance(value, bool):
            raise ConfigError(f'{where}: a switch takes true (given) or false (not given), got {value!r}')
        if value:
            return action.const
        return (not action.const) if isinstance(action.const, bool) else action.default
    if value is None:
        return None
    if isinstance(action, argparse._AppendAction) and action.nargs is None:  # a repeatable flag: a list
        return [_convert(action, v, where) for v in (value if isinstance(value, list) else [value])]
    if action.nargs == '?' and value is True:  # the flag given alone
        return action.const
    if action.nargs in (None, '?'):
        if isinstance(value, list):
            raise ConfigError(f'{where}: takes one value, got the list {value!r}')
        return _convert(action, value, where)
    values = value if isinstance(value, list) else [value]
    if not values and action.default == []:  # the flag's own default (a recorded config holds it)
        return []
    if (isinstance(action.nargs, int) and len(values) != action.nargs) or (action.nargs == '+' and not values):
        expected = action.nargs if isinstance(action.nargs, int) else 'at least 1'
        raise ConfigError(f'{where}: takes {expected} values, got {len(values)}')
    return [_convert(action, v, where) for v in values]


def _convert(action: argparse.Action, value, where: str):
    if isinstance(value, (list, dict)):
        raise ConfigError(f'{where}: invalid value {value!r}')
    if action.nargs == '?' and value == action.const:
        return value
    if isinstance(value, bool) and action.type in (int, float):
        raise ConfigError(f'{where}: takes a number, got {value!r}')
    try:
        converted = action.type(str(value)) if action.type is not None else str(value)
    except (TypeError, ValueError, argparse.ArgumentTypeError) as error:
        raise ConfigError(f'{where}: invalid value {value!r} ({error})') from None
    if action.choices is not None and converted not in action.choices:
        raise ConfigError(f'{where}: {value!r} is not one of {", ".join(map(str, action.choices))}')
    return converted


def _command_line_dests(parser: argparse.ArgumentParser, argv) -> set[str]:
    """The dests that ``argv`` sets: parse into a namespace pre-filled with a marker no flag can produce."""
    namespace = argparse.Namespace(**{a.dest: _UNSET for a in parser._actions if a.dest != argparse.SUPPRESS})
    parsed = parser.parse_args(argv, namespace=namespace)
    return {dest for dest, value in vars(parsed).items() if value is not _UNSET}


def _pre_parsed(argv, prog: str) -> argparse.Namespace:
    """The flags that decide how a config file is read, before the full parse."""
    pre = ArgumentParser(prog=prog, add_help=False, allow_abbrev=False)
    pre.add_argument('--config', default=None)
    pre.add_argument('--strict-config', action='store_true')
    pre.add_argument('--dataset', default=None)
    pre.add_argument('--dlc-project', default=None)
    pre.add_argument('--dlc-shuffle', type=int, default=1)
    return pre.parse_known_args(argv)[0]


def _config_values(parser: argparse.ArgumentParser, pre: argparse.Namespace, given: set[str] = frozenset()
                   ) -> tuple[dict, list[str]]:
    """``{dest: value}`` of the config file and the DeepLabCut keys it ignores; ``given``: the dests the command
    line sets (a DeepLabCut file's ``model.heads`` gives way to ``--<dataset>-heads`` there)."""
    from .deeplabcut import pytorch_config as dlc_config  # pylint: disable=import-outside-toplevel
    path = pre.config
    if path == DLC_PROJECT_CONFIG and not pathlib.Path(path).exists():
        if pre.dlc_project is None:
            raise ConfigError('--config dlc: needs --dlc-project (and --dlc-shuffle, default 1)')
        path = dlc_config.find_pytorch_config(pre.dlc_project, pre.dlc_shuffle)
    mapping = read(path)
    if not dlc_config.is_dlc_config(mapping, keys(parser)):
        return values_from(parser, mapping, str(path)), []
    prefixes = pre.dataset.split('-') if pre.dataset else ['dlc']
    translation = dlc_config.translate(mapping, str(path), prefixes, given=given)
    known = keys(parser)
    ignored = translation.ignored + [f'{key} (not a flag of {parser.prog})' for key in translation.values
                                     if _normalise(key) not in known]
    if ignored and pre.strict_config:
        raise ConfigError(f'{path}: --strict-config: keys without an openfields counterpart: {", ".join(ignored)}')
    mapping = {k: v for k, v in translation.values.items() if _normalise(k) in known}
    return values_from(parser, mapping, str(path)), [f'{path}: ' + ', '.join(ignored)] if ignored else []


def parse_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """``parser.parse_args(argv)`` with the values of ``--config FILE`` as defaults (changes the parser's
    defaults). A bad config file exits with status 2 and one line naming the file and the key; the keys
    of a DeepLabCut file without a counterpart are one warning line."""
    pre = _pre_parsed(argv, parser.prog)
    if pre.config is None:
        return parser.parse_args(argv)
    given = _command_line_dests(parser, argv)
    try:
        values, ignored = _config_values(parser, pre, given)
    except ValueError as error:  # ConfigError, DlcConfigError
        parser.exit(2, f'{parser.prog}: error: {error}\n')
    for group in parser._mutually_exclusive_groups:
        dests = {action.dest for action in group._group_actions}
        if dests & given:
            for dest in dests - given:
                values.pop(dest, None)
    parser.set_defaults(**values)
    for line in ignored:
        LOG.warning('ignored, no openfields counterpart (--strict-config: an error): %s', line)
    return parser.parse_args(argv)


def resolved(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict:
    """``{long flag name: value}`` of every flag (one key per destination), the form :func:`parse_args`
    reads back; the :data:`NOT_RECORDED` flags are left out."""
    by_dest: dict[str, list[argparse.Action]] = {}
    for action in parser._actions:
        if _is_recordable(action) and action.dest not in NOT_RECORDED and hasattr(args, action.dest):
            by_dest.setdefault(action.dest, []).append(action)
    result = {}
    for dest, actions in by_dest.items():
        value = getattr(args, dest)
        stores = [a for a in actions if a.nargs != 0]
        if stores:
            result[_long_name(stores[0])] = list(value) if isinstance(value, tuple) else value
        elif isinstance(actions[0], argparse.BooleanOptionalAction):  # None: unset, when that is its default
            result[_long_name(actions[0])] = None if value is None and actions[0].default is None else bool(value)
        else:
            result[_long_name(actions[0])] = value == actions[0].const
    return result


def _long_name(action: argparse.Action) -> str:
    return next(option[2:] for option in action.option_strings if option.startswith('--'))


def write(path: str | os.PathLike, parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Write :func:`resolved` as JSON atomically."""
    outputs.write_text(path, json.dumps(resolved(parser, args), indent=1, default=str) + '\n')
