"""Synthetic SMPL- and MANO-format model files: the official layout, a made-up geometry.

The licensed SMPL / MANO files cannot ship with the SDK, yet tests, examples and the synthetic
data set need a model that loads through the real code. These files have the official keys,
dtypes and shapes (``v_template (V,3)``, ``shapedirs (V,3,10)``, ``posedirs (V,3,9(J-1))``,
``J_regressor (J,V)`` as a scipy CSC matrix, ``weights (V,J)``, ``kintree_table (2,J)``,
``f (F,3)`` uint32; MANO also ``hands_components (45,45)``, ``hands_mean (45,)``) and a
plausible shape, so rendered frames look like limbs::

    write_synthetic_smpl("SMPL_NEUTRAL.pkl")       # 6890 vertices, 24 joints, a humanoid
    write_synthetic_mano("MANO_RIGHT.npz")         # 778 vertices, 16 joints, a right hand

The geometry: closed tubes (rings of vertices, capped at both ends) along the bones of a T-pose
skeleton at SMPL's / MANO's joint positions (metres; SMPL's +x is the body's left, +y up, +z
the front). Each tube is skinned to the joint that moves it; each joint is regressed as the mean
of the ring that starts at it (rows of ``J_regressor`` sum to 1, the regressed rest joints are
the skeleton). The vertex ids that smplx reads as extra joints (nose, eyes, ears, toes, heels,
fingertips) hold vertices at those places. Shape directions change size, thickness and limb
length smoothly. Everything is deterministic. ``.pkl`` is a protocol-2 pickle of the dict (as
the official files, without chumpy), ``.npz`` the same arrays with ``J_regressor`` dense.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import attrs
import numpy as np

SMPL_VERTICES = 6890
MANO_VERTICES = 778
ROOT_PARENT = 4294967295  # the official files' parent of the root (uint32 -1)

SMPL_JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hand", "right_hand",
)  # fmt: skip
SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
#: T-pose rest joints of a neutral adult (m), close to SMPL's, left/right symmetric.
SMPL_REST_JOINTS = np.array([
    [0.000, -0.223, 0.028], [0.068, -0.310, 0.015], [-0.068, -0.310, 0.015],
    [0.000, -0.114, 0.000], [0.103, -0.694, 0.012], [-0.103, -0.694, 0.012],
    [0.000, 0.020, 0.010], [0.088, -1.093, -0.032], [-0.088, -1.093, -0.032],
    [0.000, 0.074, 0.030], [0.118, -1.150, 0.090], [-0.118, -1.150, 0.090],
    [0.000, 0.287, -0.013], [0.078, 0.190, -0.003], [-0.078, 0.190, -0.003],
    [0.000, 0.377, 0.038], [0.170, 0.224, -0.016], [-0.170, 0.224, -0.016],
    [0.430, 0.212, -0.035], [-0.430, 0.212, -0.035], [0.687, 0.220, -0.040],
    [-0.687, 0.220, -0.040], [0.772, 0.212, -0.050], [-0.772, 0.212, -0.050],
])  # fmt: skip

MANO_JOINT_NAMES = (
    "wrist", "index1", "index2", "index3", "middle1", "middle2", "middle3", "pinky1", "pinky2",
    "pinky3", "ring1", "ring2", "ring3", "thumb1", "thumb2", "thumb3",
)  # fmt: skip
MANO_PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)
#: Right-hand rest joints (m), MANO-like: fingers along -x, thumb towards +z, palm facing -y.
MANO_REST_JOINTS = np.array([
    [0.0957, 0.0064, 0.0062],
    [0.0076, 0.0016, 0.0268], [-0.0272, 0.0004, 0.0296], [-0.0505, -0.0008, 0.0310],
    [0.0048, 0.0040, 0.0050], [-0.0325, 0.0030, 0.0060], [-0.0590, 0.0020, 0.0065],
    [0.0195, 0.0010, -0.0380], [-0.0050, 0.0000, -0.0450], [-0.0240, -0.0010, -0.0495],
    [0.0110, 0.0030, -0.0170], [-0.0230, 0.0020, -0.0205], [-0.0480, 0.0010, -0.0230],
    [0.0720, -0.0130, 0.0380], [0.0500, -0.0190, 0.0590], [0.0290, -0.0240, 0.0750],
])  # fmt: skip
#: End points of the last segments (fingertips), in finger order index, middle, pinky, ring, thumb.
MANO_TIPS = np.array([
    [-0.0720, -0.0020, 0.0320], [-0.0820, 0.0010, 0.0070], [-0.0420, -0.0020, -0.0540],
    [-0.0700, 0.0000, -0.0250], [0.0090, -0.0290, 0.0890],
])  # fmt: skip
#: MANO fingertip vertex ids as HaMeR reads them (thumb, index, middle, ring, pinky).
MANO_TIP_VERTICES = (744, 320, 443, 554, 671)


@attrs.define
class _Tube:
    """A capped tube from ``start`` to ``end`` around a bone, moved by joint ``joint``."""

    joint: int
    start: np.ndarray
    end: np.ndarray
    radius: tuple[float, float]        # at start, at end
    sides: int                          # vertices per ring
    rings: int                          # rings (>= 2)
    flatten: float = 1.0                # cross-section scale along the second axis
    child: int | None = None            # joint at ``end`` (skinning blends towards it)
    reference: tuple[float, float, float] = (0.0, 0.0, 1.0)  # first cross-section axis hint


@attrs.define
class _Mesh:
    vertices: np.ndarray       # (V, 3)
    faces: np.ndarray          # (F, 3)
    weights: np.ndarray        # (V, J)
    radial: np.ndarray         # (V, 3) vertex minus its point on the tube axis
    along: np.ndarray          # (V,) position along the tube, 0 at start, 1 at end
    tube: np.ndarray           # (V,) tube index
    start_rings: list[np.ndarray]  # vertex ids of each tube's first ring


def _frame(direction: np.ndarray, reference) -> tuple[np.ndarray, np.ndarray]:
    d = direction / np.linalg.norm(direction)
    ref = np.asarray(reference, dtype=np.float64)
    if abs(ref @ d) > 0.95:
        ref = np.array([1.0, 0.0, 0.0]) if abs(d[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = ref - (ref @ d) * d
    u /= np.linalg.norm(u)
    return u, np.cross(d, u)


def _build(tubes: list[_Tube], num_joints: int) -> _Mesh:
    """Vertices (rings then the two cap centres per tube), faces and skinning of ``tubes``."""
    vertices, faces, radial, along, tube_ids, start_rings = [], [], [], [], [], []
    weights = []
    count = 0
    for index, tube in enumerate(tubes):
        axis = tube.end - tube.start
        u, v = _frame(axis, tube.reference)
        angles = 2 * np.pi * np.arange(tube.sides) / tube.sides
        ring_ids = []
        for r in range(tube.rings):
            t = r / (tube.rings - 1)
            radius = (1 - t) * tube.radius[0] + t * tube.radius[1]
            offsets = radius * (np.cos(angles)[:, None] * u
                                + tube.flatten * np.sin(angles)[:, None] * v)
            centre = tube.start + t * axis
            vertices.append(centre + offsets)
            radial.append(offsets)
            along.append(np.full(tube.sides, t))
            ring_ids.append(count + np.arange(tube.sides))
            count += tube.sides
        caps = np.stack([tube.start - 0.35 * tube.radius[0] * axis / np.linalg.norm(axis),
                         tube.end + 0.35 * tube.radius[1] * axis / np.linalg.norm(axis)])
        vertices.append(caps)
        radial.append(np.zeros((2, 3)))
        along.append(np.array([0.0, 1.0]))
        first_cap, last_cap = count, count + 1
        count += 2
        n = tube.sides
        for a, b in zip(ring_ids[:-1], ring_ids[1:], strict=True):
            for k in range(n):
                k1 = (k + 1) % n
                faces += [(a[k], a[k1], b[k1]), (a[k], b[k1], b[k])]
        for k in range(n):
            k1 = (k + 1) % n
            faces.append((first_cap, ring_ids[0][k1], ring_ids[0][k]))
            faces.append((last_cap, ring_ids[-1][k], ring_ids[-1][k1]))
        tube_ids.append(np.full(tube.rings * n + 2, index))
        start_rings.append(ring_ids[0])
        t_all = np.concatenate([np.repeat(np.arange(tube.rings) / (tube.rings - 1), n), [0, 1]])
        w = np.zeros((len(t_all), num_joints))
        blend = 0.5 * np.clip((t_all - 0.75) / 0.25, 0, 1) if tube.child is not None else 0 * t_all
        w[:, tube.joint] = 1 - blend
        if tube.child is not None:
            w[:, tube.child] += blend
        weights.append(w)
    return _Mesh(
        vertices=np.concatenate(vertices), faces=np.asarray(faces, dtype=np.int64),
        weights=np.concatenate(weights), radial=np.concatenate(radial),
        along=np.concatenate(along), tube=np.concatenate(tube_ids), start_rings=start_rings,
    )


def _fit_rings(tubes: list[_Tube], total: int, flexible: int) -> None:
    """Scale the tubes' ring counts so the mesh has exactly ``total`` vertices; the tube
    ``tubes[flexible]`` takes the remainder (its sides may change a little)."""
    others = [i for i in range(len(tubes)) if i != flexible]
    wanted = tubes[flexible].rings * tubes[flexible].sides + 2
    scale = (total - wanted) / sum(tubes[i].rings * tubes[i].sides + 2 for i in others)
    for i in others:
        tubes[i].rings = max(2, round(tubes[i].rings * scale))
    tube = tubes[flexible]
    for attempt in range(10 * len(tubes)):
        left = total - sum(tubes[i].rings * tubes[i].sides + 2 for i in others) - 2
        for sides in sorted(range(8, 41), key=lambda s: abs(s - tube.sides)):
            if left > 0 and left % sides == 0 and left // sides >= 2:
                tube.sides, tube.rings = sides, left // sides
                return
        nudged = tubes[others[attempt % len(others)]]  # no layout: one ring fewer elsewhere
        nudged.rings = max(2, nudged.rings - 1)
    raise AssertionError("no ring layout fits")  # pragma: no cover


def _closest(mesh: _Mesh, tube: int, point, exclude: set[int]) -> int:
    """The vertex of ``tube`` nearest ``point`` not yet taken."""
    ids = np.flatnonzero(mesh.tube == tube)
    ids = ids[~np.isin(ids, list(exclude))]
    return int(ids[np.argmin(np.linalg.norm(mesh.vertices[ids] - np.asarray(point), axis=1))])


def _regressor(mesh: _Mesh, tube_of_joint: list[int], num_joints: int) -> np.ndarray:
    regressor = np.zeros((num_joints, len(mesh.vertices)))
    for joint, tube in enumerate(tube_of_joint):
        ring = mesh.start_rings[tube]
        regressor[joint, ring] = 1.0 / len(ring)
    return regressor


def _shapedirs(mesh: _Mesh, root: np.ndarray, limb_axis: np.ndarray) -> np.ndarray:
    """(V, 3, 10) smooth shape directions: size, thickness, limb length, and gentle variations."""
    v = mesh.vertices
    centred = v - root
    dirs = np.zeros((len(v), 3, 10))
    dirs[:, :, 0] = 0.06 * centred                                  # overall size
    dirs[:, :, 1] = 0.25 * mesh.radial                              # thickness
    dirs[:, :, 2] = 0.05 * limb_axis                                # limb length
    dirs[:, :, 3] = 0.3 * mesh.radial * np.clip(-centred[:, 1:2], 0, None)  # lower body girth
    dirs[:, :, 4] = 0.3 * mesh.radial * np.clip(centred[:, 1:2], 0, None)   # upper body girth
    for k in range(5, 10):  # low-frequency bends of the surface, small
        phase = np.sin((k - 3) * 2.0 * centred[:, (k % 3, (k + 1) % 3)]).prod(1)
        dirs[:, :, k] = 0.05 * mesh.radial * phase[:, None]
    return dirs


def _posedirs(mesh: _Mesh, joint_of_tube_end: np.ndarray, num_joints: int) -> np.ndarray:
    """(V, 3, 9(J-1)): a small bulge of the tube ends at a bending joint."""
    posedirs = np.zeros((len(mesh.vertices), 3, 9 * (num_joints - 1)))
    near_end = np.clip((mesh.along - 0.8) / 0.2, 0, 1)
    for vertex_joint in range(1, num_joints):
        ids = np.flatnonzero(joint_of_tube_end[mesh.tube] == vertex_joint)
        for diagonal in (0, 4, 8):  # R - I diagonals are cos(angle) - 1 <= 0 when bent
            posedirs[ids, :, 9 * (vertex_joint - 1) + diagonal] = (
                -0.05 * mesh.radial[ids] * near_end[ids, None])
    return posedirs


def _kintree(parents) -> np.ndarray:
    table = np.stack([np.array(parents, dtype=np.int64), np.arange(len(parents))])
    table[0, 0] = ROOT_PARENT
    return table


def _tube(joints, a, b, radius, sides, rings, *, child=None, end=None, start=None, **kw):
    return _Tube(joint=a, start=np.asarray(joints[a] if start is None else start, float),
                 end=np.asarray(joints[b] if end is None else end, float), radius=radius,
                 sides=sides, rings=rings, child=child, **kw)


def smpl_arrays() -> dict[str, np.ndarray]:
    """The synthetic SMPL model's arrays (``J_regressor`` dense), as the official keys."""
    J = SMPL_REST_JOINTS
    tubes, tube_of_joint = [], [0] * 24

    def add(a, b, radius, sides, rings, **kw):
        tubes.append(_tube(J, a, b, radius, sides, rings, **kw))
        return len(tubes) - 1

    # trunk and head: pelvis -> spine1 -> spine2 -> spine3 -> neck -> head -> head top
    head_top = J[15] + np.array([0.0, 0.19, -0.01])
    tube_of_joint[0] = add(0, 3, (0.15, 0.14), 32, 6, child=3, flatten=0.7,
                           reference=(1, 0, 0))
    tube_of_joint[3] = add(3, 6, (0.14, 0.135), 32, 6, child=6, flatten=0.7, reference=(1, 0, 0))
    tube_of_joint[6] = add(6, 9, (0.135, 0.14), 32, 4, child=9, flatten=0.7, reference=(1, 0, 0))
    tube_of_joint[9] = add(9, 12, (0.15, 0.07), 32, 10, child=12, flatten=0.7,
                           reference=(1, 0, 0))
    tube_of_joint[12] = add(12, 15, (0.055, 0.06), 20, 6, child=15, reference=(1, 0, 0))
    head = add(15, 15, (0.08, 0.07), 32, 24, end=head_top, reference=(1, 0, 0))
    tube_of_joint[15] = head
    # hips across the pelvis, then the legs
    add(0, 0, (0.1, 0.1), 24, 8, start=J[2] + [-0.03, 0, 0], end=J[1] + [0.03, 0, 0],
        flatten=0.9, reference=(0, 0, 1))
    heels, toes_tube = {}, {}
    for side, (hip, knee, ankle, foot) in {"L": (1, 4, 7, 10), "R": (2, 5, 8, 11)}.items():
        toe = J[foot] + np.array([0.0, -0.02, 0.11])
        tube_of_joint[hip] = add(hip, knee, (0.085, 0.055), 24, 28, child=knee)
        tube_of_joint[knee] = add(knee, ankle, (0.055, 0.04), 20, 28, child=ankle)
        heels[side] = add(ankle, foot, (0.045, 0.045), 16, 6, child=foot, reference=(1, 0, 0))
        tube_of_joint[ankle] = heels[side]
        toes_tube[side] = add(foot, foot, (0.045, 0.035), 16, 8, end=toe, flatten=0.6,
                              reference=(1, 0, 0))
        tube_of_joint[foot] = toes_tube[side]
    # collars, arms, hands
    tips_tube = {}
    for side, (collar, shoulder, elbow, wrist, hand), sign in (
        ("L", (13, 16, 18, 20, 22), 1.0), ("R", (14, 17, 19, 21, 23), -1.0)
    ):
        add(9, collar, (0.06, 0.06), 16, 4, child=collar, start=J[9] + [0, 0.08, -0.01])
        tube_of_joint[collar] = add(collar, shoulder, (0.06, 0.055), 20, 8, child=shoulder)
        tube_of_joint[shoulder] = add(shoulder, elbow, (0.05, 0.04), 20, 26, child=elbow)
        tube_of_joint[elbow] = add(elbow, wrist, (0.04, 0.03), 20, 24, child=wrist)
        tube_of_joint[wrist] = add(wrist, hand, (0.03, 0.035), 16, 6, child=hand, flatten=0.5)
        tips_tube[side] = add(hand, hand, (0.035, 0.02), 16, 10,
                              end=J[hand] + [sign * 0.10, 0, 0], flatten=0.45)
        tube_of_joint[hand] = tips_tube[side]
    _fit_rings(tubes, SMPL_VERTICES, flexible=head)
    mesh = _build(tubes, 24)
    assert len(mesh.vertices) == SMPL_VERTICES

    # smplx's extra-joint vertex ids (vertex_ids["smplh"]) at the right places
    places = {
        332: (head, J[15] + [0.0, 0.05, 0.2]),           # nose: front of the head
        6260: (head, J[15] + [-0.035, 0.08, 0.2]),       # right eye
        2800: (head, J[15] + [0.035, 0.08, 0.2]),        # left eye
        4071: (head, J[15] + [-0.2, 0.07, 0.0]),         # right ear
        583: (head, J[15] + [0.2, 0.07, 0.0]),           # left ear
        411: (head, head_top + [0, 0.2, 0]),             # head top (J19 approximation)
        3216: (toes_tube["L"], J[10] + [0.0, -0.04, 0.3]),    # left big toe
        3226: (toes_tube["L"], J[10] + [0.05, -0.04, 0.3]),   # left small toe
        3387: (heels["L"], J[7] + [0.0, -0.1, -0.3]),         # left heel
        6617: (toes_tube["R"], J[11] + [0.0, -0.04, 0.3]),
        6624: (toes_tube["R"], J[11] + [-0.05, -0.04, 0.3]),
        6787: (heels["R"], J[8] + [0.0, -0.1, -0.3]),
    }
    for k, (vid_l, vid_r) in enumerate(((2746, 6191), (2319, 5782), (2445, 5905), (2556, 6016),
                                        (2673, 6133))):  # thumb .. pinky tips, l and r
        forward = 0.04 - 0.02 * k
        places[vid_l] = (tips_tube["L"], J[22] + [0.3, 0, forward])
        places[vid_r] = (tips_tube["R"], J[23] + [-0.3, 0, forward])
    mesh = _place(mesh, places)

    limb_axis = np.zeros_like(mesh.vertices)  # arms lengthen along x, legs along -y
    arm = np.abs(mesh.vertices[:, 0]) > 0.17
    leg = mesh.vertices[:, 1] < -0.31
    limb_axis[arm, 0] = mesh.vertices[arm, 0] - np.sign(mesh.vertices[arm, 0]) * 0.17
    limb_axis[leg, 1] = mesh.vertices[leg, 1] + 0.31
    end_joint = np.array([t.child if t.child is not None else -1 for t in tubes])
    regressor = _regressor(mesh, tube_of_joint, 24)
    return {
        "v_template": mesh.vertices,
        "shapedirs": _shapedirs(mesh, J[0], limb_axis),
        "posedirs": _posedirs(mesh, end_joint, 24),
        "J_regressor": regressor,
        "J": regressor @ mesh.vertices,
        "weights": mesh.weights,
        "kintree_table": _kintree(SMPL_PARENTS),
        "f": mesh.faces.astype(np.uint32),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }


