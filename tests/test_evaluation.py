"""The Evaluator end to end on tiny data-set fixtures, with stand-in models of known errors."""

import json
import math
from types import SimpleNamespace

import pytest
import torch

import extpose_sdk
from extpose_sdk.datasets import fixtures
from extpose_sdk.engine.evaluate import Evaluator


class WithInput(torch.utils.data.Dataset):
    """A data set whose ``rgb`` input is ``truth(sample)``: lets a stand-in model echo it."""

    def __init__(self, dataset, truth):
        self.dataset, self.truth, self.name = dataset, truth, dataset.name

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        sample = self.dataset[i]
        return {**sample, "rgb": self.truth(sample)}


class EchoModel(torch.nn.Module):
    """Predicts the joints handed in as ``rgb``, plus ``offset(frame)``; vertices unchanged."""

    modalities = ("rgb",)

    def __init__(self, offset=None, vertices=None):
        super().__init__()
        self.offset, self.vertices = offset, vertices

    def forward(self, inputs):
        joints = inputs["rgb"].clone()
        if self.offset is not None:
            joints = joints + self.offset(joints)
        return SimpleNamespace(pred_keypoints_3d=joints, pred_vertices=self.vertices)


def fake_smpl(scale):
    """A stand-in body model: 44 joints that move with the parameters, fixed vertices."""
    base = torch.linspace(-1, 1, 44 * 3).reshape(44, 3)

    def model(global_orient, body_pose, betas):
        assert global_orient.shape[1:] == (1, 3, 3) and body_pose.shape[1:] == (23, 3, 3)
        joints = scale * base @ global_orient[:, 0].transpose(1, 2).float()
        joints = joints + 0.01 * betas[:, :1, None].float()
        return SimpleNamespace(joints=joints, vertices=torch.zeros(len(betas), 6, 3))

    return model


def test_freihand_evaluation_table_and_json(tmp_path, capsys):
    root = fixtures.write_freihand(tmp_path / "FreiHAND")
    data = extpose_sdk.get_registries().dataset.build("freihand", root=root, split="evaluation",
                                                     images=False)
    data = WithInput(data, lambda s: s["keypoints_3d"][:, :3])

    def offset(joints):
        out = torch.zeros_like(joints)
        out[:, 5, 0] = 0.0021  # 2.1 mm on one of 21 joints, wrist untouched
        return out

    result = Evaluator("freihand", batch_size=2, progress=False).run(EchoModel(offset), data)
    assert result.summary["n"] == 2
    assert result.summary["mpjpe"] == pytest.approx(2.1 / 21, rel=1e-4)
    assert 0 < result.summary["pa_mpjpe"] < 2.1  # squared error only shrinks: each joint < 2.1
    assert "pve" not in result.summary  # the model gave no vertices
    text = result.table()
    assert "pa_mpjpe" in text and "freihand" in text
    saved = json.loads(result.write_json(tmp_path / "out.json").read_text())
    assert saved["summary"]["n"] == 2 and len(saved["per_sample"]) == 2
    assert {"sequence", "frame", "mpjpe"} <= set(saved["per_sample"][0])


