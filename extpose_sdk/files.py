"""Reading a user's files: the one JSON reader, with errors that name the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_json(path: str | Path, *, error: type[Exception] = ValueError, what: str = "") -> Any:
    """The JSON content of ``path``. A missing file, invalid JSON or text that is not UTF-8
    raises ``error`` (the caller's: ``KeypointFileError``, ``DatasetFileError``) naming the file
    and, with ``what``, what it should hold."""
    path = Path(path)
    hint = f" ({what})" if what else ""
    if not path.is_file():
        raise error(f"{path}: no such file{hint}")
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as problem:
        raise error(f"{path}: not valid JSON ({problem}){hint}") from None
    except UnicodeDecodeError as problem:
        raise error(f"{path}: not a UTF-8 text file ({problem}){hint}") from None
