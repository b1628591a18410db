"""Bad input, as a careless or hostile user gives it: one clear line, never a traceback, never a
silent wrong result, and every frame finished before a failure on disk.

Command-line cases run ``extpose_sdk.cli.main`` in-process and check the exit code, that stderr
holds exactly one ``extpose: error:`` line (and no traceback), and what is on disk. Videos and
keypoint files come from the SDK's synthetic helpers; corrupt files are made by hand here.
"""

from __future__ import annotations

import datetime
import json
import os
import struct
import subprocess
import sys
import textwrap
import tracemalloc
import types

import numpy as np
import pytest
import torch

import extpose_sdk
from extpose_sdk import cli, plugins
from extpose_sdk.commands.predict import SAMPLE_OPTIONS
from extpose_sdk.data.video import FrameReader, VideoReadError
from extpose_sdk.datasets.synthetic import synthetic_model_path, write_sample_video
from extpose_sdk.keypoints import Keypoints
from extpose_sdk.keypoints.fit import KeypointFitError
from extpose_sdk.pipeline import Pipeline
from extpose_sdk.results import load_results
from extpose_sdk.testing import isolated_plugins

cv2 = pytest.importorskip("cv2")

TINY = [f"--option={k}={v}" for k, v in SAMPLE_OPTIONS.items()]
FRAMES = 12


def one_error(capsys) -> str:
    """The single ``extpose: error:`` line on stderr (fails on a traceback or on two lines)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("extpose: error: ")]
    assert len(errors) == 1, err
    return errors[0]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A synthetic hand clip of FRAMES frames (64x64) and its keypoint file (openpose_hand21)."""
    folder = tmp_path_factory.mktemp("clip")
    video, keypoints = folder / "hand.mp4", folder / "hand_keypoints.npz"
    write_sample_video(video, frames=FRAMES, kind="hand", size=(64, 64), keypoints_path=keypoints,
                       model_path=synthetic_model_path("hand", folder))  # fmt: skip
    return video, keypoints


def predict(*args: str, out, video=None, keypoints=None) -> int:
    argv = ["predict"] + ([str(video)] if video else []) + ["--out", str(out), "--model",
            "extpose-hamer", "--frames", "4", "--overlap", "2", *TINY, *args]  # fmt: skip
    if keypoints is not None:
        argv += ["--keypoints", str(keypoints)]
    elif "--sample" not in args:
        argv.append("--whole-frame")  # no keypoints: the whole frame, not MediaPipe
    return cli.main(argv)


def with_keypoints(path, source, **changes):
    """A copy of the keypoint file ``source`` at ``path`` with arrays changed or dropped."""
    arrays = dict(np.load(source))
    arrays.update({k: v for k, v in changes.items() if v is not None})
    for key in [k for k, v in changes.items() if v is None]:
        arrays.pop(key)
    np.savez(path, **arrays)
    return path


# --------------------------------------------------------------------------- videos


def write_mjpg(path, frames=20, size=(48, 64)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, size[::-1])
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(rng.integers(0, 255, (*size, 3), dtype=np.uint8))
    writer.release()
    return path