def _place(mesh: _Mesh, places: dict[int, tuple[int, np.ndarray]]) -> _Mesh:
    """Put at each id the vertex of the given tube nearest the given point."""
    wanted, taken = {}, set()
    for new_id, (tube, point) in places.items():
        old_id = _closest(mesh, tube, point, taken)
        taken.add(old_id)
        wanted[new_id] = old_id
    # swap in an order that never displaces an already placed vertex
    order = np.arange(len(mesh.vertices))
    for new_id, old_id in wanted.items():
        at = int(np.flatnonzero(order == old_id)[0])
        order[at], order[new_id] = order[new_id], order[at]
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return _Mesh(
        vertices=mesh.vertices[order], faces=inverse[mesh.faces], weights=mesh.weights[order],
        radial=mesh.radial[order], along=mesh.along[order], tube=mesh.tube[order],
        start_rings=[inverse[r] for r in mesh.start_rings],
    )


def mano_arrays(is_rhand: bool = True) -> dict[str, np.ndarray]:
    """The synthetic MANO model's arrays (right hand, or its mirror image for the left)."""
    J = MANO_REST_JOINTS
    tubes, tube_of_joint = [], [0] * 16
    knuckles = J[[1, 4, 7, 10]].mean(0)
    palm = _Tube(joint=0, start=J[0], end=knuckles + [-0.005, 0, 0],
                 radius=(0.028, 0.042), sides=24, rings=8, flatten=0.35, reference=(0, 0, 1))
    tubes.append(palm)
    tip_tubes = {}
    radii = {1: 0.0095, 4: 0.0100, 7: 0.0080, 10: 0.0092, 13: 0.0115}
    for finger, first in enumerate((1, 4, 7, 10, 13)):
        r = radii[first]
        for k in range(3):
            joint = first + k
            end = J[joint + 1] if k < 2 else MANO_TIPS[finger]
            taper = (r * (1 - 0.12 * k), r * (1 - 0.12 * (k + 1)))
            tubes.append(_Tube(joint=joint, start=J[joint], end=np.asarray(end), radius=taper,
                               sides=12, rings=4, flatten=0.85,
                               child=joint + 1 if k < 2 else None, reference=(0, 1, 0)))
            tube_of_joint[joint] = len(tubes) - 1
        tip_tubes[first] = len(tubes) - 1
    _fit_rings(tubes, MANO_VERTICES, flexible=0)
    mesh = _build(tubes, 16)
    assert len(mesh.vertices) == MANO_VERTICES
    # fingertip ids: the far cap centre of each last segment (thumb, index, middle, ring, pinky)
    places = {}
    for vid, first, tip in zip(MANO_TIP_VERTICES, (13, 1, 4, 10, 7), (4, 0, 1, 3, 2), strict=True):
        places[vid] = (tip_tubes[first], MANO_TIPS[tip] + 0.2 * (MANO_TIPS[tip] - J[first + 2]))
    mesh = _place(mesh, places)
    limb_axis = np.zeros_like(mesh.vertices)  # fingers lengthen away from the wrist
    fingers = mesh.tube > 0
    limb_axis[fingers] = 0.3 * (mesh.vertices[fingers] - J[0])
    end_joint = np.array([t.child if t.child is not None else -1 for t in tubes])
    regressor = _regressor(mesh, tube_of_joint, 16)
    components, _ = np.linalg.qr(np.random.default_rng(7).normal(size=(45, 45)))
    hands_mean = np.zeros((15, 3))
    hands_mean[:, 2] = 0.15  # fingers slightly curled
    arrays = {
        "v_template": mesh.vertices,
        "shapedirs": _shapedirs(mesh, J[0], limb_axis),
        "posedirs": _posedirs(mesh, end_joint, 16),
        "J_regressor": regressor,
        "J": regressor @ mesh.vertices,
        "weights": mesh.weights,
        "kintree_table": _kintree(MANO_PARENTS),
        "f": mesh.faces.astype(np.uint32),
        "hands_components": components,
        "hands_mean": hands_mean.reshape(45),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }
    return arrays if is_rhand else _mirror_hand(arrays)


