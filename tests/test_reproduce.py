"""benchmarks/reproduce.py, the paper's protocol at laptop scale, runs every stage (--tiny)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_tiny_protocol_trains_every_arm_and_scores_every_row(tmp_path):
    out = tmp_path / "r"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "reproduce.py"), "--kind",
                           "hand", "--out", str(out), "--tiny", "--pretrain", "3", "--arms",
                           "a_rgb_T1", "d_rgb+skeleton_T8", "--cycles", "8000@1e-4", "8000@5e-5"],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "reproduce.json").read_text())
    from extpose_sdk.checkpoints import backbone_part, read_weights
    from extpose_sdk.engine.recipe import load_recipe

    cycles = [f"{arm} cycle {n}" for n in (1, 2) for arm in ("a_rgb_T1", "d_rgb+skeleton_T8")]
    assert set(report["arms"]) == {"a_rgb_T1", "d_rgb+skeleton_T8", *cycles}
    # a cycle goes on from its arm's own final weights of the stage before, at the cycle's rate
    for n, start, lr in ((1, "d_rgb+skeleton_T8", 1e-4), (2, "d_rgb+skeleton_T8 cycle 1", 5e-5)):
        cycle = load_recipe(out / f"d_rgb+skeleton_T8-cycle{n}" / "recipe.toml")
        assert cycle.model.checkpoint == report["arms"][start]["weights"]
        assert cycle.optim.lr == report["arms"][f"d_rgb+skeleton_T8 cycle {n}"]["lr"] == lr
    # the base started from the ViT pretrained on 2D keypoints; the arms from the base
    assert report["pretrain"]["weights"] == str(out / "keypoints" / "backbone.safetensors")
    assert 0 < report["pretrain"]["val_2d"] < 2
    assert load_recipe(out / "base" / "recipe.toml").model.backbone_weights == report["pretrain"]["weights"]
    assert load_recipe(out / "a_rgb_T1" / "recipe.toml").model.backbone_weights == ""
    pretrained, _ = read_weights(report["pretrain"]["weights"])
    base, _ = read_weights(report["base"]["weights"])
    assert pretrained.keys() == backbone_part(base).keys()
    for arm in report["arms"].values():
        assert arm["steps"] == 4 and Path(arm["weights"]).is_file()
    arm_rows = {"a_rgb_T1", "d_rgb+skeleton_T8", "d_rgb+skeleton_T8 (rgb only)",
                "d_rgb+skeleton_T8 (skeleton only)", "d_rgb+skeleton_T8 (predict's windows)"}
    cycle_rows = {row.replace("T1", f"T1 cycle {n}").replace("T8", f"T8 cycle {n}")
                  for row in arm_rows for n in (1, 2)}
    assert set(report["test"]) == {"mean_pose", "zero_pose", "base", *arm_rows, *cycle_rows}
    assert report["test"]["d_rgb+skeleton_T8 cycle 1"] != report["test"]["d_rgb+skeleton_T8"]
    for name, row in report["test"].items():
        for metric in ("pa_mpjpe", "mpjpe", "pve", "accel", "reproj_2d"):
            assert math.isfinite(row[metric]) and row[metric] >= 0, (name, metric)
    # the baselines differ only in the articulation: the zero pose is not the mean pose
    assert report["test"]["zero_pose"]["pa_mpjpe"] != report["test"]["mean_pose"]["pa_mpjpe"]
    assert (out / "reproduce.png").stat().st_size > 10_000
    assert "wrote" in done.stdout and "d_rgb+skeleton_T8 (skeleton only)" in done.stdout


def test_a_stopped_arm_stops_the_protocol_instead_of_going_on(tmp_path, monkeypatch):
    """A SIGTERM ends the arm's training with a checkpoint; the script went on to the next arm
    (and then scored unfinished weights)."""
    import extpose_sdk.engine.loop as loop
    from extpose_sdk.engine.loop import TrainResult

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import reproduce

    monkeypatch.setattr(loop, "train", lambda recipe, folder, progress: TrainResult(
        7, "interrupted", tmp_path))
    with pytest.raises(SystemExit, match="interrupted at step 7; run the same command again"):
        reproduce.train_logged(None, tmp_path / "arm")


def test_the_arms_start_from_the_base_not_from_its_pretrained_backbone(monkeypatch):
    """model.backbone_weights given for the base must not reach the arms, which start from the
    base's checkpoint (both at once is refused)."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import reproduce

    overrides = ["model.backbone_weights='runs/kp/backbone.safetensors'"]
    assert reproduce.base_recipe("hand", overrides).model.backbone_weights.endswith("backbone.safetensors")
    arm = reproduce.arm_recipe("hand", reproduce.ARMS["d_rgb+skeleton_T8"], Path("base.safetensors"),
                               100, 32, overrides)
    assert arm.model.checkpoint == "base.safetensors" and arm.model.backbone_weights == ""
    assert (arm.model.frames, arm.optim.batch_size, arm.train.modality_dropout) == (8, 4, 0.5)


