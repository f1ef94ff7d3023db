"""A plugin depends on the core (``openfields.*``), never on another plugin."""

import ast
import pathlib

PLUGINS = pathlib.Path(__file__).resolve().parents[2] / 'plugins'


def imported_modules(path: pathlib.Path) -> list[tuple[int, str]]:
    """``(level, module)`` of every import in ``path``; ``level`` counts the dots of a relative import."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(0, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or ''))
    return found


def foreign_plugin_imports(plugin: pathlib.Path) -> list[str]:
    """Imports in ``plugin``'s sources that reach another plugin: ``openfields.plugins.<other>``,
    ``plugins.<other>``, or a relative import leaving the plugin's package (``from ..other import``)."""
    offending = []
    for path in sorted(plugin.rglob('*.py')):
        depth = len(path.relative_to(plugin).parts)  # 1 for plugin/x.py: one dot stays inside
        for level, module in imported_modules(path):
            parts = module.split('.')
            absolute = level == 0 and (parts[:2] == ['openfields', 'plugins'] and parts[2:3] != [plugin.name]
                                       or parts[:1] == ['plugins'] and parts[1:2] != [plugin.name])
            if absolute or level > depth:
                offending.append(f'{path.relative_to(plugin.parent)}: {"." * level}{module}')
    return offending


def test_every_in_repo_plugin_imports_only_the_core_and_itself():
    plugins = sorted(p for p in PLUGINS.iterdir() if (p / '__init__.py').is_file())
    assert {'cocodet', 'cocokp', 'crowdpose', 'dlc', 'synthetic'} <= {p.name for p in plugins}
    assert {p.name: foreign_plugin_imports(p) for p in plugins} == {p.name: [] for p in plugins}


def test_the_check_finds_absolute_and_relative_imports_of_another_plugin(tmp_path):
    plugin = tmp_path / 'mine'
    (plugin / 'sub').mkdir(parents=True)
    (plugin / '__init__.py').write_text('from . import datamodule\nfrom openfields.plugins.mine import x\n')
    (plugin / 'datamodule.py').write_text('from openfields.plugins.cocokp.datamodule import CocoKp\n'
                                          'from ..cocokp import constants\nimport openfields.datasets\n')
    (plugin / 'sub' / 'deep.py').write_text('from .. import datamodule\nfrom ...other import y\n')
    found = [line.split(': ', 1)[1] for line in foreign_plugin_imports(plugin)]
    assert found == ['openfields.plugins.cocokp.datamodule', '..cocokp', '...other']
