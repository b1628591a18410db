"""The engine's pieces with pinned values: the data order, dropout by row, the mean
parameters, the lr schedule, the uint8 cache, and checkpoint files."""

import math

import numpy as np
import pytest
import torch

from extpose_sdk.datasets.cache import CachedDataset, build_cache
from extpose_sdk.engine.data import StepBatches, stream_indices
from extpose_sdk.engine.loop import lr_factor
from extpose_sdk.engine.model import _weak_perspective_scale, mean_parameters
from extpose_sdk.engine.recipe import OptimRecipe
from extpose_sdk.extend import ModalityDropout


def take(sampler, n):
    out, it = [], iter(sampler)
    for _ in range(n):
        out.append(next(it))
    return out


def test_ranks_and_micro_batches_split_the_one_process_order():
    one = take(StepBatches([1.0, 3.0], [5, 7], batch_size=8, rank=0, world_size=1, seed=3), 2)
    ranks = [take(StepBatches([1.0, 3.0], [5, 7], batch_size=8, rank=r, world_size=2,
                              accumulate=2, seed=3), 4) for r in (0, 1)]
    for step in range(2):
        # rank 0 takes the first half of each global batch, rank 1 the second, in micro-batches
        joined = (ranks[0][2 * step] + ranks[0][2 * step + 1]
                  + ranks[1][2 * step] + ranks[1][2 * step + 1])
        assert joined == one[step]
    resumed = take(StepBatches([1.0, 3.0], [5, 7], batch_size=8, rank=0, world_size=1, seed=3,
                               first_step=1), 1)
    assert resumed[0] == one[1]
    with pytest.raises(ValueError, match="must divide"):
        StepBatches([1.0], [5], batch_size=6, rank=0, world_size=4)


def test_the_mix_follows_the_weights():
    draws = stream_indices([1.0, 3.0], [10, 10], seed=0, start=0, count=4000)
    share = sum(1 for which, _ in draws if which == 1) / len(draws)
    assert share == pytest.approx(0.75, abs=0.03)
    assert all(0 <= item < 10 for _, item in draws)
    assert stream_indices([0.0, 1.0], [3, 3], seed=1, start=5, count=3) == \
        stream_indices([0.0, 1.0], [3, 3], seed=1, start=5, count=3)
    with pytest.raises(ValueError, match="positive sum"):
        stream_indices([0.0], [3], seed=0, start=0, count=1)


def test_dropout_by_row_does_not_depend_on_the_batch_it_is_in():
    dropout = ModalityDropout(p=0.5, seed=4)
    present = {"rgb": torch.ones(6, 2, dtype=torch.bool), "skeleton": torch.ones(6, 2, dtype=torch.bool)}
    whole = dropout(present, rows=list(range(10, 16)))
    halves = [dropout({k: v[:3] for k, v in present.items()}, rows=list(range(10, 13))),
              dropout({k: v[3:] for k, v in present.items()}, rows=list(range(13, 16)))]
    for name in present:
        assert torch.equal(whole[name], torch.cat([h[name] for h in halves]))
    kept = torch.stack([whole["rgb"][:, 0], whole["skeleton"][:, 0]], 1)
    assert kept.any(1).all()  # never both dropped
    assert not kept.all()  # p = 0.5 over 6 samples drops something (pinned by the seed)


def test_lr_schedule_warms_up_then_follows_the_cosine():
    optim = OptimRecipe(max_steps=110, warmup_steps=10, schedule="cosine", min_lr_ratio=0.1)
    assert lr_factor(0, optim) == pytest.approx(0.1)
    assert lr_factor(9, optim) == pytest.approx(1.0)
    assert lr_factor(10, optim) == pytest.approx(1.0)
    assert lr_factor(60, optim) == pytest.approx(0.55)
    assert lr_factor(110, optim) == pytest.approx(0.1)
    assert lr_factor(50, OptimRecipe(schedule="constant")) == 1.0
    with pytest.raises(ValueError, match="constant or cosine"):
        lr_factor(0, OptimRecipe(schedule="linear"))


