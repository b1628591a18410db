"""Keypoint layouts as data: joint names, limbs (pairs of joint indices) and limb colours.

    from extpose_sdk.keypoints.layouts import get_layout
    layout = get_layout("coco17")
    layout.num_keypoints, layout.names[0], layout.limbs[0]     # 17, 'nose', (15, 13)

Layouts: ``coco17`` (COCO person keypoints), ``coco_wholebody133`` (COCO-WholeBody: body 0-16,
feet 17-22, face 23-90, left hand 91-111, right hand 112-132; each hand in OpenPose hand order),
``openpose_body25`` (OpenPose BODY_25) and ``openpose_hand21`` (OpenPose / MANO hand order:
wrist, then thumb, index, middle, ring, little finger, each from base to tip).

``convert(points, source, target)`` maps between layouts where the mapping is defined; joints the
target has and the source lacks get confidence 0.
"""

from __future__ import annotations

import colorsys
import difflib

import attrs
import numpy as np

Limb = tuple[int, int]


def _rainbow(
    count: int, saturation: float = 1.0, value: float = 1.0
) -> tuple[tuple[int, int, int], ...]:
    """``count`` distinct RGB colours (0..255) around the hue circle, red first."""
    colours = []
    for i in range(count):
        r, g, b = colorsys.hsv_to_rgb(i / max(count, 1), saturation, value)
        colours.append((round(r * 255), round(g * 255), round(b * 255)))
    return tuple(colours)


@attrs.frozen
class KeypointLayout:
    """A named set of 2D keypoints with the limbs drawn between them.

    Attributes:
        name: registry name (``coco17``...).
        names: joint names, in array order.
        limbs: pairs of joint indices joined by a line in a skeleton image.
        limb_colours: one RGB colour (0..255) per limb.
        joint_colours: one RGB colour (0..255) per joint.
    """

    name: str
    names: tuple[str, ...]
    limbs: tuple[Limb, ...]
    limb_colours: tuple[tuple[int, int, int], ...]
    joint_colours: tuple[tuple[int, int, int], ...]

    def __attrs_post_init__(self) -> None:
        k = len(self.names)
        for a, b in self.limbs:
            if not (0 <= a < k and 0 <= b < k):
                raise ValueError(f"layout {self.name!r}: limb ({a}, {b}) outside 0..{k - 1}")
        if len(self.limb_colours) != len(self.limbs):
            raise ValueError(
                f"layout {self.name!r}: {len(self.limbs)} limbs, {len(self.limb_colours)} colours"
            )
        if len(self.joint_colours) != k:
            raise ValueError(f"layout {self.name!r}: {k} joints, {len(self.joint_colours)} colours")

    @property
    def num_keypoints(self) -> int:
        return len(self.names)

    def index(self, joint: str) -> int:
        """Array index of the joint called ``joint``."""
        try:
            return self.names.index(joint)
        except ValueError:
            raise KeyError(
                f"layout {self.name!r} has no joint {joint!r}; joints: {', '.join(self.names)}"
            ) from None

    @property
    def flip_indices(self) -> tuple[int, ...]:
        """For a horizontally flipped image: ``flipped[:, j] = points[:, flip_indices[j]]``
        (left and right joints swap; face landmarks mirror)."""
        flipped = []
        for name in self.names:
            if name.startswith("face") and name[4:].isdigit():
                mirror = f"face{_FACE68_MIRROR[int(name[4:])]}"
            elif "left" in name:
                mirror = name.replace("left", "right")
            else:
                mirror = name.replace("right", "left")
            flipped.append(self.names.index(mirror))
        return tuple(flipped)


def _make(name: str, names: list[str], limbs: list[Limb]) -> KeypointLayout:
    limb_colours = _rainbow(len(limbs))
    # A joint takes the colour of the first limb that touches it (grey if none does).
    joint_colours = []
    for j in range(len(names)):
        touching = [c for (a, b), c in zip(limbs, limb_colours, strict=True) if j in (a, b)]
        joint_colours.append(touching[0] if touching else (200, 200, 200))
    return KeypointLayout(name, tuple(names), tuple(limbs), limb_colours, tuple(joint_colours))


# --- COCO-17 -------------------------------------------------------------------------------

COCO17_NAMES = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
]  # fmt: skip
# The COCO annotation file's skeleton, 0-based.
COCO17_LIMBS: list[Limb] = [
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
]  # fmt: skip

