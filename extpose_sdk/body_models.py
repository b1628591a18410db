"""SMPL and MANO through smplx, read from the user's model files without chumpy.

``load_body_model(kind, path)`` gives a torch module that turns rotation matrices (or
axis-angle vectors) into vertices and joints, the way HMR2.0 and HaMeR do::

    smpl = load_body_model("smpl", "SMPL_NEUTRAL.pkl")
    out = smpl(global_orient=R0 (B,1,3,3), body_pose=R (B,23,3,3), betas=b (B,10))
    out.vertices (B, 6890, 3), out.joints (B, 44, 3), out.faces (F, 3)

    mano = load_body_model("mano", "MANO_RIGHT.pkl")            # is_rhand=False: a left hand
    out = mano(global_orient=R0 (B,1,3,3), hand_pose=R (B,15,3,3), betas=b (B,10))
    out.vertices (B, 778, 3), out.joints (B, 21, 3) in OpenPose hand order

- SMPL: smplx's ``SMPLLayer`` (24 joints plus its extra vertex joints), mapped to OpenPose
  BODY_25, then 19 more joints regressed from the vertices = HMR2.0's 44 (pelvis at 39).
  HMR2.0 regresses the 19 with ``SMPL_to_J19.pkl``; pass it as ``joint_regressor_extra=``
  (``.pkl``, ``.npy`` or ``.npz``, shape (19, 6890)). Without it they are an APPROXIMATION
  from SMPL's own joint regressor (see ``J19_APPROXIMATION``), close but not HMR2.0's numbers.
- MANO: smplx's ``MANOLayer`` (16 joints) plus the fingertip vertices, reordered to OpenPose
  (HaMeR's 21). The file is the right hand; ``is_rhand=False`` gives the left hand as HaMeR
  draws it, the mirror image (x -> -x) of the right-hand result with re-oriented faces.
- Files: ``.pkl`` as distributed (python-2 pickles holding chumpy arrays and a scipy sparse
  regressor) read by the SDK's restricted unpickler (``extpose_sdk.safe_pickle``, policy
  ``BODY_MODEL``) that builds only numpy / scipy arrays (chumpy arrays become numpy, a sparse
  matrix is at most ``MAX_SPARSE_ELEMENTS`` when dense; anything else is refused, nothing in
  the file is run), or ``.npz``
  (``extpose convert body-model in.pkl out.npz``). smplx gets the arrays as a ``data_struct``.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from extpose_sdk import safe_pickle
from extpose_sdk.safe_pickle import ChumpyStandIn, UnsafePickleError
from extpose_sdk.subjects import BODY, HAND

KINDS = ("smpl", "mano")
#: What each kind needs: the file users give, where they get it, its size.
EXPECTED_FILE = {"smpl": "SMPL_NEUTRAL.pkl", "mano": "MANO_RIGHT.pkl"}
WHERE = {"smpl": "https://smpl.is.tue.mpg.de", "mano": "https://mano.is.tue.mpg.de"}
NUM_VERTICES = {"smpl": 6890, "mano": 778}
NUM_JOINTS = {"smpl": 24, "mano": 16}
REQUIRED_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights",
                 "kintree_table", "f")  # fmt: skip
MANO_KEYS = ("hands_components", "hands_mean")

#: smplx SMPL joints (24 + nose, eyes, ears, feet) -> OpenPose BODY_25, as HMR2.0 maps them.
SMPL_TO_OPENPOSE = (24, 12, 17, 19, 21, 16, 18, 20, 0, 2, 5, 8, 1, 4, 7,
                    25, 26, 27, 28, 29, 30, 31, 32, 33, 34)  # fmt: skip
#: HMR2.0's 19 extra joints (after the 25 OpenPose ones) and their approximation used without
#: ``SMPL_to_J19.pkl``: weights over SMPL joints (regressed from the posed vertices with SMPL's
#: own J_regressor) or ``"top"``: SMPL's head-top vertex 411.
J19_APPROXIMATION = (
    ("right_ankle", {8: 1.0}), ("right_knee", {5: 1.0}), ("right_hip", {2: 1.0}),
    ("left_hip", {1: 1.0}), ("left_knee", {4: 1.0}), ("left_ankle", {7: 1.0}),
    ("right_wrist", {21: 1.0}), ("right_elbow", {19: 1.0}), ("right_shoulder", {17: 1.0}),
    ("left_shoulder", {16: 1.0}), ("left_elbow", {18: 1.0}), ("left_wrist", {20: 1.0}),
    ("neck_lsp", {12: 1.0}), ("head_top_lsp", {"top": 1.0}), ("pelvis_mpii", {0: 1.0}),
    ("thorax_mpii", {9: 0.5, 12: 0.5}), ("spine_h36m", {6: 1.0}),
    ("jaw_h36m", {12: 0.5, 15: 0.5}), ("head_h36m", {15: 0.5, "top": 0.5}),
)  # fmt: skip
HEAD_TOP_VERTEX = 411
#: MANO fingertip vertices (thumb, index, middle, ring, pinky) and HaMeR's OpenPose reorder.
MANO_TIP_VERTICES = (744, 320, 443, 554, 671)
MANO_TO_OPENPOSE = (0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20)


class BodyModelFileError(ValueError):
    """A SMPL / MANO model file that is missing, unreadable, unsafe or of the wrong kind."""


class BodyModelNotFoundError(BodyModelFileError, FileNotFoundError):
    """The model file is not there."""


@attrs.define
class BodyModelOutput:
    """``vertices (B, V, 3)``, ``joints (B, 44|21, 3)``, ``faces (F, 3)`` long."""

    vertices: torch.Tensor
    joints: torch.Tensor
    faces: torch.Tensor


# -- reading model files --------------------------------------------------------------------


def _to_array(value: Any) -> Any:
    """numpy (or scipy sparse) value of an unpickled entry; chumpy stand-ins -> their array."""
    if isinstance(value, ChumpyStandIn) and value.array is not None:
        return _to_array(value.array)
    return value  # a chumpy expression stays a stand-in: refused if it is a needed key


def _unpickle(path: Path, what: str) -> Any:
    """The object in the pickle ``path``, read under the ``BODY_MODEL`` policy (numpy, scipy
    sparse, chumpy stand-ins: ``extpose_sdk.safe_pickle``)."""
    with open(path, "rb") as file:
        try:
            return safe_pickle.load(file, safe_pickle.BODY_MODEL)
        except UnsafePickleError as error:
            detail = f": {error.why}" if error.why else ""
            raise BodyModelFileError(
                f"{path} holds an unexpected object ({error.qualified}){detail}; a SMPL / MANO "
                "model file holds only numpy, scipy and chumpy arrays, so it was not loaded"
            ) from None
        except Exception as error:
            raise BodyModelFileError(f"{path} is not a readable {what}: {error}") from error


def _read_pickle(path: Path) -> dict[str, Any]:
    data = _unpickle(path, "model pickle")
    if not isinstance(data, dict):
        raise BodyModelFileError(f"{path} holds a {type(data).__name__}, not a model dict")
    return {str(key): _to_array(value) for key, value in data.items()}


def _read_npz(path: Path) -> dict[str, Any]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (ValueError, OSError) as error:
        raise BodyModelFileError(f"{path} is not a readable model .npz: {error}") from error


def _not_found(kind: str | None, path: Path) -> BodyModelNotFoundError:
    expected = EXPECTED_FILE.get(kind or "", "SMPL_NEUTRAL.pkl or MANO_RIGHT.pkl")
    where = WHERE.get(kind or "", f"{WHERE['smpl']} / {WHERE['mano']}")
    return BodyModelNotFoundError(
        f"no {kind.upper() if kind else 'SMPL / MANO'} model file at {path}: expected "
        f"{expected} (or its .npz conversion), which you obtain from {where} (free "
        "registration) and pass by path"
    )


def read_model_file(path: str | Path, kind: str | None = None) -> dict[str, Any]:
    """The arrays of a SMPL / MANO model file (``.pkl`` or ``.npz``), checked for ``kind``.

    chumpy arrays come back as numpy, ``J_regressor`` possibly as a scipy sparse matrix. A
    missing file names the file expected and where to get it; missing keys are named.
    """
    path = Path(path)
    if path.is_dir() and kind is not None:
        path = path / EXPECTED_FILE[kind]
    if not path.is_file():
        raise _not_found(kind, path)
    try:
        data = _read_npz(path) if path.suffix == ".npz" else _read_pickle(path)
    except BodyModelFileError as error:
        if kind is None or "unexpected object" in str(error):
            raise
        raise BodyModelFileError(f"{error} (expected {EXPECTED_FILE[kind]} from {WHERE[kind]}, "
                                 "or its .npz conversion)") from error
    if kind is not None:
        _check(data, kind, path)
    return data


def _check(data: dict[str, Any], kind: str, path: Path) -> None:
    what = f"{path} is not a {kind.upper()} model file (expected {EXPECTED_FILE[kind]} from "
    what += f"{WHERE[kind]})"
    required = REQUIRED_KEYS + (MANO_KEYS if kind == "mano" else ())
    missing = [k for k in required if k not in data]
    if missing:
        raise BodyModelFileError(f"{what}: missing keys {', '.join(missing)}")
    unreadable = [k for k in required if isinstance(data[k], ChumpyStandIn)]
    if unreadable:
        raise BodyModelFileError(
            f"{path}: {', '.join(unreadable)} are chumpy expressions without a stored value; "
            "convert the file where chumpy runs (np.asarray of each entry) or use the official file")
    vertices = np.shape(data["v_template"])
    joints = np.shape(data["J_regressor"])
    expected = (NUM_VERTICES[kind], NUM_JOINTS[kind])
    if vertices != (expected[0], 3) or joints != (expected[1], expected[0]):
        raise BodyModelFileError(
            f"{what}: v_template {vertices} and J_regressor {joints}; expected "
            f"({expected[0]}, 3) and ({expected[1]}, {expected[0]})")


def _data_struct(data: dict[str, Any]):
    from smplx.utils import Struct

    arrays = {}
    for key, value in data.items():
        if hasattr(value, "toarray"):  # scipy sparse
            value = value.toarray()
        if isinstance(value, (np.ndarray, np.generic)):
            arrays[key] = value
    return Struct(**arrays)


def _quiet(build):
    """smplx prints a warning for 10-shape-coefficient models; that is what SMPL files have."""
    with contextlib.redirect_stdout(io.StringIO()):
        return build()


# -- the modules ----------------------------------------------------------------------------


def _rotmats(x: torch.Tensor, joints: int, name: str, dtype: torch.dtype) -> torch.Tensor:
    """``(B, joints, 3, 3)`` rotation matrices from rotation matrices or axis-angle of any
    batch layout ``(B, joints, 3, 3)`` / ``(B, 3*joints)`` / ``(B, joints, 3)``."""
    x = torch.as_tensor(x).to(dtype)
    batch = x.shape[0] if x.dim() > 0 else 0
    per_item = x[0].numel() if batch else 0
    if x.dim() >= 3 and x.shape[-2:] == (3, 3) and per_item == 9 * joints:
        return x.reshape(batch, joints, 3, 3)
    if x.dim() >= 2 and per_item == 3 * joints:
        from extpose_sdk.geometry import axis_angle_to_rotmat

        return axis_angle_to_rotmat(x.reshape(batch, joints, 3))
    raise ValueError(f"{name}: expected ({'B'}, {joints}, 3, 3) rotation matrices or "
                     f"(B, {3 * joints}) axis-angle; got {tuple(x.shape)}")


def _layer_inputs(layer, global_orient, pose_name: str, pose, joints: int, betas, transl) -> dict:
    """Checked rotation matrices, shape and translation on the smplx layer's device and dtype."""
    dtype, device = layer.shapedirs.dtype, layer.shapedirs.device
    orient = _rotmats(global_orient, 1, "global_orient", dtype).to(device)
    pose = _rotmats(pose, joints, pose_name, dtype).to(device)
    if pose.shape[0] != orient.shape[0]:
        raise ValueError(f"{pose_name} has batch {pose.shape[0]}, global_orient {orient.shape[0]}")
    return {
        "global_orient": orient,
        pose_name: pose,
        "betas": _betas(betas, orient.shape[0], orient),
        "transl": None if transl is None else torch.as_tensor(transl).to(orient),
    }


