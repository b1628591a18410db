"""benchmarks/rgb_backbones.py: its error, its position codes, its arms and its training loop."""

from pathlib import Path

import numpy as np
import pytest
import torch

from extpose_sdk.vit import sincos_position

ROOT = Path(__file__).resolve().parents[1]
TINY_VIT = {"embed_dim": 16, "depth": 1, "num_heads": 2}


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import rgb_backbones

    return rgb_backbones


def test_keypoint_error_is_the_mean_distance(bench):
    truth = torch.zeros(2, 21, 2)
    pred = truth.clone()
    pred[0, :, 0], pred[0, :, 1] = 0.3, 0.4  # 0.5 away in frame 0, exact in frame 1
    assert bench.keypoint_error(pred, truth) == pytest.approx(0.25)


def test_the_sincos_arm_starts_its_vit_from_the_codes_and_the_other_from_noise(bench):
    sincos = bench.build("vit-sincos", **TINY_VIT)[0].vit
    plain = bench.build("vit", **TINY_VIT)[0].vit
    grid = sincos.grid_size
    torch.testing.assert_close(sincos.pos_embed[0, 1:], sincos_position(grid, 16))
    assert float(sincos.pos_embed.detach()[0, 0].abs().max()) == 0.0  # the slot added to every token
    assert float(plain.pos_embed.detach().std()) < 0.05


def test_rendered_frames_are_the_datasets_crops_in_cache_units(bench):
    from extpose_sdk.datasets.synthetic import SyntheticDataset

    images, keypoints = bench.rendered("train", 2, seed=11)
    data = SyntheticDataset(kind="hand", split="train", num_sequences=2, sequence_length=1,
                            crop_size=128, seed=11, augment=False)
    assert images.dtype == np.uint8 and images.shape == (2, 3, 128, 128)
    for i in range(2):
        sample = data[i]
        # back to the model's input within uint8 rounding (half a level over the smallest std)
        assert float((bench.normalized(images[i]) - sample["rgb"]).abs().max()) < 0.5 / (0.224 * 255) + 1e-4
        np.testing.assert_array_equal(keypoints[i], sample["keypoints_2d"].numpy()[:, :2])


def test_unknown_arms_are_named_with_the_known_ones(bench):
    with pytest.raises(ValueError, match=r"'resnet'.*\['vit', 'vit-sincos', 'vit-conv', 'vit-conv16', 'cnn'\]"):
        bench.build("resnet")


def test_every_arm_maps_crops_to_21_keypoints(bench):
    images = np.random.default_rng(0).integers(0, 256, (2, 3, 128, 128), dtype=np.uint8)
    for arm in bench.ARMS:
        options = {} if arm == "cnn" else TINY_VIT
        assert bench.build(arm, **options)(bench.normalized(images)).shape == (2, 21, 2)


def test_training_fits_a_few_frames_and_scores_in_batches(bench):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, 3, 128, 128), dtype=np.uint8)
    keypoints = rng.uniform(-0.4, 0.4, (4, 21, 2)).astype(np.float32)
    net = bench.build("vit", **TINY_VIT)
    before = bench.score(net, images, keypoints, batch=3)
    assert net.training  # scoring mid-run hands the net back in training mode (batch norm)
    with torch.no_grad():
        direct = bench.keypoint_error(net.eval()(bench.normalized(images)), torch.as_tensor(keypoints))
    assert before == pytest.approx(direct, abs=1e-6)  # two batches of 3 and 1 score as one
    net.train()
    result = bench.train_arm(net, (images, keypoints), (images, keypoints), steps=60, batch=4,
                             lr=3e-3, warmup=5, eval_every=25, progress=False)
    assert [row["step"] for row in result["curve"]] == [25, 50, 60]
    assert result["val_2d"] == result["curve"][-1]["val_2d"] < 0.8 * before
    assert result["parameters"] == sum(p.numel() for p in net.parameters())


class _Stop(Exception):
    pass