def test_a_header_claiming_two_billion_frames_neither_aborts_nor_exhausts_memory(tmp_path):
    path = write_mjpg(tmp_path / "clip.avi")
    data = bytearray(path.read_bytes())
    for tag, offset in ((b"avih", 16), (b"strh", 32)):  # AVI main header / stream header counts
        struct.pack_into("<I", data, data.find(tag) + 8 + offset, 2**31 - 1)
    forged = tmp_path / "forged.avi"
    forged.write_bytes(bytes(data))
    # decord allocates for every declared frame and aborts (SIGABRT): run where that cannot
    # take pytest down, with 3 GB of address space
    code = textwrap.dedent(f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
        from extpose_sdk.data.video import VideoReadError, open_video
        reader = open_video({str(forged)!r})
        print(type(reader).__name__, len(reader))
        read = 0
        try:
            for _, frames in reader.chunks():
                read += len(frames)
        except VideoReadError as error:
            print(read, error)
        try:
            open_video({str(forged)!r}, backend="decord")
        except VideoReadError as error:
            print(error)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "OpenCVReader 2147483647"  # auto: OpenCV, which trusts no count
    assert lines[1].startswith("20 ") and "frame 20 of 2147483647" in lines[1]  # all 20 kept
    assert "declares 2147483647 frames" in lines[2] and "--backend opencv" in lines[2]


class Lying(FrameReader):
    """A reader whose header declares ``declared`` frames but which holds ``actual``."""

    def __init__(self, declared, actual):
        self.num_frames, self.actual, self.chunk_size = declared, actual, 8
        self.frames = np.random.default_rng(0).integers(0, 255, (actual, 48, 64, 3), np.uint8)

    def chunks(self):
        for start in range(0, self.actual, self.chunk_size):
            yield start, self.frames[start : start + self.chunk_size]


def stand_in_pipeline(**options):
    torch.manual_seed(0)
    return Pipeline.from_plugins(backbone="vitpose", head="mano", modalities=("rgb",),
                                 backbone_options={"embed_dim": 16, "depth": 1, "num_heads": 2},
                                 head_options={"dim": 16, "depth": 1, "heads": 2, "dim_head": 8,
                                               "mlp_dim": 16}, detector=None,
                                 **options)  # fmt: skip


def test_window_planning_is_lazy_whatever_the_declared_count():
    pipeline = stand_in_pipeline(frames=4, overlap=2)
    tracemalloc.start()
    try:
        results = pipeline.video(Lying(declared=10**12, actual=9))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [f.index for f in results.frames] == list(range(9)) and results.complete
    assert peak < 200 * 2**20  # planning all 10**12 frames up front would need terabytes
    fewer = pipeline.video(Lying(declared=5, actual=9))  # a header that says too few
    assert len(fewer) == 9
    np.testing.assert_allclose(  # the same windows as for an honest header
        fewer.to_numpy()["betas"], pipeline.video(Lying(9, 9)).to_numpy()["betas"], atol=1e-6
    )


@pytest.mark.parametrize("backend", ["opencv", "decord"])
def test_a_truncated_video_keeps_every_decoded_frame(tmp_path, backend):
    path = write_mjpg(tmp_path / "clip.avi", frames=40)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    out = tmp_path / "r.npz"
    pipeline = stand_in_pipeline(frames=4, overlap=2)
    pipeline.chunk_size = 16
    with pytest.raises(VideoReadError, match=r"frame (\d+) of 40") as info:
        pipeline.video(path, backend=backend, save_to=out)
    failed_at = info.value.frame
    assert 16 < failed_at < 32  # inside the second chunk: none of its frames may be dropped
    assert load_results(out)["frame"].tolist() == list(range(failed_at))
    assert not out.with_suffix(".jsonl").exists()  # the stream went once the file was written


def test_predict_on_a_truncated_video_writes_the_frames_before_the_error(tmp_path, capsys):
    path = write_mjpg(tmp_path / "clip.avi", frames=30, size=(32, 32))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    assert predict("--backend", "opencv", out=out, video=path) == 1
    line = one_error(capsys)
    failed_at = int(line.split("frame ")[1].split(" of 30")[0])
    assert 0 < failed_at < 30
    for name in ("results.npz", "results.json"):
        saved = load_results(out / name)
        assert saved.get("metadata", saved)["num_frames"] == failed_at
    assert not (out / "results.jsonl").exists()


def test_a_truncated_mp4_is_one_line_and_results_say_why(tmp_path, clip, capsys):
    video = tmp_path / "cut.mp4"
    data = clip[0].read_bytes()
    video.write_bytes(data[: len(data) // 2])  # mp4v puts its index last: nothing opens
    assert predict(out=tmp_path / "out", video=video) == 1
    assert "cut.mp4" in one_error(capsys)
    saved = load_results(tmp_path / "out" / "results.json")
    assert saved["complete"] is False and "cut.mp4" in saved["error"]



@pytest.mark.parametrize("bad", ["broken", "other size"])
def test_a_bad_image_in_a_folder_keeps_the_images_before_it(tmp_path, bad):
    for i in range(6):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), np.full((32, 48, 3), 40 * i, np.uint8))
    if bad == "broken":
        (tmp_path / "003.png").write_bytes(b"not a png")
    else:
        cv2.imwrite(str(tmp_path / "003.png"), np.zeros((48, 32, 3), np.uint8))
    with pytest.raises(VideoReadError, match="frame 3") as info:
        stand_in_pipeline(frames=2).video(tmp_path, save_to=tmp_path / "out" / "r.json")
    assert [f.index for f in info.value.results.frames] == [0, 1, 2]  # same chunk, kept
    assert load_results(tmp_path / "out" / "r.json")["num_frames"] == 3
    if bad == "other size":
        assert "it is 32x48 but the first frame is 48x32" in str(info.value)


# --------------------------------------------------------------------------- --out


def test_out_is_checked_before_anything_is_computed(tmp_path, clip, capsys):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    assert predict(out=afile, video=clip[0]) == 1
    assert "--out" in (line := one_error(capsys)) and "is a file, not a folder" in line
    assert afile.read_text() == "mine"
    assert predict("--sample", out=afile / "sub") == 1
    assert "cannot write into --out" in one_error(capsys)
    assert not (afile.parent / "sub").exists()


@pytest.fixture
def unwritable(tmp_path):
    """A folder this process cannot create files in (root may write anywhere but sysfs)."""
    if os.geteuid() == 0:
        assert os.path.isdir("/sys/kernel")
        yield "/sys/kernel"
        return
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    yield str(folder)
    folder.chmod(0o700)


def test_an_unwritable_out_is_found_first(clip, unwritable, capsys):
    assert predict(out=unwritable, video=clip[0]) == 1
    line = one_error(capsys)
    assert "cannot write into --out" in line and "choose a folder you can write to" in line


def test_earlier_results_are_never_overwritten_silently(tmp_path, clip, capsys):
    out = tmp_path / "out"
    assert predict("--render", out=out, video=clip[0]) == 0
    before = (out / "results.npz").read_bytes()
    assert predict(out=out, video=clip[0]) == 1
    line = one_error(capsys)
    assert "already holds results of an earlier run (results.npz, results.json, overlay.mp4)" in line
    assert "pass --overwrite" in line and (out / "results.npz").read_bytes() == before
    assert predict("--overwrite", out=out, video=clip[0]) == 0
    assert not (out / "overlay.mp4").exists()  # the earlier run's overlay does not linger
    assert int(load_results(out / "results.npz")["num_frames"]) == FRAMES


# --------------------------------------------------------------------------- flags


@pytest.mark.parametrize("flags,message", [
    (["--option", "foo=1"], "has no option 'foo'"),
    (["--option", "foo"], "--option needs KEY=VALUE"),
    (["--option", "=3"], "--option needs KEY=VALUE"),
    (["--option", "frames=4"], "--option frames=...: give --frames instead"),
    (["--frames", "0"], "--frames must be 1 or more"),
    (["--frames", "4", "--overlap", "4"], "--overlap must be in [0, 4)"),
    (["--device", "tpu9"], "--device 'tpu9'"),
    (["--keypoint-layout", "coco18"], "unknown keypoint layout 'coco18'"),
])  # fmt: skip
def test_flag_mistakes_are_one_line(tmp_path, clip, capsys, flags, message):
    assert predict(*flags, out=tmp_path / "out", video=clip[0], keypoints=clip[1]) == 1
    assert message in one_error(capsys)


def test_a_device_that_is_not_here(tmp_path, clip, capsys):
    code = predict("--device", "cuda", out=tmp_path / "out", video=clip[0])
    if torch.cuda.is_available():
        assert code == 0
    else:
        assert code == 1 and "no CUDA GPU is available here; use --device cpu" in one_error(capsys)


# --------------------------------------------------------------------------- keypoints


def test_a_keypoint_file_for_fewer_frames_stops_and_keeps_the_frames_done(tmp_path, clip, capsys):
    short = with_keypoints(tmp_path / "short.npz", clip[1],
                           keypoints=np.load(clip[1])["keypoints"][:7],
                           boxes=np.load(clip[1])["boxes"][:7])  # fmt: skip
    out = tmp_path / "out"
    assert predict(out=out, video=clip[0], keypoints=short) == 1
    assert "the keypoints end at frame 7 but the video goes on" in one_error(capsys)
    for name in ("results.npz", "results.json"):
        saved = load_results(out / name)
        meta = saved.get("metadata", saved)
        assert meta["complete"] is False and meta["num_frames"] == 7  # every frame read, done


def test_a_keypoint_file_for_more_frames_says_so(tmp_path, clip, capsys):
    points = np.load(clip[1])["keypoints"]
    long = with_keypoints(tmp_path / "long.npz", clip[1], keypoints=np.concatenate([points] * 2),
                          boxes=None)  # fmt: skip
    assert predict(out=tmp_path / "out", video=clip[0], keypoints=long) == 1
    assert f"more frames than the video's {FRAMES}" in one_error(capsys)
    assert load_results(tmp_path / "out" / "results.json")["num_frames"] == FRAMES


def test_body_keypoints_for_a_hand_model_and_hand_keypoints_for_a_body_model(tmp_path, clip,
                                                                            capsys):  # fmt: skip
    points = np.zeros((FRAMES, 1, 17, 3), np.float32)
    points[..., :2], points[..., 2] = 30.0 + np.arange(17)[:, None], 1.0
    body = with_keypoints(tmp_path / "body.npz", clip[1], keypoints=points,
                          layout=np.array("coco17"), boxes=None)  # fmt: skip
    assert predict(out=tmp_path / "out", video=clip[0], keypoints=body) == 1
    line = one_error(capsys)
    assert "layout 'coco17' holds body keypoints but 'extpose-hamer' is a hand (MANO) model" in line
    assert "give hand keypoints (layout openpose_hand21)" in line
    assert load_results(tmp_path / "out" / "results.json")["num_frames"] == 0
    pipeline = Pipeline.from_plugins(model="extpose-hmr2", **SAMPLE_OPTIONS)
    hand = Keypoints(np.load(clip[1])["keypoints"][0], "openpose_hand21")
    with pytest.raises(KeypointFitError, match="holds hand keypoints but 'extpose-hmr2' is a body"):
        pipeline(np.zeros((64, 64, 3), np.uint8), keypoints=hand)


@pytest.mark.parametrize("scale,message", [
    (100.0, r"person 0 joint \d+ is at \(\d+, \d+\), far outside the 64x64 image"),
    (1 / 64, r"every keypoint lies within \[0, 1\].*look normalised"),
])  # fmt: skip
def test_keypoints_that_do_not_fit_the_image(tmp_path, clip, capsys, scale, message):
    points = np.load(clip[1])["keypoints"].copy()
    points[..., :2] *= scale
    bad = with_keypoints(tmp_path / "bad.npz", clip[1], keypoints=points, boxes=None)
    assert predict(out=tmp_path / "out", video=clip[0], keypoints=bad) == 1
    import re

    assert re.search(message, one_error(capsys))


def test_an_unknown_layout_name_in_a_file_and_the_flag_that_fixes_it(tmp_path, clip, capsys):
    bad = with_keypoints(tmp_path / "bad.npz", clip[1], layout=np.array("hand21"))
    assert predict(out=tmp_path / "out", video=clip[0], keypoints=bad) == 1
    line = one_error(capsys)
    assert "unknown keypoint layout 'hand21'" in line and "--keypoint-layout NAME" in line
    assert predict("--keypoint-layout", "openpose_hand21", "--overwrite", out=tmp_path / "out",
                   video=clip[0], keypoints=bad) == 0  # fmt: skip


def test_the_sdk_keypoint_writer_keeps_left_hands_left(tmp_path):
    from extpose_sdk.keypoints.numpy_files import NumpyKeypointSource, save_keypoints

    points = np.zeros((2, 21, 3), np.float32)
    points[..., :2], points[..., 2] = np.linspace(10, 50, 21)[:, None], 1.0
    frames = [Keypoints(points, "openpose_hand21", is_right=[False, True])] * 3
    save_keypoints(tmp_path / "hands.npz", frames)
    read = list(NumpyKeypointSource(tmp_path / "hands.npz"))
    assert [f.is_right.tolist() for f in read] == [[False, True]] * 3
    results = stand_in_pipeline().video(np.zeros((3, 64, 64, 3), np.uint8),
                                        keypoints=tmp_path / "hands.npz")  # fmt: skip
    assert [p.is_right for p in results.people] == [False, True] * 3  # the left one mirrored


# --------------------------------------------------------------------------- the Python API


def test_progress_false_true_and_a_callable():
    pipeline, clip = stand_in_pipeline(frames=2), np.zeros((5, 32, 32, 3), np.uint8)
    for progress in (False, None, True):
        assert len(pipeline.video(clip, progress=progress)) == 5
    counted = []
    pipeline.video(clip, progress=counted.append)
    assert counted == [1] * 5  # one call per finished frame


def test_random_weights_are_seeded_and_leave_the_global_random_state_alone():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = Pipeline.from_plugins(model="hamer", **SAMPLE_OPTIONS)
    b = Pipeline.from_plugins(model="hamer", **SAMPLE_OPTIONS)
    assert torch.equal(torch.get_rng_state(), state)
    for (name, x), y in zip(a.model.state_dict().items(), b.model.state_dict().values(),
                            strict=True):  # fmt: skip
        assert torch.equal(x, y), name
    c = Pipeline.from_plugins(model="hamer", seed=1, **SAMPLE_OPTIONS)
    assert not torch.equal(c.model.backbone.patch_embed.proj.weight,
                           a.model.backbone.patch_embed.proj.weight)  # fmt: skip


def test_model_inputs_of_the_wrong_kind_name_the_expected_shape_and_dtype():
    model = extpose_sdk.load_model("hamer", **SAMPLE_OPTIONS)
    x = torch.randn(2, 3, 256, 256)
    cases = [
        (x, TypeError, r"inputs must be a dict.*\(B, 3, 256, 256\).*model\(\{'rgb': x\}\)"),
        ({"rgb": x.numpy()}, TypeError, r"must be a torch.Tensor.*torch.from_numpy"),
        ({"rgb": (x * 50).to(torch.uint8)}, TypeError, r"dtype torch.uint8.*normalised"),
        ({"rgb": x.double()}, TypeError, r"torch.float64 but the model's weights are torch.float32"),
        ({"rgb": x[:0]}, ValueError, r"empty batch: shape \(0, 3, 256, 256\)"),
        ({"rgb": torch.randn(1, 0, 3, 256, 256)}, ValueError, r"empty clip \(T = 0 frames\)"),
    ]
    for inputs, error, message in cases:
        with pytest.raises(error, match=message):
            model(inputs)
    assert model({"rgb": x}).betas.shape == (2, 10)


def test_images_that_are_not_uint8_rgb(tmp_path):
    pipeline = stand_in_pipeline()
    with pytest.raises(ValueError, match=r"image 0: expected an \(H, W, 3\) uint8 RGB image or a path"):
        pipeline(np.zeros((32, 32, 3), np.float64))
    with pytest.raises(ValueError, match=r"frame 1: expected an \(H, W, 3\) uint8"):
        pipeline.video([np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32), np.uint8)])
    assert len(pipeline([])) == 0 and len(pipeline.video(np.zeros((0, 32, 32, 3), np.uint8))) == 0


