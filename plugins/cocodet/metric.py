"""Box AP of CifDet predictions against the json's own category ids."""

import dataclasses

from openfields.metric.coco import Coco


class CocoBoxes:
    """pycocotools box evaluation (``iou_type='bbox'``) of every category of the json.

    The decoder numbers categories by their position in the head (``category_id = field + 1``);
    ``category_ids`` (the json ids in head order) maps them back before pycocotools sees them, so COCO's
    ids (1..90 with gaps) are evaluated as they are.
    """

    def __init__(self, annotations, category_ids: list[int]):
        self.category_ids = list(category_ids)
        self.coco = Coco(annotations, iou_type='bbox', category_id=None)

    @property
    def names(self) -> tuple[str, ...]:
        return self.coco.names

    def accumulate(self, predictions, image_meta: dict):
        mapped = [dataclasses.replace(p, category_id=self.category_ids[p.category_id - 1]) for p in predictions]
        self.coco.accumulate(mapped, image_meta)

    def stats(self, **kwargs) -> dict:
        return self.coco.stats(**kwargs)

    def write_predictions(self, path_prefix):
        return self.coco.write_predictions(path_prefix)
