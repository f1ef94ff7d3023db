"""Name -> DataModule class; plugins add entries in their ``register()``."""

from .module import DataModule

DATAMODULES: dict[str, type[DataModule]] = {}


def register_datamodule(cls: type[DataModule]) -> type[DataModule]:
    """Make ``cls`` selectable as ``--dataset <cls.name>``."""
    if not cls.name or '-' in cls.name:
        raise ValueError(f'DataModule {cls.__name__}: name must be non-empty and contain no "-" '
                         f'(got {cls.name!r}; "-" joins several datasets)')
    DATAMODULES[cls.name] = cls
    return cls