def _tiny_training(bench, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (8, 3, 8, 8), dtype=np.uint8)
    keypoints = rng.uniform(-0.4, 0.4, (8, 21, 2)).astype(np.float32)
    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 42),
                              torch.nn.Unflatten(1, (21, 2)))
    return net, (images, keypoints)


def test_a_stopped_training_resumes_to_the_weights_of_one_that_ran_through(bench, tmp_path):
    """The same batches, dropout draws, schedule and optimizer moments after the restart."""
    net, data = _tiny_training(bench)
    whole = bench.train_arm(net, data, data, steps=9, batch=4, lr=1e-2, warmup=4, eval_every=3,
                            progress=False)
    expected = {k: v.clone() for k, v in net.state_dict().items()}

    state = tmp_path / "backbone.safetensors.resume.pt"
    stopped, _ = _tiny_training(bench)
    calls = []

    def stop_at_the_fifth_step(module, inputs):
        calls.append(1)
        if len(calls) == 5 + 1:  # four steps, the scoring at step 3, then step 5 stops
            raise _Stop
    hook = stopped.register_forward_pre_hook(stop_at_the_fifth_step)
    with pytest.raises(_Stop):
        bench.train_arm(stopped, data, data, steps=9, batch=4, lr=1e-2, warmup=4, eval_every=3,
                        progress=False, resume=state)
    hook.remove()
    assert torch.load(state, weights_only=True)["step"] == 3  # the state of the last scoring

    resumed, _ = _tiny_training(bench)  # a new process: fresh weights and random state
    torch.manual_seed(123)
    result = bench.train_arm(resumed, data, data, steps=9, batch=4, lr=1e-2, warmup=4,
                             eval_every=3, progress=False, resume=state)
    for key, value in resumed.state_dict().items():
        torch.testing.assert_close(value, expected[key], rtol=0, atol=0)
    assert [row["step"] for row in result["curve"]] == [3, 6, 9]  # the curve before the stop kept
    def without_seconds(curve):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in curve]
    assert without_seconds(result["curve"]) == without_seconds(whole["curve"])
    assert result["val_2d"] == pytest.approx(whole["val_2d"], abs=1e-6)

    other, _ = _tiny_training(bench)
    with pytest.raises(ValueError, match="a run of 9 steps, not 12"):
        bench.train_arm(other, data, data, steps=12, batch=4, progress=False, resume=state)


def test_pretraining_leaves_its_backbone_and_no_state_to_resume(bench, tmp_path, monkeypatch):
    net, data = _tiny_training(bench)
    monkeypatch.setattr(bench, "rendered", lambda *a, **k: data)
    seen = {}

    def train_arm(net, train, val, **options):
        seen.update(options)
        options["resume"].write_bytes(b"state")
        return {"val_2d": 0.5}
    monkeypatch.setattr(bench, "train_arm", train_arm)
    path = tmp_path / "keypoints" / "backbone.safetensors"
    bench.pretrain({"stem": "conv", "patch_size": 32, **TINY_VIT}, path, steps=2)
    assert seen["resume"] == tmp_path / "keypoints" / "backbone.safetensors.resume.pt"
    assert path.is_file() and not seen["resume"].exists()


def test_frames_drawn_by_worker_processes_are_the_frames_drawn_here(bench):
    alone = bench.rendered("train", 3, seed=11, augment=True, input="rgb+skeleton", workers=0)
    shared = bench.rendered("train", 3, seed=11, augment=True, input="rgb+skeleton", workers=2)
    for here, there in zip(alone, shared, strict=True):
        assert here.dtype == there.dtype and np.array_equal(here, there)
    assert not np.array_equal(alone[0][0], alone[0][1])  # one frame each, in order


