"""How COCO-style datasets are evaluated: the image size (``--coco-eval-long-edge``) and which images count
(``--coco-no-eval-annotation-filter``); flags shared by every COCO-style dataset."""

import argparse
import dataclasses


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """How COCO-style datasets are evaluated (shared by every COCO-style dataset: cocokp, cocodet, ...)."""

    long_edge: int | None = 641
    annotation_filter: bool = True  # only images with annotated people

    @staticmethod
    def cli(parser: argparse.ArgumentParser) -> None:
        """Add the flags once: every COCO-style dataset calls this, the first one adds them."""
        if parser.get_default('coco_eval_long_edge') is not None:
            return
        group = parser.add_argument_group('COCO-style evaluation')
        group.add_argument('--coco-eval-long-edge', type=int, default=641,
                           help='rescale evaluation images so their long edge has this size (0: keep)')
        group.add_argument('--coco-no-eval-annotation-filter', dest='coco_eval_annotation_filter',
                           default=True, action='store_false',
                           help='evaluate every image, also those without annotated people')

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> 'EvalSettings':
        if args.coco_eval_long_edge < 0:
            raise ValueError(f'--coco-eval-long-edge must be >= 0, got {args.coco_eval_long_edge}')
        return cls(long_edge=args.coco_eval_long_edge or None,
                   annotation_filter=args.coco_eval_annotation_filter)
