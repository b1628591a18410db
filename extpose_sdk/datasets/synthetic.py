"""A synthetic data set that needs no download: a posed SMPL- / MANO-format model, rendered.

The model files are the SDK's synthetic official-format ones (``write_synthetic_smpl`` /
``write_synthetic_mano``, a humanoid / hand geometry), written once to a cache folder, or a
user's real SMPL / MANO file. Each sequence is a random smooth motion: every joint angle is a sum
of low-frequency sinusoids within limits, the global rotation and the translation drift smoothly.
Frames are drawn with ``extpose_sdk.render`` over a random textured background (noise, gradient,
stripes, checks) with random occluders, and come with ground-truth parameters, 3D joints and
vertices, crop-normalised 2D joints, and noisy "detected" 2D keypoints (jitter, dropped joints
with low confidence, occasional left/right swaps) that stand in for a detector::

    from extpose_sdk.datasets.synthetic import SyntheticDataset
    frames = SyntheticDataset(kind="body", num_sequences=4, sequence_length=32)
    clips = SyntheticDataset(kind="hand", clip_length=8)
    sample = clips[0]          # the SDK's sample layout, clips with a leading T

Everything is a function of ``(seed, split, sequence, frame)``, so any worker gives the same
sample for an index. Registered as data sets ``synthetic-body`` and ``synthetic-hand``.

``render_whole_body`` / ``write_whole_body_sample`` make the whole-body sample (``extpose predict
--sample whole``): the synthetic body with a MANO-format hand placed at each wrist (its wrist
joint on the body's wrist joint, pointing along the forearm; the left one mirrored from the
right-hand file) and its COCO-WholeBody-133 keypoints (body and feet from the body, both hands
from the hand meshes' joints; no face). It is not part of the training data sets.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from extpose_sdk.data.augment import AugmentConfig, AugmentParams, augment, sample_params
from extpose_sdk.data.sample import CROP_SIZE, stack
from extpose_sdk.datasets.base import SequenceDataset
from extpose_sdk.subjects import SUBJECTS, Subject, get_subject

FPS = 30.0
#: The synthetic model file of each body-model kind, and what writes it.
MODEL_FILES = {"smpl": "SMPL_SYNTHETIC_NEUTRAL.pkl", "mano": "MANO_SYNTHETIC_RIGHT.pkl"}


def default_cache_dir() -> Path:
    """Where the synthetic model files are written: ``$EXTPOSE_CACHE`` or ``~/.cache/extpose``."""
    return Path(os.environ.get("EXTPOSE_CACHE", Path.home() / ".cache" / "extpose")) / "synthetic"


def synthetic_model_path(subject: str | Subject, cache_dir: str | Path | None = None) -> Path:
    """The synthetic model file of ``subject`` (``body`` / ``hand``) in ``cache_dir``, written
    there on first use."""
    from extpose_sdk.datasets.synthetic_models import write_synthetic_mano, write_synthetic_smpl

    kind = get_subject(subject).body_model
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = folder / MODEL_FILES[kind]
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.stem}.{os.getpid()}{path.suffix}")
        {"smpl": write_synthetic_smpl, "mano": write_synthetic_mano}[kind](partial)
        os.replace(partial, path)  # atomic: parallel workers never read half a file
    return path


def _rng(*keys: Any) -> np.random.Generator:
    """A generator seeded by ``keys`` (stable across processes, unlike ``hash``)."""
    return np.random.default_rng([zlib.crc32(repr(keys).encode())])


# -- motion -----------------------------------------------------------------------------------

#: Joint-angle rest offsets and ranges (radians) that make the motion look like a body / hand:
#: ``{pose joint index (0-based, without the root): (axis, low, high)}``; other angles move
#: within +-0.15 rad.
BODY_LIMITS = {
    0: (0, -0.9, 0.4), 1: (0, -0.9, 0.4),       # hips: leg forward / back
    3: (0, 0.0, 1.6), 4: (0, 0.0, 1.6),         # knees bend
    15: (2, -1.4, -0.2), 16: (2, 0.2, 1.4),     # shoulders: arms down from the T pose
    17: (1, -1.6, 0.0), 18: (1, 0.0, 1.6),      # elbows bend
}
HAND_FLEX = (0.0, 1.6)  # finger joints flex about their z axis
#: How much of a finger joint's flexion follows the hand's grasp and its finger's curl (both
#: shared signals); the rest is the joint's own wave. Real hands curl their fingers together
#: (open, fist, point, pinch): flexions that move fingertips by centimetres, which an image and a
#: drawn skeleton show, where independent joint wiggles of a few degrees hide in the noise.
HAND_SYNERGY = {"grasp": 0.1, "finger": 0.8}


@attrs.frozen
class Motion:
    """Smooth motion of one sequence: per joint angle, a sum of sinusoids ``amplitude *
    sin(2 pi f t + phase)`` mapped into ``[low, high]``.

    With ``loading`` (P, K), the last K rows of the wave parameters are shared signals in
    ``[low, high]`` (within 0..1), and angle ``p`` follows ``loading[p, k]`` of signal ``k``
    and the rest of its own wave: the finger synergies of a hand.
    """

    low: np.ndarray          # (P,) angle lower limits
    high: np.ndarray         # (P,)
    frequency: np.ndarray    # (P, S) Hz
    phase: np.ndarray        # (P, S)
    weight: np.ndarray       # (P, S), rows sum to 1
    yaw: tuple[float, float, float]     # centre, amplitude (rad), frequency (Hz)
    tilt: tuple[float, float]           # pitch, roll (rad)
    position: np.ndarray     # (3,) mean joint centroid, camera frame (m)
    drift: np.ndarray        # (3, 2) amplitude (m), frequency (Hz) per axis
    betas: np.ndarray        # (10,)
    loading: np.ndarray | None = None  # (P, K) shares of K shared signals, or None

    def angles(self, t: np.ndarray) -> np.ndarray:
        """(T, P) joint angles at times ``t`` (s)."""
        waves = np.sin(2 * np.pi * self.frequency[None] * t[:, None, None] + self.phase[None])
        unit = 0.5 + 0.5 * (waves * self.weight[None]).sum(-1)  # in [0, 1]
        if self.loading is None:
            return self.low + (self.high - self.low) * unit
        angles = self.loading.shape[0]
        low, high = self.low[:angles], self.high[:angles]
        shared = self.low[angles:] + (self.high[angles:] - self.low[angles:]) * unit[:, angles:]
        mix = unit[:, :angles] * (1.0 - self.loading.sum(1)) + shared @ self.loading.T
        return low + (high - low) * mix

    def global_orient(self, t: np.ndarray) -> np.ndarray:
        """(T, 3) axis-angle: the model upright and facing the camera, turning smoothly."""
        from scipy.spatial.transform import Rotation

        centre, amplitude, frequency = self.yaw
        yaw = centre + amplitude * np.sin(2 * np.pi * frequency * t)
        # model frame y up, z towards the viewer -> camera frame y down, z forward: 180 deg about x
        facing = Rotation.from_euler("x", np.pi)
        turn = Rotation.from_euler("yxz", np.stack([yaw, np.full_like(t, self.tilt[0]),
                                                    np.full_like(t, self.tilt[1])], -1))
        return (facing * turn).as_rotvec()

    def root_position(self, t: np.ndarray) -> np.ndarray:
        """(T, 3) camera-frame position the root joint is moved to."""
        amplitude, frequency = self.drift[:, 0], self.drift[:, 1]
        return self.position + amplitude * np.sin(2 * np.pi * frequency * t[:, None])


def random_motion(subject: Subject, rng: np.random.Generator, distance: float) -> Motion:
    """A random smooth motion of ``subject`` with the root around ``distance`` m from the
    camera (bodies walk and swing their arms; hands turn and flex their fingers)."""
    joints = subject.pose_joints
    low = np.full((joints, 3), -0.15)
    high = np.full((joints, 3), 0.15)
    if subject.body_model == "smpl":
        for joint, (axis, lo, hi) in BODY_LIMITS.items():
            low[joint, axis], high[joint, axis] = lo, hi
        yaw = (rng.uniform(-0.6, 0.6), rng.uniform(0.1, 0.6), rng.uniform(0.05, 0.2))
        tilt = (rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1))
    else:
        low[:, 2], high[:, 2] = HAND_FLEX
        low[:, :2], high[:, :2] = -0.1, 0.1
        yaw = (rng.uniform(-np.pi, np.pi), rng.uniform(0.2, 0.8), rng.uniform(0.05, 0.3))
        tilt = (rng.uniform(-0.8, 0.8), rng.uniform(-0.8, 0.8))
    # narrow each range at random so sequences differ in style, then add 3 sinusoids each
    span = high - low
    centre = low + span * rng.uniform(0.2, 0.8, span.shape)
    reach = span * rng.uniform(0.2, 0.5, span.shape)
    low, high = np.maximum(low, centre - reach), np.minimum(high, centre + reach)
    low, high = low.reshape(-1), high.reshape(-1)
    loading = None
    if subject.body_model != "smpl":
        low, high, loading = _hand_synergies(rng, joints, low, high)
    rows, count = len(low), 3
    weight = rng.uniform(0.2, 1.0, (rows, count))
    drift = np.stack([rng.uniform(0.0, 0.05, 3) * subject.size / 0.5,
                      rng.uniform(0.05, 0.3, 3)], 1)
    return Motion(
        low=low, high=high,
        frequency=rng.uniform(0.1, 0.8, (rows, count)),
        phase=rng.uniform(0, 2 * np.pi, (rows, count)),
        weight=weight / weight.sum(1, keepdims=True),
        yaw=yaw, tilt=tilt,
        position=np.array([rng.uniform(-0.1, 0.1) * distance, rng.uniform(-0.05, 0.05) * distance,
                           distance]),
        drift=drift,
        betas=np.clip(rng.normal(0.0, 0.8, 10), -2.0, 2.0),
        loading=loading,
    )


def _hand_synergies(rng: np.random.Generator, joints: int, low: np.ndarray, high: np.ndarray):
    """A hand's flexions over the whole range, driven by two shared signals each (``HAND_SYNERGY``):
    the grasp and the curl of its finger (pose joints ``3f .. 3f + 2`` are finger ``f``'s). Each
    signal has its own range per motion, so some hands stay open, some closed, some close and
    open. Returns the angle and signal ranges ``(low, high)`` and the ``(P, K)`` loadings."""
    fingers = joints // 3
    flex = np.arange(joints) * 3 + 2
    low, high = low.copy(), high.copy()
    low[flex], high[flex] = HAND_FLEX
    centre = rng.uniform(0.0, 1.0, 1 + fingers)
    reach = rng.uniform(0.1, 0.5, 1 + fingers)
    loading = np.zeros((joints * 3, 1 + fingers))
    loading[flex, 0] = HAND_SYNERGY["grasp"]
    loading[flex, 1 + np.arange(joints) // 3] = HAND_SYNERGY["finger"]
    return (np.concatenate([low, np.maximum(centre - reach, 0.0)]),
            np.concatenate([high, np.minimum(centre + reach, 1.0)]), loading)


# -- pictures ---------------------------------------------------------------------------------

def random_background(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 textured background: blotchy noise, a gradient, stripes or checks."""
    import cv2

    h, w = size
    style = rng.integers(4)
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    if style == 0:
        cells = rng.uniform(0, 255, (rng.integers(3, 12), rng.integers(3, 12), 3)).astype(np.float32)
        image = cv2.resize(cells, (w, h), interpolation=cv2.INTER_CUBIC)
    else:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        angle = rng.uniform(0, np.pi)
        along = (np.cos(angle) * xx + np.sin(angle) * yy) / max(h, w)
        if style == 1:
            mix = (along - along.min()) / max(np.ptp(along), 1e-6)
        elif style == 2:
            mix = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(3, 15) * along)
        else:
            period = rng.integers(8, 40)
            mix = (((xx // period) + (yy // period)) % 2).astype(np.float32)
        image = a * (1 - mix[..., None]) + b * mix[..., None]
    noise = rng.normal(0, rng.uniform(2, 12), (h, w, 1))
    return np.clip(image + noise, 0, 255).astype(np.uint8)


@attrs.frozen
class Occluder:
    """A filled rectangle or ellipse drawn over the subject (centre relative to the box)."""

    ellipse: bool
    offset: tuple[float, float]  # centre = box centre + offset * box side
    half: tuple[float, float]    # half sides as a fraction of the box side
    angle: float
    color: tuple[float, float, float]
    speed: tuple[float, float]   # offset change per second

    def draw(self, image: np.ndarray, box: np.ndarray, t: float) -> None:
        import cv2

        side = float(max(box[2] - box[0], box[3] - box[1]))
        centre = (box[:2] + box[2:]) / 2 + (np.array(self.offset) + np.array(self.speed) * t) * side
        axes = (max(1, int(self.half[0] * side)), max(1, int(self.half[1] * side)))
        c = (int(centre[0]), int(centre[1]))
        if self.ellipse:
            cv2.ellipse(image, c, axes, self.angle, 0, 360, self.color, -1, cv2.LINE_AA)
        else:
            points = cv2.boxPoints(((c[0], c[1]), (2 * axes[0], 2 * axes[1]), self.angle))
            cv2.fillConvexPoly(image, points.astype(np.int32), self.color, cv2.LINE_AA)


def random_occluders(rng: np.random.Generator, most: int) -> list[Occluder]:
    count = int(rng.integers(0, most + 1)) if most > 0 else 0
    return [Occluder(ellipse=bool(rng.random() < 0.5),
                     offset=tuple(rng.uniform(-0.5, 0.5, 2)),
                     half=tuple(rng.uniform(0.05, 0.2, 2)),
                     angle=float(rng.uniform(0, 180)),
                     color=tuple(float(c) for c in rng.uniform(0, 255, 3)),
                     speed=tuple(rng.uniform(-0.1, 0.1, 2))) for _ in range(count)]


@attrs.frozen
class DetectionNoise:
    """How the stand-in detector errs: jitter (fraction of the box side), the chance a joint is
    dropped (low confidence, far off), and the chance a frame has left and right swapped."""

    jitter: float = 0.02
    drop: float = 0.08
    swap: float = 0.03


def noisy_detections(points: np.ndarray, box: np.ndarray, flip: tuple[int, ...],
                     noise: DetectionNoise, rng: np.random.Generator) -> np.ndarray:
    """(J, 3) detector-like keypoints from true (J, 2|3) full-image px."""
    side = float(max(box[2] - box[0], box[3] - box[1], 1.0))
    j = len(points)
    out = np.zeros((j, 3))
    out[:, :2] = points[:, :2] + rng.normal(0, noise.jitter * side, (j, 2))
    out[:, 2] = rng.uniform(0.55, 1.0, j)
    dropped = rng.random(j) < noise.drop
    out[dropped, :2] += rng.normal(0, 0.15 * side, (int(dropped.sum()), 2))
    out[dropped, 2] = rng.uniform(0.0, 0.2, int(dropped.sum()))
    if rng.random() < noise.swap:
        out = out[list(flip)]
    return out


# -- the data set -----------------------------------------------------------------------------

@attrs.frozen
class Frame:
    """One rendered frame before cropping (full image and full-image labels)."""

    image: np.ndarray          # (H, W, 3) uint8 RGB
    background: np.ndarray     # (H, W, 3) uint8 RGB, the same without subject and occluders
    faces: np.ndarray          # (H, W) int32 face buffer of the subject (-1: background)
    labels: dict[str, np.ndarray]  # global_orient, pose, betas, transl, vertices, joints (camera)
    keypoints_2d: np.ndarray   # (K, 3) projected joints, full-image px, confidence 1
    detected: np.ndarray       # (J, 3) noisy detections, full-image px
    box: np.ndarray            # (4,) x1, y1, x2, y2 of the projected joints, padded


class SyntheticDataset(SequenceDataset):
    """Synthetic frames (``clip_length=None``) or clips of ``clip_length`` frames (sequences
    ``<split>_0000``...; one augmentation draw per clip, the same for its frames).

    Args:
        root: folder for the synthetic model files (default ``default_cache_dir()``).
        split: ``train`` or ``test`` (different motions; ``train`` augments by default).
        kind: the subject, ``body`` (SMPL, ``coco17`` detections) or ``hand`` (MANO right
            hands, ``openpose_hand21``): its ``extpose_sdk.subjects`` spec says the rest.
        model_path: a real SMPL / MANO file to use instead of the synthetic one.
        num_sequences, sequence_length: how many motions and frames each (at ``FPS``).
        clip_length, clip_stride: clips of T frames (``None``: single frames).
        image_size: (H, W) of the full rendered image; ``crop_size``: the model's crop.
        occluders: at most this many occluders per sequence.
        augment: ``AugmentConfig`` (one draw per clip, identical for its frames), True for the
            official recipe, a dict of changes to it (``{"flip_prob": 0.0}``), False / None for
            none. Default: on for ``train``.
        detection_noise: ``DetectionNoise`` of the stand-in detector (or a dict of its fields).
        vertices: include ground-truth ``vertices`` in samples.
        seed: everything derives from it.
    """

    def __init__(self, root: str | Path | None = None, split: str = "train", *,
                 kind: str = "body", model_path: str | Path | None = None,
                 num_sequences: int = 16, sequence_length: int = 64,
                 clip_length: int | None = None, clip_stride: int | None = None,
                 image_size: tuple[int, int] = (256, 256), crop_size: int = CROP_SIZE,
                 occluders: int = 2, augment: AugmentConfig | bool | None = "default",
                 detection_noise: DetectionNoise = DetectionNoise(), vertices: bool = True,
                 seed: int = 0) -> None:
        if kind not in SUBJECTS:
            raise ValueError(f"synthetic: unknown kind {kind!r}; available: {', '.join(SUBJECTS)}")
        if split not in ("train", "test"):
            raise ValueError(f"synthetic: unknown split {split!r}; available: train, test")
        if augment == "default":
            augment = split == "train"
        if augment is True:
            augment = AugmentConfig()
        if isinstance(augment, dict):  # a recipe's table: changes to the official strengths
            augment = AugmentConfig(**augment)
        self.augment_config = augment or None
        self.kind, self.split, self.seed = kind, split, int(seed)
        self.subject = SUBJECTS[kind]
        self.name = f"synthetic-{kind}"
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.crop_size = int(crop_size)
        self.focal = 1.2 * max(self.image_size)
        self.occluders = int(occluders)
        if isinstance(detection_noise, dict):  # a recipe's table: another stand-in detector
            detection_noise = DetectionNoise(**detection_noise)
        self.noise = detection_noise
        self.with_vertices = bool(vertices)
        self.sequence_length = int(sequence_length)
        self.model_path = Path(model_path) if model_path is not None else synthetic_model_path(
            kind, root)
        self._model = None
        self._scenes: dict[int, tuple] = {}  # a few sequences' backgrounds, per worker
        from extpose_sdk.keypoints.layouts import get_layout

        layout = get_layout(self.subject.detector_layout)
        self.detected_flip = layout.flip_indices
        self.num_sequences = int(num_sequences)
        super().__init__(clip_length=clip_length, stride=clip_stride, pad=split != "train")

    # ---- indexing (SequenceDataset)
    def sequence_name(self, i: int) -> str:
        return f"{self.split}_{i:04d}"

    def sequence_lengths(self) -> dict[str, int]:
        return {self.sequence_name(i): self.sequence_length for i in range(self.num_sequences)}

    def samples(self, sequence: str, frames: list[int]) -> list[dict[str, Any]]:
        number = int(sequence.rsplit("_", 1)[1])
        return self.sample(number, frames, self._params(number, frames[0]))

    def _params(self, sequence: int, frame: int) -> AugmentParams:
        if self.augment_config is None:
            return AugmentParams()
        return sample_params(self.augment_config,
                             _rng(self.seed, self.split, "augment", sequence, frame))

    # ---- the model
    @property
    def body_model(self):
        if self._model is None:
            from extpose_sdk.body_models import load_body_model

            self._model = load_body_model(self.subject.body_model, self.model_path)
        return self._model

    def pose_frames(self, sequence: int, frames: list[int]) -> dict[str, np.ndarray]:
        """Ground-truth parameters, vertices and joints (camera frame) of ``frames``."""
        import torch

        motion = self.motion(sequence)
        t = np.asarray(frames, dtype=np.float64) / FPS
        pose = motion.angles(t)
        orient = motion.global_orient(t)
        betas = np.repeat(motion.betas[None], len(frames), 0)
        n = len(frames)
        with torch.no_grad():
            output = _forward(self.body_model, self.subject.pose_key, orient, pose, betas)
        vertices = output["vertices"].reshape(n, -1, 3)
        joints = output["joints"].reshape(n, -1, 3)
        root = joints.mean(axis=1)  # the joints' centroid goes where the motion says
        shift = motion.root_position(t) - root
        return {"global_orient": orient, self.subject.pose_key: pose, "betas": betas,
                "transl": shift, "vertices": vertices + shift[:, None],
                "joints": joints + shift[:, None], "faces": output["faces"]}

    def motion(self, sequence: int) -> Motion:
        rng = _rng(self.seed, self.split, "motion", sequence)
        distance = self.focal * self.subject.size / (rng.uniform(0.4, 0.6) * self.image_size[0])
        return random_motion(self.subject, rng, distance)

    # ---- rendering
    def scene(self, sequence: int) -> tuple[np.ndarray, list[Occluder], np.ndarray]:
        """Background, occluders and mesh colour of ``sequence`` (cached for a few sequences)."""
        if sequence not in self._scenes:
            if len(self._scenes) >= 8:
                self._scenes.pop(next(iter(self._scenes)))
            rng = _rng(self.seed, self.split, "scene", sequence)
            background = random_background(rng, self.image_size)
            background.flags.writeable = False
            self._scenes[sequence] = (background, random_occluders(rng, self.occluders),
                                      rng.uniform(80, 255, 3))
        return self._scenes[sequence]

    def render(self, sequence: int, frames: list[int]) -> list[Frame]:
        """The full-image frames of ``sequence`` (before cropping and augmentation)."""
        from extpose_sdk.render import Camera, render_mesh

        background, occluders, color = self.scene(sequence)
        camera = Camera.of(self.focal, image_size=self.image_size)
        posed = self.pose_frames(sequence, frames)
        out = []
        for i, frame in enumerate(frames):
            joints = posed["joints"][i]
            uv = camera.project(joints)
            keypoints = np.concatenate([uv, np.ones((len(uv), 1))], 1)
            image, buffer = render_mesh(background, posed["vertices"][i], posed["faces"],
                                        focal=self.focal, color=color, return_faces=True)
            lo, hi = uv.min(0), uv.max(0)
            pad = 0.1 * (hi - lo).max() + 2.0
            box = np.concatenate([lo - pad, hi + pad])
            for occluder in occluders:
                occluder.draw(image, box, frame / FPS)
            noise_rng = _rng(self.seed, self.split, "detect", sequence, frame)
            detected = noisy_detections(_detector_points(self.subject, keypoints), box,
                                        self.detected_flip, self.noise, noise_rng)
            labels = {k: v[i] for k, v in posed.items() if k != "faces"}
            out.append(Frame(image, background, buffer, labels, keypoints, detected, box))
        return out

    def sample(self, sequence: int, frames: list[int], params: AugmentParams) -> list[dict]:
        """Sample-layout dicts of ``frames`` of ``sequence``, all cropped with ``params``."""
        import torch

        subject = self.subject
        pose_key = subject.pose_key
        samples = []
        for frame, rendered in zip(frames, self.render(sequence, frames), strict=True):
            labels = rendered.labels
            keypoints_3d = np.concatenate([labels["joints"], np.ones((len(labels["joints"]), 1))], 1)
            entries = augment(
                rendered.image, rendered.box, params, keypoints_2d=rendered.keypoints_2d,
                keypoints_3d=keypoints_3d,
                vertices=labels["vertices"] if self.with_vertices else None,
                # sided subjects (hands) are rendered as right hands
                global_orient=labels["global_orient"], is_right=1.0 if subject.mirror_left else None,
                detected_keypoints_2d=rendered.detected, joint_set=subject.joint_set,
                detected_flip=self.detected_flip, size=self.crop_size,
                **{pose_key: labels[pose_key]})
            moved = params.flip or params.rotation != 0.0
            sample: dict[str, Any] = {k: torch.as_tensor(np.asarray(v, np.float32))
                                      for k, v in entries.items()}
            sample.update({
                "box": torch.as_tensor(rendered.box, dtype=torch.float32),
                "image_hw": torch.tensor(self.image_size, dtype=torch.float32),
                "focal_length": torch.tensor([self.focal, self.focal], dtype=torch.float32),
                "betas": torch.as_tensor(labels["betas"], dtype=torch.float32),
                "transl": torch.as_tensor(labels["transl"], dtype=torch.float32),
                "frame": torch.tensor(frame),
                "dataset": self.name,
                "sequence": self.sequence_name(sequence),
                "image_path": "",
                "detected_layout": subject.detector_layout,
                "joint_set": subject.joint_set,
                "gender": "neutral",
            })
            for key in ("detected_keypoints_2d", "global_orient", pose_key, "betas"):
                sample[f"has_{key}"] = torch.tensor(True)
            sample["has_vertices"] = torch.tensor(self.with_vertices)
            sample["has_transl"] = torch.tensor(not moved)  # rotation / flip: transl not updated
            samples.append(sample)
        return samples

    def batch(self, indices) -> dict[str, Any]:
        """The collated samples of ``indices`` (a convenience for benchmarks and tests)."""
        return stack([self[i] for i in indices])


def _detector_points(subject: Subject, keypoints: np.ndarray) -> np.ndarray:
    """The true joints in the stand-in detector's layout: the joint set's first joints (in the
    subject's ``label_layout``), converted when the detector's layout differs (body: coco17
    from OpenPose BODY_25; hand: as they are)."""
    points = keypoints[: subject.label_joints]
    if subject.detector_layout == subject.label_layout:
        return points
    from extpose_sdk.keypoints.layouts import convert

    return convert(points.astype(np.float32), subject.label_layout, subject.detector_layout)


def _forward(model, pose_key: str, orient, pose, betas) -> dict[str, np.ndarray]:
    """Vertices, joints and faces from a body model of ``extpose_sdk.body_models``."""
    import torch

    def tensor(x):
        return torch.as_tensor(np.asarray(x), dtype=torch.float32)

    output = model(global_orient=tensor(orient), betas=tensor(betas), **{pose_key: tensor(pose)})
    faces = output.faces
    return {"vertices": output.vertices.detach().cpu().numpy().astype(np.float64),
            "joints": output.joints.detach().cpu().numpy().astype(np.float64),
            "faces": np.asarray(faces.cpu() if hasattr(faces, "cpu") else faces, dtype=np.int64)}


def write_sample_video(path: str | Path, *, frames: int = 48, kind: str = "body",
                       size: tuple[int, int] = (256, 256), seed: int = 0, fps: float = FPS,
                       keypoints_path: str | Path | None = None,
                       model_path: str | Path | None = None) -> np.ndarray:
    """Write an mp4 of one synthetic person moving (``frames`` frames, ``size`` (H, W)).

    Returns the noisy detections ``(frames, J, 3)`` (full-image px); with ``keypoints_path``
    they are also saved as a ``.npz`` keypoint file (``keypoints (T, 1, J, 3)``, ``layout``,
    ``boxes (T, 1, 4)``) that the keypoint sources read.
    """
    import cv2

    data = SyntheticDataset(split="test", kind=kind, model_path=model_path, num_sequences=1,
                            sequence_length=frames, image_size=size, augment=False, seed=seed)
    rendered = data.render(0, list(range(frames)))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (size[1], size[0]))
    if not writer.isOpened():
        raise RuntimeError(f"cannot open {str(path)!r} for writing with OpenCV (mp4v)")
    try:
        for frame in rendered:
            writer.write(cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    detections = np.stack([f.detected for f in rendered]).astype(np.float32)
    if keypoints_path is not None:
        np.savez(keypoints_path, keypoints=detections[:, None], layout=data.subject.detector_layout,
                 boxes=np.stack([f.box for f in rendered]).astype(np.float32)[:, None])
    return detections


# -- the whole-body sample ---------------------------------------------------------------------

#: The sides of a body, in the order the whole-body sample and pipeline list them.
SIDES = ("left", "right")


@attrs.frozen
class WholeBodyFrame:
    """One frame of the whole-body sample: the body and both hands, and their keypoints."""

    image: np.ndarray                     # (H, W, 3) uint8 RGB
    keypoints: np.ndarray                 # (133, 3) true coco_wholebody133 px (face: confidence 0)
    detected: np.ndarray                  # (133, 3) noisy detections, px
    wrists_3d: dict[str, np.ndarray]      # side -> (3,) the body's wrist joint, camera frame (m)
    hand_joints_3d: dict[str, np.ndarray]  # side -> (21, 3) the hand's joints, camera frame (m)
    box: np.ndarray                       # (4,) the body's box (as ``Frame.box``)


def render_whole_body(data: SyntheticDataset, hand_model_path: str | Path, sequence: int,
                      frames: list[int], noise: DetectionNoise | None = None) -> list[WholeBodyFrame]:
    """Frames of ``data`` (a ``kind="body"`` ``SyntheticDataset``) with a hand at each wrist.

    Each hand is the MANO-format model of ``hand_model_path`` (a right hand; the left one is its
    mirror image in x, as MANO's left hand is), posed with a smooth finger motion, rotated so
    that its wrist -> middle-finger direction follows the forearm (elbow -> wrist) and moved so
    that its wrist joint sits on the body's wrist joint. The hands are drawn over the body
    (painter's order, no occluders). Keypoints: the body's and feet's from the body's projected
    joints, each hand's 21 from its projected joints, the face missing (confidence 0); the
    detections add ``noise`` per part (jitter relative to the part's box; no left / right
    swaps)."""
    import torch
    from scipy.spatial.transform import Rotation

    from extpose_sdk.body_models import load_body_model
    from extpose_sdk.keypoints.layouts import convert, get_layout
    from extpose_sdk.render import Camera, render_mesh

    if data.subject.body_model != "smpl":
        raise ValueError("render_whole_body needs a body data set (kind='body')")
    noise = noise if noise is not None else DetectionNoise(swap=0.0)
    noise = attrs.evolve(noise, swap=0.0)
    hands = {side: load_body_model("mano", hand_model_path, is_rhand=side == "right")
             for side in SIDES}
    body25 = get_layout("openpose_body25")
    wholebody = get_layout("coco_wholebody133")
    hand_start = {side: wholebody.index(f"{side}_hand_wrist") for side in SIDES}
    t = np.asarray(frames, dtype=np.float64) / FPS
    with torch.no_grad():  # the right hand at rest: the direction its fingers point
        rest = hands["right"](global_orient=torch.zeros(1, 3), hand_pose=torch.zeros(1, 45))
    rest_joints = rest.joints[0].numpy().astype(np.float64)
    pointing = rest_joints[9] - rest_joints[0]  # wrist -> middle finger base (OpenPose order)
    posed = data.pose_frames(sequence, frames)
    background, _, color = data.scene(sequence)
    camera = Camera.of(data.focal, image_size=data.image_size)
    placed: dict[str, dict[str, np.ndarray]] = {}
    for number, side in enumerate(SIDES):
        motion = random_motion(HAND_SUBJECT, _rng(data.seed, data.split, "hand", sequence, side),
                               distance=1.0)
        elbow = posed["joints"][:, body25.index(f"{side}_elbow")]
        wrist = posed["joints"][:, body25.index(f"{side}_wrist")]
        forearm = wrist - elbow
        if side == "left":  # pose a right hand along the mirrored forearm, then mirror it
            forearm = forearm * np.array([-1.0, 1.0, 1.0])
        orient = np.stack([Rotation.align_vectors(f[None], pointing[None])[0].as_rotvec()
                           for f in forearm])
        output = _forward(hands[side], "hand_pose", orient, motion.angles(t),
                          np.zeros((len(frames), 10)))
        shift = wrist - output["joints"][:, 0]
        placed[side] = {"vertices": output["vertices"] + shift[:, None],
                        "joints": output["joints"] + shift[:, None], "faces": output["faces"],
                        "wrist": wrist, "color": np.roll(color, number + 1)}
    out = []
    for i, frame in enumerate(frames):
        uv = camera.project(posed["joints"][i])
        image = render_mesh(background, posed["vertices"][i], posed["faces"],
                            focal=data.focal, color=color)
        body_points = np.concatenate([uv[: body25.num_keypoints],
                                      np.ones((body25.num_keypoints, 1))], 1)
        keypoints = convert(body_points.astype(np.float32), "openpose_body25", "coco_wholebody133")
        lo, hi = uv.min(0), uv.max(0)
        pad = 0.1 * (hi - lo).max() + 2.0
        box = np.concatenate([lo - pad, hi + pad])
        rng = _rng(data.seed, data.split, "whole-detect", sequence, frame)
        body_part = keypoints[:, 2] > 0
        detected = np.zeros_like(keypoints)
        detected[body_part] = noisy_detections(keypoints[body_part], box, (), noise, rng)
        for side in SIDES:
            hand = placed[side]
            image = render_mesh(image, hand["vertices"][i], hand["faces"], focal=data.focal,
                                color=hand["color"])
            hand_uv = camera.project(hand["joints"][i])
            part = slice(hand_start[side], hand_start[side] + len(hand_uv))
            keypoints[part] = np.concatenate([hand_uv, np.ones((len(hand_uv), 1))], 1)
            hand_box = np.concatenate([hand_uv.min(0), hand_uv.max(0)])
            detected[part] = noisy_detections(hand_uv, hand_box, (), noise, rng)
        out.append(WholeBodyFrame(
            image=image, keypoints=keypoints, detected=detected.astype(np.float32),
            wrists_3d={side: placed[side]["wrist"][i] for side in SIDES},
            hand_joints_3d={side: placed[side]["joints"][i] for side in SIDES}, box=box))
    return out


def write_whole_body_sample(path: str | Path, *, frames: int = 24,
                            size: tuple[int, int] = (256, 256), seed: int = 0, fps: float = FPS,
                            keypoints_path: str | Path | None = None,
                            model_path: str | Path | None = None,
                            hand_model_path: str | Path | None = None) -> list[WholeBodyFrame]:
    """Write an mp4 of the whole-body sample (``render_whole_body``: the synthetic body with a
    hand at each wrist, ``frames`` frames of ``size`` (H, W)) and return its frames; with
    ``keypoints_path`` the noisy COCO-WholeBody-133 detections are also saved as a ``.npz``
    keypoint file (``keypoints (T, 1, 133, 3)``, ``layout``). ``model_path`` / ``hand_model_path``:
    the SMPL- / MANO-format files (default: the synthetic ones in the cache)."""
    data = SyntheticDataset(split="test", kind="body", model_path=model_path, num_sequences=1,
                            sequence_length=frames, image_size=size, augment=False, seed=seed,
                            occluders=0)
    hand_model_path = hand_model_path or synthetic_model_path("hand")
    rendered = render_whole_body(data, hand_model_path, 0, list(range(frames)))
    _write_video(path, [f.image for f in rendered], fps)
    if keypoints_path is not None:
        np.savez(keypoints_path, keypoints=np.stack([f.detected for f in rendered])[:, None],
                 layout="coco_wholebody133")
    return rendered


def _write_video(path: str | Path, images: list[np.ndarray], fps: float) -> None:
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = images[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"cannot open {str(path)!r} for writing with OpenCV (mp4v)")
    try:
        for image in images:
            writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()


HAND_SUBJECT = SUBJECTS["hand"]


def synthetic_body(root: str | Path | None = None, split: str = "train", **options) -> SyntheticDataset:
    """The ``synthetic-body`` data set (``SyntheticDataset(kind="body")``)."""
    return SyntheticDataset(root, split, kind="body", **options)


def synthetic_hand(root: str | Path | None = None, split: str = "train", **options) -> SyntheticDataset:
    """The ``synthetic-hand`` data set (``SyntheticDataset(kind="hand")``)."""
    return SyntheticDataset(root, split, kind="hand", **options)
