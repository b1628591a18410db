"""How much of the synthetic set's articulation its 2D keypoints carry.

For each frame of fresh synthetic sequences (train split, one frame each): the 3D joints, the
true 2D keypoints and the noisy detections the skeleton image is drawn from. A small MLP learns
the 3D joints from each kind of keypoints on 85% of the frames and is scored on the rest by
PA-MPJPE, beside always predicting the mean articulation (the mean shape of the joints in the
subject's own frame, turned as the truth is turned):

    python benchmarks/articulation.py --kind hand            # about 2 minutes on 2 cores
    python benchmarks/articulation.py --kind hand --jitter 0.01 --drop 0.0
    python benchmarks/articulation.py --kind body --detector-error 0.25   # the better detector

What it says about a trained model: if the detections alone cannot beat the mean articulation,
a model can only learn the fingers from the RGB image.
"""

from __future__ import annotations

import argparse

import attrs
import numpy as np
import torch
from scipy.spatial.transform import Rotation

from extpose_sdk.datasets.synthetic import DetectionNoise, SyntheticDataset
from extpose_sdk.metrics import pa_mpjpe


def frames(kind: str, count: int, noise: DetectionNoise, seed: int) -> dict[str, np.ndarray]:
    data = SyntheticDataset(kind=kind, split="train", num_sequences=count, sequence_length=1,
                            image_size=(64, 64), crop_size=32, augment=False, occluders=0,
                            detection_noise=noise, seed=seed)
    keys = {"true": "keypoints_2d", "detected": "detected_keypoints_2d",
            "joints": "keypoints_3d", "orient": "global_orient", "center": "center",
            "scale": "scale"}
    rows = [data[i] for i in range(count)]
    out = {name: np.stack([r[key].numpy() for r in rows]) for name, key in keys.items()}
    # detections come in full-image pixels; put them in the crop's frame, as the true ones
    side = 200.0 * out["scale"].max(1)[:, None, None]  # the box side: scale in units of 200 px
    out["detected"][..., :2] = (out["detected"][..., :2] - out["center"][:, None]) / side
    return out


def mean_articulation(joints: np.ndarray, orient: np.ndarray) -> np.ndarray:
    """The mean of the joints in the subject's own frame, turned back into each frame's."""
    turn = Rotation.from_rotvec(orient.reshape(-1, 3)).as_matrix()
    own = np.einsum("nji,nkj->nki", turn, joints)  # R^T x
    return np.einsum("nij,kj->nki", turn, own.mean(0))


def learnt(keypoints: np.ndarray, joints: np.ndarray, train: int, steps: int) -> np.ndarray:
    """Held-out 3D joints an MLP predicts from root-relative 2D keypoints and confidences."""
    n = len(keypoints)
    x = np.concatenate([(keypoints[..., :2] - keypoints[:, :1, :2]).reshape(n, -1),
                        keypoints[..., 2]], 1)
    x = torch.tensor(x, dtype=torch.float32)
    x = (x - x[:train].mean(0)) / (x[:train].std(0) + 1e-6)
    y = torch.tensor(joints.reshape(n, -1), dtype=torch.float32)
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 256), torch.nn.GELU(),
                              torch.nn.Linear(256, 256), torch.nn.GELU(),
                              torch.nn.Linear(256, y.shape[1]))
    optimizer = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=1e-4)
    for _ in range(steps):
        rows = torch.randint(0, train, (256,))
        loss = (net(x[rows]) - y[rows]).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return net(x[train:]).reshape(n - train, -1, 3).numpy()


def detection_noise(scale: float, **given: float | None) -> DetectionNoise:
    """The stand-in detector the protocol's arms train with at ``--detector-error scale``
    (``reproduce.detection_noise``), with the ``given`` fields (not None) as they are."""
    import reproduce  # this folder's protocol (the script's folder is on sys.path)

    noise = DetectionNoise(**(reproduce.detection_noise(scale) or {}))
    return attrs.evolve(noise, **{name: value for name, value in given.items()
                                  if value is not None})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=["hand", "body"], default="hand")
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--steps", type=int, default=2000, help="MLP training steps")
    parser.add_argument("--detector-error", type=float, default=1.0, metavar="SCALE",
                        help="a stand-in detector making SCALE times the default's errors (as "
                        "held_out.py and reproduce.py take it); --jitter, --drop and --swap, "
                        "where given, replace its figures")
    parser.add_argument("--jitter", type=float, help="fraction of the box side")
    parser.add_argument("--drop", type=float, help="chance a joint is dropped")
    parser.add_argument("--swap", type=float, help="chance a frame has left and right swapped")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    if args.detector_error < 0:
        parser.error(f"--detector-error must be >= 0; got {args.detector_error}")
    torch.manual_seed(0)
    noise = detection_noise(args.detector_error, jitter=args.jitter, drop=args.drop,
                            swap=args.swap)
    data = frames(args.kind, args.frames, noise, args.seed)
    joints = data["joints"][..., :3]
    joints = joints - joints.mean(1, keepdims=True)
    train = int(0.85 * len(joints))
    truth = torch.tensor(joints[train:])

    def score(pred: np.ndarray) -> float:
        return 1000 * float(pa_mpjpe(torch.tensor(pred, dtype=truth.dtype), truth).mean())

    mean = score(mean_articulation(joints, data["orient"])[train:])
    print(f"synthetic-{args.kind}: {len(joints)} frames ({len(joints) - train} held out), "
          f"detections: jitter {noise.jitter:g} of the box, {noise.drop:.1%} dropped, "
          f"{noise.swap:.2%} of frames swapped")
    print(f"{'3D joints from':<28} {'PA-MPJPE (mm)':>14} {'x mean':>8}")
    print(f"{'the mean articulation':<28} {mean:14.2f} {1.0:8.2f}")
    for name in ("true", "detected"):
        value = score(learnt(data[name], joints, train, args.steps))
        print(f"{'MLP on ' + name + ' 2D keypoints':<28} {value:14.2f} {value / mean:8.2f}")


if __name__ == "__main__":
    main()
