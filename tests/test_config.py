"""``--config FILE``: flag values from JSON / YAML, the command line on top, and ``<run>.config.json``."""

import argparse
import json
import sys

import pytest

from openfields import config, train

TINY = ['--dataset', 'synthetic', '--synthetic-train-images', '2', '--synthetic-val-images', '2',
        '--synthetic-image-size', '80', '--synthetic-square-edge', '65', '--basenet', 'shufflenetv2k16',
        '--batch-size', '2', '--epochs', '1', '--loader-workers', '0', '--lr', '1e-3']


def write_json(path, mapping):
    path.write_text(json.dumps(mapping))
    return str(path)


def test_keys_are_long_flag_names_with_or_without_dashes_and_underscores(tmp_path):
    path = write_json(tmp_path / 'c.json', {'--lr': 0.02, 'lr_decay': [5, 8], 'batch-size': 3,
                                             'cocokp-train-annotations': 'a.json'})
    args = train.cli(['--config', path])
    assert (args.lr, args.lr_decay, args.batch_size) == (0.02, [5.0, 8.0], 3)
    assert args.cocokp_train_annotations == 'a.json'
    assert args.momentum == 0.9  # keys not in the file keep their defaults


def test_command_line_flags_override_the_file(tmp_path):
    path = write_json(tmp_path / 'c.json', {'lr': 0.02, 'epochs': 7})
    args = train.cli(['--lr', '0.5', '--config', path])
    assert (args.lr, args.epochs) == (0.5, 7)


def test_switches_take_true_for_given_and_false_for_not_given(tmp_path):
    path = write_json(tmp_path / 'c.json', {'cocokp-no-augmentation': True, 'nesterov': False, 'quiet': True,
                                             'encoder-suppress-selfhidden': False, 'synthetic-extended-scale': False})
    args = train.cli(['--config', path])
    assert args.cocokp_augmentation is False and args.nesterov is False and args.quiet is True
    assert args.encoder_suppress_selfhidden is False and args.synthetic_extended_scale is False
    args = train.cli(['--config', write_json(tmp_path / 'd.json', {'no-nesterov': False})])
    assert args.nesterov is True
    # a flag with an optional value: true is the flag alone, false its --no- partner
    given = train.cli(['--config', write_json(tmp_path / 'e.json', {'basenet-pretrained': True})])
    assert given.basenet_pretrained == 'auto'
    refused = train.cli(['--config', write_json(tmp_path / 'f.json', {'basenet-pretrained': False})])
    assert refused.basenet_pretrained is False


def test_yaml_files_are_read_like_json(tmp_path):
    pytest.importorskip('yaml')
    path = tmp_path / 'c.yaml'
    path.write_text('lr: 0.05\nlr-decay: [3, 4]\ncocokp-no-augmentation: true\nseed: null\n')
    args = train.cli(['--config', str(path)])
    assert (args.lr, args.lr_decay, args.cocokp_augmentation, args.seed) == (0.05, [3.0, 4.0], False, None)


def test_yaml_without_pyyaml_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'yaml', None)  # import yaml raises ImportError
    path = tmp_path / 'c.yml'
    path.write_text('lr: 0.05\n')
    with pytest.raises(config.ConfigError, match='needs PyYAML'):
        config.read(path)


def test_a_flag_on_the_command_line_clears_its_mutually_exclusive_partner_from_the_file(tmp_path):
    path = write_json(tmp_path / 'c.json', {'basenet': 'resnet18'})
    args = train.cli(['--config', path, '--checkpoint', 'model.pkl'])
    assert (args.checkpoint, args.basenet) == ('model.pkl', None)


