"""Built-in heads: the official SMPL (HMR2.0) and MANO (HaMeR) transformer-decoder heads."""

from extpose_sdk.plugins import hookimpl, lazy


@hookimpl
def extpose_register_heads(register):
    register(
        "smpl",
        lazy("extpose_sdk.heads.mesh:build_smpl_head"),
        "HMR2.0's SMPL head: 1-token transformer decoder (6 layers, dim 1024), 6D pose, betas, camera",
        subject="body",
    )
    register(
        "mano",
        lazy("extpose_sdk.heads.mesh:build_mano_head"),
        "HaMeR's MANO head: 1-token transformer decoder (6 layers, dim 1024), 6D pose, betas, camera",
        subject="hand",
    )
