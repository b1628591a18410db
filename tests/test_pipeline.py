"""Pipeline: images, video in windows, tracking, partial results on failure, fit checks.

The model here is a tiny stand-in that follows the ``MeshRecoveryModel`` contract (inputs
``(B, T, C, H, W)`` per modality, head fields with leading dims ``(B, T)``) and mixes information
across frames, so windowing is visible in its outputs.
"""

from __future__ import annotations

import attrs
import numpy as np
import pytest

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")

from extpose_sdk.assembly import FitError  # noqa: E402
from extpose_sdk.data.video import VideoReadError  # noqa: E402
from extpose_sdk.keypoints import Keypoints  # noqa: E402
from extpose_sdk.pipeline import Pipeline  # noqa: E402
from extpose_sdk.plugins import get_registries  # noqa: E402
from extpose_sdk.results import load_results  # noqa: E402
from extpose_sdk.subjects import HAND  # noqa: E402


@attrs.define
class Output:
    global_orient: torch.Tensor
    hand_pose: torch.Tensor
    betas: torch.Tensor
    pred_cam: torch.Tensor


class TemporalStandIn(torch.nn.Module):
    """Per-frame features plus the clip mean: a frame's output depends on its window."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.proj = torch.nn.Linear(3 * 8 * 8, 10 + 3)

    def forward(self, inputs, present=None):
        x = inputs["rgb"]
        b, t = x.shape[:2]
        pooled = torch.nn.functional.adaptive_avg_pool2d(x.flatten(0, 1), 8).reshape(b, t, -1)
        features = self.proj(pooled)
        features = features + features.mean(dim=1, keepdim=True)
        eye = torch.eye(3).expand(b, t, 1, 3, 3)
        cam = torch.cat([1.0 + features[..., 10:11].abs(), features[..., 11:13]], -1)
        return Output(eye, torch.eye(3).expand(b, t, 15, 3, 3), features[..., :10], cam)


def make_pipeline(**options):
    registries = get_registries()
    return Pipeline(
        model=TemporalStandIn(),
        modalities={"rgb": registries.modality.build("rgb")},
        subject="hand",
        name="stand-in",
        random_weights=True,
        **options,
    )


def frames_of(n, h=48, w=64, seed=0):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 50, (n, h, w, 3), dtype=np.uint8)
    for i in range(n):
        frames[i, 10:30, 5 + 2 * i : 25 + 2 * i] = (200, (100 + 10 * i) % 256, 50)
    return frames


def betas(results):
    return np.stack([p.params["betas"] for p in results.people])


def test_image_and_images():
    pipeline = make_pipeline()
    frames = frames_of(2)
    one = pipeline(frames[0])
    assert len(one) == 1 and len(one[0].people) == 1
    person = one[0].people[0]
    assert person.params["hand_pose"].shape == (15, 3, 3)
    assert person.params["betas"].shape == (10,)
    assert person.cam_t.shape == (3,) and person.cam_t[2] > 0
    np.testing.assert_allclose(person.box, [0, 0, 63, 47])
    both = pipeline(list(frames))
    assert [f.index for f in both.frames] == [0, 1]
    np.testing.assert_allclose(both[0].people[0].params["betas"], person.params["betas"], atol=1e-6)


def test_windowed_equals_whole_clip_when_the_window_covers_it():
    frames = frames_of(6)
    whole = make_pipeline(frames=6).video(frames)
    covering = make_pipeline(frames=16, overlap=4).video(frames)
    np.testing.assert_allclose(betas(covering), betas(whole), atol=1e-6)
    # and it is the model run once on all six crops
    images = make_pipeline()
    crops = torch.stack([images._people(f, None, None, None)[0].tensors["rgb"] for f in frames])
    direct = TemporalStandIn()({"rgb": crops[None]}).betas[0].detach().numpy()
    np.testing.assert_allclose(betas(whole), direct, atol=1e-5)
    # shorter windows see less of the clip, so the mixing model's outputs change
    windowed = make_pipeline(frames=2, overlap=0).video(frames)
    assert len(windowed) == 6
    assert not np.allclose(betas(windowed), betas(whole), atol=1e-4)


def test_people_from_keypoints_are_tracked_with_stable_ids():
    frames = frames_of(5, h=64, w=96)
    keypoint_frames = []
    for i in range(5):
        left = np.array([[5 + i, 5], [25 + i, 40]], np.float32)
        right = np.array([[60 - i, 10], [90 - i, 50]], np.float32)
        people = [right, left] if i % 2 else [left, right]  # order changes every frame
        points = np.zeros((2, 21, 3), np.float32)
        for n, (a, b) in enumerate(people):
            points[n, :, :2] = np.linspace(a, b, 21)
            points[n, :, 2] = 1.0
        keypoint_frames.append(Keypoints(points, "openpose_hand21"))
    results = make_pipeline(frames=3, overlap=1).video(frames, keypoints=keypoint_frames)
    assert [len(f.people) for f in results.frames] == [2] * 5
    for frame in results.frames:
        by_id = {p.track_id: p for p in frame.people}
        assert sorted(by_id) == [0, 1]
        assert by_id[0].box[0] < 40 < by_id[1].box[0]  # id 0 stays the left hand
        assert by_id[0].keypoints.shape == (21, 3)


def test_failure_midway_names_the_frame_and_saves_results_so_far(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    for frame in frames_of(20):
        writer.write(frame[..., ::-1])
    writer.release()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out" / "results.npz"
    with pytest.raises(VideoReadError, match=r"clip\.avi: frame (\d+) of 20") as info:
        make_pipeline(frames=4, overlap=2, chunk_size=4).video(path, save_to=out, backend="opencv")
    failed_at = info.value.frame
    saved = load_results(out)
    assert saved["metadata"]["complete"] is False
    assert "frame" in saved["metadata"]["error"]
    assert saved["frame"].tolist() == list(range(failed_at))  # every frame read, none after
    assert info.value.results.frames[-1].index == failed_at - 1


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        make_pipeline().video(tmp_path / "missing.mp4", save_to=tmp_path / "r.json")
    assert load_results(tmp_path / "r.json")["complete"] is False


def test_results_export(tmp_path):
    results = make_pipeline(frames=2).video(frames_of(3))
    arrays = results.to_numpy()
    assert arrays["betas"].shape == (3, 10) and arrays["frame"].tolist() == [0, 1, 2]
    assert results.random_weights
    saved = load_results(results.save(tmp_path / "r.npz"))
    np.testing.assert_allclose(saved["cam_t"], arrays["cam_t"])
    as_json = load_results(results.save(tmp_path / "r.json"))
    assert len(as_json["frames"]) == 3 and as_json["random_weights"] is True
    with pytest.raises(ValueError, match=r"\.npz or \.json"):
        results.save(tmp_path / "r.txt")


def test_a_hand_head_on_a_body_recipe_is_a_clear_error():
    with pytest.raises(
        FitError,
        match=r"head 'mano' predicts hand \(MANO\) but 'extpose-hmr2' is a body \(SMPL\) model",
    ):
        Pipeline.from_plugins(model="extpose-hmr2", head="mano", backbone="vitpose")
    with pytest.raises(FitError, match=r"head 'smpl' predicts body \(SMPL\)"):
        Pipeline.from_plugins(model=None, backbone="hamer", head="smpl")


def test_predict_writes_results_and_an_overlay_video(tmp_path, capsys):
    from extpose_sdk.commands.predict import predict
    from extpose_sdk.data.video import open_video

    clip = tmp_path / "frames"
    clip.mkdir()
    for i, frame in enumerate(frames_of(4)):
        cv2.imwrite(str(clip / f"{i:03d}.png"), frame[..., ::-1])
    out = tmp_path / "out"
    assert predict(make_pipeline(frames=2), clip, out, render=True) == 0
    assert load_results(out / "results.npz")["frame"].tolist() == [0, 1, 2, 3]
    assert len(load_results(out / "results.json")["frames"]) == 4
    overlay = np.stack(list(open_video(out / "overlay.mp4", backend="opencv")))
    assert overlay.shape == (4, 48, 64, 3)
    assert "random weights: the mesh is not meaningful" in capsys.readouterr().out


def test_overlay_draws_the_mesh_where_the_camera_puts_it():
    from extpose_sdk.overlays import draw_frame
    from extpose_sdk.results import FrameResult, PersonResult

    vertices = np.array([[-0.1, -0.1, 0], [0.1, -0.1, 0], [0.0, 0.1, 0]], np.float64)
    faces = np.array([[0, 2, 1], [0, 1, 2]])
    person = PersonResult(
        frame=0, track_id=0, box=[0, 0, 5, 5], vertices=vertices, cam_t=[0, 0, 5.0]
    )
    image = np.zeros((64, 64, 3), np.uint8)
    drawn = draw_frame(image, FrameResult(0, [person]), faces=faces)
    assert drawn[32, 32].any() and not drawn[60, 60].any()  # mesh at the centre, none in a corner
    assert not image.any()  # the input is left alone


def test_a_left_hand_is_seen_mirrored_as_a_right_hand():
    image = frames_of(1, h=64, w=96)[0]
    points = np.zeros((1, 21, 3), np.float32)
    points[0, :, :2] = np.linspace([20, 10], [50, 50], 21)
    points[0, :, 2] = 1
    mirrored_points = points.copy()
    mirrored_points[..., 0] = 96 - 1 - points[..., 0]
    pipeline = make_pipeline()
    right = pipeline(image, keypoints=Keypoints(points, "openpose_hand21", is_right=[True]))
    left = pipeline(
        image[:, ::-1].copy(),
        keypoints=Keypoints(mirrored_points, "openpose_hand21", is_right=[False]),
    )
    r, l = right[0].people[0], left[0].people[0]
    np.testing.assert_allclose(l.params["betas"], r.params["betas"], atol=1e-4)
    np.testing.assert_allclose(l.pred_cam * [1, -1, 1], r.pred_cam, atol=1e-4)
    assert l.is_right is False and r.is_right is True


def test_a_registered_recipe_runs_at_tiny_size():
    from extpose_sdk.commands.predict import SAMPLE_OPTIONS

    pipeline = Pipeline.from_plugins(model="hamer", detector=None, **SAMPLE_OPTIONS)
    assert pipeline.subject is HAND and pipeline.random_weights
    results = pipeline.video(frames_of(3))  # no keypoints, no detector: the whole frame
    arrays = results.to_numpy()
    assert arrays["hand_pose"].shape == (3, 15, 3, 3)
    rotations = torch.as_tensor(arrays["hand_pose"])
    eye = torch.eye(3).expand_as(rotations)
    torch.testing.assert_close(rotations @ rotations.transpose(-1, -2), eye, atol=1e-4, rtol=0)
    assert np.isfinite(arrays["cam_t"]).all()


def test_extpose_predict_names_a_missing_input(tmp_path, capsys):
    from extpose_sdk.cli import main

    tiny = ["--option", "embed_dim=32", "--option", "depth=1", "--option", "num_heads=2",
            "--option", "head_dim=16", "--option", "head_depth=1"]  # fmt: skip
    missing = tmp_path / "missing.mp4"
    code = main(
        ["predict", str(missing), "--out", str(tmp_path / "out"), "--model", "hamer",
         "--whole-frame", *tiny]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "missing.mp4" in err and "random weights: the mesh is not meaningful" in err
    assert load_results(tmp_path / "out" / "results.json")["complete"] is False


def test_windowed_equals_whole_clip_with_the_extended_recipe():
    from extpose_sdk.commands.predict import SAMPLE_OPTIONS

    def pipeline(frames, overlap=None):
        torch.manual_seed(0)
        return Pipeline.from_plugins(
            model="extpose-hamer", frames=frames, overlap=overlap, mask="full", detector=None,
            **SAMPLE_OPTIONS,
        )

    clip = frames_of(5)
    whole = pipeline(5).video(clip)
    covering = pipeline(16, 4).video(clip)
    np.testing.assert_allclose(betas(covering), betas(whole), atol=1e-5)
    # with attention across all frames, a shorter window changes what each frame sees
    assert not np.allclose(betas(pipeline(2, 0).video(clip)), betas(whole), atol=1e-6)


def test_a_sample_without_shipped_weights_runs_a_random_model_and_says_so(
        tmp_path, capsys, monkeypatch):
    """Where no plugin ships the sample's weights, a tiny random model runs it end to end (the
    shipped ones: plugins/*/tests/test_shipped_*weights.py)."""
    from extpose_sdk.cli import main
    from extpose_sdk.commands import predict
    from extpose_sdk.data.video import open_video

    monkeypatch.setitem(predict.SAMPLE_WEIGHTS, "body", "weights-nobody-ships")

    out = tmp_path / "out"
    assert main(["predict", "--sample", "body", "--out", str(out), "--render"]) == 0
    saved = load_results(out / "results.npz")
    frames = int(saved["num_frames"])
    assert frames > 0 and saved["vertices"].shape[0] == frames  # one body per frame, with a mesh
    assert np.isfinite(saved["keypoints_2d"]).all()
    assert len(list(open_video(out / "overlay.mp4", backend="opencv"))) == frames
    assert "random weights: the mesh is not meaningful" in capsys.readouterr().out


def test_a_recipe_and_a_head_that_do_not_fit_fail_clearly():
    from extpose_sdk.assembly import FitError

    with pytest.raises(FitError, match="head 'smpl' predicts"):
        Pipeline.from_plugins(model="extpose-hamer", backbone="vitpose", head="smpl")


class CountingBodyModel(torch.nn.Module):
    """A body model that counts its runs and the people it was given."""

    def __init__(self, model):
        super().__init__()
        self.model, self.calls, self.people = model, 0, 0

    def forward(self, **params):
        self.calls += 1
        self.people += params["betas"].shape[0]
        return self.model(**params)


def test_the_body_model_runs_once_per_window_for_every_person_in_it(tmp_path):
    from extpose_sdk.body_models import load_body_model
    from extpose_sdk.cameras import project_full_image
    from extpose_sdk.datasets.synthetic import synthetic_model_path

    mano = load_body_model("mano", synthetic_model_path("hand", tmp_path))
    counting = CountingBodyModel(mano)
    frames = frames_of(6, h=64, w=96)
    keypoint_frames = []
    for i in range(6):
        points = np.zeros((2, 21, 3), np.float32)
        points[0, :, :2] = np.linspace([5 + i, 5], [25 + i, 40], 21)
        points[1, :, :2] = np.linspace([60 - i, 10], [90 - i, 50], 21)
        points[..., 2] = 1.0
        keypoint_frames.append(Keypoints(points, "openpose_hand21", is_right=[True, False]))
    results = make_pipeline(frames=3, overlap=0, body_model=counting).video(
        frames, keypoints=keypoint_frames)
    assert (counting.calls, counting.people) == (2, 12)  # 2 windows of 3 frames x 2 hands
    for person in results.people:
        alone = mano(**{k: torch.as_tensor(v)[None] for k, v in person.params.items()})
        sign = np.array([1.0 if person.is_right else -1.0, 1.0, 1.0], np.float32)  # left: mirrored
        np.testing.assert_allclose(person.vertices, alone.vertices[0].numpy() * sign, atol=1e-5)
        np.testing.assert_allclose(person.joints_3d, alone.joints[0].numpy() * sign, atol=1e-5)
        np.testing.assert_allclose(person.keypoints_2d, project_full_image(
            person.joints_3d, person.cam_t, (64, 96)), atol=1e-4)


def test_predict_opens_the_video_once_in_the_pipelines_chunks(tmp_path, monkeypatch):
    from extpose_sdk import pipeline as pipeline_module
    from extpose_sdk.commands.predict import predict

    clip = tmp_path / "frames"
    clip.mkdir()
    for i, frame in enumerate(frames_of(5)):
        cv2.imwrite(str(clip / f"{i:03d}.png"), frame[..., ::-1])
    opened = []
    real = pipeline_module.open_video

    def counting_open(source, **options):
        reader = real(source, **options)
        opened.append(reader.chunk_size)
        return reader

    monkeypatch.setattr(pipeline_module, "open_video", counting_open)
    assert predict(make_pipeline(frames=2, chunk_size=3), clip, tmp_path / "out", render=True) == 0
    assert opened == [3]
    assert load_results(tmp_path / "out" / "results.npz")["frame"].tolist() == [0, 1, 2, 3, 4]
    missing = tmp_path / "missing"
    with pytest.raises(FileNotFoundError):
        predict(make_pipeline(), missing, tmp_path / "out2")
    for name in ("results.npz", "results.json"):  # saved by the pipeline, the one place
        saved = load_results(tmp_path / "out2" / name)
        assert saved.get("metadata", saved)["complete"] is False
