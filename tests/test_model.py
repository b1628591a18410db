"""MeshRecoveryModel and the recipes at tiny size: the official path, crops, cameras, extension."""

from __future__ import annotations

import pytest
import torch

import extpose_sdk

TINY = dict(embed_dim=32, depth=2, num_heads=4, head_dim=32, head_depth=1, head_heads=2,
            head_dim_head=8, head_mlp_dim=16)


def tiny(name="hmr2", **options):
    torch.manual_seed(0)
    return extpose_sdk.load_model(name, **{**TINY, **options})


def crops(*leading):
    torch.manual_seed(1)
    return torch.randn(*leading, 3, 256, 256)


@pytest.mark.parametrize("name, pose_name, joints", [("hmr2", "body_pose", 23), ("hamer", "hand_pose", 15)])
def test_single_frames_give_the_contract_fields(name, pose_name, joints):
    out = tiny(name)({"rgb": crops(2)})
    assert out.global_orient.shape == (2, 1, 3, 3)
    assert getattr(out, pose_name).shape == (2, joints, 3, 3)
    assert out.betas.shape == (2, 10) and out.pred_cam.shape == (2, 3) and out.pred_cam_t.shape == (2, 3)


def test_plain_path_is_backbone_on_the_central_columns_then_head():
    model = tiny()
    x = crops(2)
    with torch.no_grad():
        out = model({"rgb": x})
        expected = model.smpl_head(model.backbone(x[..., 32:-32]))
    assert torch.allclose(out.betas, expected.betas, atol=1e-6)
    assert torch.allclose(out.body_pose, expected.body_pose, atol=1e-6)
    x[..., :32] = 5.0  # columns outside the backbone's 192 are ignored
    x[..., -32:] = -5.0
    with torch.no_grad():
        assert torch.allclose(model({"rgb": x}).betas, out.betas, atol=1e-6)


def test_pred_cam_t_is_the_official_crop_translation():
    out = tiny()({"rgb": crops(3)})
    s, tx, ty = out.pred_cam.unbind(-1)
    expected = torch.stack([tx, ty, 2 * 5000.0 / (256.0 * s + 1e-9)], dim=-1)
    assert torch.allclose(out.pred_cam_t, expected, rtol=1e-5)


def test_shape_errors_name_the_shape():
    model = tiny()
    with pytest.raises(ValueError, match=r"got \(2, 3, 128, 128\)"):
        model({"rgb": torch.zeros(2, 3, 128, 128)})
    with pytest.raises(ValueError, match=r"\(B, 3, 256, 256\).*\(2, 4, 256, 256\)"):
        model({"rgb": torch.zeros(2, 4, 256, 256)})
    with pytest.raises(ValueError, match=r"depth.*\['rgb'\]"):
        model({"depth": crops(1)})


def test_official_state_dict_prefixes():
    prefixes = {k.split(".")[0] for k in tiny("hamer").state_dict()}
    assert prefixes == {"backbone", "mano_head"}



def test_docs_models_examples_run():
    from pathlib import Path

    text = (Path(__file__).parents[1] / "docs" / "models.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    assert len(blocks) == 2
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/models.md", "exec"), namespace)
    assert namespace["out"].body_pose.shape == (2, 23, 3, 3)
    assert namespace["params"].hand_pose.shape == (2, 15, 3, 3)


def test_frames_through_the_extension_equal_frame_by_frame_with_the_frame_mask():
    model = tiny(mask="frame")
    clip = crops(2, 3)
    with torch.no_grad():
        out = model({"rgb": clip})
        one = model({"rgb": clip[:, 1]})
    assert out.body_pose.shape == (2, 3, 23, 3, 3) and out.pred_cam_t.shape == (2, 3, 3)
    assert torch.allclose(out.betas[:, 1], one.betas, atol=1e-5)
    assert torch.allclose(out.body_pose[:, 1], one.body_pose, atol=1e-5)


def test_extended_recipe_with_absent_skeleton_equals_the_original():
    original, extended = tiny("hamer"), tiny("extpose-hamer")
    extended.load_state_dict(original.state_dict())
    x = crops(2)
    with torch.no_grad():
        base = original({"rgb": x})
        out = extended(
            {"rgb": x, "skeleton": torch.zeros_like(x)},
            present={"rgb": torch.ones(2, dtype=torch.bool), "skeleton": torch.zeros(2, dtype=torch.bool)},
        )
    assert torch.allclose(out.hand_pose, base.hand_pose, atol=1e-5)
    assert torch.allclose(out.pred_cam, base.pred_cam, atol=1e-5)


def test_skeleton_evidence_changes_the_extended_prediction():
    model = tiny("extpose-hmr2")
    x = crops(1, 2)
    with torch.no_grad():
        a = model({"rgb": x, "skeleton": torch.zeros_like(x)})
        b = model({"rgb": x, "skeleton": torch.randn_like(x)})
    assert a.betas.shape == (1, 2, 10)
    assert not torch.allclose(a.betas, b.betas, atol=1e-5)
