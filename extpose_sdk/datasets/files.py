"""Reading a user's data-set files safely, with errors that name the missing or bad file."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from extpose_sdk import safe_pickle


class DatasetFileError(FileNotFoundError):
    """A data-set file is missing or unreadable; the message names it and the expected layout."""


def require(path: Path, what: str = "") -> Path:
    """``path`` if it exists, else a ``DatasetFileError`` naming it (and what it should hold)."""
    path = Path(path)
    if not path.exists():
        hint = f" ({what})" if what else ""
        raise DatasetFileError(f"missing data-set file: {path}{hint}")
    return path


def read_pickle(path: Path, what: str = "") -> Any:
    """Load an official data-set pickle (3DPW, HO3D) with the SDK's restricted unpickler
    (``extpose_sdk.safe_pickle``, policy ``DATASET``).

    Python 2 pickles are read with ``encoding="latin1"`` (how their numpy buffers were stored);
    any global other than numpy's array reconstruction is refused, so a crafted file cannot run
    code. A missing, truncated or refused file raises ``DatasetFileError`` naming it.
    """
    path = require(path, what)
    try:
        with open(path, "rb") as file:
            return safe_pickle.load(file, safe_pickle.DATASET)
    except safe_pickle.UnsafePickleError as error:
        raise DatasetFileError(
            f"cannot read pickle {path}: refusing to load global {error.qualified}: data-set "
            "pickles may only hold numpy arrays, numbers, strings, lists and dicts") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
        raise DatasetFileError(f"cannot read pickle {path}: {error}") from error