def test_weak_perspective_scale_recovers_the_camera():
    X = torch.tensor([[[0.0, 0.0, 5.0, 1.0], [0.1, 0.0, 5.0, 1.0], [0.0, 0.2, 5.0, 1.0],
                       [0.3, -0.1, 5.0, 0.0]]])
    x = torch.zeros(1, 4, 3)
    x[..., :2] = 3.0 / 2 * X[..., :2] + torch.tensor([0.05, -0.02])
    x[..., 2] = 1.0
    x[0, 3, :2] = 9.0  # an unlabelled 3D joint: its 2D point does not count
    assert _weak_perspective_scale(x, X).item() == pytest.approx(3.0)


class Frames:
    def __init__(self, samples):
        self.samples = samples

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        return self.samples[i]


def test_mean_parameters_average_rotations_and_betas():
    from extpose_sdk.geometry import rotmat_to_rot6d

    angle = 0.4
    samples = []
    for sign in (1.0, -1.0):  # two orientations symmetric about a third: the mean is the middle
        samples.append({
            "global_orient": torch.tensor([0.0, 0.0, 0.3 + sign * angle]),
            "hand_pose": torch.zeros(45),
            "betas": torch.full((10,), 1.0 + sign),
            "keypoints_2d": torch.tensor([[0.0, 0.0, 1.0], [0.2, 0.0, 1.0], [0.0, 0.4, 1.0]]),
            "keypoints_3d": torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.1, 0.0, 1.0, 1.0],
                                          [0.0, 0.2, 1.0, 1.0]]),
        })
    means = mean_parameters(Frames(samples), 2, "hand_pose")
    c, s = math.cos(0.3), math.sin(0.3)
    expected = rotmat_to_rot6d(torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]))
    assert torch.allclose(means["pose"][:6], expected, atol=1e-6)
    assert torch.allclose(means["pose"][6:12], torch.tensor([1.0, 0, 0, 0, 1, 0]), atol=1e-6)
    assert torch.allclose(means["betas"], torch.ones(10))
    assert means["cam"].tolist() == pytest.approx([4.0, 0.0, 0.0])


def test_the_cache_gives_back_what_was_cached(tmp_path):
    rng = np.random.default_rng(0)
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None] * 255
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None] * 255
    samples = []
    for i in range(3):
        pixels = torch.as_tensor(rng.integers(0, 256, (2, 3, 8, 8)), dtype=torch.float32)
        samples.append({"rgb": (pixels - mean) / std, "skeleton": (pixels.flip(-1) - mean) / std,
                        "keypoints_3d": torch.as_tensor(rng.normal(size=(2, 4, 4)),
                                                        dtype=torch.float32),
                        "valid": torch.tensor([True, i != 2]), "frame": torch.tensor([0, 1]),
                        "sequence": f"s{i}"})
    folder = build_cache(Frames(samples), tmp_path / "c", modalities=("rgb", "skeleton"),
                         describe={"name": "toy"}, progress=False, flush_every=2)
    clips = CachedDataset(folder)
    assert len(clips) == 3
    for original, read in zip(samples, (clips[i] for i in range(3)), strict=True):
        for key in ("rgb", "skeleton"):
            assert torch.allclose(read[key], original[key], atol=1e-5)  # uint8 exact
        assert torch.equal(read["keypoints_3d"], original["keypoints_3d"])
        assert read["sequence"] == original["sequence"]
    frames = CachedDataset(folder, frames=1)
    assert len(frames) == 5  # the padded frame of the last clip is left out
    assert torch.equal(frames[4]["keypoints_3d"], samples[2]["keypoints_3d"][0])
    with pytest.raises(FileExistsError, match="holds a cache of"):
        build_cache(Frames(samples[:2]), folder, describe={"name": "toy"}, progress=False)
    with pytest.raises(ValueError, match="frames=4 needs a cache of clips of that length"):
        CachedDataset(folder, frames=4)


