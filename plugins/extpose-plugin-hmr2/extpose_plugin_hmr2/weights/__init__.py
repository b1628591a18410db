"""Weights this package ships: small ExtPose-HMR2.0 models trained with ``extpose train``.

``extpose-hmr2-synthetic`` (``synthetic.safetensors`` + ``synthetic.json``): RGB + skeleton,
T = 8, modality dropout (so RGB or the skeleton image alone work too), trained on the SDK's
synthetic body set only (docs/reproduction.md says how, and how
well). It knows the synthetic renderer's world, not real people: for real images use the
official HMR2.0 checkpoint or train on real data.
"""

from pathlib import Path


def synthetic() -> Path:
    """The path of ``extpose-hmr2-synthetic`` (the ``.json`` config lies beside it)."""
    return Path(__file__).with_name("synthetic.safetensors")
