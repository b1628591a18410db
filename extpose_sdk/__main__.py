"""``python -m extpose_sdk``: the ``extpose`` command, as torchrun launches it
(``torchrun --nproc_per_node=N -m extpose_sdk train RECIPE --out DIR``)."""

import sys

from extpose_sdk.cli import main

sys.exit(main())
