"""The weights extpose-plugin-hmr2 ships (``extpose-hmr2-synthetic``): they load through the
safe path, ``extpose predict --sample body`` uses them and lands on the body, and they beat
always predicting the mean on held-out synthetic clips. docs/reproduction.md has the full
measurements."""

from __future__ import annotations

import re

from extpose_sdk.testing import (
    check_a_changed_byte_is_refused,
    check_shipped_weights,
    held_out_scores,
    predict_sample_with_shipped_weights,
)

NAME = "extpose-hmr2-synthetic"
SAMPLE_BAR = 0.1  # the bar for the sample's 2D error (random: about 1)
# On the two held-out clips (measured 2026-12-01, the weights trained with loss.temporal: MPJPE
# 52.2 against 106.0 for always the mean, 0.49x, and 50.5 from RGB alone, 0.48x; PA-MPJPE 34.7
# against 73.5 for the mean articulation, 0.47x, and 35.4 from RGB alone; 2D error 0.017
# against 0.068, 0.25x; acceleration error 5.6 mm / frame^2). Arm (d) without the term, shipped
# until then: 0.52x, 0.46x, 0.23x and 28.8, the skeleton's detection jitter passing through.
# The weights shipped first (no conv stem, trained mostly on the skeleton image) reached 0.66x,
# 0.59x and 0.34x with both inputs and about the mean from RGB alone; they fail these bars.
MPJPE_BAR = 0.65  # MPJPE, as a multiple of always predicting the mean's
PA_BAR = 0.6  # PA-MPJPE, as a multiple of the mean articulation's
REPROJ_BAR = 0.3  # the 2D error, as a multiple of always predicting the mean's
ACCEL_BAR = 10.0  # the acceleration error with both inputs, mm / frame^2


def test_the_weights_are_registered_with_their_recipe_and_ship_with_the_package():
    check_shipped_weights(NAME, model="extpose-hmr2", subject="body",
                          package="extpose-plugin-hmr2", recipe="synthetic-body", frames=8)


def test_a_changed_byte_in_the_shipped_file_is_refused(tmp_path):
    check_a_changed_byte_is_refused(NAME, "extpose-hmr2", tmp_path)


def test_predict_sample_body_uses_them_and_the_mesh_lands_on_the_body(tmp_path):
    from extpose_sdk.data.video import open_video

    out = tmp_path / "out"
    _, printed = predict_sample_with_shipped_weights(NAME, "extpose-hmr2", "body", out, "--render")
    assert len(list(open_video(out / "overlay.mp4", backend="opencv"))) == 24
    error = float(re.search(r"2D joints lie ([0-9.]+) of the box size", printed).group(1))
    assert error <= SAMPLE_BAR, error  # random weights: about 1


def test_they_beat_the_mean_on_held_out_clips():
    """Two held-out clips: against always predicting the mean (the head's mean orientation,
    pose, shape and camera) the 3D joints and their 2D projections are closer, and so is the
    articulation against the mean articulation, with both inputs and from the RGB image alone
    (trained with modality dropout from an RGB-only base): bars a little above the measured
    figures, so that worse weights cannot ship unnoticed."""
    scores = held_out_scores(NAME, "extpose-hmr2", "body", rgb_only=True)
    trained, mean, articulation = scores["trained"], scores["mean"], scores["articulation"]
    for name in ("trained", "rgb_only"):
        scored = scores[name]
        assert scored["mpjpe"] <= MPJPE_BAR * mean["mpjpe"], (name, scored, mean)
        assert scored["reproj_2d"] <= REPROJ_BAR * mean["reproj_2d"], (name, scored, mean)
        assert scored["pa_mpjpe"] <= PA_BAR * articulation["pa_mpjpe"], (name, scored,
                                                                         articulation)
    assert trained["accel"] <= ACCEL_BAR, trained  # smooth: the skeleton's jitter stays out
