"""The training engine end to end at tiny size: the loss falls, runs resume exactly, two
processes equal one, a NaN stops cleanly, and the weights load back with ``load_model``."""

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import attrs
import pytest
import torch

import extpose_sdk
from extpose_sdk.engine.log import loss_terms_of, read_log
from extpose_sdk.engine.loop import TrainingError, data_bound_note, lr_factor, train
from extpose_sdk.engine.recipe import recipe_from_dict

TINY_MODEL = {"img_size": [32, 32], "embed_dim": 16, "depth": 2, "num_heads": 2, "head_dim": 16,
              "head_depth": 1, "head_heads": 2, "head_dim_head": 8, "head_mlp_dim": 16}


def tiny_recipe(cache: Path, *overrides: str, frames: int = 1, modalities=("rgb", "skeleton")):
    data = {"name": "tiny-hand", "model": {
        "recipe": "extpose-hamer", "modalities": list(modalities), "frames": frames,
        "mask": "paper", "options": TINY_MODEL, "init_decoder_xavier": True,
        "mean_params_samples": 16},
        "data": {"crop_size": 32, "cache": str(cache / "train"), "val_cache": str(cache / "val"),
                 "train": [{"name": "synthetic-hand", "options": {
                     "num_sequences": 3, "sequence_length": 8, "crop_size": 32,
                     "image_size": [96, 96], "augment": {"flip_prob": 0.0},
                     "cache_clip_length": 4}}],
                 "val": {"name": "synthetic-hand", "split": "test", "options": {
                     "num_sequences": 1, "sequence_length": 8, "crop_size": 32,
                     "image_size": [96, 96], "seed": 1, "cache_clip_length": 4}}},
        "optim": {"lr": 3e-3, "batch_size": 4, "max_steps": 6, "warmup_steps": 2,
                  "schedule": "cosine", "grad_clip": 1.0},
        "train": {"log_every": 1, "save_every": 1000, "eval_every": 0, "plot": False,
                  "tensorboard": False, "modality_dropout": 0.5}}
    return recipe_from_dict(data, list(overrides))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cache")
    os.environ.setdefault("EXTPOSE_CACHE", str(folder / "models"))
    return folder


def losses(run: Path) -> list[float]:
    return [r["loss"] for r in read_log(run / "log.jsonl") if "loss" in r]


def weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def test_the_loss_falls_on_the_synthetic_hand_set(cache, tmp_path):
    recipe = tiny_recipe(cache, "max_steps=40", "warmup_steps=5", "modality_dropout=0.0")
    result = train(recipe, tmp_path / "run", progress=False)
    assert result.status == "finished" and result.step == 40
    values = losses(tmp_path / "run")
    first, last = sum(values[:5]) / 5, sum(values[-5:]) / 5
    assert last < 0.65 * first, (first, last)  # measured: 0.52x in 40 steps
    # the validation ran at the end, and its best weights are saved
    assert result.best["metric"] == "pa_mpjpe" and math.isfinite(result.best["value"])
    assert (tmp_path / "run" / "best" / "model.safetensors").is_file()


def test_trained_weights_load_with_load_model_and_predict_the_same(cache, tmp_path):
    recipe = tiny_recipe(cache, "max_steps=2")
    result = train(recipe, tmp_path / "run", progress=False)
    path = result.checkpoint / "model.safetensors"
    model = extpose_sdk.load_model("extpose-hamer", checkpoint=str(path))
    assert model.modalities == ("rgb", "skeleton") and model.mask == "paper"
    assert tuple(model.backbone.img_size) == (32, 32)
    config = json.loads(path.with_suffix(".json").read_text())
    assert config["crop_size"] == 32 and config["frames"] == 1
    trained = weights(result.checkpoint)
    assert max_difference(trained, {k: v for k, v in model.state_dict().items()}) == 0.0
    assert (result.checkpoint / "recipe.toml").read_text() == recipe.to_toml()


@pytest.mark.parametrize("frames", [1, 4])
def test_a_stopped_run_resumes_to_the_same_losses_and_weights(cache, tmp_path, frames):
    extra = ("batch_size=2",) if frames > 1 else ()
    whole = train(tiny_recipe(cache, *extra, frames=frames), tmp_path / "whole", progress=False)
    stopped = train(tiny_recipe(cache, *extra, frames=frames), tmp_path / "parts",
                    progress=False, callback=lambda step, record: step == 3)
    assert stopped.status == "stopped" and stopped.step == 3
    resumed = train(tiny_recipe(cache, *extra, frames=frames), tmp_path / "parts", progress=False)
    assert resumed.step == whole.step == 6
    assert losses(tmp_path / "parts") == losses(tmp_path / "whole")
    assert max_difference(weights(resumed.checkpoint), weights(whole.checkpoint)) == 0.0


