"""Helpers for testing ExtPose components, for the SDK's tests and for plugin authors'.

    from extpose_sdk.testing import isolated_plugins

    def test_my_backbone():
        with isolated_plugins(my_plugin_module) as manager:
            model = manager.registries().backbone.build("mine", depth=1)

``fake_distribution`` writes an installed-package record (a ``.dist-info`` with entry points) so
entry-point discovery is exercised for real without installing anything.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from extpose_sdk import plugins


@contextlib.contextmanager
def isolated_plugins(*extra: Any, autoload: bool = False, strict: bool = False) -> Iterator:
    """A fresh process-wide plugin manager with built-ins and ``extra`` plugins, restored after.

    Yields the manager; registries are built on first use, so registration errors surface there.

    Entry points are not loaded unless ``autoload=True``, so tests see only what they ask for.
    """
    saved = plugins._default_manager
    manager = plugins.make_plugin_manager(strict=strict, autoload=autoload, only=[])
    for plugin in extra:
        manager.register(plugin)
    plugins._default_manager = manager
    try:
        yield manager
    finally:
        plugins._default_manager = saved


def fake_distribution(
    site: Path, name: str, entry_points: dict[str, str], modules: dict[str, str] | None = None
) -> Path:
    """Write a minimal installed distribution into ``site`` (add ``site`` to ``sys.path``).

    ``entry_points`` maps entry-point names of group ``extpose`` to ``module[:attr]`` targets;
    ``modules`` maps module file names to their source.
    """
    site = Path(site)
    dist_info = site / f"{name.replace('-', '_')}-0.0.1.dist-info"
    dist_info.mkdir(parents=True, exist_ok=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0.1\n")
    lines = ["[extpose]"] + [f"{key} = {value}" for key, value in entry_points.items()]
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for filename, source in (modules or {}).items():
        (site / filename).write_text(source)
    return dist_info


@contextlib.contextmanager
def on_sys_path(path: Path) -> Iterator[None]:
    """Put ``path`` first on ``sys.path`` for the duration, forgetting modules imported from it."""
    path = str(path)
    before = set(sys.modules)
    sys.path.insert(0, path)
    try:
        yield
    finally:
        sys.path.remove(path)
        for module in set(sys.modules) - before:
            if (getattr(sys.modules[module], "__file__", None) or "").startswith(path):
                del sys.modules[module]


# -- shipped weights --------------------------------------------------------------------------

def check_shipped_weights(name: str, *, model: str, subject: str, package: str, recipe: str,
                          frames: int) -> dict[str, Any]:
    """Assert that weights ``name`` are registered for ``model`` / ``subject`` by ``package``,
    that their safetensors and JSON ship with it, and that the JSON says how they were trained;
    returns that JSON."""
    import json

    from extpose_sdk import get_registries

    component = get_registries().weights.get(name)
    assert component.metadata == {"model": model, "subject": subject}
    assert component.package == package
    path = component.build()
    assert path.is_file() and path.with_suffix(".json").is_file()
    config = json.loads(path.with_suffix(".json").read_text())
    assert config["modalities"] == ["rgb", "skeleton"] and config["frames"] == frames
    assert config["crop_rescale"] == 1.0 and config["recipe"] == recipe
    assert len(config["weights_sha256"]) == 64  # checked on every load
    return config


def check_a_changed_byte_is_refused(name: str, model: str, folder: Path) -> None:
    """Assert that a copy of weights ``name`` with one byte changed does not load."""
    import pytest

    from extpose_sdk import get_registries, load_model
    from extpose_sdk.checkpoints import CheckpointError

    path = get_registries().weights.build(name)
    copy = folder / path.name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    copy.write_bytes(bytes(data))
    copy.with_suffix(".json").write_text(path.with_suffix(".json").read_text())
    with pytest.raises(CheckpointError, match="sha256|SHA-256|hash"):
        load_model(model, checkpoint=copy)


def predict_sample_with_shipped_weights(name: str, model: str, sample: str, out: Path,
                                        *flags: str) -> tuple[dict[str, Any], str]:
    """Run ``extpose predict --sample SAMPLE --out OUT FLAGS`` and assert that it used the
    shipped weights ``name`` of ``model`` (said on screen and in the results, never random) on
    the sample's 24 frames; returns the saved ``results.json`` and what it printed."""
    import io
    import json

    from extpose_sdk.cli import main

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["predict", "--sample", sample, "--out", str(out), *flags]) == 0
    text = printed.getvalue()
    assert f"weights: {name}" in text and "random weights" not in text
    saved = json.loads((out / "results.json").read_text())
    assert saved["weights"] == name and saved["random_weights"] is False
    assert saved["model"] == model and saved["num_frames"] == 24
    return saved, text


def held_out_scores(weights: str, model: str, kind: str, *, seed: int = 3,
                    sequences: int = 2, rgb_only: bool = False) -> dict[str, dict[str, float]]:
    """Weights ``weights`` of ``model``, always the mean (``mean``) and the mean articulation
    with the weights' orientation and camera (``articulation``), scored on ``sequences``
    held-out synthetic ``kind`` clips of 8 frames (test split, ``seed``: 3 is used by no
    training, validation or benchmark run). ``rgb_only``: also the weights seeing the RGB
    image alone (``rgb_only``)."""
    import torch

    from extpose_sdk import get_registries, load_model
    from extpose_sdk.engine.evaluate import mean_articulation, mean_prediction, score_sequences
    from extpose_sdk.engine.model import load_training_body_model

    torch.manual_seed(0)
    trained = load_model(model, checkpoint=weights)
    trained.set_body_model(load_training_body_model("synthetic", kind)).eval()
    clips = get_registries().dataset.build(
        f"synthetic-{kind}", split="test", seed=seed, num_sequences=sequences,
        sequence_length=8, clip_length=8, crop_size=128)
    both = ["rgb", "skeleton"]
    scores = {name: score_sequences(scored, clips, both, frames=8, batch_size=2)
              for name, scored in (("trained", trained), ("mean", mean_prediction(trained)),
                                   ("articulation", mean_articulation(trained)))}
    if rgb_only:
        scores["rgb_only"] = score_sequences(trained, clips, ["rgb"], frames=8, batch_size=2)
    return scores
