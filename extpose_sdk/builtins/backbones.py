"""Built-in backbones: the ViTPose family of the shared ViT."""

from extpose_sdk.plugins import hookimpl, lazy


@hookimpl
def extpose_register_backbones(register):
    register(
        "vitpose",
        lazy("extpose_sdk.vit:build_vitpose"),
        "ViTPose-style ViT (conv patch embedding with padding, cls-slot position bias); "
        "size options: embed_dim, depth, num_heads, img_size; stem='conv' for a hybrid ViT",
    )