def test_a_stopped_pretraining_goes_on_without_drawing_its_frames_again(bench, tmp_path,
                                                                         monkeypatch):
    net, data = _tiny_training(bench)
    drawn = []

    def rendered(split, count, **options):
        drawn.append((split, count))
        return data
    monkeypatch.setattr(bench, "rendered", rendered)
    calls = []

    def train_arm(net, train, val, **options):
        calls.append(train)
        if len(calls) == 1:
            raise KeyboardInterrupt  # stopped during its training
        options["resume"].write_bytes(b"state")
        return {"val_2d": 0.5}
    monkeypatch.setattr(bench, "train_arm", train_arm)
    path = tmp_path / "keypoints" / "backbone.safetensors"
    with pytest.raises(KeyboardInterrupt):
        bench.pretrain({"stem": "conv", "patch_size": 32, **TINY_VIT}, path, frames=6, steps=2)
    frames = tmp_path / "keypoints" / "backbone.safetensors.frames"
    assert (frames / "frames.json").is_file()
    bench.pretrain({"stem": "conv", "patch_size": 32, **TINY_VIT}, path, frames=6, steps=2)
    assert [split for split, _ in drawn] == ["train", "test", "test"]  # the training frames once
    for first, again in zip(calls[0], calls[1], strict=True):
        assert np.array_equal(first, again)
    assert path.is_file() and not frames.exists()  # kept only until the backbone is whole


def test_frames_kept_for_other_arguments_are_drawn_again(bench, tmp_path, monkeypatch):
    drawn = []

    def rendered(**arguments):
        drawn.append(arguments["seed"])
        return np.full((2, 3, 4, 4), arguments["seed"], np.uint8), np.zeros((2, 21, 2), np.float32)
    monkeypatch.setattr(bench, "rendered", rendered)
    first = bench.rendered_once(tmp_path, split="train", count=2, seed=11)
    again = bench.rendered_once(tmp_path, seed=11, count=2, split="train")  # the same, reordered
    assert isinstance(again[0], np.memmap)  # read back from the disk, not into memory
    other = bench.rendered_once(tmp_path, split="train", count=2, seed=12)
    assert drawn == [11, 12] and np.array_equal(first[0], again[0])
    assert other[0][0, 0, 0, 0] == 12


def test_a_saved_vit_arm_starts_a_mesh_models_backbone(bench, tmp_path):
    """--save writes the arm's ViT under the keys a recipe's model.backbone_weights reads."""
    import extpose_sdk
    from extpose_sdk.checkpoints import load_backbone_weights

    net = bench.build("vit-conv", **TINY_VIT)
    bench.save_backbone(net[0].vit, tmp_path / "keypoints" / "backbone.safetensors")
    model = extpose_sdk.load_model("hamer", img_size=[128, 128], stem="conv", patch_size=32,
                                   pos_embed_std=1.0, **TINY_VIT, head_dim=16, head_depth=1,
                                   head_heads=2, head_dim_head=8, head_mlp_dim=16)
    count = load_backbone_weights(model, tmp_path / "keypoints" / "backbone.safetensors")
    assert count == len(model.backbone.state_dict())
    for key, value in net[0].vit.state_dict().items():
        torch.testing.assert_close(model.backbone.state_dict()[key], value, rtol=0, atol=0)


def test_augmented_frames_differ_from_plain_ones_and_keep_their_keypoints_on_the_crop(bench):
    plain, plain_keypoints = bench.rendered("train", 2, seed=11)
    augmented, keypoints = bench.rendered("train", 2, seed=11, augment=True)
    assert not np.array_equal(plain, augmented)
    assert not np.allclose(plain_keypoints, keypoints)
    assert np.abs(keypoints).max() < 0.75  # still about the crop (-0.5 .. 0.5, a little beyond)


def test_the_conv16_arm_has_four_times_the_tokens_of_the_conv_arm(bench):
    images = torch.zeros(1, 3, 128, 128)
    assert bench.build("vit-conv", **TINY_VIT)[0](images).shape == (1, 16, 16)
    assert bench.build("vit-conv16", **TINY_VIT)[0](images).shape == (1, 64, 16)


