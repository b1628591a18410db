"""Box tracking: stable ids across frames, crossing people, new and lost tracks."""

from __future__ import annotations

import numpy as np
import pytest

from extpose_sdk.tracking import BoxTracker, box_iou, match_boxes


def test_box_iou():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    np.testing.assert_allclose(box_iou(a, b), [[1.0, 50 / 150, 0.0]])
    assert box_iou(np.zeros((0, 4)), b).shape == (0, 3)


@pytest.mark.parametrize("matching", ["hungarian", "greedy"])
def test_ids_follow_people_whatever_order_the_boxes_come_in(matching):
    tracker = BoxTracker(iou_threshold=0.2, matching=matching)
    left = np.array([0.0, 0, 20, 40])
    right = np.array([100.0, 0, 120, 40])
    ids0 = tracker.update(np.stack([left, right]))
    assert ids0.tolist() == [0, 1]
    for step in range(1, 6):  # both walk right; boxes arrive in swapped order
        shift = np.array([3.0 * step, 0, 3.0 * step, 0])
        ids = tracker.update(np.stack([right + shift, left + shift]))
        assert ids.tolist() == [1, 0]


def test_new_people_get_new_ids_and_lost_tracks_end():
    tracker = BoxTracker(iou_threshold=0.3, max_missed=1)
    a = np.array([[0.0, 0, 10, 10]])
    assert tracker.update(a).tolist() == [0]
    assert tracker.update(np.zeros((0, 4))).tolist() == []
    assert tracker.update(a).tolist() == [0]  # missed one frame: still the same person
    tracker.update(np.zeros((0, 4)))
    tracker.update(np.zeros((0, 4)))
    assert tracker.update(a).tolist() == [1]  # missed two frames: a new track, ids not reused
    b = np.array([[50.0, 50, 60, 60]])
    assert tracker.update(np.concatenate([a, b])).tolist() == [1, 2]


def test_hungarian_maximises_total_overlap_where_greedy_does_not():
    iou = np.array([[0.9, 0.8], [0.85, 0.0]])
    assert sorted(match_boxes(iou, 0.1, "hungarian")) == [(0, 1), (1, 0)]
    assert sorted(match_boxes(iou, 0.1, "greedy")) == [(0, 0)]
    with pytest.raises(ValueError, match="hungarian, greedy"):
        BoxTracker(matching="best")
