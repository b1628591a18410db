"""Weights this package ships: small ExtPose-HaMeR models trained with ``extpose train``.

``extpose-hamer-synthetic`` (``synthetic.safetensors`` + ``synthetic.json``): RGB + skeleton,
T = 8, trained on the SDK's synthetic hand set only (docs/reproduction.md says how, and how
well). It knows the synthetic renderer's world, not real hands: for real images use the
official HaMeR checkpoint or train on real data.
"""

from pathlib import Path


def synthetic() -> Path:
    """The path of ``extpose-hamer-synthetic`` (the ``.json`` config lies beside it)."""
    return Path(__file__).with_name("synthetic.safetensors")
