"""ExtPose plugin: timm's ViTs as backbones, named ``timm:<model name>``.

``timm:vit_small_patch16_224``, ``timm:vit_base_patch14_reg4_dinov2``, ``timm:eva02_small_patch14_224``
... build timm's own model and adapt it to ``extpose_sdk.vit.BaseViT``. Keyword options go to
``timm.create_model`` (``img_size``, ``embed_dim``, ``depth``, ``num_heads``, ``pretrained``...);
``weights=PATH`` loads a local safetensors or weights-only torch file. Importing this module
imports neither torch nor timm.
"""

from extpose_sdk import hookimpl, lazy


@hookimpl
def extpose_register_backbones(register):
    register(
        "timm:*",
        lazy("extpose_plugin_timm.backbone:build_timm_backbone"),
        "any timm ViT whose blocks take an attention mask (ViT, DeiT III, DINOv2 registers, EVA-02): "
        "timm:<timm model name>; options go to timm.create_model, weights=PATH loads a local file",
        example="timm:vit_small_patch16_224",
        # one model per supported family: plain ViT, register tokens, rotary (what tests build)
        variants=("vit_small_patch16_224", "vit_small_patch14_reg4_dinov2", "eva02_small_patch14_224"),
    )