def test_3dpw_clips_with_gendered_ground_truth_and_acceleration(tmp_path):
    root = fixtures.write_3dpw(tmp_path / "3DPW", frames=5, actors=2)
    data = extpose_sdk.get_registries().dataset.build("3dpw", root=root, split="test",
                                                     images=False, clip_length=2)
    smpl = {"male": fake_smpl(1.0), "female": fake_smpl(0.8)}
    evaluator = Evaluator("3dpw", gt_body_model=smpl, batch_size=2, progress=False)

    def truth(sample):  # what the ground-truth side computes, per frame of the clip
        from extpose_sdk.engine.evaluate import _rotmats

        model = smpl[sample["gender"]]
        return model(_rotmats(sample["global_orient"]), _rotmats(sample["body_pose"]),
                     sample["betas"]).joints

    def quadratic(joints):  # 1 mm * frame^2 on one scored joint: 2 mm/frame^2 acceleration
        frame = torch.arange(joints.shape[1], dtype=joints.dtype)
        out = torch.zeros_like(joints)
        out[:, :, 30, 0] = 0.001 * frame[None] ** 2
        return out

    model = EchoModel(quadratic)
    result = evaluator.run(model, WithInput(data, truth))
    assert result.summary["n"] == 9  # 5 + 4 labelled frames; padded frames are not scored
    assert result.summary["accel"] >= 0 and not math.isnan(result.summary["accel"])
    assert [r["frame"] for r in result.rows[:5]] == [0, 1, 2, 3, 4]
    # the offset restarts every clip of 2 frames: frame errors are 0 and 1/14 mm
    assert sorted({round(r["mpjpe"], 4) for r in result.rows}) == [0.0, round(1 / 14, 4)]

    evaluator.gt_body_model = {"male": fake_smpl(1.0)}
    with pytest.raises(ValueError, match="no ground-truth body model for gender 'female'"):
        evaluator.run(model, WithInput(data, truth))


def test_acceleration_over_a_sequence(tmp_path):
    root = fixtures.write_3dpw(tmp_path / "3DPW", frames=5, actors=1)
    data = extpose_sdk.get_registries().dataset.build("3dpw", root=root, split="test",
                                                     images=False)
    evaluator = Evaluator("3dpw", gt_body_model=fake_smpl(1.0), batch_size=5, progress=False)

    def truth(sample):
        from extpose_sdk.engine.evaluate import _rotmats

        joints = fake_smpl(1.0)(_rotmats(sample["global_orient"][None]),
                                _rotmats(sample["body_pose"][None]), sample["betas"][None]).joints
        joints[0, 30, 0] += 0.001 * float(sample["frame"]) ** 2  # becomes the prediction
        return joints[0]

    result = evaluator.run(EchoModel(), WithInput(data, truth))
    assert result.summary["accel"] == pytest.approx(2 / 14, rel=1e-4)


def test_missing_body_model_and_modalities_are_explained(tmp_path):
    root = fixtures.write_3dpw(tmp_path / "3DPW", frames=3, actors=1)
    data = extpose_sdk.get_registries().dataset.build("3dpw", root=root, split="test",
                                                     images=False)

    class NoEvidence(WithInput):
        def __getitem__(self, i):
            return {k: v for k, v in self.dataset[i].items() if k != "crop_transform"}

    with pytest.raises(ValueError, match=r"none of the modalities \['rgb'\] is in the batch"):
        Evaluator("3dpw", progress=False).run(EchoModel(), NoEvidence(data, None))
    data = WithInput(data, lambda s: torch.zeros(44, 3))
    with pytest.raises(ValueError, match=r"extpose eval: --gt-body-model \[GENDER=\]PATH.*Evaluator\(gt_body_model="):
        Evaluator("3dpw", progress=False).run(EchoModel(), data)


def test_skeleton_is_rendered_from_detected_keypoints(tmp_path):
    from extpose_sdk.data.inputs import model_inputs
    from extpose_sdk.data.sample import collate

    root = fixtures.write_3dpw(tmp_path / "3DPW", frames=4, actors=1)
    data = extpose_sdk.get_registries().dataset.build("3dpw", root=root, split="test",
                                                     clip_length=2)
    batch = collate([data[0], data[1]])
    batch["has_detected_keypoints_2d"] = torch.tensor([[True, True], [True, False]])
    inputs, present = model_inputs(batch, ("rgb", "skeleton"))
    assert inputs["skeleton"].shape == inputs["rgb"].shape == (2, 2, 3, 256, 256)
    assert present["skeleton"].tolist() == [[True, True], [True, False]]
    assert present["rgb"].all()
    drawn = inputs["skeleton"][0, 0]
    assert (drawn != drawn[:, :1, :1]).any()  # something drawn over the blank background
    assert inputs["skeleton"][1, 1].abs().sum() == 0  # an absent frame is zeros


