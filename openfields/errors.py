"""A library's error inside openfields' one-line messages: torch, onnxruntime and pickle raise multi-line
texts (tracebacks of their own, hints), of which the first line says what went wrong."""


def first_line(error: BaseException, limit: int | None = 200) -> str:
    """The first non-blank line of ``error``'s text (its type's name when it has none), cut to ``limit``
    characters (None: whole)."""
    line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return line if limit is None else line[:limit]