class NaNModel(torch.nn.Module):
    """Follows the model contract but predicts NaN: what broken weights give."""

    def forward(self, inputs):
        b, t = inputs["rgb"].shape[:2]
        eye = torch.eye(3).expand(b, t, 1, 3, 3)
        return types.SimpleNamespace(global_orient=eye, hand_pose=torch.eye(3).expand(b, t, 15, 3, 3),
                                     betas=torch.full((b, t, 10), float("nan")),
                                     pred_cam=torch.ones(b, t, 3))  # fmt: skip


def test_nan_outputs_are_strict_json_nulls_and_counted(tmp_path):
    from extpose_sdk.commands.predict import predict as run_predict

    pipeline = stand_in_pipeline()
    pipeline.model = NaNModel()
    clip = tmp_path / "frames"
    clip.mkdir()
    for i in range(3):
        cv2.imwrite(str(clip / f"{i}.png"), np.zeros((32, 32, 3), np.uint8))
    assert run_predict(pipeline, clip, tmp_path / "out") == 0
    text = (tmp_path / "out" / "results.json").read_text()
    data = json.loads(text, parse_constant=lambda name: pytest.fail(f"bare {name} in JSON"))
    assert data["non_finite"] == 3 and data["frames"][0]["people"][0]["betas"] == [None] * 10


