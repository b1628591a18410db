"""Sub-commands of the ``extpose`` command, one module each (see ``extpose_sdk.cli``)."""


def add_checkpoint_arguments(parser) -> None:
    """``--checkpoint`` (a file or registered weights) and ``--trust-checkpoint``, as every
    command that loads a model takes them."""
    parser.add_argument(
        "--checkpoint", help="weights: a file, or registered weights such as "
        "extpose-hamer-synthetic (extpose plugins); without it, random weights",
    )  # fmt: skip
    parser.add_argument(
        "--trust-checkpoint", action="store_true",
        help="unpickle a .ckpt in full when the safe reader refuses it (only for files you trust)",
    )  # fmt: skip