def test_a_better_detector_reaches_the_arms_and_the_test_set(monkeypatch):
    """--detector-error 0.5: half the default detector's errors in the arms' training and
    validation sets (validated on a cache of their own) and in the test set; the default
    detector changes nothing."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import reproduce

    assert reproduce.detection_noise(1.0) is None
    better = reproduce.detection_noise(0.5)
    assert better == pytest.approx({"jitter": 0.01, "drop": 0.04, "swap": 0.015})
    plain = reproduce.arm_recipe("hand", reproduce.ARMS["b_rgb+skeleton_T1"], Path("b.safetensors"),
                                 100, 32, [])
    arm = reproduce.arm_recipe("hand", reproduce.ARMS["b_rgb+skeleton_T1"], Path("b.safetensors"),
                               100, 32, [], better)
    assert arm.data.train[0]["options"]["detection_noise"] == better
    assert arm.data.val["options"]["detection_noise"] == better
    assert "detection_noise" not in plain.data.train[0]["options"]
    assert arm.data.val_cache == plain.data.val_cache + "-detector-0.01-0.04-0.015"
    assert reproduce.test_set("hand", True, better).noise.jitter == pytest.approx(0.01)
    assert reproduce.test_set("hand", True).noise.jitter == pytest.approx(0.02)


def test_the_base_is_a_run_folder_or_a_weights_file(tmp_path, monkeypatch):
    """--base takes the folder extpose train wrote (its newest checkpoint) or one model file
    (what travels to a GPU machine without the optimizer state); anything else is refused
    before any work, naming what was given."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import reproduce

    for step in ("step-0000010", "step-0000020"):
        (tmp_path / "run" / "checkpoints" / step).mkdir(parents=True)
        (tmp_path / "run" / "checkpoints" / step / "state.pt").write_bytes(b"")
    newest = tmp_path / "run" / "checkpoints" / "step-0000020" / "model.safetensors"
    assert reproduce.base_weights_of(tmp_path / "run") == newest
    weights = tmp_path / "base.safetensors"
    weights.write_bytes(b"")
    assert reproduce.base_weights_of(weights) == weights
    (tmp_path / "empty").mkdir()
    for missing in ("empty", "nowhere", "gone.safetensors"):
        done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "reproduce.py"), "--out",
                               str(tmp_path / "r"), "--base", str(tmp_path / missing)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and f"--base {tmp_path / missing}" in done.stderr
    assert not (tmp_path / "r").exists()


def test_pretraining_a_base_that_is_given_trained_is_refused_before_any_work(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "reproduce.py"), "--out",
                           str(tmp_path / "r"), "--base", str(tmp_path / "base"), "--pretrain",
                           "100"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--pretrain starts the base this script trains" in done.stderr
    assert not (tmp_path / "r").exists()


