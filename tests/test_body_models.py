"""SMPL / MANO body models from synthetic official-format files through the real smplx path."""

import pickle
import sys

import numpy as np
import pytest
import torch
from scipy.sparse import csc_matrix

from extpose_sdk.body_models import (
    BodyModelFileError,
    BodyModelNotFoundError,
    load_body_model,
    read_model_file,
)
from extpose_sdk.datasets.synthetic_models import (
    MANO_REST_JOINTS,
    SMPL_REST_JOINTS,
    mano_arrays,
    smpl_arrays,
    write_synthetic_mano,
    write_synthetic_smpl,
)
from extpose_sdk.geometry import axis_angle_to_rotmat

FAKE_CHUMPY = '''
import numpy as np


class Ch:
    """Like chumpy's Ch: the value in ``x``, bookkeeping beside it, the caches dropped."""

    def __init__(self, x):
        self.x = np.asarray(x)
        self._dirty_vars = {"x"}
        self._depends_on_deps = {}
        self._itr = None
        self._make_dense = False
        self._parents = {}
        self._cache = {}

    def __getstate__(self):
        state = dict(self.__dict__)
        del state["_parents"], state["_cache"]
        return state


class Add(Ch):
    """An expression: no stored value."""

    def __init__(self, a, b):
        self.a, self.b = a, b
        self._parents, self._cache = {}, {}
'''


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("body_models")
    return {
        "smpl": write_synthetic_smpl(folder / "SMPL_NEUTRAL.pkl"),
        "smpl_npz": write_synthetic_smpl(folder / "SMPL_NEUTRAL.npz"),
        "mano": write_synthetic_mano(folder / "MANO_RIGHT.pkl"),
        "folder": folder,
    }


@pytest.fixture(scope="module")
def smpl_data():
    return smpl_arrays()


@pytest.fixture(scope="module")
def smpl(files):
    return load_body_model("smpl", files["smpl"])


@pytest.fixture(scope="module")
def mano(files):
    return load_body_model("mano", files["mano"])


def _chumpy_pickle(path, arrays, tmp_path, chumpy_keys, expression_keys=()):
    """Pickle ``arrays`` (protocol 2, as the official files) with ``chumpy_keys`` as chumpy
    arrays and ``expression_keys`` as chumpy expressions of a fake chumpy package that is gone
    again afterwards."""
    package = tmp_path / "fake_site" / "chumpy"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from .ch import Ch\n")
    (package / "ch.py").write_text(FAKE_CHUMPY)
    sys.path.insert(0, str(package.parent))
    try:
        import chumpy
        from chumpy.ch import Add

        data = {k: chumpy.Ch(v) if k in chumpy_keys else v for k, v in arrays.items()}
        data.update({k: Add(chumpy.Ch(arrays[k]), 1.0) for k in expression_keys})
        data["J_regressor"] = csc_matrix(arrays["J_regressor"])
        with open(path, "wb") as file:
            pickle.dump(data, file, protocol=2)
    finally:
        sys.path.remove(str(package.parent))
        for name in [n for n in sys.modules if n == "chumpy" or n.startswith("chumpy.")]:
            del sys.modules[name]
    return path


