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


def test_pipeline_from_plugins_with_a_timm_backbone_rgb_and_skeleton():
    import numpy as np

    from extpose_sdk import Pipeline

    # the call, components one by one
    pipeline = Pipeline.from_plugins(
        backbone="timm:vit_small_patch16_224", head="smpl",
        modalities=["rgb", "skeleton"], backbone_options=BACKBONE, head_options=HEAD,
        detector=None,  # no keypoints: the whole frame, not MediaPipe
    )
    assert pipeline.subject.name == "body" and list(pipeline.modalities) == ["rgb", "skeleton"]
    clip = {"rgb": torch.randn(1, 2, 3, 256, 256), "skeleton": torch.randn(1, 2, 3, 256, 256)}
    with torch.no_grad():
        out = pipeline.model(clip)
    assert out.body_pose.shape == (1, 2, 23, 3, 3) and out.pred_cam_t.shape == (1, 2, 3)
    results = pipeline(np.zeros((120, 160, 3), np.uint8))  # one image, whole frame, RGB only
    assert results.complete and len(results.frames) == 1