def test_the_temporal_term_trains_clips_with_its_weight_and_leaves_frames_alone(cache, tmp_path):
    """loss.temporal (ours) adds the acceleration term on clips, scaled by its weight, counted in
    the loss; single frames have no accelerations, so it adds nothing there."""
    def run(name, *overrides, frames=4):
        extra = ("batch_size=2", "max_steps=1", "modality_dropout=0.0", *overrides)
        train(tiny_recipe(cache, *extra, frames=frames), tmp_path / name, progress=False)
        return read_log(tmp_path / name / "log.jsonl")[0]

    off, low, high = run("off"), run("low", "loss.temporal=0.1"), run("high", "loss.temporal=0.2")
    assert "temporal" not in off and low["temporal"] > 0
    assert high["temporal"] == pytest.approx(2 * low["temporal"], rel=1e-5)
    assert low["loss"] == pytest.approx(off["loss"] + low["temporal"], rel=1e-5)
    assert "temporal" not in run("frames", "loss.temporal=0.1", frames=1)


def lrs(run: Path) -> list[float]:
    return [r["lr"] for r in read_log(run / "log.jsonl") if "lr" in r]


def test_a_resumed_run_follows_its_new_recipe_and_says_what_changed(cache, tmp_path):
    """A resume with optim.lr / weight_decay / betas / max_steps changed runs on the new values (the
    checkpoint's optimiser state once kept the old learning rate silently)."""
    train(tiny_recipe(cache), tmp_path / "parts", progress=False,
          callback=lambda step, record: step == 3)
    changed = ("lr=1e-3", "weight_decay=0.05", "max_steps=8", "optim.betas=[0.8, 0.99]")
    resumed = train(tiny_recipe(cache, *changed), tmp_path / "parts", progress=False)
    assert resumed.step == 8
    groups = torch.load(resumed.checkpoint / "state.pt", weights_only=True)["optimizer"][
        "param_groups"]
    assert [(g["weight_decay"], tuple(g["betas"]), g["initial_lr"]) for g in groups] == [
        (0.05, (0.8, 0.99), 1e-3), (0.0, (0.8, 0.99), 1e-3)]
    train(tiny_recipe(cache, *changed), tmp_path / "whole", progress=False)
    assert lrs(tmp_path / "parts")[3:] == lrs(tmp_path / "whole")[3:]
    assert lrs(tmp_path / "parts")[3] == pytest.approx(
        1e-3 * lr_factor(4, tiny_recipe(cache, *changed).optim))
    notes = [r.get("note", "") for r in read_log(tmp_path / "parts" / "log.jsonl")]
    said = [n for n in notes if n.startswith("resuming from")]
    assert said == [
        f"resuming from {tmp_path / 'parts' / 'checkpoints' / 'step-0000003'} at step 3; the "
        "recipe differs from the checkpoint's (the run goes on with the new one, from the "
        "checkpoint's weights): optim.betas: [0.9, 0.999] -> [0.8, 0.99]; optim.lr: 0.003 -> "
        "0.001; optim.max_steps: 6 -> 8; optim.weight_decay: 0.0001 -> 0.05"]
    # a plain resume says it resumed, and no more; so does one from a checkpoint without its
    # recipe.toml (written before the SDK kept one)
    train(tiny_recipe(cache, "max_steps=3"), tmp_path / "plain", progress=False,
          callback=lambda step, record: step in (1, 2))
    train(tiny_recipe(cache, "max_steps=3"), tmp_path / "plain", progress=False,
          callback=lambda step, record: step == 2)
    (tmp_path / "plain" / "checkpoints" / "step-0000002" / "recipe.toml").unlink()
    train(tiny_recipe(cache, "max_steps=3", "lr=1e-3"), tmp_path / "plain", progress=False)
    notes = [r.get("note", "") for r in read_log(tmp_path / "plain" / "log.jsonl")]
    assert [n for n in notes if n.startswith("resuming")] == [
        f"resuming from {tmp_path / 'plain' / 'checkpoints' / f'step-000000{k}'} at step {k}"
        for k in (1, 2)]