def _mirror_hand(arrays: dict) -> dict:
    """The left hand as the mirror image of the right: x -> -x, faces re-oriented, and the
    pose space mirrored (axis-angle (x, y, z) -> (x, -y, -z))."""
    out = dict(arrays)
    out["v_template"] = arrays["v_template"] * [-1.0, 1.0, 1.0]
    out["J"] = arrays["J"] * [-1.0, 1.0, 1.0]
    for key in ("shapedirs", "posedirs"):
        out[key] = arrays[key].copy()
        out[key][:, 0] *= -1
    out["f"] = arrays["f"][:, ::-1].copy()
    sign = np.tile([1.0, -1.0, -1.0], 15)
    out["hands_mean"] = arrays["hands_mean"] * sign
    out["hands_components"] = arrays["hands_components"] * sign[None]
    return out


def write_synthetic_smpl(path: str | Path) -> Path:
    """Write the synthetic SMPL-format model to ``path`` (``.pkl`` official pickle or ``.npz``)."""
    return _write(smpl_arrays(), path)


def write_synthetic_mano(path: str | Path, is_rhand: bool = True) -> Path:
    """Write the synthetic MANO-format model (right hand, or left) to ``path`` (.pkl / .npz)."""
    return _write(mano_arrays(is_rhand), path)


def _write(arrays: dict[str, np.ndarray], path: str | Path) -> Path:
    path = Path(path)
    if path.suffix == ".npz":
        np.savez(path, **arrays)
        return path
    from scipy.sparse import csc_matrix

    data = dict(arrays, J_regressor=csc_matrix(arrays["J_regressor"]))
    with open(path, "wb") as file:
        pickle.dump(data, file, protocol=2)
    return path
