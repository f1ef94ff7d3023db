"""Named models: ``--checkpoint NAME`` from $OPENFIELDS_MODELS or torch hub's checkpoints/, never downloaded."""

import pytest

from openfields.network import model_folder as folder
from openfields.network import checkpoint


@pytest.fixture()
def model_folder(tmp_path, monkeypatch):
    own, hub = tmp_path / 'models', tmp_path / 'hub'
    (hub / 'checkpoints').mkdir(parents=True)
    own.mkdir()
    monkeypatch.setenv(folder.ENV, str(own))
    monkeypatch.setattr('torch.hub.get_dir', lambda: str(hub))
    return own, hub / 'checkpoints'


def test_a_name_resolves_in_the_model_folder_first_then_the_hub_cache(model_folder):
    own, hub = model_folder
    (hub / 'shufflenetv2k16.pkl').write_bytes(b'x')
    (hub / 'resnet50.onnx').write_bytes(b'x')
    (own / 'shufflenetv2k16.pkl').write_bytes(b'x')
    assert folder.resolve('shufflenetv2k16') == own / 'shufflenetv2k16.pkl'
    assert folder.resolve('resnet50') == hub / 'resnet50.onnx'
    assert folder.resolve('resnet50.onnx') == hub / 'resnet50.onnx'
    assert sorted(folder.named_models()) == ['resnet50', 'shufflenetv2k16']


def test_an_existing_file_is_used_as_it_is(model_folder, tmp_path):
    (tmp_path / 'mine.pkl').write_bytes(b'x')
    assert folder.resolve(str(tmp_path / 'mine.pkl')) == tmp_path / 'mine.pkl'


def test_a_missing_name_lists_what_is_there_and_where_to_put_the_file(model_folder):
    own, hub = model_folder
    (own / 'resnet18.pkl').write_bytes(b'x')
    with pytest.raises(checkpoint.CheckpointError) as error:
        checkpoint.load('shufflenetv2k16')
    message = str(error.value)
    assert message.startswith('--checkpoint shufflenetv2k16: file not found')
    assert '(models there: resnet18)' in message and str(hub) in message
    assert message.endswith(f'put the file at {own / "shufflenetv2k16.pkl"} (or .onnx, .pt)')


def test_a_missing_path_keeps_the_plain_message(model_folder, tmp_path):
    with pytest.raises(folder.ModelNotFound, match=f'file not found: {tmp_path / "nope.pkl"}$'):
        folder.resolve(str(tmp_path / 'nope.pkl'))