def test_a_nan_loss_stops_naming_the_step_and_term_and_keeps_the_checkpoint(
        cache, tmp_path, monkeypatch):
    run = tmp_path / "run"
    train(tiny_recipe(cache, "max_steps=2"), run, progress=False)
    saved = run / "checkpoints" / "step-0000002"
    digest = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in saved.iterdir()}
    from extpose_sdk.engine import losses as L

    real = L.keypoint_2d_loss
    monkeypatch.setattr(L, "keypoint_2d_loss", lambda pred, gt: real(pred, gt) * float("nan"))
    with pytest.raises(TrainingError, match=r"step 3: loss term 'keypoints_2d' is nan.*step-0000002"):
        train(tiny_recipe(cache, "max_steps=4"), run, progress=False)
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in saved.iterdir()} == digest
    assert not (run / "checkpoints" / "step-0000003").exists()
    extpose_sdk.load_model("extpose-hamer", checkpoint=str(saved / "model.safetensors"))
    # with on_nonfinite=skip the steps are dropped and counted, then the run gives up
    skip = train(tiny_recipe(cache, "max_steps=5", "on_nonfinite=skip", "max_skipped=10"),
                 tmp_path / "skip", progress=False)
    assert skip.skipped_steps == 5
    before = weights(skip.checkpoint)
    fresh = train(tiny_recipe(cache, "max_steps=0"), tmp_path / "fresh", progress=False)
    assert max_difference(before, weights(fresh.checkpoint)) == 0.0  # nothing was stepped


def test_an_out_folder_with_checkpoints_is_never_restarted_silently(cache, tmp_path):
    train(tiny_recipe(cache, "max_steps=1"), tmp_path / "run", progress=False)
    with pytest.raises(TrainingError, match="holds checkpoints of an earlier run"):
        train(tiny_recipe(cache, "max_steps=2"), tmp_path / "run", resume=None, progress=False)


def test_sequences_shorter_than_the_clips_are_refused_with_the_fix(cache):
    from extpose_sdk.engine.data import build_training_set

    recipe = tiny_recipe(cache, "data.cache=", frames=16)  # sequences of 8 frames
    with pytest.raises(ValueError, match=r"'synthetic-hand' gives no training clips of 16 "
                       r"frames.*options.sequence_length >= 16"):
        build_training_set(recipe, progress=False)


def test_a_cache_of_older_synthetic_data_is_refused(cache, tmp_path):
    from extpose_sdk.engine.data import build_validation_set

    recipe = tiny_recipe(cache, f"data.val_cache={tmp_path / 'val'}")
    build_validation_set(recipe, progress=False)
    manifest = tmp_path / "val" / "manifest.json"
    written = json.loads(manifest.read_text())
    version = extpose_sdk.get_registries().dataset.get("synthetic-hand").metadata["data_version"]
    assert written["describe"]["version"] == version
    del written["describe"]["version"]  # as a cache written before the hands' fingers curled
    manifest.write_text(json.dumps(written))
    with pytest.raises(FileExistsError, match="holds a cache of.*set data.val_cache to another"):
        build_validation_set(recipe, progress=False)


#: How far the outputs of two processes' weights may be from one's after a few steps: they sum
#: gradients in another order, float rounding that moves the outputs by about 1e-7. The weights
#: themselves are not compared: where a gradient is zero in exact arithmetic (the head's first
#: self-attention, query and key over its single token) the rounding is all there is, and Adam
#: scales it up to a step of the learning rate's order, more on some CPUs than on others
#: (4e-5 and 6e-5 on an AMD EPYC), in weights that change no output. A wrong data split moves the
#: outputs by 0.04 (measured: both processes reading the same samples), another seed by 0.3.
ONE_VS_TWO_PROCESSES = 1e-5


def predictions(folder: Path) -> dict[str, torch.Tensor]:
    """What the weights in ``folder`` compute: the tiny model's outputs on fixed images."""
    model = extpose_sdk.load_model("extpose-hamer", checkpoint=str(folder / "model.safetensors"))
    generator = torch.Generator().manual_seed(0)
    images = {name: torch.rand(2, 3, *TINY_MODEL["img_size"], generator=generator)
              for name in model.modalities}
    with torch.no_grad():
        output = model(images)
    return {k: v for k, v in attrs.asdict(output, recurse=False).items()
            if isinstance(v, torch.Tensor)}


def test_two_processes_reach_the_weights_of_one(cache, tmp_path):
    recipe = tiny_recipe(cache, "max_steps=3", "device=cpu")
    path = tmp_path / "tiny.toml"
    path.write_text(recipe.to_toml())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "extpose_sdk", "train", str(path), "--out",
                          str(tmp_path / "one"), "--no-progress"], env=env, capture_output=True,
                         text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node=2", "-m", "extpose_sdk", "train", str(path), "--out",
                          str(tmp_path / "two"), "--no-progress"], env=env, capture_output=True,
                         text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    final = "checkpoints/step-0000003"
    difference = max_difference(predictions(tmp_path / "one" / final),
                                predictions(tmp_path / "two" / final))
    assert difference <= ONE_VS_TWO_PROCESSES, difference
    assert losses(tmp_path / "one") == pytest.approx(losses(tmp_path / "two"), rel=1e-5)