def _random_pose(batch, joints, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return axis_angle_to_rotmat(0.4 * torch.randn(batch, joints, 3, generator=generator))


def test_smpl_pickle_with_chumpy_arrays_loads_without_chumpy(tmp_path, smpl, smpl_data):
    arrays = smpl_data
    path = _chumpy_pickle(tmp_path / "SMPL_NEUTRAL.pkl", arrays, tmp_path,
                          {"v_template", "shapedirs", "posedirs", "J"})
    assert b"chumpy" in path.read_bytes()
    data = read_model_file(path, "smpl")
    assert "chumpy" not in sys.modules
    np.testing.assert_array_equal(data["shapedirs"], arrays["shapedirs"])
    model = load_body_model("smpl", path)
    orient, pose, betas = _random_pose(2, 1), _random_pose(2, 23, seed=1), torch.randn(2, 10)
    out = model(global_orient=orient, body_pose=pose, betas=betas)
    assert out.vertices.shape == (2, 6890, 3) and out.joints.shape == (2, 44, 3)
    assert out.faces.shape == (len(arrays["f"]), 3) and out.faces.dtype == torch.long
    reference = smpl(global_orient=orient, body_pose=pose, betas=betas)
    torch.testing.assert_close(out.joints, reference.joints)
    # OpenPose nose and big toes are smplx's vertex joints; pelvis 39 = OpenPose MidHip here
    torch.testing.assert_close(out.joints[:, 0], out.vertices[:, 332])
    torch.testing.assert_close(out.joints[:, 19], out.vertices[:, 3216])
    torch.testing.assert_close(out.joints[:, 39], out.joints[:, 8], atol=2e-3, rtol=0)


def test_npz_axis_angle_and_rotation_matrices_agree(files, smpl):
    from_npz = load_body_model("smpl", files["smpl_npz"])
    axis_angle = 0.3 * torch.randn(3, 24, 3, generator=torch.Generator().manual_seed(2))
    rotmats = axis_angle_to_rotmat(axis_angle)
    a = smpl(global_orient=rotmats[:, :1], body_pose=rotmats[:, 1:], betas=torch.zeros(3, 10))
    b = from_npz(global_orient=axis_angle[:, 0], body_pose=axis_angle[:, 1:].reshape(3, 69),
                 betas=torch.zeros(3, 10))
    torch.testing.assert_close(a.vertices, b.vertices, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match=r"\(B, 23, 3, 3\).*got \(3, 22, 3, 3\)"):
        smpl(global_orient=rotmats[:, :1], body_pose=rotmats[:, 2:], betas=torch.zeros(3, 10))


def test_rest_pose_joints_are_the_skeleton(smpl, mano):
    out = smpl(global_orient=torch.eye(3).expand(1, 1, 3, 3),
               body_pose=torch.eye(3).expand(1, 23, 3, 3), betas=torch.zeros(1, 10))
    openpose_from_smpl = {1: 12, 2: 17, 4: 21, 7: 20, 8: 0, 11: 8, 14: 7}
    for openpose, joint in openpose_from_smpl.items():
        np.testing.assert_allclose(out.joints[0, openpose], SMPL_REST_JOINTS[joint], atol=1e-5)
    hand = mano(global_orient=torch.eye(3).expand(1, 1, 3, 3),
                hand_pose=torch.eye(3).expand(1, 15, 3, 3), betas=torch.zeros(1, 10))
    np.testing.assert_allclose(hand.joints[0, [0, 1, 5, 17]], MANO_REST_JOINTS[[0, 13, 1, 7]],
                               atol=1e-5)


def test_mano_gives_hamers_21_joints_and_mirrors_left_hands(files, mano):
    orient, pose, betas = _random_pose(2, 1), _random_pose(2, 15, seed=3), torch.randn(2, 10)
    right = mano(global_orient=orient, hand_pose=pose, betas=betas)
    assert right.vertices.shape == (2, 778, 3) and right.joints.shape == (2, 21, 3)
    # OpenPose tips (thumb, index, middle, ring, pinky) are MANO's fingertip vertices
    torch.testing.assert_close(right.joints[:, [4, 8, 12, 16, 20]],
                               right.vertices[:, [744, 320, 443, 554, 671]])
    left_model = load_body_model("mano", files["folder"], is_rhand=False)  # folder: MANO_RIGHT.pkl
    left = left_model(global_orient=orient, hand_pose=pose, betas=betas)
    mirror = torch.tensor([-1.0, 1.0, 1.0])
    torch.testing.assert_close(left.vertices, right.vertices * mirror)
    torch.testing.assert_close(left.joints, right.joints * mirror)
    torch.testing.assert_close(left.faces, right.faces[:, [0, 2, 1]])


def test_joint_regressor_extra_file_replaces_the_approximation(tmp_path, files, smpl):
    regressor = np.zeros((19, 6890))
    ids = np.arange(19) * 300
    regressor[np.arange(19), ids] = 1.0
    np.save(tmp_path / "J19.npy", regressor)
    model = load_body_model("smpl", files["smpl"], joint_regressor_extra=tmp_path / "J19.npy")
    out = model(global_orient=_random_pose(1, 1), body_pose=_random_pose(1, 23),
                betas=torch.zeros(1, 10))
    torch.testing.assert_close(out.joints[:, 25:], out.vertices[:, ids])
    np.save(tmp_path / "bad.npy", regressor[:9])
    with pytest.raises(BodyModelFileError, match=r"\(9, 6890\); expected \(19, 6890\)"):
        load_body_model("smpl", files["smpl"], joint_regressor_extra=tmp_path / "bad.npy")


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_a_pickle_with_an_unexpected_object_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    with open(path, "wb") as file:
        pickle.dump({"v_template": _Exploit(marker)}, file, protocol=2)
    with pytest.raises(BodyModelFileError, match=r"unexpected object \((posix|nt|os)\.system\)"):
        load_body_model("smpl", path)
    assert not marker.exists()


def test_missing_or_wrong_files_say_what_is_expected(tmp_path, files):
    with pytest.raises(BodyModelNotFoundError, match=r"SMPL_NEUTRAL\.pkl.*smpl\.is\.tue\.mpg\.de"):
        load_body_model("smpl", tmp_path / "nowhere.pkl")
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path}.*MANO_RIGHT\.pkl.*mano\.is\.tue"):
        load_body_model("mano", tmp_path)
    with pytest.raises(BodyModelFileError, match=r"not a SMPL model file.*SMPL_NEUTRAL\.pkl"):
        load_body_model("smpl", files["mano"])
    arrays = {k: v for k, v in mano_arrays().items() if k not in ("weights", "hands_mean")}
    np.savez(tmp_path / "partial.npz", **arrays)
    with pytest.raises(BodyModelFileError, match="missing keys weights, hands_mean"):
        load_body_model("mano", tmp_path / "partial.npz")
    (tmp_path / "garbage.pkl").write_bytes(b"not a pickle at all")
    with pytest.raises(BodyModelFileError, match=r"garbage\.pkl is not a readable.*MANO_RIGHT\.pkl"):
        load_body_model("mano", tmp_path / "garbage.pkl")
    with pytest.raises(ValueError, match="smpl, mano"):
        load_body_model("smplx", files["smpl"])


