"""Plugin discovery: in-repo plugins, openfields_* modules and entry points."""

import sys

from openfields import plugin
from openfields.datasets import DATAMODULES


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
