"""Heads on a timm backbone: the SMPL / MANO heads take the backbone's width and token grid."""

import pytest
import torch

from extpose_sdk import get_registries
from extpose_sdk.model import MeshRecoveryModel

BACKBONE = dict(img_size=(256, 192), embed_dim=32, depth=2, num_heads=2)
HEAD = dict(dim=32, depth=1, heads=2, dim_head=16, mlp_dim=32)


@pytest.mark.parametrize(
    "backbone, head, pose",
    [("timm:vit_small_patch16_224", "smpl", ("body_pose", 23)),
     ("timm:eva02_small_patch14_224", "mano", ("hand_pose", 15))],
)
def test_mesh_recovery_model_on_a_timm_backbone(backbone, head, pose):
    registries = get_registries()
    torch.manual_seed(0)
    vit = registries.backbone.build(backbone, **BACKBONE)
    head_module = registries.head.build(
        head, context_dim=vit.embed_dim, token_grid=vit.grid_size, **HEAD
    )
    model = MeshRecoveryModel(vit, head_module).eval()
    with torch.no_grad():
        out = model({"rgb": torch.randn(2, 3, 256, 256)})
    field, joints = pose
    assert getattr(out, field).shape == (2, joints, 3, 3)
    assert out.betas.shape == (2, 10) and out.pred_cam_t.shape == (2, 3)
    assert torch.isfinite(out.pred_cam_t).all()
