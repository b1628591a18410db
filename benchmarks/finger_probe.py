"""Do a trained hand model's features hold the finger curls?

On fresh synthetic hands (train split, seed 11, one frame per motion, no augmentation) the
model sees both inputs, the skeleton image alone and RGB alone. For each, a ridge regression
from the head's input tokens (mean- and max-pooled) to the 15 finger flexions is fitted on 70%
of the frames and scored on the rest (R^2, the best of a few ridge strengths), beside the head's
own predicted flexions (about each joint's z axis, as the synthetic hand flexes):

    python benchmarks/finger_probe.py                            # the shipped hand weights
    python benchmarks/finger_probe.py --weights runs/x/checkpoints/step-0005000/model.safetensors

What it says: R^2 near 0 means the ViT has not learnt to see the fingers, whatever the head
does; the articulation benchmark (articulation.py) says how much of them the inputs hold.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

RIDGE_STRENGTHS = (1.0, 10.0, 100.0, 1000.0)


def r_squared(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean over columns of 1 - residual / variance."""
    residual = ((pred - truth) ** 2).sum(0)
    variance = ((truth - truth.mean(0)) ** 2).sum(0)
    return float((1.0 - residual / variance).mean())


def ridge_r_squared(features: np.ndarray, truth: np.ndarray, train: int) -> float:
    """Held-out R^2 of the best ridge regression from ``features`` to ``truth``."""
    x = (features - features[:train].mean(0)) / (features[:train].std(0) + 1e-6)
    centre = truth[:train].mean(0)
    best = -np.inf
    for strength in RIDGE_STRENGTHS:
        gram = x[:train].T @ x[:train] + strength * np.eye(x.shape[1])
        weights = np.linalg.solve(gram, x[:train].T @ (truth[:train] - centre))
        best = max(best, r_squared(x[train:] @ weights + centre, truth[train:]))
    return best


def flexions(rotations: torch.Tensor) -> np.ndarray:
    """(N, 15) flexion angles about each joint's z axis from (N, 15, 3, 3) rotations."""
    return torch.atan2(rotations[..., 1, 0], rotations[..., 0, 0]).numpy()


def probe(model, samples: list[dict], modalities: tuple[str, ...], train: int,
          truth: np.ndarray) -> dict[str, float]:
    from extpose_sdk.data.inputs import model_inputs

    tokens: dict[str, torch.Tensor] = {}
    hook = model.head.register_forward_pre_hook(lambda _, args: tokens.update(context=args[0]))
    model.modalities = modalities
    pooled, predicted = [], []
    with torch.no_grad():
        for start in range(0, len(samples), 64):
            rows = samples[start:start + 64]
            batch = {k: torch.stack([s[k] for s in rows]) for k in ("rgb", "skeleton")}
            inputs, present = model_inputs(batch, modalities, size=batch["rgb"].shape[-1])
            output = model(inputs, present=present)
            context = tokens["context"].reshape(len(rows), -1, tokens["context"].shape[-1])
            pooled.append(torch.cat([context.mean(1), context.amax(1)], -1).numpy())
            predicted.append(flexions(output.hand_pose.reshape(len(rows), 15, 3, 3)))
    hook.remove()
    head = np.concatenate(predicted)
    return {"ridge_r2": ridge_r_squared(np.concatenate(pooled), truth, train),
            "head_r2": r_squared(head[train:], truth[train:]),
            "head_std": float(head.std(0).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="extpose-hamer-synthetic",
                        help="registered weights or a checkpoint file")
    parser.add_argument("--frames", type=int, default=1200)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--crop-size", type=int, default=128, help="the model's input side")
    args = parser.parse_args()

    from reproduce import load_trained

    import extpose_sdk
    from extpose_sdk.engine.data import with_modalities

    torch.manual_seed(0)
    model = load_trained(args.weights, "hand")
    size = args.crop_size
    data = extpose_sdk.get_registries().dataset.build(
        "synthetic-hand", split="train", seed=args.seed, num_sequences=args.frames,
        sequence_length=1, crop_size=size, augment=False)
    samples = [with_modalities(data[i], ["rgb", "skeleton"], size=size) for i in range(len(data))]
    truth = np.stack([s["hand_pose"].numpy()[2::3] for s in samples])
    train = int(0.7 * len(samples))
    print(f"{args.weights}: {len(samples)} frames ({len(samples) - train} held out), the 15 "
          f"flexions vary by {truth.std(0).mean():.3f} rad")
    print(f"{'input':<16} {'ridge R^2 (tokens)':>19} {'head R^2':>9} {'head std (rad)':>15}")
    for modalities in (("rgb", "skeleton"), ("skeleton",), ("rgb",)):
        scores = probe(model, samples, modalities, train, truth)
        print(f"{' + '.join(modalities):<16} {scores['ridge_r2']:19.3f} {scores['head_r2']:9.3f} "
              f"{scores['head_std']:15.3f}")


if __name__ == "__main__":
    main()
