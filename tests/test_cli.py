"""The ``extpose`` command."""

import json
import subprocess
import sys

from extpose_sdk import cli


def test_plugins_lists_every_kind_with_package_and_description(capsys):
    assert cli.main(["plugins"]) == 0
    out = capsys.readouterr().out
    for kind in ("backbone", "modality", "head", "keypoint_source", "dataset", "model"):
        assert f"\n{kind} (" in "\n" + out
    assert "hmr2" in out and "extpose-plugin-hmr2" in out
    rgb_line = next(line for line in out.splitlines() if line.strip().startswith("rgb "))
    assert "extpose-sdk" in rgb_line and "ImageNet" in rgb_line


def test_plugins_json_names_origins(capsys):
    assert cli.main(["plugins", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    backbones = {c["name"]: c for c in data["components"]["backbone"]}
    assert backbones["hamer"]["package"] == "extpose-plugin-hamer"
    sources = {p["name"]: p["source"] for p in data["plugins"]}
    assert sources["hamer"] == "entry point"
    assert data["failures"] == []


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 2
    assert "plugins" in capsys.readouterr().out


def test_console_script_is_installed():
    out = subprocess.run(
        [sys.executable, "-m", "extpose_sdk.cli", "plugins", "--kind", "backbone"],
        capture_output=True, text=True, check=True,
    )
    assert "vitpose" in out.stdout and "modality" not in out.stdout


def test_user_errors_print_one_line_and_exit_1(tmp_path, capsys, monkeypatch):
    missing = tmp_path / "MANO_RIGHT.pkl"
    code = cli.main(["predict", "--sample", "--out", str(tmp_path / "out"),
                     "--body-model", str(missing)])
    err = capsys.readouterr().err
    assert code == 1
    assert "mano.is.tue.mpg.de" in err and "Traceback" not in err
    monkeypatch.setenv("EXTPOSE_DEBUG", "1")
    import pytest

    from extpose_sdk.body_models import BodyModelNotFoundError

    with pytest.raises(BodyModelNotFoundError):
        cli.main(["predict", "--sample", "--out", str(tmp_path / "out"),
                  "--body-model", str(missing)])
