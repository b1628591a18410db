"""The skeleton renderer and modality: geometry, alignment with the RGB crop, confidence, errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import extpose_sdk
from extpose_sdk.keypoints import get_layout
from extpose_sdk.modalities import CropEvidence
from extpose_sdk.modalities.skeleton import SkeletonRenderer

LAYOUT = get_layout("coco17")
L_SHOULDER, L_ELBOW, L_WRIST = 5, 7, 9


def coco17(points: dict[int, tuple[float, float, float]]) -> np.ndarray:
    """(1, 17, 3) keypoints with only the given joints present."""
    keypoints = np.zeros((1, 17, 3), np.float32)
    for joint, value in points.items():
        keypoints[0, joint] = value
    return keypoints


def distance_to_segment(pixels: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = b - a
    t = np.clip(((pixels - a) @ d) / (d @ d), 0.0, 1.0)
    return np.linalg.norm(pixels - (a + t[:, None] * d), axis=1)


def centroid(picture: np.ndarray, near: np.ndarray) -> np.ndarray:
    """Intensity centroid (x, y) of ``picture`` in a 25 px window around ``near``."""
    x0, y0 = np.round(near).astype(int) - 12
    window = picture[y0 : y0 + 25, x0 : x0 + 25].astype(float).sum(-1)
    ys, xs = np.mgrid[0:25, 0:25]
    return np.array([(xs * window).sum(), (ys * window).sum()]) / window.sum() + [x0, y0]


def affine(angle_deg: float, scale: float, centre, crop_size=256, flip=False) -> np.ndarray:
    """Full image -> crop: rotate and scale about ``centre``, which lands at the crop centre."""
    m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle_deg, scale)
    if flip:
        m[0] *= -1
        m[0, 2] += 2 * centre[0]  # mirror x about the centre
    m[:, 2] += np.array([(crop_size - 1) / 2, (crop_size - 1) / 2]) - np.asarray(centre)
    return m


@pytest.mark.parametrize("antialias", [False, True])
def test_limb_pixels_lie_along_the_projected_limb_and_nowhere_else(antialias):
    renderer = SkeletonRenderer("coco17", limb_width=4, joint_radius=0, antialias=antialias)
    keypoints = coco17({L_SHOULDER: (300, 200, 1), L_ELBOW: (380, 260, 1)})
    transform = np.array([[0.8, 0.0, -180.0], [0.0, 0.8, -100.0]])
    image = renderer.render(keypoints, transform[None])[0]

    a, b = renderer.project(keypoints, transform[None])[0, [L_SHOULDER, L_ELBOW]]
    ys, xs = np.nonzero(image.any(axis=-1))
    assert len(xs) > 50
    distance = distance_to_segment(np.stack([xs, ys], 1).astype(float), a, b)
    assert distance.max() <= renderer.thickness / 2 + (1.5 if antialias else 1.0)
    # ... and the whole limb is drawn, in its layout colour.
    limb = LAYOUT.limbs.index((L_SHOULDER, L_ELBOW))
    for t in np.linspace(0, 1, 9):
        x, y = np.round(a + t * (b - a)).astype(int)
        assert tuple(image[y, x]) == LAYOUT.limb_colours[limb]


@pytest.mark.parametrize(
    ("angle", "scale", "flip"), [(0, 1.0, False), (35, 1.6, False), (-120, 0.7, True)]
)
def test_joints_coincide_with_dots_painted_in_the_image_under_rotation_scale_and_flip(
    angle, scale, flip
):
    # Joints with no limb between them, painted as white discs into a full image.
    joints = {0: (210.0, 140.0), L_WRIST: (260.0, 205.0), 16: (175.0, 225.0), 11: (240.0, 150.0)}
    image = np.zeros((360, 420, 3), np.uint8)
    for x, y in joints.values():
        cv2.circle(image, (int(x) * 16, int(y) * 16), 4 * 16, (255, 255, 255), -1, cv2.LINE_AA, 4)
    transform = affine(angle, scale, centre=(215.0, 185.0), flip=flip)
    crop = cv2.warpAffine(image, transform, (256, 256), flags=cv2.INTER_LINEAR)

    renderer = SkeletonRenderer("coco17", joint_radius=3, threshold=0.5)
    keypoints = coco17({j: (x, y, 1.0) for j, (x, y) in joints.items()})
    skeleton = renderer.render(keypoints, transform[None])[0]

    for joint, (x, y) in joints.items():
        expected = transform @ np.array([x, y, 1.0])
        painted = centroid(crop, expected)
        drawn = centroid(skeleton, expected)
        assert np.abs(painted - expected).max() < 0.5, (joint, painted, expected)
        assert np.abs(drawn - painted).max() < 0.5, (joint, drawn, painted)
        assert (
            tuple(skeleton[int(round(expected[1])), int(round(expected[0]))])
            == LAYOUT.joint_colours[joint]
        )


def test_aligned_with_the_sdk_crops_under_augmentation():
    crops = pytest.importorskip(
        "extpose_sdk.data.crops", reason="extpose_sdk.data.crops is not there yet"
    )
    joints = {0: (300.0, 210.0), L_WRIST: (350.0, 300.0), 16: (260.0, 330.0)}
    image = np.zeros((480, 640, 3), np.uint8)
    for x, y in joints.values():
        cv2.circle(image, (int(x) * 16, int(y) * 16), 5 * 16, (255, 255, 255), -1, cv2.LINE_AA, 4)
    crop = crops.make_crop((220, 150, 400, 390), image_width=640, rotation=25, zoom=0.8, flip=True)
    rgb = crops.warp(image, crop, anti_alias=False)
    keypoints = coco17({j: (x, y, 1.0) for j, (x, y) in joints.items()})
    skeleton = SkeletonRenderer("coco17", size=(crop.size, crop.size)).render(
        keypoints, crop.transform
    )[0]
    for x, y in joints.values():
        expected = crop.transform @ np.array([x, y, 1.0])
        assert np.abs(centroid(skeleton, expected) - centroid(rgb, expected)).max() < 0.5


def test_low_confidence_joints_are_left_out_or_faded():
    keypoints = coco17(
        {L_SHOULDER: (100, 100, 0.9), L_ELBOW: (160, 100, 0.5), L_WRIST: (220, 100, 0.1)}
    )
    identity = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    hide = SkeletonRenderer("coco17", threshold=0.3, low_confidence="hide").render(
        keypoints, identity
    )[0]
    assert hide[100, 130].any()  # shoulder-elbow drawn
    assert not hide[95:106, 185:230].any()  # elbow-wrist and the wrist dot left out
    everything = SkeletonRenderer("coco17", threshold=0.0).render(keypoints, identity)[0]
    assert everything[100, 190].any() and everything[100, 220].any()

    fade = SkeletonRenderer("coco17", threshold=0.0, low_confidence="fade").render(
        keypoints, identity
    )[0]
    full = everything.astype(int)
    limb = LAYOUT.limbs.index((L_SHOULDER, L_ELBOW))
    assert np.abs(fade[100, 130].astype(int) - np.array(LAYOUT.limb_colours[limb]) * 0.5).max() <= 1
    assert fade[100, 190].max() < full[100, 190].max() * 0.2  # wrist limb at 0.1 confidence
    assert fade[100, 100].max() < full[100, 100].max()


def test_limbs_are_clipped_at_the_crop_border_without_overflow():
    keypoints = coco17(
        {L_SHOULDER: (128, 128, 1), L_ELBOW: (1e9, 128, 1), L_WRIST: (-5e8, -7e8, 1)}
    )
    renderer = SkeletonRenderer("coco17", joint_radius=0, antialias=False)
    image = renderer.render(keypoints, np.array([[1.0, 0, 0], [0, 1.0, 0]]))[0]
    assert image[128, 129:].any(axis=-1).all()  # runs to the right border
    assert not image[:100, 200:].any()


def test_batch_equals_one_by_one_and_output_is_uint8_of_the_crop_size():
    rng = np.random.default_rng(0)
    keypoints = np.concatenate([rng.uniform(0, 300, (5, 17, 2)), rng.uniform(0, 1, (5, 17, 1))], -1)
    transforms = np.stack([affine(a, 0.9, (150, 150), crop_size=192) for a in range(0, 50, 10)])
    renderer = SkeletonRenderer("coco17", size=(192, 192))
    batch = renderer.render(keypoints, transforms)
    assert batch.shape == (5, 192, 192, 3) and batch.dtype == np.uint8
    for i in range(5):
        np.testing.assert_array_equal(
            batch[i], renderer.render(keypoints[i : i + 1], transforms[i : i + 1])[0]
        )


def test_bad_input_gets_clear_errors():
    renderer = SkeletonRenderer("coco17")
    identity = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    with pytest.raises(ValueError, match="layout 'coco17' has 17 keypoints, got 21"):
        renderer.render(np.zeros((1, 21, 3)), identity)
    nan = coco17({3: (np.nan, 5, 1.0)})
    with pytest.raises(ValueError, match="NaN or infinite on a joint with confidence > 0"):
        renderer.render(nan, identity)
    renderer.render(coco17({3: (np.nan, 5, 0.0)}), identity)  # a missing joint may be NaN
    with pytest.raises(ValueError, match="negative confidence"):
        renderer.render(coco17({3: (1, 5, -0.5)}), identity)
    with pytest.raises(ValueError, match=r"transforms: expected shape \(1, 2, 3\)"):
        renderer.render(coco17({}), np.eye(3))
    with pytest.raises(ValueError, match="low_confidence"):
        SkeletonRenderer("coco17", low_confidence="blur")
    with pytest.raises(KeyError, match="available: coco17"):
        SkeletonRenderer("coco18")


def test_skeleton_modality_from_the_registry():
    modality = extpose_sdk.get_registries().modality.build("skeleton")
    transform = affine(20, 1.2, (120, 120))
    evidence = CropEvidence(
        size=(256, 256),
        transform=transform,
        keypoints=coco17({L_SHOULDER: (100, 100, 1), L_ELBOW: (140, 130, 1)})[0],
        keypoint_layout="coco17",
    )
    assert modality.available(evidence)
    tensor = modality(evidence)
    assert tuple(tensor.shape) == (3, 256, 256)
    image = SkeletonRenderer("coco17").render(evidence.keypoints[None], transform[None])[0]
    background = tensor[:, 0, 0]
    assert (tensor != background[:, None, None]).any(0).sum().item() == image.any(-1).sum()
    assert not modality.available(CropEvidence(size=(256, 256), transform=transform))
    hands = extpose_sdk.get_registries().modality.build(
        "skeleton", layout="openpose_hand21", limb_width=2
    )
    hand = np.zeros((21, 3), np.float32)
    hand[:5] = [[128, 200, 1], [140, 180, 1], [150, 160, 1], [158, 140, 1], [165, 125, 1]]
    assert hands.render(
        CropEvidence((256, 256), np.array([[1.0, 0, 0], [0, 1, 0]]), keypoints=hand)
    ).any()
