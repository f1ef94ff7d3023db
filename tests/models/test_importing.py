"""``python -m openfields.models import PATH NAME``: an OpenPifPaf checkpoint becomes a named openfields model; a
refused file writes nothing."""

import os
import pathlib
import subprocess
import sys

import pytest
import torch

from openfields.network import model_folder as folder

OPP_CHECKPOINT = (pathlib.Path(__file__).resolve().parents[2] / '..' / 'shared' / 'data' / 'opp-checkpoint'
                  / 'shufflenetv2k16-cocokp-sample.pkl')


def _models(tmp_path, *args):
    env = {**os.environ, folder.ENV: str(tmp_path / 'models'), 'TORCH_HOME': str(tmp_path / 'torch')}
    return subprocess.run([sys.executable, '-m', 'openfields.models', *args], capture_output=True, text=True,
                          env=env, timeout=300, check=False)


@pytest.mark.skipif(not OPP_CHECKPOINT.is_file(),
                    reason=f'the shared OpenPifPaf checkpoint is absent: {OPP_CHECKPOINT}')
def test_an_openpifpaf_checkpoint_is_imported_as_a_weights_only_named_model(tmp_path):
    result = _models(tmp_path, 'import', str(OPP_CHECKPOINT), 'opp-k16')
    assert result.returncode == 0, result.stderr
    written = tmp_path / 'models' / 'opp-k16.pkl'
    saved = torch.load(written, weights_only=True)
    assert saved['model']['basenet']['name'] == 'shufflenetv2k16'
    assert [m['name'] for m in saved['model']['head_metas']] == ['cif', 'caf']
    listing = _models(tmp_path)
    assert listing.stdout.splitlines()[1].split()[:3] == ['opp-k16', 'shufflenetv2k16', 'cocokp']
    again = _models(tmp_path, 'import', str(OPP_CHECKPOINT), 'opp-k16')
    assert again.returncode == 2 and 'exists' in again.stderr


def test_a_refused_pickle_writes_nothing_and_exits_2_in_one_line(tmp_path):
    path = tmp_path / 'other.pkl'
    path.write_bytes(b'\x80\x02cshutil\nrmtree\n)\x81}b.')
    result = _models(tmp_path, 'import', str(path), 'other')
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f'openfields.models: error: {path}: class shutil.rmtree is outside the allow-list of OpenPifPaf checkpoints; '
        'refused, nothing was run']
    assert not (tmp_path / 'models').exists()