def _betas(betas: torch.Tensor | None, batch: int, like: torch.Tensor) -> torch.Tensor:
    if betas is None:
        return like.new_zeros(batch, 10)
    betas = torch.as_tensor(betas).to(like)
    if betas.dim() != 2 or betas.shape[0] != batch:
        raise ValueError(f"betas: expected ({batch}, 10); got {tuple(betas.shape)}")
    return betas


class SMPLModel(torch.nn.Module):
    """SMPL neutral with HMR2.0's 44 joints (25 OpenPose + 19, pelvis at 39)."""

    kind = "smpl"
    subject = BODY
    joint_set = BODY.joint_set

    def __init__(self, data: dict[str, Any], path: Path, joint_regressor_extra=None):
        super().__init__()
        import smplx

        self.layer = _quiet(lambda: smplx.SMPLLayer(model_path=str(path),
                                                    data_struct=_data_struct(data), num_betas=10))
        self.register_buffer("faces", self.layer.faces_tensor.clone(), persistent=False)
        self.register_buffer("joint_map", torch.tensor(SMPL_TO_OPENPOSE), persistent=False)
        if joint_regressor_extra is None:
            extra = _approximate_j19(self.layer.J_regressor.double().numpy())
            self.j19_approximated = True
        else:
            extra = read_joint_regressor_extra(joint_regressor_extra)
            self.j19_approximated = False
        self.register_buffer("joint_regressor_extra", torch.as_tensor(extra, dtype=torch.float32),
                             persistent=False)

    def forward(self, global_orient, body_pose, betas=None, transl=None) -> BodyModelOutput:
        out = self.layer(**_layer_inputs(self.layer, global_orient, "body_pose", body_pose, 23,
                                         betas, transl))
        extra = torch.einsum("jv,bvc->bjc", self.joint_regressor_extra.to(out.vertices),
                             out.vertices)
        joints = torch.cat([out.joints[:, self.joint_map], extra], dim=1)
        return BodyModelOutput(vertices=out.vertices, joints=joints, faces=self.faces)