# --------------------------------------------------------------------------- checkpoints


def tiny_checkpoint(path, **extra):
    model = extpose_sdk.load_model("hamer", **SAMPLE_OPTIONS)
    torch.save({"state_dict": model.state_dict(), **extra}, path)
    return model


def test_a_checkpoint_with_flipped_bytes_is_refused(tmp_path, clip, capsys):
    import zipfile

    path = tmp_path / "hamer.ckpt"
    tiny_checkpoint(path)
    with zipfile.ZipFile(path) as archive:
        record = max(archive.infolist(), key=lambda r: r.file_size)  # the largest tensor
    data = bytearray(path.read_bytes())
    name_length, extra_length = struct.unpack_from("<HH", data, record.header_offset + 26)
    data[record.header_offset + 30 + name_length + extra_length + 5] ^= 0x10
    path.write_bytes(bytes(data))
    assert cli.main(["predict", str(clip[0]), "--out", str(tmp_path / "out"), "--model", "hamer",
                     "--checkpoint", str(path), "--whole-frame", *TINY]) == 1  # fmt: skip
    line = one_error(capsys)
    assert "hamer.ckpt is corrupted" in line and "fails its checksum" in line


def test_sdk_checkpoints_carry_a_hash_and_nan_weights_are_refused(tmp_path):
    from extpose_sdk.checkpoints import CheckpointError, save_extpose_checkpoint

    model = extpose_sdk.load_model("hamer", **SAMPLE_OPTIONS)
    path, config = save_extpose_checkpoint(model, tmp_path / "m.safetensors",
                                           {"options": SAMPLE_OPTIONS})  # fmt: skip
    assert len(json.loads(config.read_text())["weights_sha256"]) == 64
    extpose_sdk.load_model("hamer", checkpoint=path)  # loads, hash checked
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # one bit of the last weight
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match the SHA-256 recorded in m.json"):
        extpose_sdk.load_model("hamer", checkpoint=path)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(float("nan"))
    path, _ = save_extpose_checkpoint(model, tmp_path / "nan.safetensors", {"options": SAMPLE_OPTIONS})
    with pytest.raises(CheckpointError, match=r"tensors hold NaN or infinite values"):
        extpose_sdk.load_model("hamer", checkpoint=path)