def test_gathers_across_processes(tmp_path):
    import torch.distributed as dist

    root = fixtures.write_freihand(tmp_path / "FreiHAND")
    data = extpose_sdk.get_registries().dataset.build("freihand", root=root, split="evaluation",
                                                     images=False)
    data = WithInput(data, lambda s: s["keypoints_3d"][:, :3])
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0,
                            world_size=1)
    try:
        result = Evaluator("freihand", batch_size=1, progress=False).run(EchoModel(), data)
    finally:
        dist.destroy_process_group()
    assert result.summary["n"] == 2 and result.summary["mpjpe"] == pytest.approx(0, abs=1e-9)


def test_eval_command_prints_a_table_and_writes_json(tmp_path, capsys):
    from extpose_sdk import hookimpl
    from extpose_sdk.cli import main
    from extpose_sdk.datasets.freihand import FreiHAND
    from extpose_sdk.testing import isolated_plugins

    class TinyPlugin:
        @hookimpl
        def extpose_register_models(self, register):
            register("echo-test", lambda checkpoint=None: EchoModel(), "echoes its input")

        @hookimpl
        def extpose_register_datasets(self, register):
            def build(root, split="evaluation"):
                data = FreiHAND(root, split, images=False)
                return WithInput(data, lambda s: s["keypoints_3d"][:, :3])

            register("tiny-freihand", build, "FreiHAND labels with an echo input")

    root = fixtures.write_freihand(tmp_path / "FreiHAND")
    with isolated_plugins(TinyPlugin()):
        code = main(["eval", "--model", "echo-test", "--dataset", "tiny-freihand",
                     "--protocol", "freihand", "--root", str(root), "--no-progress",
                     "--json", str(tmp_path / "out.json")])
    out = capsys.readouterr().out
    assert code == 0 and "pa_mpjpe" in out and "tiny-freihand" in out
    assert json.loads((tmp_path / "out.json").read_text())["summary"]["n"] == 2
    with isolated_plugins(TinyPlugin()):
        assert main(["eval", "--model", "echo-test", "--dataset", "tiny-freihand",
                     "--root", str(root), "--no-progress"]) == 2
    assert "no protocol for data set 'tiny-freihand'" in capsys.readouterr().err
    with isolated_plugins(TinyPlugin()):  # a data set of files, and no folder given
        assert main(["eval", "--model", "echo-test", "--dataset", "tiny-freihand",
                     "--protocol", "freihand", "--no-progress"]) != 0
    assert "--dataset tiny-freihand reads its files from a folder: give --root" in (
        capsys.readouterr().err)


def test_eval_overlap_scores_each_frame_from_the_window_predict_keeps_it_from(
        tmp_path, monkeypatch, capsys):
    from extpose_sdk import hookimpl
    from extpose_sdk.cli import main
    from extpose_sdk.commands import eval as eval_command
    from extpose_sdk.datasets.threedpw import ThreeDPW
    from extpose_sdk.engine.evaluate import _rotmats
    from extpose_sdk.testing import isolated_plugins

    class EchoThreeDPW(ThreeDPW):  # rgb: the true joints, for EchoModel to hand back
        def samples(self, sequence, frames):
            return [{**s, "rgb": fake_smpl(1.0)(_rotmats(s["global_orient"][None]),
                                                _rotmats(s["body_pose"][None]),
                                                s["betas"][None]).joints[0]}
                    for s in super().samples(sequence, frames)]

    def position_squared(joints):  # 1 mm * (the frame's place in its window)^2 on one joint
        place = torch.arange(joints.shape[1], dtype=joints.dtype)
        out = torch.zeros_like(joints)
        out[:, :, 30, 0] = 0.001 * place[None] ** 2
        return out

    class TinyPlugin:
        @hookimpl
        def extpose_register_models(self, register):
            register("echo-test", lambda checkpoint=None: EchoModel(position_squared), "echo")

        @hookimpl
        def extpose_register_datasets(self, register):
            register("echo-3dpw", lambda root, clip_length=None: EchoThreeDPW(
                root, images=False, clip_length=clip_length), "3DPW labels echoed")

    monkeypatch.setattr(eval_command, "_body_model", lambda *args: fake_smpl(1.0))
    root = fixtures.write_3dpw(tmp_path / "3DPW", frames=6, actors=1)
    command = ["eval", "--model", "echo-test", "--dataset", "echo-3dpw", "--protocol", "3dpw",
               "--root", str(root), "--gt-body-model", "stand-in", "--clip-length", "4",
               "--no-progress"]
    with isolated_plugins(TinyPlugin()):
        assert main([*command, "--overlap", "2", "--json", str(tmp_path / "w.json")]) == 0
        assert main([*command, "--json", str(tmp_path / "c.json")]) == 0
        assert main(["eval", "--model", "echo-test", "--dataset", "echo-3dpw", "--root",
                     str(root), "--protocol", "3dpw", "--overlap", "2"]) != 0
        assert "--overlap needs --clip-length T" in capsys.readouterr().err
        assert main([*command, "--overlap", "4"]) != 0
        assert "--overlap must be in [0, --clip-length=4), got 4" in capsys.readouterr().err

    def per_frame(name):
        rows = json.loads((tmp_path / name).read_text())["per_sample"]
        return [(r["frame"], round(r["mpjpe"] * 14, 3)) for r in rows]

    # windows [0, 4) and [2, 6): frames 0-2 from the first (places 0-2), 3-5 from the second
    assert per_frame("w.json") == [(0, 0), (1, 1), (2, 4), (3, 1), (4, 4), (5, 9)]
    assert per_frame("c.json") == [(0, 0), (1, 1), (2, 4), (3, 9), (4, 0), (5, 1)]


