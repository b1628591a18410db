"""The training loop: one function, read top to bottom (nanoGPT's shape, torch's own DDP).

    from extpose_sdk.engine import load_recipe, train
    result = train(load_recipe("synthetic-hand", ["max_steps=100"]), "runs/hand")

One optimizer step: for each of ``accumulate`` micro-batches, drop modalities, run the model
(under autocast), sum the official loss terms and back-propagate (DDP averages gradients over
ranks; the loss is scaled by the number of ranks so the gradient is that of the sum over the
global batch, as in one process); then check for non-finite values, clip, step AdamW and the
schedule, and (bodies with a mocap file) step the pose discriminator. Every ``save_every`` steps
and on SIGTERM / SIGINT a checkpoint is written (``extpose_sdk.engine.state``); a run started
on a folder with checkpoints resumes from the latest.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import torch

from extpose_sdk.engine import losses as L
from extpose_sdk.engine.distributed import Distributed, distributed_context


class TrainingError(RuntimeError):
    """Training stopped on a fault (a non-finite loss, an unusable output folder)."""


@attrs.define
class TrainResult:
    """What a run ended with: its ``step``, why it stopped, and where the weights are."""

    step: int
    status: str  # finished, interrupted, stopped (by a callback)
    checkpoint: Path | None
    best: dict[str, Any] | None = None
    skipped_steps: int = 0
    last_loss: float = math.nan


class StopSignal:
    """SIGTERM / SIGINT ask the loop to checkpoint and return (pre-emption, Ctrl-C); a second
    one stops at once (the last checkpoint stays as it was)."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignal:
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: signals stay as they are
                pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested is not None:  # a second Ctrl-C: stop now, without the checkpoint
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def lr_factor(step: int, optim) -> float:
    """The learning-rate multiplier at ``step``: linear warm-up, then constant or cosine."""
    if optim.warmup_steps and step < optim.warmup_steps:
        return (step + 1) / optim.warmup_steps
    if optim.schedule == "constant":
        return 1.0
    if optim.schedule == "cosine":
        span = max(1, optim.max_steps - optim.warmup_steps)
        progress = min(1.0, (step - optim.warmup_steps) / span)
        return optim.min_lr_ratio + (1 - optim.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    raise ValueError(f"optim.schedule {optim.schedule!r}: use constant or cosine")


def _resumed(folder: Path, step: int, recipe_toml: str) -> str:
    """What a resumed run says: where from, and what its recipe changes from the checkpoint's."""
    from extpose_sdk.engine.recipe import recipe_changes

    saved = folder / "recipe.toml"
    changes = recipe_changes(saved.read_text(), recipe_toml) if saved.is_file() else []
    text = f"resuming from {folder} at step {step}"
    if changes:
        text += ("; the recipe differs from the checkpoint's (the run goes on with the new one, "
                 "from the checkpoint's weights): " + "; ".join(changes))
    return text


def _load_moments(optimizer: torch.optim.Optimizer, saved: dict[str, Any]) -> None:
    """A checkpoint's optimizer state (the Adam moments and step counts) under the settings the
    optimizer was built with from the recipe (learning rate, betas, weight decay): a resume with
    a changed recipe follows the new one, where ``load_state_dict`` alone keeps the old."""
    settings = [{k: v for k, v in group.items() if k != "params"}
                for group in optimizer.param_groups]
    optimizer.load_state_dict(saved)
    for group, own in zip(optimizer.param_groups, settings, strict=True):
        group.update(own)


def _autocast(device: torch.device, amp: str):
    if amp == "none":
        return contextlib.nullcontext()
    if amp not in ("bf16", "fp16"):
        raise ValueError(f"optim.amp {amp!r}: use none, bf16 or fp16")
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _frames(x: torch.Tensor, clip: bool) -> torch.Tensor:
    return x.flatten(0, 1) if clip else x


def loss_terms(output, batch: dict[str, Any], weights, subject,
               discriminator: torch.nn.Module | None = None) -> dict[str, torch.Tensor]:
    """The weighted loss terms of one micro-batch (frames or clips), each a sum over it; the
    model's ``subject`` names the pose and the joint the 3D loss centres on."""
    from extpose_sdk.geometry import axis_angle_to_rotmat

    clip = "valid" in batch
    valid = _frames(batch["valid"], clip).float() if clip else None
    pose_key, pelvis_id = subject.pose_key, subject.root_joint

    def frames(x):
        return _frames(x, clip).float()

    def confident(x):  # padded clip frames carry no label
        x = frames(x).clone()
        if valid is not None:
            x[..., -1] = x[..., -1] * valid[:, None]
        return x

    def has(name):
        flag = batch.get(f"has_{name}")
        n = frames(output.betas).shape[0]
        flag = torch.ones(n) if flag is None else frames(flag.reshape(*flag.shape[:2 if clip else 1]))
        return flag * (valid if valid is not None else 1.0)

    terms: dict[str, torch.Tensor] = {}
    # a data set labelled in another joint set (3DPW's 24 SMPL joints for HMR2.0's 44) trains
    # through its parameters only
    same_joints = batch["keypoints_3d"].shape[-2] == output.pred_keypoints_3d.shape[-2]
    if weights.keypoints_3d and same_joints:
        terms["keypoints_3d"] = weights.keypoints_3d * L.keypoint_3d_loss(
            frames(output.pred_keypoints_3d), confident(batch["keypoints_3d"]), pelvis_id)
    if weights.keypoints_2d and same_joints:
        terms["keypoints_2d"] = weights.keypoints_2d * L.keypoint_2d_loss(
            frames(output.pred_keypoints_2d), confident(batch["keypoints_2d"]))
    gt_orient = axis_angle_to_rotmat(frames(batch["global_orient"]).reshape(-1, 1, 3))
    gt_pose = axis_angle_to_rotmat(frames(batch[pose_key]).reshape(gt_orient.shape[0], -1, 3))
    pred_pose = frames(getattr(output, pose_key))
    if weights.global_orient:
        terms["global_orient"] = weights.global_orient * L.parameter_loss(
            frames(output.global_orient), gt_orient, has("global_orient"))
    if weights.pose:
        terms["pose"] = weights.pose * L.parameter_loss(pred_pose, gt_pose, has(pose_key))
    if weights.betas:
        terms["betas"] = weights.betas * L.parameter_loss(
            frames(output.betas), frames(batch["betas"]), has("betas"))
    if weights.temporal and clip and same_joints:
        terms["temporal"] = weights.temporal * L.temporal_loss(
            output.pred_keypoints_3d.float(), batch["keypoints_3d"].float(), batch["valid"],
            pelvis_id)
    if discriminator is not None and weights.adversarial:
        scores = discriminator(pred_pose, frames(output.betas))
        terms["adversarial"] = weights.adversarial * L.adversarial_generator_loss(scores)
    return terms


def _batch_to(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v
            for k, v in batch.items()}


def _inputs(batch: dict[str, Any], modalities, dropout, rows: list[int]):
    """Model inputs and presence (``(B, T)``) after modality dropout."""
    clip = "valid" in batch
    inputs = {m: batch[m] for m in modalities}
    present = {}
    for m in modalities:
        flag = batch.get(f"has_{m}")
        lead = batch[m].shape[: 2 if clip else 1]
        flag = torch.ones(lead, dtype=torch.bool) if flag is None else flag.bool()
        present[m] = flag if clip else flag[:, None]
    if clip:
        present = {m: p & batch["valid"].bool() for m, p in present.items()}
    if dropout is not None and dropout.p > 0 and len(modalities) > 1:
        present = dropout(present, rows=rows)
    if not clip:
        present = {m: p[:, 0] for m, p in present.items()}
    return inputs, present


def _memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def threads_beside_workers(workers: int, cores: int, environ: Mapping[str, str]) -> int | None:
    """The intra-op threads a CPU run's model gets beside ``workers`` data processes: the cores
    they leave, at least one. A thread team larger than the free cores stalls whenever a worker
    takes a core (measured on 2 cores, the synthetic body base with 1 rendering worker: 1.78 s a
    step with 2 threads, 1.15 with 1). None, torch's own count, without workers or where
    OMP_NUM_THREADS sets it (torchrun does for several processes a machine)."""
    if workers <= 0 or "OMP_NUM_THREADS" in environ:
        return None
    return max(1, cores - workers)


def data_bound_note(waited: float, took: float, steps: tuple[int, int],
                    share: float = 0.2) -> str | None:
    """A note when the steps ``steps`` (first, last) waited for their batches ``waited`` of the
    ``took`` seconds they took, at least ``share`` of it: then the data loader, not the model,
    sets the run's speed. None below that, or over fewer than ten steps (too few to say)."""
    first, last = steps
    if last - first + 1 < 10 or took <= 0 or waited / took < share:
        return None
    return (f"data: steps {first} to {last} waited for their batches {waited / took:.0%} of their "
            "time: the data loader, not the model, sets this run's speed (more data.workers "
            "where cores are free, or a cache: docs/training.md)")


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on macOS or Windows
        return os.cpu_count() or 1


@contextlib.contextmanager
def _cpu_threads(recipe, dist: Distributed) -> Iterator[int | None]:
    """``threads_beside_workers`` for a CPU run while it trains; torch's count again after."""
    threads = None
    if dist.device.type == "cpu":
        threads = threads_beside_workers(recipe.data.workers, _cores(), os.environ)
    if threads is None:
        yield None
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)