def _approximate_j19(j_regressor: np.ndarray) -> np.ndarray:
    """(19, V) regressor of HMR2.0's extra joints from SMPL's J_regressor (J19_APPROXIMATION)."""
    rows = np.zeros((len(J19_APPROXIMATION), j_regressor.shape[1]))
    for row, (_, parts) in enumerate(J19_APPROXIMATION):
        for part, weight in parts.items():
            if part == "top":
                rows[row, HEAD_TOP_VERTEX] += weight
            else:
                rows[row] += weight * j_regressor[part]
    return rows


def read_joint_regressor_extra(path: str | Path) -> np.ndarray:
    """HMR2.0's ``SMPL_to_J19.pkl`` (or a ``.npy`` / ``.npz``) as a dense (19, 6890) array."""
    path = Path(path)
    if not path.is_file():
        raise BodyModelNotFoundError(
            f"no joint regressor at {path}: expected HMR2.0's SMPL_to_J19.pkl (19 x 6890), "
            "which comes with HMR2.0's data download; or leave it out for the approximation")
    if path.suffix == ".npy":
        value = np.load(path, allow_pickle=False)
    elif path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            value = archive[archive.files[0]]
    else:
        value = _to_array(_unpickle(path, "regressor"))
    if hasattr(value, "toarray"):
        value = value.toarray()
    value = np.asarray(value, dtype=np.float64)
    if value.shape != (19, NUM_VERTICES["smpl"]):
        raise BodyModelFileError(f"{path}: joint regressor of shape {value.shape}; expected "
                                 f"(19, {NUM_VERTICES['smpl']})")
    return value