def test_the_unsafe_checkpoint_advice_works_on_the_command_that_gave_it(tmp_path, clip, capsys):
    path = tmp_path / "hamer.ckpt"
    tiny_checkpoint(path, when=datetime.date(2024, 1, 1))
    argv = ["predict", str(clip[0]), "--out", str(tmp_path / "out"), "--model", "hamer",
            "--checkpoint", str(path), "--whole-frame", *TINY]  # fmt: skip
    assert cli.main(argv) == 1
    line = one_error(capsys)
    assert "datetime.date" in line and "pass --trust-checkpoint" in line
    assert cli.main([*argv, "--trust-checkpoint"]) == 0
    assert load_results(tmp_path / "out" / "results.json")["random_weights"] is False
    eval_flags = cli.build_parser().parse_args(
        ["eval", "--model", "hamer", "--dataset", "freihand", "--root", ".", "--trust-checkpoint"]
    )
    assert eval_flags.trust_checkpoint


# --------------------------------------------------------------------------- convert


def test_convert_onto_its_source_is_refused_and_a_missing_folder_is_made(tmp_path, capsys):
    from extpose_sdk.checkpoints import save_extpose_checkpoint

    model = extpose_sdk.load_model("hamer", **SAMPLE_OPTIONS)
    path, config = save_extpose_checkpoint(model, tmp_path / "x.safetensors",
                                           {"options": SAMPLE_OPTIONS})  # fmt: skip
    weights, settings = path.read_bytes(), config.read_text()
    assert cli.main(["convert", "checkpoint", str(path), str(path)]) == 1
    assert "is the source: converting onto it would destroy it" in one_error(capsys)
    assert path.read_bytes() == weights and config.read_text() == settings
    target = tmp_path / "new" / "folder" / "y.safetensors"
    assert cli.main(["convert", "checkpoint", str(path), str(target)]) == 0
    assert json.loads(target.with_suffix(".json").read_text())["options"] == SAMPLE_OPTIONS
    extpose_sdk.load_model("hamer", checkpoint=target)  # the config came along: right size
    from extpose_sdk.datasets.synthetic_models import write_synthetic_mano

    mano = write_synthetic_mano(tmp_path / "MANO_RIGHT.pkl")
    assert cli.main(["convert", "body-model", str(mano), str(tmp_path / "a" / "m.npz")]) == 0
    assert cli.main(["convert", "body-model", str(tmp_path / "a" / "m.npz"),
                     str(tmp_path / "a" / "m.npz")]) == 1  # fmt: skip
    assert "is the source" in one_error(capsys)



