"""HMR2.0's official release, as facts: the checkpoint's layout.

The official ``.ckpt`` (4D-Humans, ``epoch=35-step=1000000.ckpt``) is a Lightning checkpoint whose
``state_dict`` holds ``backbone.*`` (ViTPose-H) and ``smpl_head.*`` (the SDK's ``smpl`` head
declares that prefix), plus what the SDK's model does not hold: the LSGAN pose
``discriminator.*`` and the licensed SMPL buffers ``smpl.*``. The head's mean parameters come
with the checkpoint (or from the official ``smpl_mean_params.npz``, keys ``pose``, ``shape``,
``cam``: the recipes' ``mean_params=`` option).
"""

from __future__ import annotations

#: State-dict prefixes of the official checkpoint that the SDK's model does not hold.
CHECKPOINT_EXTRAS = ("discriminator.", "smpl.")
