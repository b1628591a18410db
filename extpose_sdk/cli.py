"""The ``extpose`` command: a thin dispatcher over ``extpose_sdk.commands``.

Each sub-command lives in its own module exposing ``add_parser(subparsers)`` (which sets
``func``) so commands stay small and independent. Errors about the user's input (a missing file,
an unknown name, a bad value) print one line and exit 1; ``EXTPOSE_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

#: Sub-command modules under ``extpose_sdk.commands``, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = ("plugins", "predict", "train", "eval", "convert", "export")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="extpose",
        description="ExtPose: 3D human and hand mesh recovery with 2D-pose and video extensions.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="a plugin that fails to load or register is an error (default: warn and skip)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"extpose_sdk.commands.{name}").add_parser(subparsers)
    return parser


def _version() -> str:
    from extpose_sdk import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, "overrides") and not any(a.startswith("-") for a in extra):
        args.overrides = [*args.overrides, *extra]  # key=value after an option (train)
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:
        parser.print_help()
        return 2
    from extpose_sdk.plugins import (
        PluginError,
        UnknownComponentError,
        get_plugin_manager,
        reset_plugins,
    )

    if args.strict:
        reset_plugins()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # failures are shown by the command
            get_plugin_manager(strict=True if args.strict else None)
        return int(args.func(args) or 0)
    except BrokenPipeError:  # the output went to a pipe closed early (`| head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (PluginError, UnknownComponentError, OSError, ValueError, RuntimeError) as error:
        # errors about the user's input or machine (a missing file, a full disk): the message says
        # what to do; EXTPOSE_DEBUG=1 shows where
        if os.environ.get("EXTPOSE_DEBUG"):
            raise
        print(f"extpose: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("extpose: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