def test_score_sequences_refuses_a_clip_model_on_clips_of_another_length():
    from extpose_sdk.engine.evaluate import score_sequences

    clips = extpose_sdk.get_registries().dataset.build(
        "synthetic-hand", split="test", num_sequences=1, sequence_length=8, clip_length=4,
        crop_size=64)
    with pytest.raises(ValueError, match="a model of 8 frames on clips of 4: build the data "
                       "set with clip_length=8, or give an overlap"):
        score_sequences(torch.nn.Identity(), clips, ["rgb"], frames=8)


def test_a_real_tiny_extended_model_on_3dpw_clips(tmp_path):
    from extpose_sdk.commands.predict import SAMPLE_OPTIONS

    model = extpose_sdk.load_model("extpose-hmr2", **SAMPLE_OPTIONS)
    assert model.modalities == ("rgb", "skeleton")  # skeleton rendered from 3DPW's OpenPose
    root = fixtures.write_3dpw(tmp_path / "3DPW", frames=4, actors=1)
    data = extpose_sdk.get_registries().dataset.build("3dpw", root=root, clip_length=2)
    smpl = fake_smpl(1.0)
    result = Evaluator("3dpw", body_model=smpl, gt_body_model=smpl, batch_size=2,
                       progress=False).run(model, data)
    assert result.summary["n"] == 4
    for name in ("mpjpe", "pa_mpjpe", "pve", "pa_pve", "accel"):
        assert math.isfinite(result.summary[name])
    assert result.summary["pa_mpjpe"] == pytest.approx(0, abs=1e-3)  # the stand-in is rigid



def test_real_body_model_files_on_freihand_without_detections(tmp_path):
    from extpose_sdk.body_models import load_body_model
    from extpose_sdk.commands.predict import SAMPLE_OPTIONS
    from extpose_sdk.datasets.synthetic_models import write_synthetic_mano

    write_synthetic_mano(tmp_path / "MANO_RIGHT.pkl")
    mano = load_body_model("mano", tmp_path / "MANO_RIGHT.pkl")
    root = fixtures.write_freihand(tmp_path / "FreiHAND")
    data = extpose_sdk.get_registries().dataset.build("freihand", root=root)
    model = extpose_sdk.load_model("extpose-hamer", **SAMPLE_OPTIONS)  # skeleton absent here
    result = Evaluator("freihand", body_model=mano, progress=False).run(model, data)
    assert result.summary["n"] == 2
    assert set(result.summary) == {"n", "mpjpe", "pa_mpjpe", "pve", "pa_pve", "f@5mm", "f@15mm"}
    assert all(math.isfinite(v) for v in result.summary.values())


