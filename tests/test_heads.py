"""The SMPL and MANO heads through the registry: shapes, residual readout, masks, mean params."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import extpose_sdk

TINY = dict(dim=32, depth=2, heads=2, dim_head=8, mlp_dim=16)
POSES = {"smpl": ("body_pose", 23), "mano": ("hand_pose", 15)}


def build(name, context_dim=24, **options):
    torch.manual_seed(0)
    return extpose_sdk.get_registries().head.build(
        name, context_dim=context_dim, token_grid=(4, 3), **{**TINY, **options}
    ).eval()


def gram_schmidt_6d(x: np.ndarray) -> np.ndarray:
    """Test oracle: official 6D layout, a1 = x[0:3], a2 = x[3:6], columns [b1, b2, b3]."""
    a1, a2 = x.reshape(-1, 2, 3)[:, 0], x.reshape(-1, 2, 3)[:, 1]
    b1 = a1 / np.linalg.norm(a1, axis=-1, keepdims=True)
    b2 = a2 - (b1 * a2).sum(-1, keepdims=True) * b1
    b2 /= np.linalg.norm(b2, axis=-1, keepdims=True)
    return np.stack([b1, b2, np.cross(b1, b2)], axis=-1)


@pytest.mark.parametrize("name", ["smpl", "mano"])
def test_head_outputs_have_the_contract_shapes(name):
    head = build(name)
    out = head(torch.randn(2, 12, 24))
    pose_name, joints = POSES[name]
    assert out.global_orient.shape == (2, 1, 3, 3)
    assert getattr(out, pose_name).shape == (2, joints, 3, 3)
    assert out.betas.shape == (2, 10) and out.pred_cam.shape == (2, 3)
    rot = torch.cat([out.global_orient, getattr(out, pose_name)], dim=1)
    eye = torch.eye(3).expand_as(rot)
    assert torch.allclose(rot @ rot.transpose(-1, -2), eye, atol=1e-5)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(rot.shape[:2]), atol=1e-5)


@pytest.mark.parametrize("name", ["smpl", "mano"])
def test_readout_is_residual_on_the_official_mean_params(tmp_path, name):
    pose_name, joints = POSES[name]
    rng = np.random.default_rng(0)
    pose = rng.normal(size=6 * (joints + 1)).astype(np.float32)
    shape = rng.normal(size=10).astype(np.float32)
    cam = np.array([0.9, 0.1, -0.2], np.float32)
    path = tmp_path / f"{name}_mean_params.npz"
    np.savez(path, pose=pose, shape=shape, cam=cam)
    head = build(name, mean_params=path)
    for linear in (head.decpose, head.decshape, head.deccam):
        torch.nn.init.zeros_(linear.weight)
        torch.nn.init.zeros_(linear.bias)
    out = head(torch.randn(3, 5, 24))
    expected = torch.from_numpy(gram_schmidt_6d(pose)).float()
    assert torch.allclose(out.global_orient[0, 0], expected[0], atol=1e-5)
    assert torch.allclose(getattr(out, pose_name)[1], expected[1:], atol=1e-5)
    assert torch.allclose(out.betas, torch.from_numpy(shape).expand(3, 10))
    assert torch.allclose(out.pred_cam, torch.from_numpy(cam).expand(3, 3))


def test_context_mask_hides_absent_tokens():
    head = build("smpl")
    context = torch.randn(2, 12, 24)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[:, 6:] = False
    base = head(context, mask)
    changed = context.clone()
    changed[:, 6:] += 10.0
    assert torch.allclose(head(changed, mask).betas, base.betas, atol=1e-6)
    assert torch.allclose(head(context[:, :6]).betas, base.betas, atol=1e-5)
    changed[:, :6] += 1.0
    assert not torch.allclose(head(changed, mask).betas, base.betas, atol=1e-4)
    nothing = head(context, torch.zeros(2, 12, dtype=torch.bool))
    assert torch.isfinite(nothing.betas).all()


def test_shape_errors_name_the_shapes():
    head = build("mano")
    with pytest.raises(ValueError, match=r"\(B, N, 24\); got \(2, 12, 7\)"):
        head(torch.randn(2, 12, 7))
    with pytest.raises(ValueError, match=r"\(2, 12\).*got \(2, 11\)"):
        head(torch.randn(2, 12, 24), torch.ones(2, 11, dtype=torch.bool))


def test_mean_params_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="smpl_mean_params.npz"):
        build("smpl", mean_params=tmp_path / "absent.npz")
    path = tmp_path / "bad.npz"
    np.savez(path, pose=np.zeros(144), shape=np.zeros(10))
    with pytest.raises(KeyError, match="cam"):
        build("smpl", mean_params=path)
    np.savez(path, pose=np.zeros(96), shape=np.zeros(10), cam=np.zeros(3))
    with pytest.raises(ValueError, match="pose has 96 values; expected 144"):
        build("smpl", mean_params=path)


@pytest.mark.parametrize("name", ["smpl", "mano"])
def test_full_size_head_on_meta_has_the_official_parameter_count(name):
    with torch.device("meta"):
        head = extpose_sdk.get_registries().head.build(name, context_dim=1280, token_grid=(16, 12))
    count = sum(p.numel() for p in head.parameters())
    assert 39.4e6 < count < 39.6e6
    assert len(head.state_dict()) == 114