def test_the_pretraining_on_both_images_saves_a_backbone_the_body_base_starts_from(
        tmp_path, monkeypatch):
    """``--pretrain-input rgb+skeleton``: the ViT reads both images (scored from each alone too)
    and its backbone fits the recipe's model, for bodies as for hands."""
    import argparse

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import reproduce

    from extpose_sdk.checkpoints import backbone_part, read_weights
    from extpose_sdk.engine.model import build_model

    out = tmp_path / "r"
    overrides = reproduce.tiny_overrides(out, "body")
    args = argparse.Namespace(kind="body", tiny=True, pretrain=3, pretrain_frames=0,
                              pretrain_input="rgb+skeleton")
    path = out / "keypoints" / "backbone.safetensors"
    report = reproduce.pretrained_backbone(args, path, overrides)
    assert report["input"] == "rgb+skeleton" and report["weights"] == str(path)
    assert {"val_2d", "val_2d_rgb", "val_2d_skeleton"} <= set(report)
    assert report["val_2d_rgb"] != report["val_2d_skeleton"]  # each image alone, really
    pretrained, _ = read_weights(path)
    model = build_model(reproduce.base_recipe("body", overrides))
    assert pretrained.keys() == backbone_part(model.state_dict()).keys()
    assert reproduce.pretrained_backbone(args, path, overrides)["reused"]  # not trained twice


def test_a_pretraining_input_without_pretraining_is_refused_before_any_work(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "reproduce.py"), "--out",
                           str(tmp_path / "r"), "--pretrain-input", "rgb+skeleton"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "give --pretrain too" in done.stderr
    assert not (tmp_path / "r").exists()


