"""Named models: ``python -m openfields.models`` lists what ``--checkpoint NAME`` finds in the local model
folders (never downloaded), with each model's basenet and datasets as the inference owner reads them. The
resolver lives below every model reader, in :mod:`openfields.network.model_folder`.
"""

from ..network.model_folder import ModelNotFound, model_folders, named_models, resolve

__all__ = ['ModelNotFound', 'model_folders', 'named_models', 'resolve']
