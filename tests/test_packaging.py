"""The wheel ``pip install .`` would build holds every package the commands need (``make test-wheel``).

The wheel is built from the working tree's files (tracked and not ignored), installed (not editable, without
dependencies) into a fresh venv whose dependencies are those of the running interpreter's site-packages
(added as a plain path: the editable install of openfields there is not seen), and a tiny train, eval,
predict and video run from a folder outside the repository, so the source tree is not on ``sys.path``.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest

pytestmark = pytest.mark.wheel

REPO = pathlib.Path(__file__).resolve().parent.parent
DATA = ['--dataset', 'synthetic', '--synthetic-train-images', '4', '--synthetic-val-images', '2',
        '--synthetic-image-size', '48', '--synthetic-square-edge', '33', '--synthetic-no-augmentation',
        '--loader-workers', '0']
LOW_THRESHOLDS = ['--seed-threshold', '0.1', '--instance-threshold', '0']  # a barely trained network's poses


def source_copy(folder: pathlib.Path) -> pathlib.Path:
    """The files ``git`` knows of (tracked, or new and not ignored): what a fresh clone builds from."""
    names = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'], cwd=REPO,
                           check=True, capture_output=True).stdout.decode().split('\0')
    for name in filter(None, names):
        if (REPO / name).is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, folder / name)
    return folder


def build_flags() -> list[str]:
    """Build with this interpreter's setuptools when it builds wheels itself (>= 70.1), else in pip's isolated
    build environment (fetched from the package index)."""
    try:
        from setuptools.command import bdist_wheel  # noqa: F401
    except ImportError:
        return []
    return ['--no-build-isolation']


def fresh_venv(folder: pathlib.Path, wheel: pathlib.Path) -> pathlib.Path:
    """A venv with the wheel installed and this interpreter's site-packages after its own."""
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(folder)], check=True)
    python = folder / 'bin' / 'python'
    site_packages = pathlib.Path(subprocess.run(
        [str(python), '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
        check=True, capture_output=True, text=True).stdout.strip())
    (site_packages / 'dependencies.pth').write_text(sysconfig.get_paths()['purelib'] + '\n')
    subprocess.run([sys.executable, '-m', 'pip', '--python', str(python), 'install', '--quiet', '--no-deps',
                    '--no-index', '--disable-pip-version-check', str(wheel)], check=True)
    return python


def test_the_wheel_installs_every_package_and_its_commands_train_eval_predict_and_video(tmp_path):
    source = source_copy(tmp_path / 'source')
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--quiet', '--no-deps', *build_flags(),
                    '--disable-pip-version-check', '-w', str(tmp_path / 'dist'), str(source)], check=True)
    wheel, = (tmp_path / 'dist').glob('openfields-*.whl')
    names = zipfile.ZipFile(wheel).namelist()
    expected = [str(p.relative_to(REPO)) for p in (REPO / 'openfields').rglob('*.py')]
    expected += [f'openfields/plugins/{p.relative_to(REPO / "plugins")}' for p in (REPO / 'plugins').rglob('*.py')]
    missing = sorted(set(expected) - set(names))
    assert missing == [] and 'openfields/topdown/__init__.py' in names

    python = fresh_venv(tmp_path / 'venv', wheel)
    work = tmp_path / 'work'  # outside the repository: the source tree is not on sys.path
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}

    def run(*argv):
        result = subprocess.run([str(python), *map(str, argv)], cwd=work, env=env, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    where = run('-c', 'import openfields, openfields.topdown; print(openfields.__file__)').strip()
    assert pathlib.Path(where).is_relative_to(tmp_path / 'venv'), where

    data = [*DATA, '--synthetic-cache-dir', work / 'cache']
    run('-m', 'openfields.train', *data, '--basenet', 'resnet18', '--no-basenet-pretrained', '--batch-size', '2',
        '--epochs', '1', '--seed', '5', '--output', 'run/m.pkl', '-q')
    assert (work / 'run' / 'm.pkl').is_file()
    run('-m', 'openfields.eval', '--checkpoint', 'run/m.pkl', *data, '--coco-eval-long-edge', '48',
        '--output', 'run/m.eval', '-q')
    assert 'AP' in json.loads((work / 'run' / 'm.eval.stats.json').read_text())

    images = work / 'frames'
    images.mkdir()
    run('-c', 'import sys, numpy, PIL.Image\n'
              'for i in range(3):\n'
              '    pixels = numpy.full((48, 48, 3), 60 * i, numpy.uint8)\n'
              '    PIL.Image.fromarray(pixels).save(f"{sys.argv[1]}/{i:03d}.png")', images)
    run('-m', 'openfields.predict', *sorted(images.glob('*.png')), '--checkpoint', 'run/m.pkl',
        '--json-output', 'predictions', '-q', *LOW_THRESHOLDS)
    assert sorted(p.name for p in (work / 'predictions').iterdir()) == \
        [f'{i:03d}.png.predictions.json' for i in range(3)]
    run('-m', 'openfields.video', images, '--checkpoint', 'run/m.pkl', '--json-output', 'video.jsonl', '-q',
        *LOW_THRESHOLDS)
    assert [json.loads(line)['frame'] for line in (work / 'video.jsonl').read_text().splitlines()] == [0, 1, 2]