def test_skeleton_frames_draw_the_detectors_keypoints_against_the_true_ones(bench):
    """--input skeleton: the images are the skeleton the engine draws (bright at the detected
    joints on a dark ground), the targets the same true keypoints as for RGB."""
    from extpose_sdk.data.crops import transform_points
    from extpose_sdk.datasets.synthetic import SyntheticDataset

    skeletons, keypoints = bench.rendered("train", 2, seed=11, input="skeleton")
    rgb, rgb_keypoints = bench.rendered("train", 2, seed=11)
    np.testing.assert_array_equal(keypoints, rgb_keypoints)
    assert skeletons.shape == rgb.shape and skeletons.dtype == np.uint8
    data = SyntheticDataset(kind="hand", split="train", num_sequences=2, sequence_length=1,
                            crop_size=128, seed=11, augment=False)
    for i in range(2):
        sample = data[i]
        detected = sample["detected_keypoints_2d"].numpy()
        xy = transform_points(detected[:, :2], sample["crop_transform"].numpy())
        drawn = (detected[:, 2] >= 0.3) & (xy.min(1) >= 0) & (xy.max(1) < 128)
        brightness = skeletons[i].max(0)
        at_joints = brightness[xy[drawn, 1].astype(int), xy[drawn, 0].astype(int)]
        assert drawn.sum() > 10 and np.median(at_joints) > 100
        assert np.median(brightness) < 20  # the ground is dark


def test_unknown_inputs_are_named_with_the_known_ones(bench):
    with pytest.raises(ValueError, match=r"'depth'.*\['rgb', 'skeleton', 'rgb\+skeleton'\]"):
        bench.rendered("train", 1, seed=11, input="depth")


def test_the_detectors_error_is_its_jitter_in_box_units_over_the_joints_it_draws(bench):
    """The stand-in detector jitters by about 2% of the box; joints it drops lie far off with a
    low confidence, so counting them too (threshold 0) raises the error."""
    drawn = bench.detector_error("test", 8, seed=1)
    assert 0.01 < drawn < 0.03
    assert bench.detector_error("test", 8, seed=1, threshold=0.0) > 1.2 * drawn


def test_both_inputs_stack_the_crop_and_its_skeleton(bench):
    both, keypoints = bench.rendered("train", 2, seed=11, input="rgb+skeleton")
    rgb, _ = bench.rendered("train", 2, seed=11)
    skeletons, skeleton_keypoints = bench.rendered("train", 2, seed=11, input="skeleton")
    assert both.shape == (2, 2, 3, 128, 128)
    np.testing.assert_array_equal(both[:, 0], rgb)
    np.testing.assert_array_equal(both[:, 1], skeletons)
    np.testing.assert_array_equal(keypoints, skeleton_keypoints)


def test_a_vit_arm_reads_both_images_as_one_sequence_with_no_new_parameter(bench):
    net = bench.build("vit-conv", **TINY_VIT)
    torch.manual_seed(0)
    both = torch.randn(2, 2, 3, 128, 128)
    tokens = net[0](both)
    assert tokens.shape == (2, 32, 16)  # 16 tokens of each image
    assert sum(p.numel() for p in net.parameters()) == sum(
        p.numel() for p in bench.build("vit-conv", **TINY_VIT).parameters())
    changed = both.clone()
    changed[:, 1] += 1.0  # another skeleton image: the RGB tokens see it through attention
    assert not torch.allclose(net[0](changed)[:, :16], tokens[:, :16])
    alone = net[0](both[:, 0])  # the crop alone: its tokens differ from those beside a skeleton
    assert alone.shape == (2, 16, 16) and not torch.allclose(alone, tokens[:, :16])


