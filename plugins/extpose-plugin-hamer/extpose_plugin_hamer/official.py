"""HaMeR's official release, as facts: the checkpoint's layout.

The official ``.ckpt`` (``hamer_ckpts/checkpoints/hamer.ckpt``) is a Lightning checkpoint whose
``state_dict`` holds ``backbone.*`` (ViTPose-H) and ``mano_head.*`` (the SDK's ``mano`` head
declares that prefix), plus what the SDK's model does not hold: the pose
``discriminator.*`` and the licensed MANO buffers ``mano.*``. The head's mean parameters come
with the checkpoint (or from the official ``mano_mean_params.npz``, keys ``pose``, ``shape``,
``cam``: the recipes' ``mean_params=`` option).
"""

from __future__ import annotations

#: State-dict prefixes of the official checkpoint that the SDK's model does not hold.
CHECKPOINT_EXTRAS = ("discriminator.", "mano.")
