"""TarShards: the official HMR2.0 / HaMeR WebDataset tar layout, built here in tiny shards."""

from __future__ import annotations

import builtins
import io
import os
import pickle
import tarfile

import cv2
import numpy as np
import pytest
import torch

import extpose_sdk
from extpose_sdk.data.sample import check_sample, collate

pytest.importorskip("webdataset")

from extpose_sdk.datasets import tars  # noqa: E402
from extpose_sdk.datasets.files import DatasetFileError  # noqa: E402
from extpose_sdk.datasets.tars import TarShardError, TarShards, UnsafeSampleError  # noqa: E402

H, W = 64, 80
# bbox side: the 40 px box expanded to the 192:256 aspect -> max(40, 4/3 * 40) = 160/3
SIDE = 160.0 / 3.0


def image(seed: int = 0) -> np.ndarray:
    """An asymmetric (H, W, 3) uint8 RGB picture."""
    rng = np.random.default_rng(seed)
    out = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    out[:, : W // 2, 0] = 250  # left half red
    return out


def encode(rgb: np.ndarray, ext: str = "jpg") -> bytes:
    ok, data = cv2.imencode(f".{ext}", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return data.tobytes()


def person(kind: str = "body", center=(40.0, 32.0), confident: int | None = None, **extra):
    n = 44 if kind == "body" else 21
    rng = np.random.default_rng(int(center[0]))
    points = np.zeros((n, 3))
    points[:, 0] = center[0] + rng.uniform(-15, 15, n)
    points[:, 1] = center[1] + rng.uniform(-15, 15, n)
    points[:, 2] = 1.0
    points[0] = (center[0] + 10.0, center[1] - 8.0, 0.9)  # pinned below
    if confident is not None:
        points[confident:, 2] = 0.0
    pose_key, pose_size = ("body_pose", 72) if kind == "body" else ("hand_pose", 48)
    out = {
        "keypoints_2d": points,
        "keypoints_3d": np.concatenate([rng.normal(0, 0.3, (n, 3)), np.ones((n, 1))], 1),
        "center": np.array(center, dtype=np.float64),
        "scale": np.array([0.2, 0.2]),
        pose_key: rng.normal(0, 0.2, pose_size),
        "betas": rng.normal(0, 1, 10),
        f"has_{pose_key}": np.array(1.0),
        "has_betas": np.array(1.0),
        "extra_info": {"fitting_loss": np.array(0.5), "source": "test"},
    }
    out.update(extra)
    return out


def write_shard(path, samples) -> str:
    """A tar in the official layout: ``samples`` is a list of (key, {ext: bytes})."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for key, files in samples:
            for ext, data in files.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return str(path)


def entry(people, rgb=None, ext="jpg") -> dict[str, bytes]:
    return {ext: encode(image() if rgb is None else rgb, ext), "data.pyd": pickle.dumps(people)}


def read(*args, **options) -> list[dict]:
    options = {"augment": False, "shuffle": 0, **options}
    return list(TarShards(*args, **options))


@pytest.fixture()
def body_shard(tmp_path):
    return write_shard(tmp_path / "bodies" / "000000.tar", [
        ("img_a", entry([person(), person(center=(20.0, 30.0), has_betas=np.array(0.0))])),
        ("img_b", entry([person(center=(55.0, 35.0))])),
    ])


def test_body_shard_yields_one_sample_per_person(body_shard):
    samples = read(urls=body_shard)
    assert [(s["image_path"], s["sequence"], s["dataset"]) for s in samples] == [
        ("img_a", "000000", "bodies")] * 2 + [("img_b", "000000", "bodies")]
    for s in samples:
        check_sample(s, sizes={"K": 44, "J": 25})
        assert s["keypoints_2d"].shape == (44, 3) and s["keypoints_3d"].shape == (44, 4)
        assert s["global_orient"].shape == (3,) and s["body_pose"].shape == (69,)
        assert s["betas"].shape == (10,) and s["rgb"].shape == (3, 256, 256)
        assert s["detected_keypoints_2d"].shape == (25, 3)
        assert (s["joint_set"], s["detected_layout"]) == ("smpl44", "openpose_body25")
        assert s["frame"].dtype == torch.int64 and int(s["frame"]) == 0
        assert s["image_hw"].tolist() == [H, W]
        assert "is_right" not in s
        for flag in ("has_global_orient", "has_body_pose", "has_detected_keypoints_2d"):
            assert s[flag].dtype == torch.bool and s[flag].shape == () and bool(s[flag])
    assert [bool(s["has_betas"]) for s in samples] == [True, False, True]

    first, source = samples[0], person()
    # center (40, 32), scale 0.2 -> box 20..60 x 12..52; crop-normalised = (p - c) / SIDE
    assert first["box"].tolist() == [20.0, 12.0, 60.0, 52.0]
    assert np.allclose(first["center"], [40, 32]) and np.allclose(first["scale"], [0.2, 0.2])
    assert np.allclose(first["keypoints_2d"][0], [0.1875, -0.15, 0.9], atol=1e-5)
    expected = (source["keypoints_2d"][:, :2] - [40.0, 32.0]) / SIDE
    assert np.allclose(first["keypoints_2d"][:, :2], expected, atol=1e-5)
    assert np.allclose(first["keypoints_2d"][:, 2], source["keypoints_2d"][:, 2])
    assert np.allclose(first["detected_keypoints_2d"], source["keypoints_2d"][:25], atol=1e-4)
    assert np.allclose(first["keypoints_3d"], source["keypoints_3d"], atol=1e-6)
    assert np.allclose(first["global_orient"], source["body_pose"][:3], atol=1e-6)
    assert np.allclose(first["body_pose"], source["body_pose"][3:], atol=1e-6)
    assert np.allclose(first["betas"], source["betas"], atol=1e-6)
    batch = collate(samples)
    assert batch["rgb"].shape == (3, 3, 256, 256) and batch["image_path"][2] == "img_b"


def test_augmentation_is_seeded_and_keeps_the_layout(body_shard):
    one = read(urls=body_shard, augment=True, seed=3)
    two = read(urls=body_shard, augment=True, seed=3)
    other = read(urls=body_shard, augment=True, seed=4)
    for a, b in zip(one, two, strict=True):
        check_sample(a, sizes={"K": 44, "J": 25})
        assert torch.equal(a["rgb"], b["rgb"]) and torch.equal(a["keypoints_2d"], b["keypoints_2d"])
    assert not all(torch.equal(a["crop_transform"], c["crop_transform"])
                   for a, c in zip(one, other, strict=True))
    # a new epoch draws new augmentations
    data = TarShards(urls=body_shard, augment=True, shuffle=0, seed=3)
    first, second = list(data), list(data)
    assert not torch.equal(first[0]["crop_transform"], second[0]["crop_transform"])


def test_left_hand_is_mirrored_into_a_right_hand(tmp_path):
    rgb = image(1)
    left = person("hand", right=np.array(0.0))
    # the same hand as a right hand in the mirrored picture: x -> W - 1 - x, pose y, z negated
    right = person("hand")
    right["center"] = np.array([W - 1 - 40.0, 32.0])
    right["keypoints_2d"] = left["keypoints_2d"].copy()
    right["keypoints_2d"][:, 0] = W - 1 - left["keypoints_2d"][:, 0]
    right["keypoints_3d"] = left["keypoints_3d"] * [-1, 1, 1, 1]
    right["hand_pose"] = (left["hand_pose"].reshape(16, 3) * [1, -1, -1]).reshape(48)
    right["betas"] = left["betas"]
    unlabelled = person("hand")  # no 'right'
    shard = write_shard(tmp_path / "hands" / "000000.tar", [
        ("left", entry([left], rgb, "png")),
        ("mirror", entry([right], rgb[:, ::-1].copy(), "png")),
        ("plain", entry([unlabelled], rgb, "png")),
    ])
    flipped, mirror, plain = read(urls=shard, kind="hand")
    for s in (flipped, mirror, plain):
        check_sample(s, sizes={"K": 21, "J": 21})
        assert s["hand_pose"].shape == (45,) and s["is_right"].shape == ()
        assert (s["joint_set"], s["detected_layout"]) == ("mano21", "openpose_hand21")
        assert float(s["is_right"]) == 1.0  # the crop shows a right hand
    # the left hand's crop is the mirrored picture's right hand
    assert np.allclose(flipped["keypoints_2d"][0], [-0.1875, -0.15, 0.9], atol=1e-5)
    for name in ("keypoints_2d", "keypoints_3d", "hand_pose", "global_orient", "betas"):
        assert np.allclose(flipped[name], mirror[name], atol=1e-5), name
    assert (flipped["rgb"] - mirror["rgb"]).abs().max() < 0.05
    assert np.allclose(flipped["hand_pose"].reshape(15, 3),
                       left["hand_pose"][3:].reshape(15, 3) * [1, -1, -1], atol=1e-6)
    # the skeleton's keypoints stay in full-image px and go through the (mirroring) crop
    assert np.allclose(flipped["detected_keypoints_2d"], left["keypoints_2d"], atol=1e-4)
    assert flipped["crop_transform"][0, 0] < 0 < plain["crop_transform"][0, 0]
    # a hand without 'right' is a right hand, not mirrored
    assert np.allclose(plain["keypoints_2d"][0], [0.1875, -0.15, 0.9], atol=1e-5)


class _Exploit:
    def __init__(self, call, argument):
        self.call, self.argument = call, argument

    def __reduce__(self):
        return self.call, (self.argument,)


@pytest.mark.parametrize("how", ["os.system", "builtins.eval"])
def test_a_pickle_that_runs_code_is_refused(tmp_path, how):
    target = tmp_path / "SOMEFILE"
    if how == "os.system":
        exploit = _Exploit(os.system, f"touch {target}")
    else:
        exploit = _Exploit(builtins.eval, f"__import__('os').system('touch {target}')")
    payload = pickle.dumps([person(), exploit])
    shard = write_shard(tmp_path / "evil" / "000000.tar",
                        [("bad_key", {"jpg": encode(image()), "data.pyd": payload})])
    with pytest.raises(UnsafeSampleError, match=r"evil/000000\.tar: sample 'bad_key'") as error:
        read(urls=shard)
    assert "system" in str(error.value) or "eval" in str(error.value)
    assert not target.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_numpy_pickles_of_every_protocol_are_read(protocol):
    source = person()
    people = tars.load_people(pickle.dumps([source], protocol=protocol), "s.tar", "k")
    assert people[0]["extra_info"] == {"fitting_loss": 0.5, "source": "test"}
    for name in ("keypoints_2d", "keypoints_3d", "body_pose", "has_betas"):
        assert np.array_equal(people[0][name], source[name])


def test_oversized_and_malformed_pickles_are_refused(tmp_path, monkeypatch):
    shard = write_shard(tmp_path / "s" / "000000.tar", [("k", entry([person()]))])
    monkeypatch.setattr(tars, "MAX_PICKLE_BYTES", 100)
    with pytest.raises(TarShardError, match=r"000000\.tar: sample 'k'.*over the 100-byte limit"):
        read(urls=shard)
    monkeypatch.undo()
    broken = write_shard(tmp_path / "b" / "000000.tar",
                         [("k", {"jpg": encode(image()), "data.pyd": b"\x80\x04garbage"})])
    with pytest.raises(TarShardError, match=r"b/000000\.tar: sample 'k'"):
        read(urls=broken)
    bad_shape = person()
    bad_shape["keypoints_2d"] = bad_shape["keypoints_2d"][:21]
    wrong = write_shard(tmp_path / "w" / "000000.tar", [("k", entry([bad_shape]))])
    with pytest.raises(TarShardError, match=r"keypoints_2d has shape \(21, 3\), expected \(44, 3\)"):
        read(urls=wrong)


def test_ranks_see_disjoint_shards_covering_everything(tmp_path):
    shards = [write_shard(tmp_path / "set" / f"{i:06d}.tar",
                          [(f"s{i}_{j}", entry([person()])) for j in range(2)]) for i in range(2)]
    pattern = str(tmp_path / "set" / "{000000..000001}.tar")
    assert tars.expand_urls(pattern) == shards
    keys = [{s["image_path"] for s in read(urls=pattern, rank=r, world_size=2)} for r in (0, 1)]
    assert keys[0] and keys[1] and not keys[0] & keys[1]
    assert keys[0] | keys[1] == {"s0_0", "s0_1", "s1_0", "s1_1"}
    whole = read(tmp_path / "set", shuffle=10)  # root: its *.tar files, shuffled
    assert sorted(s["image_path"] for s in whole) == ["s0_0", "s0_1", "s1_0", "s1_1"]
    assert TarShards(tmp_path, split="set").urls == shards  # or root/<split>/*.tar
    with pytest.raises(ValueError, match="both rank and world_size"):
        TarShards(urls=pattern, rank=0)


def test_people_with_too_few_confident_keypoints_are_dropped(tmp_path):
    weak = person(center=(20.0, 30.0), confident=3)
    doubtful = person(center=(60.0, 30.0))
    doubtful["keypoints_2d"][:, 2] = 0.3
    shard = write_shard(tmp_path / "f" / "000000.tar", [("k", entry([person(), weak, doubtful]))])
    assert [s["center"][0].item() for s in read(urls=shard)] == [40.0, 60.0]
    assert [s["center"][0].item() for s in read(urls=shard, conf_threshold=0.5)] == [40.0]
    assert len(read(urls=shard, min_keypoints=3)) == 3


def test_missing_root_and_shards_are_named(tmp_path):
    with pytest.raises(DatasetFileError, match="nowhere"):
        TarShards(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetFileError, match=r"no \*\.tar shards in .*empty"):
        TarShards(tmp_path / "empty")
    with pytest.raises(DatasetFileError, match=r"missing tar shard: .*000003\.tar"):
        TarShards(urls=str(tmp_path / "x" / "{000003..000004}.tar"))


def test_registered_as_tar_shards(body_shard):
    data = extpose_sdk.get_registries().dataset.build("tar-shards", urls=[body_shard],
                                                      augment=False, shuffle=0)
    assert isinstance(data, TarShards) and len(list(data)) == 3
    assert len(list(pickle.loads(pickle.dumps(data)))) == 3  # DataLoader workers get a copy