class _Brightness(torch.nn.Module):
    """Predicts every joint at (m, m), m the input's mean: tells which image it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.seen: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(tuple(x.shape))
        return (self.scale * x.flatten(1).mean(1))[:, None, None].expand(-1, 21, 2)


def _two_image_frames(bench):
    """Frames whose RGB crop normalises to about -2 and whose skeleton image to about +2."""
    images = np.zeros((4, 2, 3, 8, 8), dtype=np.uint8)
    images[:, 1] = 255
    keypoints = np.zeros((4, 21, 2), dtype=np.float32)
    return images, keypoints, float(bench.normalized(images[:, 0]).mean()), float(
        bench.normalized(images[:, 1]).mean())


def test_each_input_is_scored_from_its_own_image(bench):
    images, keypoints, rgb, skeleton = _two_image_frames(bench)
    scores = bench.score_each_input(_Brightness(), images, keypoints)
    sqrt2 = 2 ** 0.5
    assert scores["val_2d_rgb"] == pytest.approx(abs(rgb) * sqrt2, rel=1e-5)
    assert scores["val_2d_skeleton"] == pytest.approx(abs(skeleton) * sqrt2, rel=1e-5)
    assert scores["val_2d"] == pytest.approx(abs(rgb + skeleton) / 2 * sqrt2, rel=1e-5, abs=1e-5)


def test_modality_dropout_shows_one_image_in_about_that_share_of_steps(bench):
    images, keypoints, *_ = _two_image_frames(bench)
    net = _Brightness()
    result = bench.train_arm(net, (images, keypoints), (images, keypoints), steps=200, batch=2,
                             eval_every=200, progress=False, modality_dropout=0.5)
    training = net.seen[:200]  # then the scoring: both, the crop, the skeleton image
    alone = [shape for shape in training if len(shape) == 4]
    assert 70 < len(alone) < 130 and all(shape == (2, 3, 8, 8) for shape in alone)
    assert {"val_2d", "val_2d_rgb", "val_2d_skeleton"} <= set(result)
    assert result["curve"][-1]["val_2d_skeleton"] == result["val_2d_skeleton"]
    net.seen.clear()
    bench.train_arm(net, (images, keypoints), (images, keypoints), steps=50, batch=2,
                    eval_every=50, progress=False)
    assert all(len(shape) == 5 for shape in net.seen)  # no dropout: both images every step


def test_modality_dropout_needs_both_images_a_frame(bench):
    images = np.zeros((4, 3, 8, 8), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"\(4, 3, 8, 8\)"):
        bench.train_arm(_Brightness(), (images, np.zeros((4, 21, 2))), (images, np.zeros((4, 21, 2))),
                        steps=1, batch=2, progress=False, modality_dropout=0.5)


@pytest.mark.parametrize("arguments, message", [
    (["--input", "rgb+skeleton", "--modality-dropout", "1.5"], "is a chance, 0 to 1; got 1.5"),
    (["--modality-dropout", "0.5"], "--modality-dropout needs --input rgb+skeleton"),
    (["--detector-error", "-1"], "--detector-error must be >= 0; got -1.0"),
    (["--kind", "body", "--cache", "cache/x"], "--kind body renders its frames"),
])
def test_the_command_refuses_a_dropout_it_cannot_apply_before_rendering(arguments, message):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "rgb_backbones.py"), *arguments],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and message in done.stderr
    assert "rendering" not in done.stderr


def test_body_frames_draw_the_detector_asked_for_and_the_arms_read_their_44_joints(bench):
    exact, keypoints = bench.rendered("test", 2, seed=1, kind="body", input="skeleton",
                                      detector_error=0.0)
    assert exact.shape == (2, 3, 128, 128) and keypoints.shape == (2, 44, 2)
    noisy, same = bench.rendered("test", 2, seed=1, kind="body", input="skeleton")
    np.testing.assert_array_equal(same, keypoints)  # the same frames, other detections drawn
    assert not np.array_equal(noisy, exact)
    assert bench.detector_error("test", 2, seed=1, kind="body", scale=0.0) == 0.0
    assert bench.detector_error("test", 2, seed=1, kind="body") > 0.005
    assert bench.build("vit-conv", joints=44)(bench.normalized(exact)).shape == (2, 44, 2)