def test_held_out_scores_each_input_against_its_own_baselines(tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import held_out

    out = tmp_path / "scores.json"
    assert held_out.main(["--kind", "hand", "extpose-hamer-synthetic@8", "--sequences", "1",
                          "--length", "8", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    rows = report["scores"]["extpose-hamer-synthetic@8"]
    assert 0 < report["detector_2d"]["median"] <= report["detector_2d"]["mean"]
    assert list(rows) == ["rgb+skeleton", "skeleton only", "rgb only", "mean articulation",
                          "always the mean"]
    assert rows["mean articulation"]["pa_x_articulation"] == 1.0
    assert rows["rgb+skeleton"]["pa_x_articulation"] == pytest.approx(
        rows["rgb+skeleton"]["pa_mpjpe"] / rows["mean articulation"]["pa_mpjpe"], abs=1e-3)
    # the trained weights beat both baselines; the inputs are really switched
    assert rows["rgb+skeleton"]["mpjpe"] < 0.5 * rows["always the mean"]["mpjpe"]
    assert rows["rgb+skeleton"]["pa_mpjpe"] < rows["mean articulation"]["pa_mpjpe"]
    # the mean articulation keeps the weights' camera and orientation; always the mean does not
    assert rows["mean articulation"]["mpjpe"] < 0.5 * rows["always the mean"]["mpjpe"]
    assert len({rows[name]["mpjpe"] for name in ("rgb+skeleton", "skeleton only", "rgb only")}) == 3
    printed = capsys.readouterr().out
    assert "| rgb only |" in printed
    assert f"drawn joints lie {report['detector_2d']['mean']:.3f} of the crop" in printed
    with pytest.raises(SystemExit):  # the scores written are never overwritten
        held_out.main(["--kind", "hand", "extpose-hamer-synthetic", "--json", str(out)])
    assert json.loads(out.read_text())["scores"]


def test_held_out_scores_other_seeds_but_never_the_validation_split(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import held_out

    common = ["--kind", "hand", "extpose-hamer-synthetic@8", "--sequences", "1", "--length", "8"]
    for seed in ("2", "4"):
        assert held_out.main([*common, "--seed", seed,
                              "--json", str(tmp_path / f"{seed}.json")]) == 0
    default, other = (json.loads((tmp_path / f"{s}.json").read_text()) for s in ("2", "4"))
    assert (default["seed"], other["seed"]) == (2, 4)
    # other sequences: other motions, so even always predicting the mean scores differently
    assert (default["scores"]["extpose-hamer-synthetic@8"]["always the mean"]["mpjpe"]
            != other["scores"]["extpose-hamer-synthetic@8"]["always the mean"]["mpjpe"])
    with pytest.raises(SystemExit):  # seed 1 is what the training runs validate on
        held_out.main([*common, "--seed", "1"])


def test_held_out_scores_t_frame_weights_on_the_windows_predict_runs(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import held_out

    common = ["--kind", "hand", "extpose-hamer-synthetic@8", "--sequences", "1", "--length", "12"]
    for overlap in (0, 4):
        assert held_out.main([*common, "--overlap", str(overlap),
                              "--json", str(tmp_path / f"{overlap}.json")]) == 0
    clips, windows = (json.loads((tmp_path / f"{o}.json").read_text()) for o in (0, 4))
    assert (clips["overlap"], windows["overlap"]) == (0, 4)
    clips, windows = (r["scores"]["extpose-hamer-synthetic@8"] for r in (clips, windows))
    # the same 12 frames scored once each (a constant output scores the same), frames 6-11
    # now from the window [4, 12) instead of [0, 8) and [8, 12) padded
    assert clips["always the mean"] == windows["always the mean"]
    assert clips["rgb+skeleton"]["n"] == windows["rgb+skeleton"]["n"] == 12
    assert clips["rgb+skeleton"]["mpjpe"] != windows["rgb+skeleton"]["mpjpe"]
    with pytest.raises(SystemExit):
        held_out.main([*common, "--overlap", "8"])
    with pytest.raises(SystemExit):  # clips of 8 cannot feed a window of 4: overlap it
        held_out.main(["--kind", "hand", "extpose-hamer-synthetic@4"])


def test_held_out_scores_rgb_only_weights_and_their_baselines_with_rgb_only(tmp_path,
                                                                             monkeypatch):
    import shutil

    import extpose_sdk

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import held_out

    shipped = extpose_sdk.get_registries().weights.build("extpose-hamer-synthetic")
    rgb_only = tmp_path / "rgb.safetensors"  # the same weights, told they know RGB only
    shutil.copy(shipped, rgb_only)
    config = json.loads(shipped.with_suffix(".json").read_text())
    rgb_only.with_suffix(".json").write_text(json.dumps({**config, "modalities": ["rgb"]}))
    seen = []
    evaluate = held_out.reproduce.evaluate
    monkeypatch.setattr(held_out.reproduce, "evaluate", lambda model, data, modalities, *rest: (
        seen.append(list(modalities)) or evaluate(model, data, modalities, *rest)))
    rows = held_out.score(f"{rgb_only}", 1, "hand", held_out.held_out_set("hand", 1, 8))
    assert list(rows) == ["rgb only", "mean articulation", "always the mean"]
    assert seen == [["rgb"]] * 3


def test_held_out_weights_take_their_window_after_an_at(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import held_out

    assert held_out.parse_weights("runs/a/model.safetensors") == ("runs/a/model.safetensors", 8)
    assert held_out.parse_weights("extpose-hamer-synthetic@1") == ("extpose-hamer-synthetic", 1)
    with pytest.raises(ValueError, match="positive whole number"):
        held_out.parse_weights("weights@0")


@pytest.mark.parametrize(("kind", "mean", "median"), [("hand", 0.0194, 0.0174),
                                                     ("body", 0.0255, 0.0227)])
def test_the_detectors_error_is_measured_in_the_crop_against_the_truth(kind, mean, median,
                                                                       monkeypatch):
    """A perfect stand-in detector (``--detector-error 0``) lies on the true joints (the crop
    transform and the layout conversion are right); the default one about 2% of the crop away
    over the joints the skeleton image draws (its dropped joints, far off with low confidence,
    are not drawn); one twice as good, half as far."""
    import extpose_sdk

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import held_out

    perfect = held_out.detector_error(held_out.held_out_set(kind, 1, 12, detector_error=0.0))
    assert perfect == {"mean": 0.0, "median": 0.0}
    small_crops = extpose_sdk.get_registries().dataset.build(
        f"synthetic-{kind}", split="test", seed=2, crop_size=64, clip_length=4, num_sequences=1,
        sequence_length=4, detection_noise={"jitter": 0.0, "drop": 0.0, "swap": 0.0})
    assert held_out.detector_error(small_crops) == {"mean": 0.0, "median": 0.0}  # its own size
    # 12 frames: a clip of 8 and one of 4 padded to 8, the padding left out; pinned figures
    noisy = held_out.detector_error(held_out.held_out_set(kind, 1, 12))
    assert noisy == pytest.approx({"mean": mean, "median": median}, abs=2e-4), noisy
    better = held_out.detector_error(held_out.held_out_set(kind, 1, 12, detector_error=0.5))
    assert better["mean"] == pytest.approx(mean / 2, rel=0.3), better


def test_the_ray_split_puts_each_error_where_it_lies(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import ray_split
    import torch

    from extpose_sdk.metrics import pa_mpjpe, protocol_for_joint_set

    protocol = protocol_for_joint_set("mano21")
    generator = torch.Generator().manual_seed(0)
    gt = torch.cat([torch.randn(2, 21, 3, generator=generator) * 0.05,
                    torch.ones(2, 21, 1)], dim=-1)
    across = torch.randn(2, 21, 3, generator=generator) * 0.01 * torch.tensor([1.0, 1.0, 0.0])
    along = torch.randn(2, 21, 3, generator=generator) * 0.01 * torch.tensor([0.0, 0.0, 1.0])
    depth_only = ray_split.split(gt[..., :3] + along, gt, protocol)
    assert list(depth_only) == list(ray_split.VARIANTS)
    image_only = ray_split.split(gt[..., :3] + across, gt, protocol)
    # the aligning turn moves a little of each error onto the other axes, no more
    assert (depth_only["across the image"] < 0.25 * depth_only["depth"]).all()
    assert (image_only["depth"] < 0.15 * image_only["across the image"]).all()
    # the error is measured after alignment: a turned, moved, scaled prediction loses nothing
    turn = torch.linalg.matrix_exp(torch.tensor([[0.0, -0.3, 0.2], [0.3, 0.0, -0.1],
                                                 [-0.2, 0.1, 0.0]]))
    moved = 1.3 * gt[..., :3] @ turn.T + torch.tensor([0.1, -0.2, 0.5])
    assert (ray_split.split(moved, gt, protocol)["PA-MPJPE"] < 1e-3).all()  # mm
    both = ray_split.split(gt[..., :3] + across + along, gt, protocol)
    assert torch.allclose(both["PA-MPJPE"],
                          1000 * pa_mpjpe(gt[..., :3] + across + along, gt[..., :3]))
    assert (both["depth"] < both["PA-MPJPE"]).all()
    assert (both["across the image"] < both["PA-MPJPE"]).all()
    assert torch.allclose(both["depth"], depth_only["depth"], rtol=0.05)
    assert torch.allclose(both["across the image"], image_only["across the image"], rtol=0.05)
    assert both["depth"].shape == (2,) and (both["depth"] > 1).all()  # mm, not m
    # a joint without a label is left out
    unlabelled = gt.clone()
    unlabelled[:, 5, 3] = 0
    far = gt[..., :3].clone()
    far[:, 5, 2] += 1.0
    assert torch.allclose(ray_split.split(far, unlabelled, protocol)["depth"],
                          torch.zeros(2), atol=1e-9)


def test_the_ray_split_scores_each_input_and_keeps_what_it_wrote(tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import ray_split

    out = tmp_path / "split.json"
    assert ray_split.main(["--kind", "hand", "extpose-hamer-synthetic", "--sequences", "1",
                           "--length", "8", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["scores"]["extpose-hamer-synthetic"]
    assert list(rows) == ["rgb+skeleton", "skeleton only", "rgb only", "mean articulation"]
    for row in rows.values():
        assert 0 < row["depth"] < row["PA-MPJPE"] and 0 < row["across the image"] < row["PA-MPJPE"]
    assert rows["rgb+skeleton"]["PA-MPJPE"] < rows["mean articulation"]["PA-MPJPE"]
    assert len({row["PA-MPJPE"] for row in rows.values()}) == 4  # the inputs are switched
    assert "| mean articulation |" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # the scores written are never overwritten
        ray_split.main(["--kind", "hand", "extpose-hamer-synthetic", "--json", str(out)])
    assert json.loads(out.read_text())["scores"]


def test_an_override_after_the_arms_is_named_as_one_not_refused_as_an_unknown_arm():
    """--arms takes one or more values, so `--arms a_rgb_T1 loss.pose=0.01` hands the override to
    --arms: the error says where overrides go, before anything runs."""
    script = str(ROOT / "benchmarks" / "reproduce.py")
    done = subprocess.run([sys.executable, script, "--out", "/nonexistent/r", "--arms", "a_rgb_T1",
                           "loss.pose=0.01"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "'loss.pose=0.01' is a recipe override, not an arm or a cycle" in done.stderr
    assert "end their list with --" in done.stderr


@pytest.mark.parametrize("value, message", [
    ("loss.pose=0.01", "is a recipe override, not an arm or a cycle"),
    ("8000@-1e-4", "a cycle is STEPS@LR with STEPS >= 1 and LR > 0")])
def test_a_cycle_that_is_not_steps_at_a_learning_rate_is_refused_before_any_work(value, message):
    """The command's side of ``cycle`` (read in-process below)."""
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "reproduce.py"), "--out",
                           "/nonexistent/r", "--cycles", "4000@1e-4", value],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and message in done.stderr, done.stderr


@pytest.mark.parametrize("value, message", [
    ("loss.pose=0.01", "'loss.pose=0.01' is a recipe override, not an arm or a cycle"),
    ("8000", "'8000': a cycle is STEPS@LR with STEPS >= 1 and LR > 0, e.g. 8000@3e-4"),
    ("8000@", "a cycle is STEPS@LR"), ("x@3e-4", "e.g. 8000@3e-4"), ("0@3e-4", "STEPS >= 1"),
    ("8000@0", "LR > 0"), ("8000@-1e-4", "LR > 0"), ("1@2@3", "a cycle is STEPS@LR")])
def test_a_cycle_is_read_as_steps_at_a_learning_rate(monkeypatch, value, message):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import argparse

    import reproduce

    assert reproduce.cycle("8000@3e-4") == (8000, 3e-4)
    assert reproduce.cycle("1@1e-5") == (1, 1e-5)  # one step is a cycle
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        reproduce.cycle(value)


def test_each_cycle_starts_from_the_arms_own_weights_at_its_own_rate(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import reproduce

    arm = reproduce.ARMS["b_rgb+skeleton_T1"]
    recipe = reproduce.cycle_recipe("body", arm, Path("b-cycle1.safetensors"), 4000, 5e-5, 32, [],
                                    reproduce.detection_noise(0.1))
    assert recipe.model.checkpoint == "b-cycle1.safetensors"
    assert recipe.model.modalities == ["rgb", "skeleton"] and recipe.train.modality_dropout == 0.5
    assert (recipe.optim.max_steps, recipe.optim.lr, recipe.optim.warmup_steps) == (4000, 5e-5, 100)
    assert recipe.data.train[0]["options"]["detection_noise"]["jitter"] == pytest.approx(0.002)
    short = reproduce.cycle_recipe("hand", reproduce.ARMS["a_rgb_T1"], Path("a.safetensors"), 500,
                                   1e-4, 32, [])
    assert short.optim.warmup_steps == 50 and isinstance(short.optim.warmup_steps, int)
    assert short.train.modality_dropout == 0.0


def test_the_gpu_arms_script_refuses_a_missing_base_and_a_machine_without_cuda(tmp_path):
    """The script's python3 is the one running the tests (it holds torch)."""
    script = str(ROOT / "benchmarks" / "gpu_arms.sh")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", script, str(tmp_path / "base.safetensors")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2 and f"no base weights file {tmp_path}" in done.stderr
    (tmp_path / "base.safetensors").write_bytes(b"")
    (tmp_path / "base.json").write_text(json.dumps({"model": "vitpose"}))
    done = subprocess.run(["bash", script, str(tmp_path / "base.safetensors")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2
    assert "a 'vitpose' model; the arms know ['extpose-hamer', 'extpose-hmr2']" in done.stderr
    for model in ("extpose-hamer", "extpose-hmr2"):  # the hand arms or the body arms
        (tmp_path / "base.json").write_text(json.dumps({"model": model}))
        done = subprocess.run(["bash", script, str(tmp_path / "base.safetensors"), "3",
                               str(tmp_path / "run")], cwd=ROOT, capture_output=True, text=True,
                              timeout=120, env=env)
        assert done.returncode == 1 and "needs a CUDA GPU" in done.stderr
        assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("model, kind, detector, arms", [
    ("extpose-hmr2", "body", "0.25", ""),
    ("extpose-hamer", "hand", "", "b_rgb+skeleton_T1 d_rgb+skeleton_T8")])
def test_the_gpu_arms_script_runs_the_arms_of_its_bases_kind(tmp_path, model, kind, detector,
                                                              arms):
    """What runs is read from the base: a body base trains the body arms and scores the body
    test set (python3 here stands in for the device machine's and writes down its calls);
    DETECTOR_ERROR reaches the arms and the test set, and without it the recipe's detector;
    ARMS picks the arms, by default (a) and (b)."""
    fake = tmp_path / "bin"
    fake.mkdir()
    real = sys.executable
    (fake / "python3").write_text(  # the calibration run logs 256 frames a second
        "#!/bin/sh\n"
        f'case "$1" in -|-c) exec {real} "$@";; esac\n'
        f'echo "$@" >> {tmp_path / "calls"}\n'
        'if [ "$3" = train ]; then mkdir -p "$6"; for i in 1 2 3 4 5 6; do\n'
        '  echo \'{"samples_per_s": 256.0}\' >> "$6/log.jsonl"; done; fi\n')
    (fake / "python3").chmod(0o755)
    base = tmp_path / "base.safetensors"
    base.write_bytes(b"")
    (tmp_path / "base.json").write_text(json.dumps({"model": model}))
    run = tmp_path / "run"
    run.mkdir()
    env = {**os.environ, "EXTPOSE_DEVICE": "cpu", "DETECTOR_ERROR": detector, "ARMS": arms,
           "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_arms.sh"), str(base), "3",
                           str(run)], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=env)
    assert done.returncode == 0, done.stderr
    calibration, call = (tmp_path / "calls").read_text().splitlines()
    assert f"-m extpose_sdk train synthetic-{kind}-single --out {run}/calibrate" in calibration
    assert f"model.checkpoint={base}" in calibration
    # 2 steps of 128 frames a second, 3 minutes, 90% of it, in hundreds
    assert (run / "steps").read_text() == "300\n" and not (run / "calibrate").exists()
    assert f"benchmarks/reproduce.py --kind {kind} --out {run} --base {base} --arm-steps 300" in call
    assert ("--detector-error 0.25 --arms" in call) == bool(detector)
    assert ("--detector-error" in call) == bool(detector)
    assert f"--arms {arms or 'a_rgb_T1 b_rgb+skeleton_T1'} -- device=cpu" in call


def test_the_gpu_arms_script_knows_the_protocols_arms_and_refuses_others_before_any_work(
        tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import reproduce

    script = ROOT / "benchmarks" / "gpu_arms.sh"
    known = next(line for line in script.read_text().splitlines() if line.startswith("known="))
    assert known.split('"')[1].split() == list(reproduce.ARMS)
    (tmp_path / "base.safetensors").write_bytes(b"")
    (tmp_path / "base.json").write_text(json.dumps({"model": "extpose-hamer"}))
    done = subprocess.run(["bash", str(script), str(tmp_path / "base.safetensors"), "3",
                           str(tmp_path / "run")], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "ARMS": "b_rgb+skeleton_T1 d_rgb_T8"})
    assert done.returncode == 2 and not (tmp_path / "run").exists()
    assert "unknown arm 'd_rgb_T8' in ARMS; the arms: a_rgb_T1 b_rgb+skeleton_T1" in done.stderr