# --- OpenPose hand-21 --------------------------------------------------------------------------

_FINGERS = ["thumb", "index", "middle", "ring", "pinky"]
HAND21_NAMES = ["wrist"] + [f"{finger}{i}" for finger in _FINGERS for i in range(1, 5)]
HAND21_LIMBS: list[Limb] = [
    limb
    for f in range(5)
    for limb in [
        (0, 1 + 4 * f),
        (1 + 4 * f, 2 + 4 * f),
        (2 + 4 * f, 3 + 4 * f),
        (3 + 4 * f, 4 + 4 * f),
    ]
]

# --- OpenPose BODY_25 --------------------------------------------------------------------------

BODY25_NAMES = [
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "mid_hip", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee",
    "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear", "left_big_toe",
    "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel",
]  # fmt: skip
BODY25_LIMBS: list[Limb] = [
    (1, 8), (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (8, 9), (9, 10), (10, 11), (8, 12),
    (12, 13), (13, 14), (1, 0), (0, 15), (15, 17), (0, 16), (16, 18), (14, 19), (19, 20),
    (14, 21), (11, 22), (22, 23), (11, 24),
]  # fmt: skip

# --- COCO-WholeBody-133 ------------------------------------------------------------------------

_FEET_NAMES = [
    "left_big_toe",
    "left_small_toe",
    "left_heel",
    "right_big_toe",
    "right_small_toe",
    "right_heel",
]
_FACE_START, _LEFT_HAND_START, _RIGHT_HAND_START = 23, 91, 112


def _face68_limbs(offset: int) -> list[Limb]:
    """The 68-point face landmark contours: jaw, brows, nose, eyes and lips (eyes, lips closed)."""
    chains = [(0, 16, False), (17, 21, False), (22, 26, False), (27, 30, False), (31, 35, False),
              (36, 41, True), (42, 47, True), (48, 59, True), (60, 67, True)]  # fmt: skip
    limbs = []
    for first, last, closed in chains:
        limbs += [(offset + i, offset + i + 1) for i in range(first, last)]
        if closed:
            limbs.append((offset + last, offset + first))
    return limbs


def _face68_mirror() -> list[int]:
    """Index of each 68-point face landmark's mirror image (jaw, brows, nose, eyes, lips)."""
    mirror = list(range(68))
    pairs = [(0, 16), (17, 26), (31, 35), (48, 54), (55, 59), (60, 64), (65, 67)]
    for first, last in pairs:
        for i in range(first, last + 1):
            mirror[i] = first + last - i
    for a, b in zip([36, 37, 38, 39, 40, 41], [45, 44, 43, 42, 47, 46], strict=True):
        mirror[a], mirror[b] = b, a
    return mirror


_FACE68_MIRROR = _face68_mirror()

WHOLEBODY133_NAMES = (
    COCO17_NAMES
    + _FEET_NAMES
    + [f"face{i}" for i in range(68)]
    + [f"left_hand_{n}" for n in HAND21_NAMES]
    + [f"right_hand_{n}" for n in HAND21_NAMES]
)
WHOLEBODY133_LIMBS: list[Limb] = (
    COCO17_LIMBS
    + [(15, 17), (15, 18), (15, 19), (16, 20), (16, 21), (16, 22)]
    + [(9, _LEFT_HAND_START), (10, _RIGHT_HAND_START)]
    + [(a + _LEFT_HAND_START, b + _LEFT_HAND_START) for a, b in HAND21_LIMBS]
    + [(a + _RIGHT_HAND_START, b + _RIGHT_HAND_START) for a, b in HAND21_LIMBS]
    + _face68_limbs(_FACE_START)
)

LAYOUTS: dict[str, KeypointLayout] = {
    layout.name: layout
    for layout in [
        _make("coco17", COCO17_NAMES, COCO17_LIMBS),
        _make("coco_wholebody133", WHOLEBODY133_NAMES, WHOLEBODY133_LIMBS),
        _make("openpose_body25", BODY25_NAMES, BODY25_LIMBS),
        _make("openpose_hand21", HAND21_NAMES, HAND21_LIMBS),
    ]
}


#: What each layout's keypoints are of: ``"body"`` or ``"hand"`` (a model of the other kind
#: cannot use them).
SUBJECTS: dict[str, str] = {
    "coco17": "body",
    "coco_wholebody133": "body",
    "openpose_body25": "body",
    "openpose_hand21": "hand",
}


class UnknownLayoutError(KeyError, ValueError):
    """A keypoint layout name that is not defined (the message lists the defined ones)."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


def layouts_of(subject: str) -> list[str]:
    """The layout names whose keypoints are of ``subject`` (``"body"`` or ``"hand"``)."""
    return [name for name, of in SUBJECTS.items() if of == subject]


def get_layout(layout: str | KeypointLayout) -> KeypointLayout:
    """The layout called ``layout`` (a ``KeypointLayout`` passes through)."""
    if isinstance(layout, KeypointLayout):
        return layout
    if layout in LAYOUTS:
        return LAYOUTS[layout]
    message = f"unknown keypoint layout {layout!r}; available: {', '.join(LAYOUTS)}"
    close = difflib.get_close_matches(str(layout), list(LAYOUTS), n=2, cutoff=0.5)
    if close:
        message += f". Did you mean {' or '.join(repr(c) for c in close)}?"
    raise UnknownLayoutError(message)


def layout_for_count(num_keypoints: int) -> str:
    """The layout name with ``num_keypoints`` joints (17 -> coco17, 25, 21, 133)."""
    for name, layout in LAYOUTS.items():
        if layout.num_keypoints == num_keypoints:
            return name
    counts = ", ".join(f"{n} ({l.num_keypoints})" for n, l in LAYOUTS.items())
    raise ValueError(f"no keypoint layout has {num_keypoints} keypoints; known: {counts}")


# --- conversions -------------------------------------------------------------------------------


# Conversions by name: for each target joint, the source joint(s) whose mean it is (empty: missing).
def _by_name(source: KeypointLayout, target: KeypointLayout, prefix: str = "") -> list[list[int]]:
    return [
        [source.names.index(prefix + n)] if prefix + n in source.names else [] for n in target.names
    ]


def _conversion(source: str, target: str, side: str | None) -> list[list[int]]:
    src, dst = get_layout(source), get_layout(target)
    if target == "openpose_hand21" and source == "coco_wholebody133":
        if side not in ("left", "right"):
            raise ValueError(
                "coco_wholebody133 -> openpose_hand21 needs side='left' or side='right'"
            )
        return _by_name(src, dst, prefix=f"{side}_hand_")
    if source == target:
        return [[j] for j in range(src.num_keypoints)]
    body = {"coco17", "coco_wholebody133", "openpose_body25"}
    if source in body and target in body:
        groups = _by_name(src, dst)
        if target == "openpose_body25":  # neck and mid hip: means of shoulders and hips
            groups[dst.index("neck")] = [src.index("left_shoulder"), src.index("right_shoulder")]
            groups[dst.index("mid_hip")] = [src.index("left_hip"), src.index("right_hip")]
        return groups
    raise ValueError(
        f"no conversion from {source!r} to {target!r}; defined: between coco17, coco_wholebody133 "
        "and openpose_body25 (body joints), and coco_wholebody133 -> openpose_hand21 (side='left'|'right')"
    )


def convert(points: np.ndarray, source: str, target: str, *, side: str | None = None) -> np.ndarray:
    """Keypoints ``(..., K_source, 3)`` in layout ``source`` -> ``(..., K_target, 3)`` in ``target``.

    A target joint the source lacks gets x = y = 0 and confidence 0. A joint defined as the mean
    of two source joints (BODY_25's neck and mid hip) takes the lower confidence of the two and is
    missing when either is.
    """
    points = np.asarray(points, dtype=np.float32)
    k_src = get_layout(source).num_keypoints
    if points.ndim < 2 or points.shape[-2:] != (k_src, 3):
        raise ValueError(
            f"convert: expected keypoints of shape (..., {k_src}, 3) for {source!r}, got {points.shape}"
        )
    groups = _conversion(source, target, side)
    out = np.zeros((*points.shape[:-2], len(groups), 3), dtype=np.float32)
    for j, group in enumerate(groups):
        if not group:
            continue
        chosen = points[..., group, :]
        confidence = chosen[..., 2].min(axis=-1)
        out[..., j, :2] = chosen[..., :2].mean(axis=-2)
        out[..., j, 2] = np.where(chosen[..., 2].min(axis=-1) > 0, confidence, 0.0)
    return out
