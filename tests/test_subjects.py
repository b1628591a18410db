"""The subject spec: declared by heads and recipes, read everywhere instead of model names."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import extpose_sdk  # noqa: E402
from extpose_sdk import hookimpl  # noqa: E402
from extpose_sdk.assembly import FitError  # noqa: E402
from extpose_sdk.keypoints import Keypoints  # noqa: E402
from extpose_sdk.pipeline import Pipeline  # noqa: E402
from extpose_sdk.subjects import (  # noqa: E402
    BODY,
    HAND,
    SUBJECTS,
    Subject,
    get_subject,
    subject_of,
    subject_of_joint_set,
)

TINY = dict(embed_dim=32, depth=1, num_heads=2, head_dim=16, head_depth=1, head_heads=2,
            head_dim_head=8, head_mlp_dim=16)


def test_the_two_subjects_hold_the_facts_the_sdk_reads():
    assert (BODY.body_model, BODY.pose_key, BODY.pose_joints, BODY.pose_size) == (
        "smpl", "body_pose", 23, 72)
    assert (HAND.body_model, HAND.pose_key, HAND.pose_joints, HAND.pose_size) == (
        "mano", "hand_pose", 15, 48)
    assert (BODY.joint_set, BODY.num_joints, BODY.root_joint) == ("smpl44", 44, 39)
    assert (HAND.joint_set, HAND.num_joints, HAND.root_joint) == ("mano21", 21, 0)
    assert (BODY.detector_layout, BODY.label_layout, BODY.label_joints) == (
        "coco17", "openpose_body25", 25)
    assert (HAND.detector_layout, HAND.label_layout, HAND.label_joints) == (
        "openpose_hand21", "openpose_hand21", 21)
    assert (BODY.crop_rescale, HAND.crop_rescale) == (1.2, 2.0)
    assert (BODY.mirror_left, HAND.mirror_left) == (False, True)
    assert BODY.layouts() == ["coco17", "coco_wholebody133", "openpose_body25"]
    assert HAND.layouts() == ["openpose_hand21"]
    assert str(BODY) == "body (SMPL)" and str(HAND) == "hand (MANO)"


def test_lookups_by_name_joint_set_and_model():
    assert get_subject("hand") is HAND and get_subject(BODY) is BODY
    assert subject_of_joint_set("smpl44") is BODY and subject_of_joint_set("mano21") is HAND
    with pytest.raises(ValueError, match=r"unknown subject 'dog'; available: body, hand"):
        get_subject("dog")
    with pytest.raises(ValueError, match=r"no subject has the joint set 'smpl24'"):
        subject_of_joint_set("smpl24")
    with pytest.raises(ValueError, match=r"Module declares no subject .*subject='body'"):
        subject_of(torch.nn.Module())
    assert subject_of(torch.nn.Module(), default="hand") is HAND
    assert set(SUBJECTS) == {"body", "hand"}


def test_heads_declare_their_subject_and_size_their_pose_by_it():
    registries = extpose_sdk.get_registries()
    for name, subject in (("smpl", BODY), ("mano", HAND)):
        head = registries.head.build(name, context_dim=8, dim=16, depth=1, heads=2, dim_head=8,
                                     mlp_dim=16)
        assert head.subject is subject and registries.head.get(name).metadata["subject"] == (
            subject.name)
        assert head.num_joints == subject.pose_joints + 1
        out = head(torch.zeros(2, 3, 8))
        assert getattr(out, subject.pose_key).shape == (2, subject.pose_joints, 3, 3)


def test_the_engine_and_the_metrics_centre_on_the_subjects_root():
    from extpose_sdk.metrics import PROTOCOLS

    assert PROTOCOLS["3dpw"].root == (39,) and PROTOCOLS["freihand"].root == (0,)
    assert PROTOCOLS["3dpw"].subject is BODY and PROTOCOLS["ho3d"].subject is HAND


class ThirdPartyHands:
    """A plugin whose hand recipe has a name that says nothing about hands."""

    @hookimpl
    def extpose_register_models(self, register):
        register("paws", self.build, "someone's hand model (MANO head)")

    @staticmethod
    def build(checkpoint=None, **options):
        from extpose_sdk.model import build_mesh_recovery_model

        return build_mesh_recovery_model("mano", checkpoint=checkpoint, **options)


@pytest.fixture
def paws():
    extpose_sdk.register_plugin(ThirdPartyHands(), name="paws-plugin")
    yield
    extpose_sdk.unregister_plugin(name="paws-plugin")


def test_a_third_party_hand_recipe_under_another_name_keeps_its_hand_pose(paws):
    pipeline = Pipeline.from_plugins(model="paws", modalities=("rgb",), **TINY)
    assert pipeline.subject is HAND
    image = np.random.default_rng(0).integers(0, 255, (64, 96, 3), np.uint8)
    points = np.zeros((1, 21, 3), np.float32)
    points[0, :, :2] = np.linspace([20, 10], [50, 50], 21)
    points[0, :, 2] = 1
    right = pipeline(image, keypoints=Keypoints(points, "openpose_hand21", is_right=[True]))
    person = right[0].people[0]
    assert sorted(person.params) == ["betas", "global_orient", "hand_pose"]
    assert person.params["hand_pose"].shape == (15, 3, 3)
    # HAND's conventions apply: a hand box is enlarged 2.0 times, a left hand is mirrored
    assert pipeline._rescale(True) == 2.0 and pipeline._rescale(False) == 1.0
    mirrored = points.copy()
    mirrored[..., 0] = 96 - 1 - points[..., 0]
    left = pipeline(image[:, ::-1].copy(),
                    keypoints=Keypoints(mirrored, "openpose_hand21", is_right=[False]))[0].people[0]
    np.testing.assert_allclose(left.params["hand_pose"], person.params["hand_pose"], atol=1e-5)
    np.testing.assert_allclose(left.pred_cam * [1, -1, 1], person.pred_cam, atol=1e-5)
    with pytest.raises(FitError, match=r"layout 'coco17' holds body keypoints but 'paws' is a "
                                       r"hand \(MANO\) model"):
        pipeline(image, keypoints=Keypoints(np.ones((1, 17, 3), np.float32) * 5, "coco17"))


def test_a_model_without_a_subject_is_named(paws):
    class Anonymous:
        @hookimpl
        def extpose_register_models(self, register):
            register("mystery", lambda checkpoint=None, **options: torch.nn.Linear(1, 1), "?")

    extpose_sdk.register_plugin(Anonymous(), name="anonymous")
    try:
        with pytest.raises(FitError, match=r"'mystery': Linear declares no subject"):
            Pipeline.from_plugins(model="mystery")
    finally:
        extpose_sdk.unregister_plugin(name="anonymous")


def test_a_plugin_subject_flows_through_a_head_that_declares_it():
    from extpose_sdk.heads.mesh import MeshHead

    paw = Subject(name="paw", body_model="mano", pose_key="hand_pose", pose_joints=15,
                  joint_set="mano21", num_joints=21, root_joint=0,
                  detector_layout="openpose_hand21", label_layout="openpose_hand21",
                  crop_rescale=3.0, mirror_left=False)

    class PawHead(MeshHead):
        subject = paw

    head = PawHead(context_dim=8, dim=16, depth=1, heads=2, dim_head=8, mlp_dim=16)
    assert head.num_joints == 16
    assert subject_of(head) is paw