class MANOModel(torch.nn.Module):
    """MANO with HaMeR's 21 OpenPose-order joints; ``is_rhand=False`` mirrors to a left hand."""

    kind = "mano"
    subject = HAND
    joint_set = HAND.joint_set

    def __init__(self, data: dict[str, Any], path: Path, is_rhand: bool = True):
        super().__init__()
        import smplx

        self.is_rhand = is_rhand
        self.layer = _quiet(lambda: smplx.MANOLayer(
            model_path=str(path), data_struct=_data_struct(data), is_rhand=True, use_pca=False,
            flat_hand_mean=True, num_betas=10))
        faces = self.layer.faces_tensor.clone()
        self.register_buffer("faces", faces if is_rhand else faces[:, [0, 2, 1]],
                             persistent=False)
        self.register_buffer("tip_vertices", torch.tensor(MANO_TIP_VERTICES), persistent=False)
        self.register_buffer("joint_map", torch.tensor(MANO_TO_OPENPOSE), persistent=False)

    def forward(self, global_orient, hand_pose, betas=None, transl=None) -> BodyModelOutput:
        out = self.layer(**_layer_inputs(self.layer, global_orient, "hand_pose", hand_pose, 15,
                                         betas, transl))
        joints = torch.cat([out.joints, out.vertices[:, self.tip_vertices]], dim=1)
        joints, vertices = joints[:, self.joint_map], out.vertices
        if not self.is_rhand:  # HaMeR: a left hand is the right-hand result mirrored in x
            sign = vertices.new_tensor([-1.0, 1.0, 1.0])
            joints, vertices = joints * sign, vertices * sign
        return BodyModelOutput(vertices=vertices, joints=joints, faces=self.faces)