def test_a_half_written_cache_continues(tmp_path):
    samples = [{"keypoints_3d": torch.full((2, 4), float(i))} for i in range(5)]

    class Failing(Frames):
        def __getitem__(self, i):
            if i == 3:
                raise RuntimeError("disk hiccup")
            return super().__getitem__(i)

    with pytest.raises(RuntimeError, match="disk hiccup"):
        build_cache(Failing(samples), tmp_path / "c", modalities=(), describe={"n": 1},
                    progress=False, flush_every=1)
    with pytest.raises(ValueError, match="incomplete \\(3 of 5"):
        CachedDataset(tmp_path / "c")
    build_cache(Frames(samples), tmp_path / "c", modalities=(), describe={"n": 1}, progress=False)
    done = CachedDataset(tmp_path / "c")
    assert [float(done[i]["keypoints_3d"][0, 0]) for i in range(5)] == [0, 1, 2, 3, 4]


def test_reprojection_error_is_the_mean_over_labelled_joints():
    from types import SimpleNamespace

    from extpose_sdk.engine.evaluate import Evaluator

    output = SimpleNamespace(pred_keypoints_2d=torch.tensor([[[0.0, 0.0], [0.3, 0.4]]]))
    batch = {"keypoints_2d": torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]])}
    assert Evaluator._reprojection(output, batch, clip=False).tolist() == pytest.approx([0.25])
    batch["keypoints_2d"][0, 0, 2] = 0.0  # an unlabelled joint does not count
    assert Evaluator._reprojection(output, batch, clip=False).tolist() == pytest.approx([0.5])
    clip = {"keypoints_2d": batch["keypoints_2d"][:, None].expand(1, 3, 2, 3)}
    clip_output = SimpleNamespace(pred_keypoints_2d=output.pred_keypoints_2d[:, None].expand(1, 3, 2, 2))
    assert Evaluator._reprojection(clip_output, clip, clip=True).tolist() == pytest.approx([0.5] * 3)


def test_a_cache_gains_the_modalities_a_later_recipe_needs(tmp_path, monkeypatch):
    from extpose_sdk.datasets.cache import add_modalities
    from extpose_sdk.datasets.synthetic import SyntheticDataset
    from extpose_sdk.engine.data import with_modalities

    monkeypatch.setenv("EXTPOSE_CACHE", str(tmp_path / "models"))
    data = SyntheticDataset(split="test", kind="hand", num_sequences=1, sequence_length=4,
                            clip_length=2, crop_size=32, image_size=(96, 96))
    folder = build_cache(data, tmp_path / "c", modalities=("rgb",), describe={"n": 1},
                         progress=False)
    assert "skeleton" not in CachedDataset(folder)[0]
    assert add_modalities(folder, ["rgb", "skeleton"], progress=False) == ["skeleton"]
    assert add_modalities(folder, ["rgb", "skeleton"], progress=False) == []  # once
    cached = CachedDataset(folder)
    for i in range(len(data)):
        direct = with_modalities(data[i], ["skeleton"], size=32)
        assert torch.allclose(cached[i]["skeleton"], direct["skeleton"], atol=1e-5)
        assert torch.equal(cached[i]["has_skeleton"], direct["has_skeleton"])
    assert cached[0]["skeleton"].abs().sum() > 0  # a drawn skeleton, not an empty image


