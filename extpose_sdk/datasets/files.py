"""Reading a user's data-set files safely, with errors that name the missing or bad file."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any


class DatasetFileError(FileNotFoundError):
    """A data-set file is missing or unreadable; the message names it and the expected layout."""


def require(path: Path, what: str = "") -> Path:
    """``path`` if it exists, else a ``DatasetFileError`` naming it (and what it should hold)."""
    path = Path(path)
    if not path.exists():
        hint = f" ({what})" if what else ""
        raise DatasetFileError(f"missing data-set file: {path}{hint}")
    return path


def read_json(path: Path, what: str = "") -> Any:
    """The JSON content of ``path``; a missing or malformed file is named in the error."""
    path = require(path, what)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DatasetFileError(f"malformed JSON in {path}: {error}") from error


# The only globals an official data-set pickle may name: numpy array / scalar reconstruction
# (under numpy 1's and numpy 2's module names) and the codec Python 3 uses for bytes.
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: data-set pickles may only hold "
                "numpy arrays, numbers, strings, lists and dicts"
            )
        if module.startswith("numpy"):
            import importlib

            import numpy as np

            if module == "numpy":
                return getattr(np, name)
            core = "numpy._core" if int(np.__version__.split(".")[0]) >= 2 else "numpy.core"
            return getattr(importlib.import_module(f"{core}.multiarray"), name)
        return super().find_class(module, name)


def read_pickle(path: Path, what: str = "") -> Any:
    """Load an official data-set pickle (3DPW, HO3D) with a restricted unpickler.

    Python 2 pickles are read with ``encoding="latin1"`` (how their numpy buffers were stored);
    any global other than numpy's array reconstruction is refused, so a crafted file cannot run
    code. A missing, truncated or refused file raises ``DatasetFileError`` naming it.
    """
    path = require(path, what)
    try:
        with open(path, "rb") as file:
            return _NumpyOnlyUnpickler(file, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
        raise DatasetFileError(f"cannot read pickle {path}: {error}") from error