def load_body_model(kind: str, path: str | Path, *, joint_regressor_extra: str | Path | None = None,
                    is_rhand: bool = True) -> SMPLModel | MANOModel:
    """The ``kind`` ("smpl" | "mano") body model in ``path`` (``.pkl`` / ``.npz``, or a folder
    holding SMPL_NEUTRAL.pkl / MANO_RIGHT.pkl).

    ``joint_regressor_extra``: HMR2.0's ``SMPL_to_J19.pkl`` for the 19 extra SMPL joints (else
    approximated, see the module docstring). ``is_rhand=False``: MANO's left hand, mirrored from
    the right-hand file as HaMeR does.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown body model {kind!r}; available: {', '.join(KINDS)}")
    path = Path(path)
    data = read_model_file(path, kind)
    if kind == "smpl":
        return SMPLModel(data, path, joint_regressor_extra=joint_regressor_extra)
    return MANOModel(data, path, is_rhand=is_rhand)


def convert_model_file(source: str | Path, target: str | Path) -> tuple[Path, list[str]]:
    """A ``.pkl`` model file -> ``.npz`` with the same arrays (sparse stored dense, chumpy as
    numpy). Returns the target and the keys left out (entries that are not arrays)."""
    data = read_model_file(source)
    arrays, skipped = {}, []
    for key, value in data.items():
        if hasattr(value, "toarray"):
            value = value.toarray()
        if isinstance(value, (np.ndarray, np.generic, str, int, float)):
            arrays[key] = np.asarray(value)
        else:
            skipped.append(key)
    missing = [k for k in REQUIRED_KEYS if k not in arrays]
    if missing:
        raise BodyModelFileError(f"{source} is not a SMPL / MANO model file: missing keys "
                                 f"{', '.join(missing)}")
    target = Path(target)
    if target.suffix != ".npz":
        raise ValueError(f"the converted file is a .npz; got {target}")
    np.savez(target, **arrays)
    return target, skipped
