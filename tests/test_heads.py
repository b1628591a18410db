"""The SMPL and MANO heads through the registry: shapes, residual readout, masks, mean params."""

from __future__ import annotations

import math

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


def _oracle_decoder(decoder, context: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The official decoder written out in float64 numpy from the module's weights: a zero token
    -> Linear(1, dim) + position; per layer x += SA(LN(x)); x += CA(LN(x), context); x += FF(LN(x))."""
    w = {k: v.detach().double().numpy() for k, v in decoder.state_dict().items()}

    def linear(x, name, bias=True):
        return x @ w[f"{name}.weight"].T + (w[f"{name}.bias"] if bias else 0.0)

    def norm(x, name):
        mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + 1e-5) * w[f"{name}.weight"] + w[f"{name}.bias"]

    def attend(q, k, v, heads, keep=None):
        B, Lq = q.shape[0], q.shape[1]
        split = [t.reshape(B, t.shape[1], heads, -1).transpose(0, 2, 1, 3) for t in (q, k, v)]
        scores = split[0] @ split[1].transpose(0, 1, 3, 2) / np.sqrt(split[0].shape[-1])
        if keep is not None:
            scores = np.where(keep[:, None, None, :], scores, -np.inf)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        out = scores / scores.sum(-1, keepdims=True) @ split[2]
        return out.transpose(0, 2, 1, 3).reshape(B, Lq, -1)

    heads = decoder.transformer.layers[0][0].fn.heads
    B = context.shape[0]
    x = np.zeros((B, 1, 1)) @ w["to_token_embedding.weight"].T + w["to_token_embedding.bias"]
    x = x + w["pos_embedding"]
    for i in range(len(decoder.transformer.layers)):
        p = f"transformer.layers.{i}"
        h = norm(x, f"{p}.0.norm")
        q, k, v = np.split(linear(h, f"{p}.0.fn.to_qkv", bias=False), 3, axis=-1)
        x = linear(attend(q, k, v, heads), f"{p}.0.fn.to_out.0") + x
        h = norm(x, f"{p}.1.norm")
        q = linear(h, f"{p}.1.fn.to_q", bias=False)
        k, v = np.split(linear(context, f"{p}.1.fn.to_kv", bias=False), 2, axis=-1)
        x = linear(attend(q, k, v, heads, mask), f"{p}.1.fn.to_out.0") + x
        h = norm(x, f"{p}.2.norm")
        hidden = linear(h, f"{p}.2.fn.net.0")
        hidden = 0.5 * hidden * (1 + np.vectorize(math.erf)(hidden / np.sqrt(2)))  # exact GELU
        x = linear(hidden, f"{p}.2.fn.net.3") + x
    return x


@pytest.mark.parametrize("name", ["smpl", "mano"])
def test_decoder_and_readout_match_an_independent_implementation(name):
    head = build(name)
    torch.manual_seed(1)
    for p in head.parameters():  # weights away from their initial values, biases included
        torch.nn.init.normal_(p, std=0.3)
    context = torch.randn(2, 12, 24)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 5:] = False
    token = head.transformer(context, mask)
    expected = _oracle_decoder(head.transformer, context.double().numpy(), mask.numpy())
    np.testing.assert_allclose(token.detach().double().numpy(), expected, atol=1e-4, rtol=1e-4)
    out = head(context, mask)
    flat = torch.from_numpy(expected[:, 0]).float()
    pose_name, joints = POSES[name]
    pose6d = head.decpose(flat) + getattr(head, f"init_{pose_name}")
    rotations = torch.from_numpy(gram_schmidt_6d(pose6d.detach().numpy().reshape(-1))).float()
    rotations = rotations.reshape(2, joints + 1, 3, 3)
    torch.testing.assert_close(out.global_orient, rotations[:, :1], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(getattr(out, pose_name), rotations[:, 1:], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out.betas, head.decshape(flat) + head.init_betas, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out.pred_cam, head.deccam(flat) + head.init_cam, atol=1e-4, rtol=1e-4)
    as_numbers = head(context, mask.long())  # a 0/1 mask of another dtype means the same
    torch.testing.assert_close(as_numbers.betas, out.betas)
    head.train()  # no dropout: training mode gives the same numbers
    torch.testing.assert_close(head(context, mask).betas, out.betas)


def test_heads_keep_their_sizes_and_grid():
    from extpose_sdk.heads.mesh import (
        HeadConfig,
        MANOHead,
        SMPLHead,
        build_mano_head,
        build_smpl_head,
    )
    from extpose_sdk.heads.transformer import TransformerDecoder

    head = build("mano")
    assert head.config == HeadConfig(dim=32, depth=2, heads=2, dim_head=8, mlp_dim=16)
    assert (head.context_dim, head.token_grid) == (24, (4, 3))
    assert head.decpose.in_features == 32 and head.transformer.dim == 32
    for each in (head, build("smpl"), build_smpl_head(24, (4, 3), **TINY)):  # sizes reach layers
        assert each.token_grid == (4, 3) and len(each.transformer.transformer.layers) == 2
        layer = each.transformer.transformer.layers[1]
        assert layer[0].fn.heads == layer[1].fn.heads == 2
        assert layer[0].fn.to_qkv.out_features == 3 * 2 * 8 and layer[1].fn.to_q.out_features == 16
        assert layer[2].fn.net[0].out_features == 16
    assert SMPLHead(16).token_grid is None
    with torch.device("meta"):
        official = build_mano_head()
        decoder = TransformerDecoder()
        assert SMPLHead().context_dim == build_smpl_head().context_dim == 1280
        assert build_smpl_head().token_grid is None
    assert isinstance(official, MANOHead) and official.context_dim == 1280
    assert official.config == HeadConfig() == HeadConfig(1024, 6, 8, 64, 1024, 10)
    assert (decoder.dim, decoder.context_dim, len(decoder.transformer.layers)) == (1024, 1280, 6)
    layer = decoder.transformer.layers[0]
    assert layer[0].fn.heads == 8 and layer[0].fn.to_qkv.out_features == 3 * 8 * 64
    assert layer[2].fn.net[0].out_features == 1024 and decoder.pos_embedding.shape == (1, 1, 1024)
    assert layer[0].norm.eps == 1e-5


def test_mean_params_are_float32_and_their_errors_name_the_file(tmp_path):
    path = tmp_path / "mano_mean_params.npz"
    np.savez(path, pose=np.zeros((16, 6)), shape=np.ones(10), cam=np.array([0.9, 0, 0]))
    head = build("mano", mean_params=path)
    assert head.init_hand_pose.dtype == head.init_betas.dtype == head.init_cam.dtype == torch.float32
    assert head.init_hand_pose.shape == (1, 96)
    np.savez(path, pose=np.zeros(96), shape=np.zeros(9), cam=np.zeros(3))
    with pytest.raises(ValueError, match=r"^.*mano_mean_params.npz: shape has 9 values; expected 10$"):
        build("mano", mean_params=path)
    np.savez(path, pose=np.zeros(96), shape=np.zeros(10), cam=np.zeros(4))
    with pytest.raises(ValueError, match=r"mano_mean_params.npz: cam has 4 values; expected 3$"):
        build("mano", mean_params=path)
    np.savez(path, pose=np.zeros(96), shape=np.zeros(10))
    with pytest.raises(KeyError, match=r"lacks keys \['cam'\]; it has \['pose', 'shape'\]"):
        build("mano", mean_params=path)
    np.savez(path, pose=np.zeros(96), shape=np.zeros(10), cam=np.array([None, 1, 2], dtype=object))
    with pytest.raises(ValueError, match="allow_pickle"):
        build("mano", mean_params=path)
    with pytest.raises(FileNotFoundError) as error:
        build("mano", mean_params=tmp_path / "absent.npz")
    assert str(error.value).endswith("mano_mean_params.npz (keys pose, shape, cam), or leave "
                                     "mean_params unset and load a checkpoint")


def test_heads_are_split_and_merged_per_token():
    from extpose_sdk.heads.transformer import _merge_heads, _split_heads

    x = torch.arange(2 * 3 * 12.0).reshape(2, 3, 12)  # (B, L, heads * d), 3 tokens
    split = _split_heads(x, 4)
    assert split.shape == (2, 4, 3, 3)
    torch.testing.assert_close(split[1, 2, 0], x[1, 0, 6:9])  # head 2 of token 0
    torch.testing.assert_close(split[0, 3, 2], x[0, 2, 9:12])
    torch.testing.assert_close(_merge_heads(split), x)