def test_the_mean_articulation_baseline_keeps_orientation_and_predicts_the_mean_pose():
    from extpose_sdk.engine.evaluate import mean_articulation
    from extpose_sdk.geometry import rot6d_to_rotmat

    torch.manual_seed(0)
    model = extpose_sdk.load_model("extpose-hamer", embed_dim=32, depth=1, num_heads=2,
                                   head_dim=32, head_depth=1, head_heads=2, head_dim_head=8,
                                   head_mlp_dim=16).eval()
    inputs = {m: torch.randn(2, 1, 3, 256, 256) for m in model.modalities}
    with torch.no_grad():
        full = model(inputs)
        for zero in (False, True):
            baseline = mean_articulation(model, zero=zero)
            out = baseline(inputs)
            init = baseline.head.init_hand_pose.reshape(-1, 6)[1:]
            expected = torch.eye(3).expand(15, 3, 3) if zero else rot6d_to_rotmat(init)
            torch.testing.assert_close(out.hand_pose[:, 0], expected.expand(2, 15, 3, 3))
            # the orientation, shape and camera are still the model's own
            torch.testing.assert_close(out.global_orient, full.global_orient)
            torch.testing.assert_close(out.pred_cam, full.pred_cam)
    assert not torch.allclose(full.hand_pose, out.hand_pose)  # the original is untouched


def test_the_mean_prediction_baseline_predicts_the_heads_mean_parameters_for_any_input():
    from extpose_sdk.engine.evaluate import mean_prediction
    from extpose_sdk.geometry import rot6d_to_rotmat

    torch.manual_seed(0)
    model = extpose_sdk.load_model("extpose-hamer", embed_dim=32, depth=1, num_heads=2,
                                   head_dim=32, head_depth=1, head_heads=2, head_dim_head=8,
                                   head_mlp_dim=16).eval()
    head = model.head
    with torch.no_grad():  # mean parameters that are not the defaults
        head.init_cam.copy_(torch.tensor([[0.9, 0.1, -0.2]]))
        head.init_betas.normal_()
    inputs = {m: torch.randn(2, 1, 3, 256, 256) for m in model.modalities}
    with torch.no_grad():
        full = model(inputs)
        baseline = mean_prediction(model)
        out = baseline(inputs)
    mean = rot6d_to_rotmat(head.init_hand_pose.reshape(-1, 6))
    torch.testing.assert_close(out.global_orient[:, 0, 0], mean[0].expand(2, 3, 3))
    torch.testing.assert_close(out.hand_pose[:, 0], mean[1:].expand(2, 15, 3, 3))
    torch.testing.assert_close(out.betas[:, 0], head.init_betas.expand(2, 10))
    torch.testing.assert_close(out.pred_cam[:, 0], head.init_cam.expand(2, 3))
    assert not torch.allclose(full.pred_cam, out.pred_cam)  # the original is untouched


def test_rendered_modalities_match_the_crops_of_a_data_set_of_another_crop_size():
    """A 64 px data set: the skeleton image the Evaluator draws is 64 px too (it was always
    256 px, so a 64 px skeleton model failed on a shape mismatch in ``extpose eval``)."""
    data = extpose_sdk.get_registries().dataset.build(
        "synthetic-hand", split="test", seed=5, num_sequences=1, sequence_length=2, crop_size=64)
    seen = {}

    class Recorder(torch.nn.Module):
        modalities = ("rgb", "skeleton")

        def forward(self, inputs, present):
            seen.update({m: tuple(x.shape) for m, x in inputs.items()})
            seen["present"] = present["skeleton"].tolist()
            joints = torch.zeros(inputs["rgb"].shape[0], 21, 3)
            return SimpleNamespace(pred_keypoints_3d=joints, pred_vertices=None)

    result = Evaluator("freihand", batch_size=2, progress=False).run(Recorder(), data)
    assert seen["rgb"] == seen["skeleton"] == (2, 3, 64, 64)
    assert seen["present"] == [True, True] and result.summary["n"] == 2
