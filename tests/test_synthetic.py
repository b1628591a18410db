"""The synthetic data set: stand-in detections, argument errors, docs examples (the rendering
tests that need the synthetic body-model files are added once those files exist)."""

import numpy as np
import pytest

from extpose_sdk.data.synthetic import DetectionNoise, SyntheticDataset


def test_detections_are_noisy_stand_ins():
    rng = np.random.default_rng(0)
    truth = rng.uniform(0, 100, (17, 2))
    box = np.array([0.0, 0.0, 100.0, 100.0])
    flip = tuple(range(17))[::-1]
    from extpose_sdk.data.synthetic import noisy_detections

    quiet = noisy_detections(truth, box, flip, DetectionNoise(0.02, 0.0, 0.0), rng)
    error = np.linalg.norm(quiet[:, :2] - truth, axis=1)
    assert 0 < error.mean() < 5 and (quiet[:, 2] > 0.5).all()
    dropped = noisy_detections(truth, box, flip, DetectionNoise(0.0, 1.0, 0.0), rng)
    assert (dropped[:, 2] < 0.25).all()
    swapped = noisy_detections(truth, box, flip, DetectionNoise(0.0, 0.0, 1.0), rng)
    np.testing.assert_allclose(swapped[:, :2], truth[::-1])


def test_unknown_kind_and_split_name_the_choices():
    with pytest.raises(ValueError, match="body, hand"):
        SyntheticDataset(kind="dog")
    with pytest.raises(ValueError, match="train, test"):
        SyntheticDataset(split="val")


def test_docs_examples_run(capsys):
    import re
    from pathlib import Path

    text = (Path(__file__).parents[1] / "docs" / "data.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 5
    for block in blocks[:3]:  # crops, augmentation, rendering (no body model needed)
        exec(compile(block, "docs/data.md", "exec"), {})
    assert "(3, 256, 256)" in capsys.readouterr().out