def exit_message(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        train.cli(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_unknown_keys_are_an_error_listing_them_with_the_nearest_valid_names(tmp_path, capsys):
    path = write_json(tmp_path / 'c.json', {'lr-decay-factr': 0.5, 'bach_size': 2, 'runner': {}, 'lr': 1e-3})
    message = exit_message(['--config', path], capsys)
    assert f'{path}: unknown keys: ' in message
    assert 'lr-decay-factr (did you mean lr-decay-factor' in message
    assert 'bach_size (did you mean batch-size' in message
    assert 'runner (no flag with a similar name)' in message
    assert "'lr'" not in message and ' lr ' not in message


@pytest.mark.parametrize('mapping, message', [
    ({'lr': 'fast'}, "key 'lr': invalid value 'fast'"),
    ({'epochs': 2.5}, "key 'epochs': invalid value 2.5"),
    ({'optimizer': 'rmsprop'}, "key 'optimizer': 'rmsprop' is not one of sgd, adam, adamw"),
    ({'synthetic-people': [1, 2, 3]}, "key 'synthetic-people': takes 2 values, got 3"),
    ({'quiet': 'yes'}, "key 'quiet': a switch takes true"),
    ({'lr': [1, 2]}, "key 'lr': takes one value"),
    ({'nesterov': True, 'no-nesterov': True}, "keys 'nesterov' and 'no-nesterov' contradict"),
])
def test_bad_values_name_the_file_and_the_key(tmp_path, capsys, mapping, message):
    path = write_json(tmp_path / 'c.json', mapping)
    assert message in exit_message(['--config', path], capsys)


def test_unreadable_files_are_one_line_errors(tmp_path, capsys):
    assert '--config: file not found: missing.json' in exit_message(['--config', 'missing.json'], capsys)
    bad = tmp_path / 'bad.json'
    bad.write_text('{"lr": ')
    assert f'{bad}: not valid JSON' in exit_message(['--config', str(bad)], capsys)
    listed = write_json(tmp_path / 'list.json', ['lr', 1])
    assert f'{listed}: must hold a mapping' in exit_message(['--config', listed], capsys)


@pytest.fixture(scope='module')
def recorded_run(tmp_path_factory):
    """A one-epoch run with a drawn seed; returns its parsed args (resolved by the run) and output path."""
    tmp = tmp_path_factory.mktemp('config-run')
    out = tmp / 'model.pkl'
    args = train.cli(TINY + ['--synthetic-cache-dir', str(tmp / 'cache'), '--output', str(out),
                             '--lr-schedule', 'milestones', '--lr-milestones', '1', '--lr-values', '1e-4',
                             '--synthetic-no-augmentation', '--no-nesterov'])
    train.run(args)
    return args, out


def test_every_run_writes_its_resolved_config_next_to_its_checkpoints(recorded_run):
    args, out = recorded_run
    recorded = json.loads(out.with_name('model.pkl.config.json').read_text())
    assert recorded['seed'] == args.seed and isinstance(args.seed, int)  # the drawn seed, not null
    assert recorded['lr-milestones'] == [1] and recorded['lr-values'] == [1e-4]
    assert recorded['synthetic-no-augmentation'] is True and recorded['nesterov'] is False
    assert recorded['momentum'] == 0.9  # defaults are recorded too
    assert 'output' not in recorded and 'config' not in recorded
    assert not list(out.parent.glob('.*.tmp'))


def test_the_recorded_config_reproduces_the_run(recorded_run, tmp_path):
    args, out = recorded_run
    again = train.cli(['--config', f'{out}.config.json', '--output', str(tmp_path / 'again.pkl')])
    ignored = ('argv', 'output', 'config')
    assert {k: v for k, v in vars(again).items() if k not in ignored} == \
        {k: v for k, v in vars(args).items() if k not in ignored}
    # what the reproduced run would record (writing it is the run's first step after building the model)
    assert config.resolved(train.parser(), again) == json.loads(out.with_name('model.pkl.config.json').read_text())


# --- the parser every CLI uses (config.ArgumentParser, config.HelpFormatter) ---------------------------------

def cli_parsers():
    from openfields import eval as eval_cli, logs, predict
    return {'train': train.parser(), 'eval': eval_cli.parser(), 'predict': predict.parser(), 'logs': logs.parser()}


@pytest.mark.parametrize('name, argv', [('train', []), ('eval', []), ('predict', ['x.png', '--checkpoint', 'c.pkl']),
                                        ('logs', ['run.pkl.log'])])
def test_a_usage_error_is_the_error_and_a_help_hint_not_the_whole_usage(name, argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_parsers()[name].parse_args(argv + ['--bogus'])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f'python -m openfields.{name}: error: unrecognized arguments: --bogus',
                     f"try 'python -m openfields.{name} --help'"]


def test_a_bad_value_of_train_is_two_lines_through_the_config_path_too(tmp_path, capsys):
    for argv in (['--epochs', 'many'], ['--config']):
        with pytest.raises(SystemExit) as exit_info:
            train.cli(argv)
        assert exit_info.value.code == 2
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == 2 and lines[0].startswith('python -m openfields.train: error: argument'), lines


def _help_of(parser, action) -> str:
    return ' '.join(parser._get_formatter()._expand_help(action).split())


def test_no_switch_claims_a_default_in_help():
    """A store_false flag's default is its destination's, True: '(default: True)' would say it is on."""
    for name, parser in cli_parsers().items():
        switches = [a for a in parser._actions if isinstance(a, argparse._StoreConstAction) and a.help]
        assert switches, name
        claims = [a.option_strings[0] for a in switches
                  if '(default: True)' in _help_of(parser, a) or '(default: False)' in _help_of(parser, a)]
        assert claims == [], name


def test_flags_that_turn_something_off_do_not_read_as_on_in_help():
    parsers = cli_parsers()
    flags = {'--cocokp-no-augmentation': 'train', '--cocokp-no-color-jitter': 'train',
             '--coco-no-eval-annotation-filter': 'eval', '--no-reverse-match': 'predict'}
    for flag, name in flags.items():
        parser = parsers[name]
        (action,) = [a for a in parser._actions if flag in a.option_strings]
        assert action.default is True and 'True' not in _help_of(parser, action), flag
        assert flag in parser.format_help()


def test_flags_with_values_still_show_their_defaults():
    parser = train.parser()
    (epochs,) = [a for a in parser._actions if '--epochs' in a.option_strings]
    assert f'(default: {epochs.default})' in _help_of(parser, epochs)
