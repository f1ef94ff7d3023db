"""``python -m openfields.models``: the named models with the basenet and datasets the inference owner reads."""

import os
import pathlib
import subprocess
import sys

from openfields.network import model_folder as folder


def test_the_listing_shows_name_basenet_datasets_and_size(tiny_checkpoint, tiny_onnx, tmp_path):
    own = tmp_path / 'models'
    own.mkdir()
    (own / 'tiny.pkl').symlink_to(tiny_checkpoint)
    (own / 'tiny-export.onnx').symlink_to(tiny_onnx)
    (own / 'broken.pkl').write_bytes(b'not a model')
    env = {**os.environ, folder.ENV: str(own), 'TORCH_HOME': str(tmp_path / 'torch')}
    result = subprocess.run([sys.executable, '-m', 'openfields.models'], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:4]}
    assert rows['tiny'][1:3] == ['resnet18', 'cocokp'] and rows['tiny-export'][1:3] == ['resnet18', 'cocokp']
    assert rows['broken'][1] == '?' and pathlib.Path(rows['tiny'][-1]) == own / 'tiny.pkl'
