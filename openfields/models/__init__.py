"""Named models: ``--checkpoint NAME`` resolved from local folders (never downloaded).

``python -m openfields.models`` lists what is there. The resolver is :func:`folder.resolve`.
"""

from .folder import ModelNotFound, model_folders, named_models, resolve

__all__ = ['ModelNotFound', 'model_folders', 'named_models', 'resolve']
