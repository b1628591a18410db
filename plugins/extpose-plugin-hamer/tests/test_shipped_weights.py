"""The weights extpose-plugin-hamer ships (``extpose-hamer-synthetic``): they load through the
safe path, ``extpose predict --sample`` uses them and lands on the hand, and they beat always
predicting the mean on held-out synthetic clips. docs/reproduction.md has the full measurements."""

from __future__ import annotations

import json

import numpy as np

from extpose_sdk.testing import (
    check_a_changed_byte_is_refused,
    check_shipped_weights,
    held_out_scores,
    predict_sample_with_shipped_weights,
)

NAME = "extpose-hamer-synthetic"


def test_the_weights_are_registered_with_their_recipe_and_ship_with_the_package():
    check_shipped_weights(NAME, model="extpose-hamer", subject="hand",
                          package="extpose-plugin-hamer", recipe="synthetic-hand", frames=8)


def test_a_changed_byte_in_the_shipped_file_is_refused(tmp_path):
    check_a_changed_byte_is_refused(NAME, "extpose-hamer", tmp_path)


def test_predict_sample_uses_them_and_the_mesh_lands_on_the_hand(tmp_path):
    from extpose_sdk.results import load_results

    out = tmp_path / "out"
    _, printed = predict_sample_with_shipped_weights(NAME, "extpose-hamer", "hand", out)
    # the projected joints against the sample's detected keypoints (both OpenPose hand order),
    # per frame the mean distance over the box side; the median over frames
    arrays = load_results(out / "results.npz")
    given, projected, box = arrays["keypoints"], arrays["keypoints_2d"], arrays["box"]
    distance = np.linalg.norm(projected - given[..., :2], axis=-1)
    confident = given[..., 2] > 0
    side = (box[:, 2:] - box[:, :2]).max(1)
    error = float(np.median((distance * confident).sum(1) / confident.sum(1) / side))
    assert error <= 0.1, error  # random weights: about 1.2
    assert f"2D joints lie {error:.3f} of the box size" in printed


def test_they_beat_the_mean_on_held_out_clips():
    """Two held-out clips (test split, seed 3: no training, validation or benchmark run uses it).
    Against always predicting the mean (the head's mean orientation, articulation, shape and
    camera) the 3D joints and their 2D projections are far closer. The fingers' articulation is
    partly learnt (PA-MPJPE 0.55x the mean articulation's here, 0.55x on the benchmark's clips;
    the weights shipped until the third 2026-12-02 cycle: 0.57x and 0.595x, those before them
    0.59x and 0.69x; docs/reproduction.md), and this test holds it at the issue's target, at
    most 0.6x (RGB alone: 0.8x). Trained with modality dropout, they work from the RGB image
    alone too (the plain-ViT weights shipped before those predicted about the mean from it:
    MPJPE 0.75x the mean's on the benchmark's clips)."""
    scores = held_out_scores(NAME, "extpose-hamer", "hand", rgb_only=True)
    trained, mean, articulation = scores["trained"], scores["mean"], scores["articulation"]
    rgb = scores["rgb_only"]
    assert rgb["mpjpe"] <= 0.35 * mean["mpjpe"], (rgb, mean)  # measured 0.30x
    assert rgb["pa_mpjpe"] <= 0.8 * articulation["pa_mpjpe"], (rgb, articulation)  # 0.70x
    assert trained["mpjpe"] <= 0.35 * mean["mpjpe"], (trained, mean)  # measured 0.22x
    assert trained["reproj_2d"] <= 0.15 * mean["reproj_2d"], (trained, mean)  # 0.04x
    assert trained["pa_mpjpe"] <= 0.6 * articulation["pa_mpjpe"], (trained, articulation)  # 0.55x
    assert np.isfinite(trained["accel"])


def test_the_eval_command_scores_them_with_the_synthetic_sets_own_hand_model(tmp_path, capsys):
    from extpose_sdk.cli import main

    out = tmp_path / "eval.json"
    assert main(["eval", "--model", "extpose-hamer", "--checkpoint", NAME, "--dataset",
                 "synthetic-hand", "--split", "test", "--clip-length", "8", "--body-model",
                 "synthetic", "--dataset-option", "num_sequences=1", "--dataset-option",
                 "sequence_length=8", "--dataset-option", "crop_size=128", "--dataset-option",
                 "seed=3", "--no-progress", "--json", str(out)]) == 0
    assert "synthetic-hand" in capsys.readouterr().out
    summary = json.loads(out.read_text())["summary"]
    assert summary["n"] == 8 and summary["mpjpe"] < 60  # always the mean: about 140 mm
