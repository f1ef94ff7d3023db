"""Debug plots of a synthetic training sample: one PNG per chosen field and plot kind, none blank."""

import pytest
from show_samples import png_pixels, synthetic_sample

from openfields.decoder import factory as decoder_factory
from openfields.show import canvas, debug

# pixel standard deviation (0-255 grey) of a figure holding only its titles and frames: about 19;
# figures with the image and fields measure 45 and more
MIN_PIXEL_STD = 35.0


class RecordingCanvas(canvas.Canvas):
    """A canvas that also records the title and panel titles of every figure it finishes."""

    def __init__(self, settings):
        super().__init__(settings)
        self.titles = {}

    def _finish(self, figure, name):
        suptitle = figure.get_suptitle()
        panels = [ax.get_title() for ax in figure.axes if ax.get_title()]
        self.titles[name] = (suptitle, panels)
        super()._finish(figure, name)


@pytest.fixture(scope='module')
def sample(tmp_path_factory):
    return synthetic_sample(tmp_path_factory.mktemp('synthetic-cache'))


def draw(sample, out, indices, sources=('target', 'oracle')) -> RecordingCanvas:
    settings = debug.DebugSettings(requests=tuple(debug.FieldRequest.parse(i) for i in indices))
    figures = RecordingCanvas(canvas.CanvasSettings(save_all=str(out), dpi=40))
    decoder_settings = decoder_factory.DecoderSettings()
    plots = debug.DebugPlots(figures, sample.head_metas, debug.select_fields(settings, sample.head_metas),
                             decoder_settings, decoder_factory.factory(sample.head_metas, decoder_settings))
    target = debug.Source.from_targets(sample.head_metas, sample.targets)
    oracle = debug.Source(label='oracle', fields=target.fields)  # a perfect network: the targets' fields
    chosen = [{'target': target, 'oracle': oracle}[s] for s in sources]
    plots.sample('s', sample.image, sample.meta, chosen, annotations=sample.meta['annotations'])
    return figures


def pixel_std(path) -> float:
    return float(png_pixels(path).mean(axis=2).std())


def test_one_png_per_field_and_kind_plus_input_and_poses(sample, tmp_path):
    written = draw(sample, tmp_path, ['cif:5', 'caf:5']).written
    cif = [f's.cif-5-left_shoulder.{kind}.png' for kind in ('confidence', 'regression', 'scale', 'hr')]
    caf = [f's.caf-5-left_shoulder-left_hip.{kind}.png' for kind in ('confidence', 'regression', 'scale')]
    assert [p.name for p in written] == ['s.input.png'] + cif + caf + ['s.poses.png']
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written)
    for path in written:
        assert pixel_std(path) > MIN_PIXEL_STD, path.name


def test_titles_name_head_field_keypoints_and_sources(sample, tmp_path):
    titles = draw(sample, tmp_path, ['cif:5:hr', 'caf:5:regression']).titles
    suptitle, panels = titles['s.cif-5-left_shoulder.hr']
    assert suptitle == 'synthetic.cif field 5 (left_shoulder): high-resolution map and seeds'
    assert [p.split(':')[0] for p in panels] == ['target', 'oracle']
    suptitle, panels = titles['s.caf-5-left_shoulder-left_hip.regression']
    assert suptitle == 'synthetic.caf field 5 (left_shoulder -> left_hip): associations, joint 1 -> joint 2'
    assert panels == ['target', 'oracle']
    assert titles['s.input'][0] == 'input 97x97, scale 1.00x1.00'  # rendered at 97 pixels, not augmented


def test_poses_figure_puts_ground_truth_beside_each_decoded_source(sample, tmp_path):
    _, panels = draw(sample, tmp_path, ['cif:0:confidence']).titles['s.poses']
    people = [a for a in sample.meta['annotations'] if not a['iscrowd'] and a['keypoints'][:, 2].any()]
    assert len(people) >= 2
    # the decoder recovers every person from the targets (a perfect network)
    assert panels == [f'ground truth: {len(people)}', f'decoded target: {len(people)}',
                      f'decoded oracle: {len(people)}']


def test_field_figures_have_a_panel_per_source(sample, tmp_path):
    both = draw(sample, tmp_path / 'both', ['cif:5:confidence']).written
    one = draw(sample, tmp_path / 'one', ['cif:5:confidence'], sources=('target',)).written
    assert png_pixels(both[1]).shape[1] - png_pixels(one[1]).shape[1] == 40 * canvas.PANEL_INCHES  # at 40 dpi


def test_a_blank_figure_is_below_the_floor(tmp_path):
    """The floor separates figures with content from empty ones."""
    figures = canvas.Canvas(canvas.CanvasSettings(save_all=str(tmp_path), dpi=40))
    with figures.figure('empty', n_panels=2, title='synthetic.cif field 5 (left_shoulder): confidence',
                        colorbar=True) as (_, axes):
        for ax in axes:
            ax.set_title('target', fontsize=9)
    assert pixel_std(figures.written[0]) < MIN_PIXEL_STD