def train(recipe, out: str | Path, *, resume: str | Path | None = "auto", progress: bool = True,
          callback: Callable[[int, dict[str, float]], bool] | None = None) -> TrainResult:
    """Train ``recipe`` into ``out``; resume from ``out``'s latest checkpoint (``resume="auto"``),
    a given checkpoint folder, or not at all (``None``: ``out`` must hold no checkpoint).

    ``callback(step, metrics)`` runs after every step on every rank; returning True stops the
    run as a signal would (a checkpoint, then ``status="stopped"``).
    """
    with distributed_context(recipe.train.device) as dist, _cpu_threads(recipe, dist) as threads:
        return _train(recipe, Path(out), resume, progress and dist.first, callback, dist, threads)


def _train(recipe, out: Path, resume, progress: bool, callback, dist: Distributed,
           threads: int | None) -> TrainResult:
    from extpose_sdk.engine import distributed as D
    from extpose_sdk.engine import state as S
    from extpose_sdk.engine.data import build_training_set, build_validation_set
    from extpose_sdk.engine.log import TrainingLog
    from extpose_sdk.engine.model import build_model, init_mean_params, model_config
    from extpose_sdk.extend import ModalityDropout
    from extpose_sdk.subjects import subject_of

    optim, train_cfg = recipe.optim, recipe.train
    start_folder = _resume_folder(out, resume)
    if dist.first:
        out.mkdir(parents=True, exist_ok=True)
        (out / "recipe.toml").write_text(recipe.to_toml())
    torch.manual_seed(train_cfg.seed + dist.rank)

    # data: the first process writes any cache, the others wait and read it
    if dist.first:
        training_set, weights = build_training_set(recipe, progress=progress)
    D.barrier()
    if not dist.first:
        training_set, weights = build_training_set(recipe, progress=False)
    validation_set = build_validation_set(recipe, progress=progress) if dist.first else None
    D.barrier()
    if not dist.first:
        validation_set = build_validation_set(recipe, progress=False)

    model = build_model(recipe, resume_from=start_folder)
    subject = subject_of(model)
    state: dict[str, Any] = {}
    if start_folder is not None:  # build_model took the folder's weights
        state = S.load_state(start_folder)
    elif not recipe.model.checkpoint and recipe.model.mean_params_from_data:
        means = init_mean_params(model, training_set.datasets[0], recipe.model.mean_params_samples)
        if dist.first and progress:
            print(f"mean parameters from the training data: camera scale {float(means['cam'][0]):.3f}")
    model.to(dist.device)

    discriminator, disc_optimizer, mocap = _adversarial(recipe, model, dist)
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.dim() < 2 else decay).append(p)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": optim.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}], lr=optim.lr, betas=tuple(optim.betas))
    scaler = torch.amp.GradScaler(dist.device.type, enabled=optim.amp == "fp16")
    step, skipped, best = 0, 0, None
    if state:
        _load_moments(optimizer, state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        if discriminator is not None and "discriminator" in state:
            discriminator.load_state_dict(state["discriminator"])
            _load_moments(disc_optimizer, state["disc_optimizer"])
        step, skipped, best = int(state["step"]), int(state["skipped"]), state.get("best")
        S.set_rng_state(state["rng"][dist.rank] if dist.rank < len(state["rng"]) else state["rng"][0])
    # the schedule is a function of the recipe and the step: a resumed run's is rebuilt at its step
    for group in optimizer.param_groups:
        group["initial_lr"] = group["lr"]
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, optim),
                                                  last_epoch=step - 1)

    ddp = model
    if dist.active:
        ddp = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[dist.device.index] if dist.device.type == "cuda" else None)
    loader = _loader(training_set, weights, recipe, dist, step)
    dropout = ModalityDropout(p=train_cfg.modality_dropout, seed=train_cfg.seed)
    log = TrainingLog(out, enabled=dist.first, tensorboard=train_cfg.tensorboard,
                      progress=progress, total=optim.max_steps, initial=step)
    share = optim.batch_size // dist.world_size
    micro = share // optim.accumulate
    config = model_config(recipe)
    recipe_toml = recipe.to_toml()
    if start_folder is not None:
        log.note(_resumed(start_folder, step, recipe_toml))
    if threads is not None:
        log.note(f"CPU: {threads} torch thread{'s' * (threads > 1)} beside "
                 f"{recipe.data.workers} data worker{'s' * (recipe.data.workers > 1)} "
                 f"(OMP_NUM_THREADS sets another count)")

    def checkpoint() -> Path | None:
        rngs = D.gather_objects(S.rng_state())
        if dist.first:
            payload = {"step": step, "skipped": skipped, "best": best, "rng": rngs,
                       "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict()}
            if discriminator is not None:
                payload["discriminator"] = discriminator.state_dict()
                payload["disc_optimizer"] = disc_optimizer.state_dict()
            S.save_checkpoint(out, step, model=model, config=config, recipe_toml=recipe_toml,
                              state=payload, keep_last=train_cfg.keep_last)
        D.barrier()
        return out / "checkpoints" / S.step_name(step)

    def validate() -> dict[str, float] | None:
        nonlocal best
        if validation_set is None:
            return None
        metrics = evaluate_model(model, validation_set, recipe, dist)
        value = metrics.get(train_cfg.best_metric)
        if dist.first and value is not None and math.isfinite(value) and (
                best is None or value < best["value"]):
            best = {"metric": train_cfg.best_metric, "value": value, "step": step}
            S.save_weights(model, out / "best", {**config, "step": step, "metrics": metrics})
        log.metrics(step, metrics)
        return metrics

    model.train()
    status, last_loss = "finished", math.nan
    # time waiting for batches against the steps' time, from this process's second step (the
    # first also waits for the loader's workers to start)
    waited = took = 0.0
    first_timed = step + 2

    def close(plot: bool = False) -> None:
        note = data_bound_note(waited, took, (first_timed, step))
        if note is not None:
            log.note(note)
        log.close(plot=plot)

    with StopSignal() as stop, loader_workers(loader) as batches:
        while step < optim.max_steps:
            started = time.perf_counter()
            totals: dict[str, float] = {}
            data_s = 0.0
            for m in range(optim.accumulate):
                asked = time.perf_counter()
                batch = next(batches)
                data_s += time.perf_counter() - asked
                batch = _batch_to(batch, dist.device)
                first_row = step * optim.batch_size + dist.rank * share + m * micro
                rows = list(range(first_row, first_row + micro))
                inputs, present = _inputs(batch, recipe.model.modalities, dropout, rows)
                sync = contextlib.nullcontext()
                if dist.active and m < optim.accumulate - 1:
                    sync = ddp.no_sync()
                with sync:
                    with _autocast(dist.device, optim.amp):
                        output = ddp(inputs, present=present)
                    terms = loss_terms(output, batch, recipe.loss, subject, discriminator)
                    loss = sum(terms.values())
                    scaler.scale(loss * dist.world_size).backward()
                for name, value in terms.items():
                    totals[name] = totals.get(name, 0.0) + float(value.detach())
            # the same decision on every rank: sum the terms over ranks
            names = sorted(totals)
            summed = D.all_reduce_sum(torch.tensor([totals[n] for n in names], dtype=torch.float64))
            totals = dict(zip(names, summed.tolist(), strict=True))
            bad = [n for n, v in totals.items() if not math.isfinite(v)]
            scaler.unscale_(optimizer)
            params = [p for p in model.parameters() if p.grad is not None]
            grad_norm = float(torch.nn.utils.clip_grad_norm_(
                params, optim.grad_clip if optim.grad_clip > 0 else float("inf")))
            if not bad and not math.isfinite(grad_norm) and optim.amp != "fp16":
                bad = ["gradient"]
            if bad:
                optimizer.zero_grad(set_to_none=True)
                if train_cfg.on_nonfinite != "skip" or skipped >= train_cfg.max_skipped:
                    log.close()
                    last = S.latest_checkpoint(out)
                    raise TrainingError(
                        f"step {step + 1}: loss term {bad[0]!r} is {totals.get(bad[0], grad_norm)}"
                        f" (terms {', '.join(bad)}); nothing was saved for this step; the last "
                        f"good checkpoint is {last or 'none (no checkpoint yet)'}; set "
                        "train.on_nonfinite=skip to skip such steps")
                skipped += 1
                step += 1
                _step_schedule(scheduler)
                continue
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            _step_schedule(scheduler)
            if discriminator is not None:
                _discriminator_step(discriminator, disc_optimizer, output, mocap, recipe, dist)
            step += 1
            last_loss = sum(totals.values())
            elapsed = time.perf_counter() - started
            if step >= first_timed:
                waited, took = waited + data_s, took + elapsed
            record = {"loss": last_loss, **totals, "lr": scheduler.get_last_lr()[0],
                      "grad_norm": grad_norm, "samples_per_s": optim.batch_size / elapsed,
                      "data_s": data_s, "memory_mb": _memory_mb(dist.device), "skipped": skipped}
            if step % train_cfg.log_every == 0 or step == optim.max_steps:
                log.step(step, record)
            log.advance(step, last_loss)
            if train_cfg.eval_every and step % train_cfg.eval_every == 0:
                validate()
                model.train()
            wants_stop = bool(callback(step, record)) if callback is not None else False
            flags = D.all_reduce_sum(torch.tensor([float(stop.requested is not None),
                                                   float(wants_stop)]))
            if flags[0] > 0 or flags[1] > 0:
                status = "interrupted" if flags[0] > 0 else "stopped"
                folder = checkpoint()
                log.note(f"{status} at step {step}; checkpoint {folder}; resume with the same "
                         "command")
                close()
                return TrainResult(step, status, folder, best, skipped, last_loss)
            if step % train_cfg.save_every == 0 and step < optim.max_steps:
                checkpoint()
    folder = checkpoint()
    if validation_set is not None and (not train_cfg.eval_every or step % train_cfg.eval_every):
        validate()
    close(plot=train_cfg.plot)
    return TrainResult(step, status, folder, best, skipped, last_loss)


def _step_schedule(scheduler) -> None:
    """The schedule follows the step count, also when a step was skipped (a non-finite loss, or
    the fp16 scaler's overflow check), which torch warns about: expected here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step",
                                category=UserWarning)
        scheduler.step()


def _loader(training_set, weights, recipe, dist: Distributed, step: int):
    """Micro-batches of this rank from ``step`` on: exact positions for indexable sets,
    a weighted mix of streams when any set is streamed (see ``extpose_sdk.engine.data``)."""
    from extpose_sdk.data.sample import collate
    from extpose_sdk.engine.data import MixedStream, StepBatches, is_stream

    optim = recipe.optim
    workers = recipe.data.workers
    if any(is_stream(d) for d in training_set.datasets):
        if optim.batch_size % (dist.world_size * optim.accumulate):
            raise ValueError(f"batch_size {optim.batch_size} must divide by processes x "
                             f"accumulate ({dist.world_size} x {optim.accumulate})")
        stream = MixedStream(training_set.datasets, weights,
                             micro=optim.batch_size // (dist.world_size * optim.accumulate),
                             seed=recipe.train.seed, rank=dist.rank, first_step=step)
        return torch.utils.data.DataLoader(stream, batch_size=None, num_workers=workers,
                                           persistent_workers=workers > 0,
                                           worker_init_fn=leave_stops_to_the_main_process)
    sampler = StepBatches(weights, [len(d) for d in training_set.datasets],
                          batch_size=optim.batch_size, rank=dist.rank, world_size=dist.world_size,
                          accumulate=optim.accumulate, seed=recipe.train.seed, first_step=step)
    return torch.utils.data.DataLoader(training_set, batch_sampler=sampler, num_workers=workers,
                                       collate_fn=collate, persistent_workers=workers > 0,
                                       worker_init_fn=leave_stops_to_the_main_process)


def leave_stops_to_the_main_process(worker: int) -> None:
    """In a data-loading worker: ignore Ctrl-C and SIGTERM. A terminal, ``timeout`` and job
    schedulers signal every process of a run; a worker killed by it would turn the main
    process's checkpoint-and-return (``StopSignal``) into a crash. The main process ends the
    workers itself (``loader_workers``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


@contextlib.contextmanager
def loader_workers(loader, patience: float = 10.0):
    """Iterate ``loader`` and end its worker processes on every way out of the block (finished,
    stopped, raised), rather than whenever the iterator happens to be collected.

    torch asks the workers to stop and then sends SIGTERM, which ours ignore; a worker still
    busy after ``patience`` seconds is killed. (A worker left alive hung a finished run at
    exit: Python's exit handler waits for every child process.)"""
    batches = iter(loader)
    try:
        yield batches
    finally:
        workers = list(getattr(batches, "_workers", []))
        shutdown = getattr(batches, "_shutdown_workers", None)  # torch's own clean ending
        if shutdown is not None:
            shutdown()
        deadline = time.monotonic() + patience
        for worker in workers:
            worker.join(timeout=max(0.0, deadline - time.monotonic()))
            if worker.is_alive():
                worker.kill()
                worker.join()


def _resume_folder(out: Path, resume) -> Path | None:
    from extpose_sdk.engine import state as S

    if resume is None:
        if S.latest_checkpoint(out) is not None:
            raise TrainingError(f"{out} holds checkpoints of an earlier run; resume it (the "
                                "default) or choose another --out")
        return None
    if resume == "auto":
        return S.latest_checkpoint(out)
    folder = Path(resume)
    if folder.is_dir() and (folder / "checkpoints").is_dir():
        found = S.latest_checkpoint(folder)
        if found is None:
            raise TrainingError(f"{folder} holds no complete checkpoint to resume from")
        return found
    if not (folder / "state.pt").is_file():
        raise TrainingError(f"--resume {folder}: not a checkpoint folder (no state.pt) and not "
                            "a run folder (no checkpoints/)")
    return folder


def evaluate_model(model, dataset, recipe, dist: Distributed) -> dict[str, float]:
    """The validation metrics of ``model`` on ``dataset`` (the same on every rank)."""
    from extpose_sdk.engine.evaluate import Evaluator
    from extpose_sdk.metrics import protocol_for_joint_set
    from extpose_sdk.subjects import subject_of

    protocol = protocol_for_joint_set(subject_of(model).joint_set)
    evaluator = Evaluator(protocol, batch_size=max(1, recipe.optim.batch_size // dist.world_size),
                          device=dist.device, progress=False)
    result = evaluator.run(model, dataset)
    return {k: float(v) for k, v in result.summary.items()}


def _adversarial(recipe, model, dist: Distributed):
    """The pose discriminator, its optimizer and the mocap poses (bodies with ``loss.mocap``)."""
    from extpose_sdk.subjects import BODY, subject_of

    weight, path = recipe.loss.adversarial, recipe.loss.mocap
    if not weight or subject_of(model) != BODY:  # HMR2.0's SMPL pose prior
        return None, None, None
    if not path:
        if dist.first:
            print("note: no loss.mocap file (cmu_mocap.npz): training without the adversarial "
                  "pose prior")
        return None, None, None
    import numpy as np

    with np.load(path, allow_pickle=False) as data:
        missing = {"body_pose", "betas"} - set(data.files)
        if missing:
            raise ValueError(f"{path}: lacks {sorted(missing)}; a mocap file has body_pose "
                             "(M, 72) and betas (M, 10)")
        mocap = {"body_pose": torch.as_tensor(data["body_pose"], dtype=torch.float32),
                 "betas": torch.as_tensor(data["betas"], dtype=torch.float32)}
    discriminator = L.PoseDiscriminator().to(dist.device)
    optimizer = torch.optim.AdamW(discriminator.parameters(), lr=recipe.optim.lr,
                                  weight_decay=recipe.optim.weight_decay)
    return discriminator, optimizer, mocap


def _discriminator_step(discriminator, optimizer, output, mocap, recipe, dist) -> None:
    from extpose_sdk.geometry import axis_angle_to_rotmat

    fake_pose = output.body_pose.detach().reshape(-1, 23, 3, 3).float()
    fake_betas = output.betas.detach().reshape(-1, 10).float()
    n = fake_pose.shape[0]
    index = torch.randint(len(mocap["betas"]), (n,))
    real_pose = axis_angle_to_rotmat(mocap["body_pose"][index, 3:].reshape(n, 23, 3))
    real_betas = mocap["betas"][index]
    loss = recipe.loss.adversarial * L.adversarial_discriminator_loss(
        discriminator(fake_pose, fake_betas),
        discriminator(real_pose.to(dist.device), real_betas.to(dist.device)))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if dist.active:
        for p in discriminator.parameters():
            if p.grad is not None:
                torch.distributed.all_reduce(p.grad)
                p.grad /= dist.world_size
    optimizer.step()