def test_the_training_log_is_strict_json(tmp_path):
    import json

    from extpose_sdk.engine.log import TrainingLog, read_log

    log = TrainingLog(tmp_path, tensorboard=False, progress=False)
    log.step(1, {"loss": float("nan"), "lr": 0.5})
    log.metrics(1, {"pa_mpjpe": float("inf"), "n": 3.0})
    log.close()
    for line in (tmp_path / "log.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=lambda name: pytest.fail(f"{name} in the log"))
    records = read_log(tmp_path / "log.jsonl")
    assert records[0]["loss"] is None and records[0]["lr"] == 0.5
    assert records[1]["val"] == {"pa_mpjpe": None, "n": 3.0}


def test_a_second_ctrl_c_stops_at_once():
    import os
    import signal

    from extpose_sdk.engine.loop import StopSignal

    before = signal.getsignal(signal.SIGINT)
    with StopSignal() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested == "SIGTERM"  # the first asks for a checkpoint
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before  # handlers restored


def test_keypoint_noise_redraws_the_skeleton_of_a_cached_sample(tmp_path, monkeypatch):
    from extpose_sdk.datasets.synthetic import SyntheticDataset
    from extpose_sdk.engine.data import with_modalities

    monkeypatch.setenv("EXTPOSE_CACHE", str(tmp_path / "models"))
    data = SyntheticDataset(split="test", kind="hand", num_sequences=1, sequence_length=2,
                            crop_size=32, image_size=(96, 96))
    cached = with_modalities(data[0], ["rgb", "skeleton"], size=32)  # as a cache holds it
    same = with_modalities(cached, ["rgb", "skeleton"], size=32)
    assert same is cached  # nothing to draw
    noisy = [with_modalities(cached, ["rgb", "skeleton"], size=32, keypoint_noise=0.1,
                             rng=np.random.default_rng(seed)) for seed in (0, 1)]
    assert not torch.equal(noisy[0]["skeleton"], cached["skeleton"])
    assert not torch.equal(noisy[0]["skeleton"], noisy[1]["skeleton"])  # fresh at every read
    assert torch.equal(noisy[0]["rgb"], cached["rgb"])
    moved = (noisy[0]["detected_keypoints_2d"] - cached["detected_keypoints_2d"])[:, :2]
    side = float((cached["box"][2:] - cached["box"][:2]).max())
    assert 0.05 * side < float(moved.std()) < 0.15 * side  # jitter of 0.1 box sides


def test_curves_png_with_and_without_validation(tmp_path):
    pytest.importorskip("matplotlib")
    import warnings

    from extpose_sdk.engine.log import TrainingLog

    for name, val in (("plain", False), ("validated", True)):
        folder = tmp_path / name
        folder.mkdir()
        log = TrainingLog(folder, tensorboard=False, progress=False)
        for step in range(1, 4):
            log.step(step, {"loss": 1.0 / step, "keypoints_3d": 0.5 / step, "lr": 1e-3})
            if val:
                log.metrics(step, {"pa_mpjpe": 10.0 - step, "n": 4.0})
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "no artists" legend warning either way
            log.close(plot=True)
        png = folder / "curves.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_engine_exports_the_train_function_whatever_was_imported_first():
    """``from extpose_sdk.engine import train`` is the function even after the loop's module was
    imported (a submodule named ``train`` used to shadow it)."""
    import extpose_sdk.engine.loop  # noqa: F401
    from extpose_sdk.engine import TrainResult, train
    from extpose_sdk.engine.loop import train as loop_train

    assert train is loop_train and callable(train) and TrainResult.__name__ == "TrainResult"


def _join_and_leave(rank: int, port: int, fail: bool, results) -> None:
    """One of two processes: join through ``distributed_context``, sum a tensor, then leave the
    block (or raise in it); report what the process saw."""
    import os

    from extpose_sdk.engine import distributed as D

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    raised = None
    try:
        with D.distributed_context("cpu") as dist:
            total = float(D.all_reduce_sum(torch.tensor([rank + 1.0]))[0])
            if fail:
                raise ValueError(f"rank {rank} failed")
    except ValueError as error:
        raised = str(error)
    results.put((rank, dist.world_size, total, raised, D.is_initialized()))


@pytest.mark.parametrize("fail", [False, True])
def test_two_processes_join_and_leave_the_group(fail):
    """Both processes end the group on the way out: after their last step (through a barrier)
    and when the block raised (the error passes through; no barrier to hang on)."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    context = mp.get_context("spawn")
    results = context.Queue()
    processes = [context.Process(target=_join_and_leave, args=(rank, port, fail, results))
                 for rank in range(2)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(timeout=120)
    assert [p.exitcode for p in processes] == [0, 0]
    seen = sorted(results.get(timeout=5) for _ in processes)
    raised = [f"rank {r} failed" if fail else None for r in range(2)]
    assert seen == [(r, 2, 3.0, raised[r], False) for r in range(2)]


def test_auto_device_is_the_gpu_when_one_is_visible_else_the_cpu(monkeypatch):
    from extpose_sdk.engine.distributed import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"
    assert [resolve_device(d) for d in ("cpu", "cuda:1")] == ["cpu", "cuda:1"]  # as given