def test_chumpy_expressions_are_named_when_a_needed_key_is_one(tmp_path, smpl_data):
    path = _chumpy_pickle(tmp_path / "SMPL_NEUTRAL.pkl", smpl_data, tmp_path, {"shapedirs"},
                          expression_keys={"posedirs", "J"})
    with pytest.raises(BodyModelFileError, match="posedirs are chumpy expressions"):
        load_body_model("smpl", path)


def test_convert_body_model_round_trip(tmp_path):
    from extpose_sdk.cli import main

    arrays = mano_arrays()
    source = _chumpy_pickle(tmp_path / "MANO_RIGHT.pkl", arrays, tmp_path,
                            {"v_template", "shapedirs", "posedirs", "hands_components"})
    assert main(["convert", "body-model", str(source), str(tmp_path / "MANO_RIGHT.npz")]) == 0
    converted = dict(np.load(tmp_path / "MANO_RIGHT.npz", allow_pickle=False))
    assert set(converted) == set(arrays)
    for key, value in arrays.items():
        np.testing.assert_array_equal(converted[key], value, err_msg=key)
    assert main(["convert", "body-model", str(tmp_path / "none.pkl"), "x.npz"]) == 1


def test_synthetic_humanoid_and_hand_are_plausible(files, smpl_data):
    smpl = smpl_data
    v, J = smpl["v_template"], SMPL_REST_JOINTS
    np.testing.assert_allclose(smpl["J_regressor"] @ v, J, atol=1e-9)
    np.testing.assert_allclose(smpl["J_regressor"].sum(1), 1.0)
    np.testing.assert_allclose(smpl["weights"].sum(1), 1.0)
    assert 1.6 < v[:, 1].max() - v[:, 1].min() < 1.9  # an adult's height
    assert J[15, 1] > J[12, 1] > J[0, 1] > J[4, 1] > J[7, 1]  # head over neck over pelvis...
    assert J[20, 0] > 0.5 and J[21, 0] < -0.5  # SMPL's +x is the body's left
    lowest = smpl["weights"][np.argsort(v[:, 1])[:50]].argmax(1)
    assert set(lowest) <= {7, 8, 10, 11}  # the feet are lowest
    assert v[332, 2] > J[15, 2] + 0.05 and abs(v[332, 0]) < 0.01  # nose at the face's front
    assert v[2800, 0] > 0 > v[6260, 0] and v[583, 0] > 0 > v[4071, 0]  # left eye / ear at +x
    assert v[3216, 2] > J[10, 2] > v[3387, 2] and v[3216, 1] < J[7, 1]  # toes front, heel back
    assert smpl["kintree_table"][0, 0] == 4294967295 and smpl["f"].dtype == np.uint32
    edges = np.sort(smpl["f"][:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), 1).astype(np.int64)
    _, counts = np.unique(edges[:, 0] * 10**5 + edges[:, 1], return_counts=True)
    assert (counts == 2).all()  # closed surfaces: every edge between exactly two faces
    data = read_model_file(files["smpl"], "smpl")
    assert isinstance(data["J_regressor"], csc_matrix) and data["posedirs"].shape == (6890, 3, 207)
    hand = mano_arrays()
    h = hand["v_template"]
    tips = h[[320, 443, 671, 554, 744]]  # index, middle, pinky, ring, thumb: MANO finger order
    last = MANO_REST_JOINTS[[3, 6, 9, 12, 15]]
    wrist = MANO_REST_JOINTS[0]
    assert (np.linalg.norm(tips - wrist, axis=1) > np.linalg.norm(last - wrist, axis=1)).all()
    assert h.shape == (778, 3) and hand["posedirs"].shape == (778, 3, 135)
    np.testing.assert_allclose(hand["hands_components"] @ hand["hands_components"].T,
                               np.eye(45), atol=1e-9)


def test_docs_body_models_example_runs():
    from pathlib import Path

    text = (Path(__file__).parents[1] / "docs" / "body-models.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    assert len(blocks) == 1
    namespace: dict = {}
    exec(compile(blocks[0], "docs/body-models.md", "exec"), namespace)
    assert namespace["out"].joints.shape == (2, 44, 3)
    assert namespace["hand"].joints.shape == (2, 21, 3)
