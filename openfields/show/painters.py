"""Drawing decoded poses and boxes on images (PIL; no display needed)."""

import colorsys

import PIL.Image
import PIL.ImageDraw

from ..decoder.annotation import Annotation, AnnotationDet


def instance_colour(index: int) -> tuple[int, int, int]:
    """Distinct, saturated colours for consecutive instances (golden-ratio hue steps)."""
    hue = (index * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return int(255 * r), int(255 * g), int(255 * b)


def draw_annotations(image: PIL.Image.Image, annotations: list, line_width: int | None = None) -> PIL.Image.Image:
    """A copy of ``image`` with every pose (skeleton lines, keypoint dots) and box drawn on it."""
    image = image.convert('RGB').copy()
    draw = PIL.ImageDraw.Draw(image)
    width = line_width or max(2, round(max(image.size) / 200))
    for index, annotation in enumerate(annotations):
        colour = instance_colour(index)
        if isinstance(annotation, AnnotationDet):
            x, y, w, h = annotation.bbox
            draw.rectangle([x, y, x + w, y + h], outline=colour, width=width)
            continue
        _draw_pose(draw, annotation, colour, width)
    return image


def _draw_pose(draw: PIL.ImageDraw.ImageDraw, annotation: Annotation, colour, width: int):
    data = annotation.data
    skeleton = annotation.meta.draw_skeleton or []
    for j1, j2 in skeleton:
        a, b = data[j1 - 1], data[j2 - 1]
        if a[2] > 0 and b[2] > 0:
            draw.line([(float(a[0]), float(a[1])), (float(b[0]), float(b[1]))], fill=colour, width=width)
    radius = width + 1
    for x, y, confidence in data:
        if confidence > 0:
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour, outline=(255, 255, 255))
