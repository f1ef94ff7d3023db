"""Plugin discovery: in-repo plugins, openfields_* modules and entry points; failures; the listing."""

import pathlib
import runpy
import sys

import pytest

from openfields import plugin, train
from openfields.datasets import DATAMODULES
from openfields.decoder import factory as decoder_factory
from openfields.network import basenets
from openfields.training.log import read

EXAMPLE_PLUGIN_DIR = pathlib.Path(__file__).parent / 'plugin_example'


@pytest.fixture(autouse=True)
def fresh_plugin_state(monkeypatch):
    """Each test loads plugins as a new process does (no datasets yet, the built-in basenets); what its
    plugins register is gone afterwards."""
    for name in ('_loaded', '_plugins', '_failures'):
        monkeypatch.setattr(plugin, name, {})
    registries = [DATAMODULES, basenets.BASENETS, basenets.CONFIG_FROM_ARGS, decoder_factory.DECODERS]
    saved = [dict(registry) for registry in registries]
    DATAMODULES.clear()
    yield
    for registry, content in zip(registries, saved):
        registry.clear()
        registry.update(content)


def test_in_repo_plugins_register_their_datamodules():
    plugin.register_all()
    assert {'cocokp', 'synthetic'} <= set(DATAMODULES)
    assert {'openfields.plugins.cocokp', 'openfields.plugins.synthetic'} <= set(plugin.versions())


