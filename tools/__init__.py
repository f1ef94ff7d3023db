"""Developer tools, not part of the installed package: benchmarks (``make bench``), the generated
references ``docs/cli.md`` and ``docs/configuration.md`` (``make docs``) and the demo's summary
(``make demo``). Run them from the repository root: ``python -m tools.<name>``."""