def test_training_streams_the_official_tar_shards(tmp_path):
    """A body model trains on WebDataset shards in the official layout (several people per
    image), through the same loop; the pelvis-centred loss uses joint 39."""
    pytest.importorskip("webdataset")
    from tests.test_tar_shards import entry, person, write_shard

    shard = write_shard(tmp_path / "shards" / "000000.tar", [
        (f"img{i}", entry([person("body", center=(30.0 + 5 * i, 32.0)),
                           person("body", center=(50.0, 30.0))])) for i in range(3)])
    recipe = recipe_from_dict({
        "model": {"recipe": "extpose-hmr2", "modalities": ["rgb", "skeleton"],
                  "options": TINY_MODEL, "mean_params_samples": 4},
        "data": {"crop_size": 32, "train": [{"name": "tar-shards", "options": {
            "urls": [shard], "crop_size": 32, "shuffle": 0}}]},
        "optim": {"lr": 1e-3, "batch_size": 2, "max_steps": 3},
        "train": {"save_every": 1000, "plot": False, "tensorboard": False}})
    result = train(recipe, tmp_path / "run", progress=False)
    assert result.status == "finished" and result.step == 3
    values = losses(tmp_path / "run")
    assert len(values) == 1 and math.isfinite(values[0])  # log_every 10: the last step
    model = extpose_sdk.load_model("extpose-hmr2", checkpoint=str(result.checkpoint / "model.safetensors"))
    assert model.head.pose_name == "body_pose"


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_steps_train(cache, tmp_path, amp):
    result = train(tiny_recipe(cache, f"amp={amp}", "max_steps=3", "accumulate=2"),
                   tmp_path / amp, progress=False)
    assert result.status == "finished" and result.skipped_steps == 0
    assert math.isfinite(result.last_loss) and result.last_loss > 0
    trained = weights(result.checkpoint)
    assert all(v.dtype == torch.float32 for v in trained.values())  # master weights stay fp32


CRASHING_RUN = '''
import os, sys
from extpose_sdk.engine.recipe import load_recipe
from extpose_sdk.engine.loop import train

def crash_rank_1_once(step, record):
    first_attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
    if step == 3 and os.environ.get("RANK") == "1" and first_attempt:
        os._exit(17)  # a dead process, no checkpoint, no goodbye

train(load_recipe(sys.argv[1]), sys.argv[2], progress=False, callback=crash_rank_1_once)
'''


def test_a_dead_rank_under_max_restarts_resumes_from_the_latest_checkpoint(cache, tmp_path):
    recipe = tiny_recipe(cache, "max_steps=5", "save_every=2", "device=cpu")
    path = tmp_path / "tiny.toml"
    path.write_text(recipe.to_toml())
    script = tmp_path / "crashing.py"
    script.write_text(CRASHING_RUN)
    # a fresh rendezvous store per attempt: the shared one can hand a restarted group the dead
    # attempt's addresses (pytorch/pytorch#135712; docs/training.md says the same to users)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
    whole = train(recipe, tmp_path / "whole", progress=False)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node=2", "--max-restarts=3", str(script), str(path),
                           str(tmp_path / "restarted")], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    # rank 1 did die, and torchrun restarted the group (more restarts allowed: on a loaded
    # machine a restarted gloo group can fail to connect once and needs another attempt)
    assert "exitcode: 17" in done.stderr
    final = "checkpoints/step-0000005"
    difference = max_difference(predictions(whole.checkpoint),
                                predictions(tmp_path / "restarted" / final))
    assert difference <= ONE_VS_TWO_PROCESSES, difference


def test_fine_tuning_starts_from_an_official_checkpoint(cache, tmp_path):
    """ExtPose as the paper trains it: the official HaMeR weights (Lightning layout, with the
    official extras the loader skips), extended with skeleton images and frames."""
    from tests.test_checkpoints import write_official_checkpoint

    torch.manual_seed(5)
    hamer = extpose_sdk.load_model("hamer", **TINY_MODEL)
    official = write_official_checkpoint(tmp_path / "hamer.ckpt", hamer)
    start = train(tiny_recipe(cache, f"model.checkpoint={str(official)!r}", "max_steps=0",
                              "mean_params_from_data=false"), tmp_path / "start", progress=False)
    loaded = weights(start.checkpoint)
    assert max_difference(loaded, {k: v for k, v in hamer.state_dict().items()}) == 0.0
    tuned = train(tiny_recipe(cache, f"model.checkpoint={str(official)!r}", "max_steps=2",
                              "batch_size=2", "mean_params_from_data=false", frames=4),
                  tmp_path / "tuned", progress=False)
    assert tuned.step == 2 and math.isfinite(tuned.last_loss)
    assert max_difference(weights(tuned.checkpoint), loaded) > 0.0


