"""What a training run tells: ``log.jsonl`` (one JSON object per logged step or validation),
TensorBoard events when ``tensorboard`` is installed, a progress bar with ETA, and at the end
``curves.png`` of the loss terms and validation metrics (when ``matplotlib`` is installed).
Only the first process writes."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


class TrainingLog:
    def __init__(self, out: Path, *, enabled: bool = True, tensorboard: bool = True,
                 progress: bool = True, total: int = 0, initial: int = 0) -> None:
        self.out, self.enabled = out, enabled
        self.path = out / "log.jsonl"
        self._file = self.path.open("a") if enabled else None
        self._writer = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # an optional extra
                SummaryWriter = None
            if SummaryWriter is not None:
                self._writer = SummaryWriter(str(out / "tensorboard"))
        self._bar = None
        if enabled and progress:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=initial, desc="train", unit="step",
                             dynamic_ncols=True)

    def _write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            return
        from extpose_sdk.engine.evaluate import finite_json

        self._file.write(json.dumps(finite_json(record), allow_nan=False) + "\n")
        self._file.flush()

    def step(self, step: int, record: dict[str, float]) -> None:
        self._write({"step": step, "time": time.time(), **record})
        if self._writer is not None:
            for key, value in record.items():
                self._writer.add_scalar(f"train/{key}", value, step)

    def metrics(self, step: int, metrics: dict[str, float]) -> None:
        self._write({"step": step, "time": time.time(), "val": metrics})
        if self._writer is not None:
            for key, value in metrics.items():
                self._writer.add_scalar(f"val/{key}", value, step)
        if self._bar is not None:
            shown = ", ".join(f"{k} {v:.2f}" for k, v in metrics.items() if k != "n")
            self._bar.write(f"step {step}: validation {shown}")

    def note(self, text: str) -> None:
        self._write({"note": text, "time": time.time()})
        if self.enabled:
            print(text, flush=True)

    def advance(self, step: int, loss: float) -> None:
        if self._bar is not None:
            self._bar.n = step
            self._bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
            self._bar.refresh()

    def close(self, plot: bool = False) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._file is not None:
            self._file.close()
            self._file = None
            if plot:
                plot_curves(self.path, self.out / "curves.png")


#: What a step's record holds besides its weighted loss terms.
STEP_FIELDS = ("step", "time", "lr", "grad_norm", "samples_per_s", "data_s", "memory_mb",
               "skipped")


def loss_terms_of(record: dict[str, Any]) -> list[str]:
    """The weighted loss terms in a step's record of ``log.jsonl`` (their sum is ``loss``)."""
    return [k for k in record if k not in STEP_FIELDS and k != "loss"]


def read_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plot_curves(log_path: Path, png: Path) -> Path | None:
    """``png`` with the loss terms (left) and validation metrics (right) of a run's log."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    records = read_log(log_path)
    steps = [r for r in records if "loss" in r]
    vals = [r for r in records if "val" in r]
    if not steps:
        return None
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for key in ["loss", *loss_terms_of(steps[-1])]:
        left.plot([r["step"] for r in steps], [r.get(key) for r in steps], label=key)
    left.set_yscale("log")
    left.set_xlabel("step")
    left.set_title("training loss (weighted terms)")
    left.legend(fontsize=7)
    for key in ("pa_mpjpe", "mpjpe", "pve", "accel"):
        points = [(r["step"], r["val"].get(key)) for r in vals if r["val"].get(key) is not None]
        if points:
            right.plot(*zip(*points, strict=True), marker="o", label=key)
    right.set_xlabel("step")
    right.set_title("validation (mm)" if vals else "no validation set")
    if right.get_legend_handles_labels()[0]:
        right.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(png, dpi=100)
    plt.close(figure)
    return png