def test_prefixed_module_on_the_path_is_registered(tmp_path, monkeypatch):
    (tmp_path / 'openfields_testplugin.py').write_text(
        'CALLS = []\n'
        '__version__ = "9.9"\n'
        'def register():\n'
        '    CALLS.append(1)\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugin, '_loaded', {})
    loaded = plugin.register_all()
    assert loaded['openfields_testplugin'] == '9.9'
    assert sys.modules['openfields_testplugin'].CALLS == [1]
    plugin.register_all()  # idempotent
    assert sys.modules['openfields_testplugin'].CALLS == [1]


def test_broken_external_plugin_is_reported_and_skipped(tmp_path, monkeypatch, caplog):
    (tmp_path / 'openfields_broken.py').write_text('raise RuntimeError("boom")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugin, '_loaded', {})
    loaded = plugin.register_all()
    assert 'openfields_broken' not in loaded
    assert 'openfields.plugins.cocokp' in loaded
    assert 'openfields_broken failed to load: boom' in caplog.text


def test_entry_point_plugins_are_registered(tmp_path, monkeypatch):
    package = tmp_path / 'ep_plugin_pkg.py'
    package.write_text('CALLS = []\ndef register():\n    CALLS.append("ep")\n')
    dist = tmp_path / 'ep_plugin_pkg-1.0.dist-info'
    dist.mkdir()
    (dist / 'METADATA').write_text('Metadata-Version: 2.1\nName: ep-plugin-pkg\nVersion: 1.0\n')
    (dist / 'entry_points.txt').write_text('[openfields.plugins]\nmine = ep_plugin_pkg\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugin, '_loaded', {})
    loaded = plugin.register_all()
    assert 'ep_plugin_pkg' in loaded
    assert sys.modules['ep_plugin_pkg'].CALLS == ['ep']


def test_plugin_failing_half_way_is_reported_by_name_and_leaves_nothing_behind(tmp_path, monkeypatch):
    (tmp_path / 'openfields_halfway.py').write_text(
        'from openfields.datasets import DataModule, register_datamodule\n'
        'class Half(DataModule):\n'
        '    name = "half"\n'
        'def register():\n'
        '    register_datamodule(Half)\n'
        '    raise ImportError("needs a library that is not installed")\n')
    (tmp_path / 'openfields_fine.py').write_text('__version__ = "2.0"\ndef register():\n    pass\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = plugin.register_all()
    assert plugin.failures() == {'openfields_halfway': 'ImportError: needs a library that is not installed'}
    assert 'half' not in DATAMODULES
    assert loaded['openfields_fine'] == '2.0' and 'openfields.plugins.cocodet' in loaded


def test_module_without_register_is_reported(tmp_path, monkeypatch):
    (tmp_path / 'openfields_nothing.py').write_text('VALUE = 1\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    assert 'openfields_nothing' not in plugin.register_all()
    assert plugin.failures() == {'openfields_nothing': 'AttributeError: module openfields_nothing has no '
                                                       'register() function'}


def test_example_plugin_is_discovered_shows_its_flags_and_trains_one_epoch(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE_PLUGIN_DIR))
    help_text = train.parser().format_help()
    assert '--squares-image-size' in help_text and 'squarenet' in help_text
    info = {p.name: p for p in plugin.plugins()}['openfields_squares']
    assert (info.version, info.source, info.datasets, info.basenets, info.decoders) == \
        ('1.0', 'module', ('squares',), ('squarenet',), ('bestbox',))

    out = tmp_path / 'squares.pkl'
    train.run(train.cli(['--dataset=squares', '--basenet=squarenet', '--squares-train-images=8',
                         '--squares-val-images=4', '--batch-size=4', '--epochs=1', '--loader-workers=0',
                         '--seed=0', f'--output={out}']))
    records = read(f'{out}.log')
    assert records[0]['plugin_versions']['openfields_squares'] == '1.0'
    train_epoch = next(r for r in records if r['type'] == 'train-epoch')
    assert train_epoch['n_batches'] == 2 and train_epoch['loss'] > 0 and out.is_file()


def python_m_openfields_plugins(monkeypatch, capsys) -> tuple[int, list[str]]:
    """Exit status and output lines of ``python -m openfields.plugins``, run in this process."""
    monkeypatch.setattr(sys, 'argv', ['openfields.plugins'])
    monkeypatch.delitem(sys.modules, 'openfields.plugins.__main__', raising=False)
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module('openfields.plugins', run_name='__main__')  # what `python -m` does
    return exit_info.value.code, capsys.readouterr().out.splitlines()


def test_listing_names_versions_what_each_plugin_adds_and_the_failures(tmp_path, monkeypatch, capsys):
    (tmp_path / 'openfields_broken.py').write_text('raise RuntimeError("boom")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(EXAMPLE_PLUGIN_DIR))
    status, lines = python_m_openfields_plugins(monkeypatch, capsys)
    assert status == 1
    squares = next(line for line in lines if line.startswith('openfields_squares '))
    assert squares.split()[:3] == ['openfields_squares', '1.0', 'module']
    assert squares.endswith('dataset squares, basenet squarenet, decoder bestbox')
    crowdpose = next(line for line in lines if line.startswith('openfields.plugins.crowdpose '))
    assert crowdpose.split()[2] == 'in-repo' and crowdpose.endswith('dataset crowdpose')
    assert lines[-2:] == ['failed to load (1):', 'openfields_broken: RuntimeError: boom']


def test_listing_of_the_in_repo_plugins_exits_with_success(monkeypatch, capsys):
    status, lines = python_m_openfields_plugins(monkeypatch, capsys)
    assert status == 0
    assert lines[0].startswith('openfields ') and lines[1].split() == ['plugin', 'version', 'source', 'adds']
    assert {'openfields.plugins.cocodet', 'openfields.plugins.cocokp', 'openfields.plugins.crowdpose'} <= {
        line.split()[0] for line in lines[2:]}


def test_a_plugin_decoder_is_chosen_by_name_and_decodes(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE_PLUGIN_DIR))
    plugin.register_all()
    import numpy as np
    from openfields import headmeta
    meta = headmeta.CifDet(name='cifdet', dataset='squares', categories=['square', 'disc'], base_stride=8)
    settings = decoder_factory.DecoderSettings()
    names = [c.name for c in decoder_factory.candidates([meta], settings)]
    assert names == ['cifdet:0', 'bestbox:0']
    fields = np.zeros((2, 6, 9, 9), np.float32)  # [log_b, conf, x, y, w, h] per category, field units
    for x, y, conf in ((2, 2, 0.9), (6, 6, 0.7)):  # two squares, no disc: 3x3 cells vote for each centre
        cells = np.s_[0, :, y - 1:y + 2, x - 1:x + 2]
        fields[cells][1], fields[cells][2], fields[cells][3] = conf, x, y
        fields[cells][4:6] = 2.0
    all_boxes = decoder_factory.factory([meta], settings, names=['cifdet'])([fields])
    best = decoder_factory.factory([meta], settings, names=['bestbox'])([fields])
    assert len(all_boxes) == 2 and len(best) == 1 and best[0].score == max(b.score for b in all_boxes)


def test_eval_interval_on_a_plugin_dataset_without_metrics_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(EXAMPLE_PLUGIN_DIR))
    with pytest.raises(ValueError, match='--eval-interval: --dataset squares has no metrics'):
        train.run(train.cli(['--dataset=squares', '--basenet=squarenet', '--squares-train-images=8',
                             '--squares-val-images=4', '--batch-size=4', '--epochs=1', '--loader-workers=0',
                             '--eval-interval=1', f'--output={tmp_path / "squares.pkl"}']))