def test_a_pretrained_backbone_starts_the_backbone_and_the_head_starts_new(cache, tmp_path):
    """model.backbone_weights, as the official training starts HMR2.0 from ViTPose's ViT: a bare
    backbone file or a ViTPose-style torch file (keys under backbone., a keypoint head beside)."""
    from safetensors.torch import save_file

    torch.manual_seed(7)
    pretrained = extpose_sdk.load_model("hamer", **TINY_MODEL).backbone.state_dict()
    bare = tmp_path / "backbone.safetensors"
    save_file({k: v.contiguous() for k, v in pretrained.items()}, str(bare))
    vitpose = tmp_path / "vitpose.pth"
    torch.save({"state_dict": {**{f"backbone.{k}": v for k, v in pretrained.items()},
                               "keypoint_head.final_layer.weight": torch.ones(17, 16, 1, 1)}},
               vitpose)
    scratch = weights(train(tiny_recipe(cache, "max_steps=0"), tmp_path / "scratch",
                            progress=False).checkpoint)
    for path in (bare, vitpose):
        started = weights(train(tiny_recipe(cache, f"model.backbone_weights={str(path)!r}",
                                            "max_steps=0"), tmp_path / path.stem,
                                progress=False).checkpoint)
        backbone = {k.removeprefix("backbone."): v for k, v in started.items()
                    if k.startswith("backbone.")}
        assert max_difference(backbone, pretrained) == 0.0
        assert max_difference(backbone, {k.removeprefix("backbone."): v for k, v in scratch.items()
                                         if k.startswith("backbone.")}) > 0.1
        head = {k: v for k, v in started.items() if not k.startswith("backbone.")}
        # the head as from scratch: the same random start, the mean parameters from the data
        assert max_difference(head, {k: scratch[k] for k in head}) == 0.0


