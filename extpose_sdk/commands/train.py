"""``extpose train``: train a recipe on one CPU / GPU, or on many under torchrun.

    extpose train synthetic-hand --out runs/hand max_steps=200
    torchrun --nproc_per_node=8 -m extpose_sdk train extpose-hamer --out runs/extpose-hamer
"""

from __future__ import annotations

import os
import sys


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train a model from a recipe (training/*.toml); resumes by default",
        description="Train a model from a TOML recipe (a path, or a name in ./training or the "
                    "SDK's training/ folder). Overrides: key=value or section.key=value "
                    "(max_steps=100, optim.lr=1e-4). Under torchrun every process runs this "
                    "command; the first writes the logs and checkpoints.")
    parser.add_argument("recipe", help="recipe file or name (synthetic-hand, extpose-hamer...)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="recipe overrides, e.g. max_steps=100 optim.batch_size=8")
    parser.add_argument("--out", required=True, help="run folder: logs, checkpoints, best/")
    resume = parser.add_mutually_exclusive_group()
    resume.add_argument("--resume", metavar="PATH",
                        help="resume from this checkpoint or run folder (default: --out's "
                             "latest checkpoint, when it has one)")
    resume.add_argument("--no-resume", action="store_true",
                        help="start afresh; an --out that holds checkpoints is then an error")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--print-recipe", action="store_true",
                        help="print the resolved recipe as TOML and exit")
    parser.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from extpose_sdk.engine.loop import TrainingError, train
    from extpose_sdk.engine.recipe import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    if args.print_recipe:
        print(recipe.to_toml())
        return 0
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for the run")
    resume = None if args.no_resume else (args.resume or "auto")
    try:
        result = train(recipe, out, resume=resume, progress=not args.no_progress)
    except TrainingError as error:
        print(f"extpose train: {error}", file=sys.stderr)
        return 1
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun the first process reports
        return 130 if result.status == "interrupted" else 0
    if result.status == "interrupted":
        print(f"extpose train: interrupted at step {result.step}; checkpoint {result.checkpoint}; "
              "the same command resumes", file=sys.stderr)
        return 130
    print(f"trained {result.step} steps; weights: {result.checkpoint / 'model.safetensors'}"
          + (f"; best {result.best['metric']} {result.best['value']:.2f} at step "
             f"{result.best['step']} in {out / 'best'}" if result.best else ""))
    return 0
