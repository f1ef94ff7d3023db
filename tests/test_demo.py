"""``make demo`` end to end: train, evaluate, predict, plot, in the repository's own environment."""

import json
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
VENV_PYTHON = REPO / '.venv' / 'bin' / 'python'


@pytest.mark.slow
@pytest.mark.skipif(not VENV_PYTHON.exists() or pathlib.Path(sys.executable).resolve() != VENV_PYTHON.resolve(),
                    reason='make demo uses the repository\'s .venv; run this test with it (make test-slow)')
def test_make_demo_reaches_ap_one_half_and_writes_what_it_lists(tmp_path):
    demo_dir = tmp_path / 'demo'
    result = subprocess.run(['make', '--no-print-directory', 'demo', f'DEMO_DIR={demo_dir}'], cwd=REPO,
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    stats = json.loads((demo_dir / 'demo.eval-synthetic.stats.json').read_text())
    assert stats['n_images'] == 32
    assert stats['AP'] >= 0.5, stats['AP']
    assert f'AP {stats["AP"]:.3f}' in result.stdout  # the summary prints the measured figure

    assert len(list(demo_dir.glob('demo.pkl.epoch*'))) == 2  # --max-snapshots 2 keeps the disk use small

    predictions = sorted((demo_dir / 'predictions').glob('*.json'))
    assert len(predictions) == 3
    assert all(json.loads(p.read_text()) for p in predictions)  # every image has at least one pose
    assert len(list((demo_dir / 'debug').glob('*.png'))) >= 6  # input, cif:5 and caf:5 of each image
    assert list((demo_dir / 'logs').glob('*.png'))