def test_eval_checks_its_flags_and_json_path_before_evaluating(tmp_path, capsys):
    base = ["eval", "--model", "hamer", "--dataset", "freihand", "--root", str(tmp_path), *TINY]
    assert cli.main([*base, "--batch-size", "0"]) == 1
    assert "--batch-size must be 1 or more, got 0" in one_error(capsys)
    assert cli.main([*base, "--json", str(tmp_path)]) == 1
    assert f"--json {tmp_path} is a folder" in one_error(capsys)
    assert cli.main([*base, "--option", "trust_checkpoint=True"]) == 1
    assert "give --trust-checkpoint instead" in one_error(capsys)


# --------------------------------------------------------------------------- plugins


def plugin_module(name, source):
    module = types.ModuleType(name)
    exec(textwrap.dedent(source), module.__dict__)
    return module


SHADOWING = """
    from extpose_sdk import hookimpl

    @hookimpl
    def extpose_register_heads(register):
        register("shadow-extra-head", lambda **kw: None, "comes with the shadowing plugin")

    @hookimpl
    def extpose_register_backbones(register):
        register("vitpose", lambda **kw: "not the real one", "claims a built-in's name")
"""


def test_a_plugin_claiming_a_builtin_name_is_skipped_whole(capsys):
    shadow = plugin_module("shadowing", SHADOWING)
    with isolated_plugins(shadow) as manager:
        with pytest.warns(RuntimeWarning, match=r"skipping plugin 'shadowing'.*'vitpose'"):
            registries = manager.registries()
        assert registries.backbone.get("vitpose").package == "extpose-sdk"
        assert "shadow-extra-head" not in registries.head  # the whole plugin is out
        assert cli.main(["plugins"]) == 0  # every command still works
        assert "skipped" in (err := capsys.readouterr().err) and "'shadowing'" in err
    with isolated_plugins(shadow, strict=True) as manager:
        with pytest.raises(plugins.PluginError, match="'vitpose' is registered by two plugins"):
            manager.registries()


