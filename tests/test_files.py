"""The one JSON reader of users' files: each caller's error class, the file named."""

import pytest

from extpose_sdk.files import read_json


class CallerError(ValueError):
    pass


def test_read_json_names_the_file_and_raises_the_callers_error(tmp_path):
    good = tmp_path / "a.json"
    good.write_text('{"x": [1, 2]}')
    assert read_json(good) == {"x": [1, 2]}
    with pytest.raises(CallerError, match=r"missing.json: no such file \(keypoints\)$"):
        read_json(tmp_path / "missing.json", error=CallerError, what="keypoints")
    (tmp_path / "b.json").write_text("{not json")
    with pytest.raises(CallerError, match=r"b.json: not valid JSON \(Expecting"):
        read_json(tmp_path / "b.json", error=CallerError)
    (tmp_path / "c.json").write_bytes(b'"\xff\xfe"')
    with pytest.raises(ValueError, match=r"c.json: not a UTF-8 text file"):
        read_json(tmp_path / "c.json")
