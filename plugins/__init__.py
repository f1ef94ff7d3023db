"""The in-repo dataset plugins, importable as ``openfields.plugins.<name>``; each has ``register()``."""