def test_a_plugin_factory_raising_type_error_is_one_line(tmp_path, capsys):
    broken = plugin_module("broken_factory", """
        from extpose_sdk import hookimpl

        def build(**options):
            raise TypeError("build() needs a 'size' it was not given")

        @hookimpl
        def extpose_register_models(register):
            register("broken-model", build, "a factory that raises TypeError")
    """)  # fmt: skip
    with isolated_plugins(broken):
        assert cli.main(["predict", "--sample", "--out", str(tmp_path / "out"),
                         "--model", "broken-model"]) == 1  # fmt: skip
    line = one_error(capsys)
    assert "model 'broken-model' (plugin 'broken_factory'" in line and "needs a 'size'" in line


# --------------------------------------------------------------------------- docs that must hold


def test_the_readme_eval_line_works_as_written_and_says_j19_is_approximated(tmp_path, capsys,
                                                                              monkeypatch):  # fmt: skip
    import re
    import shlex
    from pathlib import Path

    from extpose_sdk.datasets import fixtures
    from extpose_sdk.datasets.synthetic_models import write_synthetic_smpl

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    line = re.search(r"^extpose eval .*?(?<!\\)$", readme, re.M | re.S).group(0)
    argv = shlex.split(line.replace("\\\n", " "))[1:]
    monkeypatch.chdir(tmp_path)
    root = argv[argv.index("--root") + 1]
    fixtures.write_3dpw(tmp_path / "3DPW", frames=3, actors=1)
    argv[argv.index("--root") + 1] = str(tmp_path / "3DPW")
    for gender in ("NEUTRAL", "MALE", "FEMALE"):
        write_synthetic_smpl(f"SMPL_{gender}.pkl")
    model = extpose_sdk.load_model(argv[argv.index("--model") + 1], **SAMPLE_OPTIONS)
    torch.save({"state_dict": model.state_dict()}, argv[argv.index("--checkpoint") + 1])
    assert root == "/data/3DPW"
    assert cli.main([*argv, "--no-progress", *TINY]) == 0
    table = capsys.readouterr().out
    assert "note: the scored joints include HMR2.0's J19 joints approximated" in table
    result = json.loads(Path(argv[argv.index("--json") + 1]).read_text())
    assert result["j19_approximated"] is True and result["notes"]
    without = [a for a in argv if a != "--body-model" and a != "SMPL_NEUTRAL.pkl"]
    assert cli.main([*without, "--no-progress", *TINY]) == 1
    assert "(extpose eval: --body-model PATH" in one_error(capsys)

