"""What a model reconstructs: the subject spec (a body or a hand), declared once, read everywhere.

Every place that needs to know "body or hand" reads a ``Subject`` instead of guessing from a name:
the pipeline (crop size, left-hand mirroring, which pose to report), the engine (the joint the
3D loss centres on, the pose key), the synthetic data sets (layouts, joint set), the data-set
readers and the evaluation. Heads declare the subject they predict (``SMPLHead.subject = BODY``,
``MANOHead.subject = HAND``), so a model built from any registered recipe knows its subject
through its head whatever the recipe is called; a recipe may also declare it when it registers
(``register(name, factory, description, subject="hand")``), which ``extpose plugins`` shows and
``Pipeline.from_plugins`` checks before building.

    from extpose_sdk.subjects import HAND, get_subject, subject_of
    HAND.pose_key, HAND.joint_set, HAND.root_joint     # 'hand_pose', 'mano21', 0
    subject_of(model).name                              # 'hand' for any MANO-head model

A plugin with another kind of subject (an animal, a whole body) makes its own ``Subject`` and
gives it to its head; nothing in the SDK compares subject names.
"""

from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen
class Subject:
    """Everything the SDK needs to know about what a model reconstructs.

    Attributes:
        name: ``body`` or ``hand`` (shown in messages, and the key of ``SUBJECTS``).
        body_model: the body-model kind ``extpose_sdk.body_models.load_body_model`` takes
            (``smpl`` / ``mano``).
        pose_key: the pose entry of heads' outputs, samples and results (``body_pose`` /
            ``hand_pose``): ``pose_joints`` rotations, the root (``global_orient``) apart.
        pose_joints: rotations in the pose without the root (SMPL 23, MANO 15).
        joint_set: the 3D / 2D label joints (``smpl44``: HMR2.0's 44 joints; ``mano21``:
            HaMeR's 21 OpenPose-order hand joints); ``num_joints`` of them.
        root_joint: the joint of ``joint_set`` the 3D keypoint loss and the metrics centre on
            (HMR2.0's pelvis, 39; the wrist, 0).
        detector_layout: the keypoint layout of this subject's usual 2D detector (the synthetic
            data's stand-in detector; ``coco17`` / ``openpose_hand21``).
        label_layout: the keypoint layout of the first joints of ``joint_set`` (``smpl44``
            starts with OpenPose BODY_25; ``mano21`` is OpenPose's hand order).
        crop_rescale: a box around the subject's 2D keypoints is enlarged by this factor before
            cropping (bodies 1.2: head and feet reach past the joints; hands 2.0, HaMeR's demo).
        mirror_left: the model sees right hands only: a left hand's crop is mirrored, and its
            results mirrored back (HaMeR's convention, kept by the SDK's hand data and training).
        size: typical extent in metres (a synthetic subject is placed to fill its share of the
            image with it).
        label: how messages name it (``body (SMPL)``).
    """

    name: str
    body_model: str
    pose_key: str
    pose_joints: int
    joint_set: str
    num_joints: int
    root_joint: int
    detector_layout: str
    label_layout: str
    crop_rescale: float
    mirror_left: bool = False
    size: float = 1.0
    label: str = ""

    @property
    def pose_size(self) -> int:
        """Axis-angle values of the root and the pose, flattened (SMPL 72, MANO 48)."""
        return 3 * (self.pose_joints + 1)

    @property
    def label_joints(self) -> int:
        """How many of ``joint_set``'s first joints are in ``label_layout`` (25 / 21)."""
        from extpose_sdk.keypoints.layouts import get_layout

        return get_layout(self.label_layout).num_keypoints

    def layouts(self) -> list[str]:
        """The keypoint layouts whose points are of this subject (for messages and checks)."""
        from extpose_sdk.keypoints.layouts import layouts_of

        return layouts_of(self.name)

    def __str__(self) -> str:
        return self.label or self.name


BODY = Subject(
    name="body", body_model="smpl", pose_key="body_pose", pose_joints=23, joint_set="smpl44",
    num_joints=44, root_joint=39, detector_layout="coco17", label_layout="openpose_body25",
    crop_rescale=1.2, mirror_left=False, size=1.7, label="body (SMPL)",
)
HAND = Subject(
    name="hand", body_model="mano", pose_key="hand_pose", pose_joints=15, joint_set="mano21",
    num_joints=21, root_joint=0, detector_layout="openpose_hand21",
    label_layout="openpose_hand21", crop_rescale=2.0, mirror_left=True, size=0.2,
    label="hand (MANO)",
)
#: The subjects the SDK's own heads, data sets and recipes declare, by name.
SUBJECTS: dict[str, Subject] = {subject.name: subject for subject in (BODY, HAND)}


def get_subject(subject: str | Subject) -> Subject:
    """The ``Subject`` called ``subject`` (``"body"`` / ``"hand"``); a ``Subject`` passes through."""
    if isinstance(subject, Subject):
        return subject
    if subject in SUBJECTS:
        return SUBJECTS[subject]
    raise ValueError(f"unknown subject {subject!r}; available: {', '.join(SUBJECTS)} "
                     "(or an extpose_sdk.subjects.Subject)")


def subject_of_joint_set(joint_set: str) -> Subject:
    """The subject whose label joints are ``joint_set`` (``smpl44`` -> body)."""
    for subject in SUBJECTS.values():
        if subject.joint_set == joint_set:
            return subject
    raise ValueError(f"no subject has the joint set {joint_set!r}; known: "
                     + ", ".join(f"{s.joint_set} ({s.name})" for s in SUBJECTS.values()))


def subject_of(model: Any, default: str | Subject | None = None) -> Subject:
    """The subject ``model`` declares: its ``subject`` attribute, else its head's, else
    ``default``; a ``ValueError`` saying how to declare one when there is none."""
    for owner in (model, getattr(model, "head", None)):
        declared = getattr(owner, "subject", None)
        if declared is not None:
            return get_subject(declared)
    if default is not None:
        return get_subject(default)
    raise ValueError(
        f"{type(model).__name__} declares no subject (body or hand): give its head a "
        "`subject` (extpose_sdk.subjects.BODY / HAND), or register its recipe with "
        "subject='body' / 'hand'"
    )