def test_a_run_started_from_a_pretrained_backbone_resumes_without_its_file(cache, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "backbone.safetensors"
    backbone = extpose_sdk.load_model("hamer", **TINY_MODEL).backbone
    save_file({k: v.contiguous() for k, v in backbone.state_dict().items()}, str(path))
    first = train(tiny_recipe(cache, f"model.backbone_weights={str(path)!r}", "max_steps=2"),
                  tmp_path / "run", progress=False)
    path.unlink()  # the run's own checkpoint holds every weight now
    again = train(tiny_recipe(cache, f"model.backbone_weights={str(path)!r}", "max_steps=3"),
                  tmp_path / "run", progress=False)
    assert (first.step, again.step) == (2, 3)
    assert max_difference(weights(again.checkpoint), weights(first.checkpoint)) > 0.0


def test_a_run_started_from_a_checkpoint_resumes_without_its_file(cache, tmp_path):
    """model.checkpoint (the weights a fine-tune starts from) is not read again on a resume,
    which ends as the run would have without a stop."""
    start = train(tiny_recipe(cache, "max_steps=1"), tmp_path / "start", progress=False)
    path = tmp_path / "start.safetensors"
    for suffix in (".safetensors", ".json"):
        shutil.copy(start.checkpoint / f"model{suffix}", path.with_suffix(suffix))
    tune = [f"model.checkpoint={str(path)!r}", "mean_params_from_data=false"]
    whole = train(tiny_recipe(cache, *tune, "max_steps=3"), tmp_path / "whole", progress=False)
    first = train(tiny_recipe(cache, *tune, "max_steps=2"), tmp_path / "run", progress=False)
    path.unlink()
    again = train(tiny_recipe(cache, *tune, "max_steps=3"), tmp_path / "run", progress=False)
    assert (first.step, again.step) == (2, 3)
    assert max_difference(weights(again.checkpoint), weights(whole.checkpoint)) == 0.0


def test_a_pretrained_backbone_that_does_not_fit_or_comes_with_a_checkpoint_is_refused(
        cache, tmp_path):
    from safetensors.torch import save_file

    from extpose_sdk.checkpoints import CheckpointError

    wide = extpose_sdk.load_model("hamer", **{**TINY_MODEL, "embed_dim": 32}).backbone
    path = tmp_path / "wide.safetensors"
    save_file({k: v.contiguous() for k, v in wide.state_dict().items()}, str(path))
    with pytest.raises(CheckpointError, match=r"wide.safetensors.*shape mismatches.*pos_embed: "
                                              r"checkpoint \(1, 5, 32\), model \(1, 5, 16\)"):
        train(tiny_recipe(cache, f"model.backbone_weights={str(path)!r}", "max_steps=0"),
              tmp_path / "wide", progress=False)
    with pytest.raises(ValueError, match="model.checkpoint or model.backbone_weights, not both"):
        train(tiny_recipe(cache, f"model.backbone_weights={str(path)!r}",
                          f"model.checkpoint={str(path)!r}", "max_steps=0"),
              tmp_path / "both", progress=False)


def test_sigterm_checkpoints_and_the_same_command_resumes(cache, tmp_path):
    import signal
    import time

    recipe = tiny_recipe(cache, "max_steps=30", "device=cpu")  # more steps than the signal needs
    path = tmp_path / "tiny.toml"
    path.write_text(recipe.to_toml())
    command = [sys.executable, "-m", "extpose_sdk", "train", str(path), "--out",
               str(tmp_path / "run"), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    log = tmp_path / "run" / "log.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not log.is_file() or len(losses(tmp_path / "run")) < 3):
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    assert "interrupted at step" in stderr and "the same command resumes" in stderr
    stopped_at = len(losses(tmp_path / "run"))
    assert 3 <= stopped_at < 30
    assert (tmp_path / "run" / "checkpoints" / f"step-{stopped_at:07d}" / "state.pt").is_file()
    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    command[command.index("--out") + 1] = str(tmp_path / "whole")  # the same threads, no signal
    whole = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr[-2000:]
    assert losses(tmp_path / "run") == losses(tmp_path / "whole")
    final = "checkpoints/step-0000030"
    assert max_difference(weights(tmp_path / "run" / final), weights(tmp_path / "whole" / final)) == 0.0


def test_a_signal_to_the_whole_process_group_still_checkpoints_with_loader_workers(cache,
                                                                                   tmp_path):
    """timeout, a terminal's Ctrl-C and job schedulers signal every process of the group: the
    data-loading workers must leave the stop to the main process (they did not: a killed worker
    crashed the run with no checkpoint)."""
    import signal
    import time

    recipe = tiny_recipe(cache, "max_steps=200", "device=cpu", "data.workers=1")
    path = tmp_path / "tiny.toml"
    path.write_text(recipe.to_toml())
    command = [sys.executable, "-m", "extpose_sdk", "train", str(path), "--out",
               str(tmp_path / "run"), "--no-progress"]
    process = subprocess.Popen(command, env={**os.environ, "OMP_NUM_THREADS": "1"},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)  # its own process group, as under timeout
    log = tmp_path / "run" / "log.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not log.is_file() or len(losses(tmp_path / "run")) < 2):
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    stopped_at = len(losses(tmp_path / "run"))
    assert 2 <= stopped_at < 200
    assert (tmp_path / "run" / "checkpoints" / f"step-{stopped_at:07d}" / "state.pt").is_file()


@pytest.mark.parametrize("workers, cores, environ, threads", [
    (1, 2, {}, 1), (14, 16, {}, 2), (3, 2, {}, 1),  # what the workers leave, at least one
    (0, 2, {}, None), (1, 2, {"OMP_NUM_THREADS": "2"}, None)])  # torch's own count
def test_a_cpu_run_gives_its_model_the_cores_its_data_workers_leave(workers, cores, environ,
                                                                    threads):
    from extpose_sdk.engine.loop import threads_beside_workers

    assert threads_beside_workers(workers, cores, environ) == threads


def test_the_cores_are_the_ones_this_process_may_use_or_the_machines_where_none_say(
        monkeypatch):
    import extpose_sdk.engine.loop as loop

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    assert loop._cores() == 3
    monkeypatch.delattr(os, "sched_getaffinity")  # macOS, Windows
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert loop._cores() == 6
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # undeterminable
    assert loop._cores() == 1


def test_a_cpu_run_with_data_workers_trains_on_the_cores_they_leave_then_gives_them_back(
        cache, tmp_path, monkeypatch):
    import extpose_sdk.engine.loop as loop

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(loop, "_cores", lambda: 2)
    recipe = tiny_recipe(cache, "max_steps=2", "device=cpu", "data.workers=1", "eval_every=0")
    before = torch.get_num_threads()
    seen = []
    try:
        torch.set_num_threads(3)
        train(recipe, tmp_path / "run", progress=False,
              callback=lambda step, record: seen.append(torch.get_num_threads()))
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    assert seen == [1, 1] and after == 3
    notes = [r["note"] for r in read_log(tmp_path / "run" / "log.jsonl") if "note" in r]
    assert "CPU: 1 torch thread beside 1 data worker (OMP_NUM_THREADS sets another count)" in notes


@pytest.mark.parametrize("waited, took, steps, expected", [
    (3.0, 10.0, (2, 11), "steps 2 to 11 waited for their batches 30% of their time"),
    (2.0, 10.0, (5, 40), "steps 5 to 40 waited for their batches 20% of their time"),
    (1.9, 10.0, (5, 40), None),  # the model's own time dominates
    (9.0, 10.0, (2, 10), None),  # nine steps are too few to say
    (0.0, 0.0, (2, 1), None),  # no step timed
    (0.0, 0.0, (2, 20), None),  # a clock too coarse to time the steps
])
def test_a_run_waiting_for_its_data_says_so_and_one_that_does_not_stays_quiet(
        waited, took, steps, expected):
    note = data_bound_note(waited, took, steps)
    assert note == (None if expected is None else
                    f"data: {expected}: the data loader, not the model, sets this run's speed "
                    "(more data.workers where cores are free, or a cache: docs/training.md)")


def test_the_log_times_each_steps_wait_for_data_and_the_run_says_when_data_bound_it(
        cache, tmp_path, monkeypatch):
    from extpose_sdk.engine.data import TrainingSet

    read = TrainingSet.__getitem__

    def slowly(self, index):
        time.sleep(0.03)
        return read(self, index)

    monkeypatch.setattr(TrainingSet, "__getitem__", slowly)
    train(tiny_recipe(cache, "max_steps=13", "data.workers=0"), tmp_path / "run", progress=False)
    records = read_log(tmp_path / "run" / "log.jsonl")
    steps = [r for r in records if "loss" in r]
    assert [r["step"] for r in steps] == list(range(1, 14))
    for r in steps:  # 4 samples a step, each 0.03 s late; the step took longer still
        assert 0.12 <= r["data_s"] < 4 / r["samples_per_s"]
        assert sum(r[k] for k in loss_terms_of(r)) == pytest.approx(r["loss"])
        assert {"keypoints_2d", "keypoints_3d"} <= set(loss_terms_of(r))
        assert not {"loss", "data_s", "lr"} & set(loss_terms_of(r))
    timed = steps[1:]  # the first step also waits for the loader to start
    share = sum(r["data_s"] for r in timed) / sum(4 / r["samples_per_s"] for r in timed)
    notes = [r["note"] for r in records if "note" in r]
    assert notes == [data_bound_note(share, 1.0, (2, 13))]


def test_loader_workers_ignore_stop_signals_and_the_main_process_does_not():
    import signal

    from extpose_sdk.engine.loop import leave_stops_to_the_main_process

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        leave_stops_to_the_main_process(0)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


class SlowFrames(torch.utils.data.Dataset):
    """A data set whose every item takes ``seconds``, as a worker busy rendering."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> torch.Tensor:
        import time

        time.sleep(self.seconds)
        return torch.zeros(1)


def test_the_loop_ends_even_a_busy_worker_that_ignores_sigterm(monkeypatch):
    """Such a worker outlived the run: Python's exit handler then waited for it forever."""
    import time

    monkeypatch.setattr(torch.utils.data._utils, "MP_STATUS_CHECK_INTERVAL", 0.5)  # torch's wait

    from extpose_sdk.engine.loop import leave_stops_to_the_main_process, loader_workers

    loader = torch.utils.data.DataLoader(SlowFrames(60.0), num_workers=1, persistent_workers=True,
                                         worker_init_fn=leave_stops_to_the_main_process)
    started = time.monotonic()
    with loader_workers(loader, patience=1.0) as batches:
        workers = list(batches._workers)
        time.sleep(0.5)  # the worker is inside __getitem__
    assert len(workers) == 1 and not workers[0].is_alive()
    assert time.monotonic() - started < 20


def test_a_worker_that_ends_its_item_within_the_patience_is_not_killed(monkeypatch):
    import time

    monkeypatch.setattr(torch.utils.data._utils, "MP_STATUS_CHECK_INTERVAL", 0.5)  # torch's wait
    from extpose_sdk.engine.loop import leave_stops_to_the_main_process, loader_workers

    loader = torch.utils.data.DataLoader(SlowFrames(1.5), num_workers=1, persistent_workers=True,
                                         worker_init_fn=leave_stops_to_the_main_process)
    with loader_workers(loader, patience=20.0) as batches:
        workers = list(batches._workers)
        time.sleep(0.5)  # the worker is inside __getitem__ for another second
    assert [w.exitcode for w in workers] == [0]  # it finished and stopped; a killed one gives -9


def test_an_idle_worker_is_asked_to_stop_not_killed():
    from extpose_sdk.engine.loop import leave_stops_to_the_main_process, loader_workers

    loader = torch.utils.data.DataLoader(torch.arange(4.0), num_workers=1,
                                         persistent_workers=True,
                                         worker_init_fn=leave_stops_to_the_main_process)
    with loader_workers(loader, patience=5.0) as batches:
        workers = list(batches._workers)
        assert next(batches).tolist() == [0.0]
    assert [w.exitcode for w in workers] == [0]  # torch's own ending; a killed one gives -9


def test_training_ends_its_loader_workers_when_it_returns(cache, tmp_path):
    import multiprocessing

    before = set(multiprocessing.active_children())
    result = train(tiny_recipe(cache, "max_steps=2", "data.workers=1"), tmp_path / "run",
                   progress=False)
    assert result.status == "finished"
    assert set(multiprocessing.active_children()) <= before


def test_bodies_train_with_the_adversarial_prior_against_a_mocap_file(tmp_path, monkeypatch):
    import numpy as np

    monkeypatch.setenv("EXTPOSE_CACHE", str(tmp_path / "models"))
    rng = np.random.default_rng(0)
    mocap = tmp_path / "cmu_mocap.npz"
    np.savez(mocap, body_pose=rng.normal(0, 0.2, (50, 72)).astype(np.float32),
             betas=rng.normal(0, 1, (50, 10)).astype(np.float32))
    recipe = recipe_from_dict({
        "model": {"recipe": "extpose-hmr2", "modalities": ["rgb"], "options": TINY_MODEL,
                  "mean_params_samples": 2},
        "data": {"crop_size": 32, "train": [{"name": "synthetic-body", "options": {
            "num_sequences": 1, "sequence_length": 2, "crop_size": 32, "image_size": [96, 96]}}]},
        "optim": {"lr": 1e-3, "batch_size": 2, "max_steps": 2},
        "loss": {"mocap": str(mocap)},
        "train": {"log_every": 1, "save_every": 1000, "plot": False, "tensorboard": False}})
    result = train(recipe, tmp_path / "run", progress=False)
    record = read_log(tmp_path / "run" / "log.jsonl")[-1]
    assert record["adversarial"] > 0  # the generator term is in the loss
    state = torch.load(result.checkpoint / "state.pt", weights_only=True)
    assert "discriminator" in state and "disc_optimizer" in state
    assert state["disc_optimizer"]["state"]  # the discriminator took its own steps
    # resumed with a new learning rate, the discriminator's optimizer takes it too
    resumed = train(recipe_from_dict(recipe.to_dict(), ["max_steps=3", "lr=2e-4"]),
                    tmp_path / "run", progress=False)
    groups = torch.load(resumed.checkpoint / "state.pt", weights_only=True)["disc_optimizer"][
        "param_groups"]
    assert resumed.step == 3 and [g["lr"] for g in groups] == [2e-4]
    bad = tmp_path / "bad.npz"
    np.savez(bad, poses=np.zeros((2, 72)))
    recipe.loss.mocap = str(bad)
    with pytest.raises(ValueError, match="lacks \\['betas', 'body_pose'\\]"):
        train(recipe, tmp_path / "bad", progress=False)


def test_dataloader_workers_read_the_same_batches(cache, tmp_path, monkeypatch):
    import pickle

    from extpose_sdk.datasets.cache import CachedDataset

    # the same threads both runs (with workers the model would get the cores they leave, and
    # another thread count sums in another order: 2e-9 apart)
    monkeypatch.setenv("OMP_NUM_THREADS", str(torch.get_num_threads()))
    main = train(tiny_recipe(cache, "max_steps=3"), tmp_path / "main", progress=False)
    workers = train(tiny_recipe(cache, "max_steps=3", "data.workers=2"), tmp_path / "workers",
                    progress=False)
    assert losses(tmp_path / "workers") == losses(tmp_path / "main")
    assert max_difference(weights(workers.checkpoint), weights(main.checkpoint)) == 0.0
    # a worker gets the cache folder, not a pickled copy of its arrays
    cached = CachedDataset(cache / "train")
    assert cached[0]["rgb"].shape == (4, 3, 32, 32)  # the arrays are open here
    data_bytes = sum(p.stat().st_size for p in (cache / "train").glob("*.npy"))
    assert len(pickle.dumps(cached)) < data_bytes / 10


def test_extpose_predict_reads_a_trained_checkpoint_at_its_crop_size(cache, tmp_path):
    from extpose_sdk.cli import main

    result = train(tiny_recipe(cache, "max_steps=1", "batch_size=2", "crop_rescale=1.0", frames=4),
                   tmp_path / "run", progress=False)
    weights_path = result.checkpoint / "model.safetensors"
    pipeline = extpose_sdk.Pipeline.from_plugins(model="extpose-hamer", checkpoint=weights_path)
    assert pipeline.crop_size == 32  # the backbone's image size
    assert pipeline.rescale == 1.0  # the crop framing it was trained with (model.json)
    assert extpose_sdk.Pipeline.from_plugins(model="extpose-hamer").rescale is None  # default
    code = main(["predict", "--sample", "hand", "--model", "extpose-hamer", "--checkpoint",
                 str(weights_path), "--out", str(tmp_path / "out"), "--frames", "4"])
    assert code == 0
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["complete"] is True and saved["random_weights"] is False
    assert len(saved["frames"]) == 24  # every frame of the sample, through 32 x 32 crops
