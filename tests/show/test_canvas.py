"""Where figures go: ``--show``, ``--save-all [DIR]``, ``--image-output``."""

import argparse

import matplotlib
import numpy as np
import pytest
from show_samples import png_pixels

from openfields.show import canvas


def parse(*argv, image_output=False) -> canvas.CanvasSettings:
    parser = argparse.ArgumentParser()
    canvas.cli(parser, image_output=image_output)
    return canvas.CanvasSettings.from_args(parser.parse_args(list(argv)))


def test_flags():
    assert parse() == canvas.CanvasSettings(show=False, save_all=None, image_output=None, dpi=100)
    assert parse('--save-all').save_all == 'all-images/'
    assert parse('--save-all', 'out', '--show', '--image-dpi', '50') == canvas.CanvasSettings(
        show=True, save_all='out', dpi=50)
    assert parse('--image-output', image_output=True).image_output == ''
    assert parse('--image-output', 'drawn', image_output=True).image_output == 'drawn'
    with pytest.raises(SystemExit):
        parse('--image-output')  # only predict has a final image


def test_image_output_names_a_file_by_its_image_suffix_else_a_folder(tmp_path):
    image = tmp_path / 'in' / '000000262146.jpg'
    file, folder = tmp_path / 'all-images' / 'overfitted.jpeg', tmp_path / 'drawn'
    assert canvas.image_output_path(image, str(file)) == (file, 'JPEG')  # OpenPifPaf's guide
    assert canvas.image_output_path(image, str(tmp_path / 'x.PNG')) == (tmp_path / 'x.PNG', 'PNG')
    assert canvas.image_output_path(image, str(folder)) == (folder / '000000262146.jpg.predictions.jpeg', 'JPEG')
    assert canvas.image_output_path(image, '') == (image.parent / '000000262146.jpg.predictions.jpeg', 'JPEG')
    assert canvas.image_output_path(image, f'{file}/') == (file / '000000262146.jpg.predictions.jpeg', 'JPEG')
    file.mkdir(parents=True)  # an existing folder stays a folder, whatever its name
    assert not canvas.names_an_image_file(str(file)) and canvas.names_an_image_file(str(tmp_path / 'a.jpg'))
    assert not canvas.names_an_image_file(None) and not canvas.names_an_image_file('')
    assert not canvas.names_an_image_file(str(tmp_path / 'a.gif'))  # not a format it writes: a folder


def test_debug_output_defaults_to_all_images_unless_a_destination_is_given():
    assert canvas.CanvasSettings().with_default_output().save_all == 'all-images/'
    assert canvas.CanvasSettings(save_all='x').with_default_output().save_all == 'x'
    assert canvas.CanvasSettings(show=True).with_default_output().save_all is None


def test_save_all_writes_each_figure_once_under_a_safe_name(tmp_path):
    out = tmp_path / 'all'
    figures = canvas.Canvas(canvas.CanvasSettings(save_all=str(out), dpi=50))
    with figures.figure('a b/c.plot', title='t') as (_, axes):
        axes[0].imshow(np.eye(8))
    with figures.figure('second', n_panels=2, colorbar=True) as (figure, axes):
        image = axes[1].imshow(np.eye(8))
        figures.colorbar(figure, image, 'value')
    assert sorted(p.name for p in out.iterdir()) == ['a_b_c.plot.png', 'second.png']  # no temporary files
    assert figures.written == [out / 'a_b_c.plot.png', out / 'second.png']
    height, width, _ = png_pixels(out / 'second.png').shape
    # two 4-inch panels, a 1-inch colour bar margin, 0.1 inch on top (no title), at 50 dpi
    assert (width, height) == (450, 205)


def test_without_destination_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    figures = canvas.Canvas(canvas.CanvasSettings())
    with figures.figure('x') as (_, axes):
        axes[0].plot([0, 1])
    assert figures.written == [] and list(tmp_path.iterdir()) == []


def test_show_opens_each_figure_in_pyplot_and_closes_it(monkeypatch):
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    shown = []
    monkeypatch.setattr(plt, 'show', lambda: shown.append(plt.get_fignums()))
    figures = canvas.Canvas(canvas.CanvasSettings(show=True))
    for name in ('one', 'two'):
        with figures.figure(name) as (_, axes):
            axes[0].plot([0, 1])
    assert [len(open_figures) for open_figures in shown] == [1, 1]
    assert plt.get_fignums() == []
