"""Shared helpers of the keypoint file sources: reading JSON with errors that name the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class KeypointFileError(ValueError):
    """A keypoint file that is missing, unreadable or not in the expected format."""


def read_json(path: str | Path) -> Any:
    """The JSON of a keypoint file (``extpose_sdk.files.read_json``, ``KeypointFileError``)."""
    from extpose_sdk.files import read_json as read

    return read(path, error=KeypointFileError)


def flat_triplets(values: Any, where: str) -> list[float]:
    """A flat ``[x1, y1, c1, x2, ...]`` list checked to be numbers in groups of three."""
    if not isinstance(values, list):
        raise KeypointFileError(f"{where}: expected a list of numbers, got {type(values).__name__}")
    if len(values) % 3:
        raise KeypointFileError(
            f"{where}: {len(values)} numbers is not a multiple of 3 (x, y, confidence)"
        )
    for value in values:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise KeypointFileError(f"{where}: expected numbers, found {value!r}")
    return values
