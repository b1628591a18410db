"""Which small backbone learns to see a synthetic hand in its RGB crop, in minutes of CPU?

The synthetic hand models learn from the skeleton image and not from RGB (docs/reproduction.md).
This benchmark asks whether that is the task or the backbone. Each arm regresses the 21 2D
keypoints of the RGB crop (128 px, the synthetic recipes' input) with an L1 loss, from scratch,
for the same steps and batch, and is scored on held-out frames by the mean distance to the
true keypoints as a fraction of the box, beside always predicting the training frames' mean:

- ``vit``: the synthetic recipes' ViT (width 128, depth 6, 16 px patches, an 8 x 8 grid);
- ``vit-sincos``: the same, its position embedding started from 2D sines and cosines (as MAE,
  which ViTPose and so HMR2.0 / HaMeR start from) instead of small noise;
- ``vit-conv``: the same ViT with ``stem="conv"`` (a hybrid ViT): five stride-2 stages of two
  3 x 3 convolutions with group norm in place of the 16 px patch embedding, so a 4 x 4 grid,
  and a position embedding started as large as the stem's tokens (``pos_embed_std=1.0``);
- ``cnn``: five stride-2 stages of two 3 x 3 convolutions (32 to 128 channels, batch norm),
  a 4 x 4 grid of the same width; fewer parameters (1.0M against the ViT's 1.4M).

Every arm reads its tokens the way the HaMeR / HMR2.0 head reads the ViT's: one learnt query
cross-attends to them, then an MLP. So the arms differ only in what makes the tokens.

``vit-conv16`` is the conv-stem ViT with four stages (16 px, an 8 x 8 grid): four times the
tokens. ``--input skeleton`` trains and scores on the skeleton image instead of the RGB crop (drawn
from the stand-in detector's noisy keypoints, as the models see it) against the same true
keypoints, and prints the detector's own error beside it: how precisely each backbone reads the
joints the skeleton draws, the question behind the skeleton's small gain (docs/reproduction.md).
``--input rgb+skeleton`` gives the ViT arms both images of each frame as ExtPose does (one
sequence of both images' tokens through the same ViT, the read-out attending to all of them): the
2D analogue of the protocol's arm (b) against (a). With ``--modality-dropout 0.5`` a step shows
one image only half the time (a lighter draw than the engine's ``train.modality_dropout``, see
``train_arm``), and the scores come from each input too; with
``--save`` that pretrains a ViT that reads both (a "ViTPose" of the crop and of the skeleton).
``--kind body`` asks the same of the synthetic bodies (44 keypoints), ``--detector-error SCALE``
draws a stand-in detector making SCALE times the default's errors (0: the true keypoints, so
the score is how precisely the backbone reads a drawing, nothing else).

    python benchmarks/rgb_backbones.py                       # renders 4,000 frames first
    python benchmarks/rgb_backbones.py --frames 16000 --threads 1 --out runs/rgb-backbones.json
    python benchmarks/rgb_backbones.py --arms vit-conv --frames 24000 --augment --steps 2500 \\
        --save runs/hand-keypoints/backbone.safetensors          # pretrains synthetic-hand-base's ViT
    python benchmarks/rgb_backbones.py --input skeleton --arms vit vit-conv vit-conv16 --frames 16000
    python benchmarks/rgb_backbones.py --input rgb+skeleton --modality-dropout 0.5 --arms vit-conv \\
        --frames 24000 --augment --steps 6000 --save runs/hand-keypoints-both/backbone.safetensors
    python benchmarks/rgb_backbones.py --kind body --input skeleton --detector-error 0 \\
        --arms vit-conv vit-conv16 --frames 8000 --augment --steps 3000
    python benchmarks/rgb_backbones.py --cache cache/synthetic-hand-train-2400x8 \\
        --val-cache cache/synthetic-hand-v2-val --val-every 4 --out runs/rgb-backbones.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ARMS = ("vit", "vit-sincos", "vit-conv", "vit-conv16", "cnn")
INPUTS = ("rgb", "skeleton", "rgb+skeleton")
SIZE = 128


# -- the frames -------------------------------------------------------------------------------

def rendered(split: str, count: int, seed: int, augment: bool = False,
             kind: str = "hand", progress: bool = False, input: str = "rgb",
             detector_error: float = 1.0, workers: int | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """``count`` fresh synthetic frames (one per motion): uint8 ``(N, 3, H, W)`` images of
    ``input`` (the RGB crop, or the skeleton image of the stand-in detector's keypoints) and the
    ``(N, J, 2)`` true keypoints in crop units (-0.5 .. 0.5); ``augment``: the training recipes'
    augmentation (no flips: right hands, and the recipes do not flip bodies either). With
    ``rgb+skeleton`` the images are ``(N, 2, 3, H, W)``: the crop, then its skeleton image.
    ``detector_error``: the stand-in detector makes that many times the default's errors (0: the
    true keypoints drawn). ``workers`` processes draw them (None: one a core; 0: this one);
    each frame is its index's, whoever draws it."""
    from tqdm.auto import tqdm

    from extpose_sdk.datasets.synthetic import SyntheticDataset

    if input not in INPUTS:
        raise ValueError(f"unknown input {input!r}; the inputs: {list(INPUTS)}")
    data = SyntheticDataset(kind=kind, split=split, num_sequences=count, sequence_length=1,
                            crop_size=SIZE, seed=seed,
                            augment={"flip_prob": 0.0} if augment else False,
                            **_sibling("reproduce").detector_option(detector_error))
    frames = _Frames(data, input)
    workers = min(len(os.sched_getaffinity(0)) if workers is None else workers, count)
    if workers > 1:
        source = torch.utils.data.DataLoader(frames, batch_size=None, num_workers=workers,
                                             collate_fn=_as_is)
    else:
        source = (frames[i] for i in range(count))
    images, keypoints = [], []
    for image, points in tqdm(source, total=count, desc=f"rendering {kind} {split} frames",
                              unit="frame", disable=not progress):
        images.append(image)
        keypoints.append(points)
    return np.stack(images), np.stack(keypoints)


class _Frames(torch.utils.data.Dataset):
    """The frames ``rendered`` returns, one per index, as uint8 images and crop keypoints."""

    def __init__(self, data, input: str) -> None:
        self.data, self.input = data, input

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        from extpose_sdk.data.inputs import model_inputs
        from extpose_sdk.data.sample import stack
        from extpose_sdk.datasets.cache import to_uint8

        sample = self.data[i]  # its crop comes ImageNet-normalised; stored as the cache stores it
        image = sample["rgb"]
        if self.input != "rgb":  # drawn as the engine draws it for a model (normalised as RGB)
            skeleton = model_inputs(stack([sample]), ("skeleton",), size=SIZE)[0]["skeleton"][0]
            image = skeleton if self.input == "skeleton" else torch.stack([image, skeleton])
        return to_uint8(image), sample["keypoints_2d"].numpy()[:, :2]


def _as_is(frame):
    """A ``DataLoader``'s per-sample conversion that leaves numpy arrays numpy arrays."""
    return frame


def rendered_once(folder: Path, **arguments) -> tuple[np.ndarray, np.ndarray]:
    """``rendered(**arguments)`` kept in ``folder``, so that a run resumed later does not draw
    its frames again (the images memory-mapped when read back)."""
    record = folder / "frames.json"
    wanted = json.dumps(arguments, sort_keys=True)
    if record.is_file() and record.read_text() == wanted:
        return np.load(folder / "images.npy", mmap_mode="r"), np.load(folder / "keypoints.npy")
    images, keypoints = rendered(**arguments)
    folder.mkdir(parents=True, exist_ok=True)
    record.unlink(missing_ok=True)  # no record of other frames while these are written
    for name, array in (("images.npy", images), ("keypoints.npy", keypoints)):
        partial = folder / (name + ".partial")
        with open(partial, "wb") as file:
            np.save(file, array)
        partial.replace(folder / name)  # a new file: a reader of the old one keeps its frames
    record.write_text(wanted)  # last: the frames are whole once it says so
    return images, keypoints


def _sibling(name: str):
    """The benchmark module ``name`` of this folder (``held_out``, ``reproduce``)."""
    import importlib
    import sys

    here = str(Path(__file__).parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    return importlib.import_module(name)


def detector_error(split: str, count: int, seed: int, kind: str = "hand",
                   threshold: float | None = None, scale: float = 1.0) -> float:
    """Mean distance (box units) from the true keypoints to the stand-in detector's, over the
    joints a skeleton image draws (confidence at least ``threshold``, by default the skeleton
    renderer's), on the frames ``rendered`` draws for the same arguments (not augmented): what
    the skeleton image says, measured as ``held_out.py`` measures it on its clips."""
    from extpose_sdk.datasets.synthetic import SyntheticDataset

    frames = SyntheticDataset(kind=kind, split=split, num_sequences=count, sequence_length=1,
                              crop_size=SIZE, seed=seed, augment=False, clip_length=1,
                              **_sibling("reproduce").detector_option(scale))
    return _sibling("held_out").detector_error(frames, threshold)["mean"]


def cached(folder: str | Path, every: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The RGB crops and 2D keypoints of an ``extpose train`` data cache, clips flattened to
    frames (memory-mapped; ``every``: keep one frame in so many)."""
    folder = Path(folder)
    images = np.load(folder / "rgb.npy", mmap_mode="r")
    keypoints = np.load(folder / "keypoints_2d.npy", mmap_mode="r")
    images = images.reshape(-1, *images.shape[-3:])[::every]
    return images, np.asarray(keypoints.reshape(-1, *keypoints.shape[-2:])[::every, :, :2])


def normalized(images: np.ndarray) -> torch.Tensor:
    """uint8 crops as the model takes them (ImageNet-normalised float32)."""
    from extpose_sdk.datasets.cache import from_uint8

    return from_uint8(np.asarray(images))


def keypoint_error(pred: torch.Tensor, truth: torch.Tensor) -> float:
    """Mean distance between predicted and true 2D keypoints, in box units."""
    return float((pred - truth).norm(dim=-1).mean())


# -- the arms ---------------------------------------------------------------------------------

class QueryReadout(nn.Module):
    """One learnt query attends to the tokens; an MLP turns it into ``(B, joints, 2)``."""

    def __init__(self, dim: int, joints: int = 21) -> None:
        super().__init__()
        self.joints = joints
        self.query = nn.Parameter(torch.zeros(1, 1, dim))
        self.attention = nn.MultiheadAttention(dim, 4, batch_first=True)
        self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 256), nn.GELU(),
                                 nn.Linear(256, joints * 2))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        query = self.query.expand(len(tokens), -1, -1)
        read = self.attention(query, tokens, tokens, need_weights=False)[0][:, 0]
        return self.mlp(read).view(-1, self.joints, 2)


class ConvTokens(nn.Module):
    """Five stride-2 stages of two 3 x 3 convolutions: ``(B, 3, H, W) -> (B, H/32 * W/32, D)``."""

    def __init__(self, width: int = 128, channels: tuple[int, ...] = (32, 64, 128, 128, 128),
                 grid: int = SIZE // 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for a, b in zip((3,) + channels[:-1], channels, strict=True):
            layers += [nn.Conv2d(a, b, 3, 2, 1), nn.BatchNorm2d(b), nn.ReLU(),
                       nn.Conv2d(b, b, 3, 1, 1), nn.BatchNorm2d(b), nn.ReLU()]
        layers.append(nn.Conv2d(channels[-1], width, 1))
        self.width = width
        self.features = nn.Sequential(*layers)
        self.position = nn.Parameter(torch.randn(1, grid * grid, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(2).transpose(1, 2) + self.position


class ViTTokens(nn.Module):
    """The synthetic recipes' ViT (``extpose_sdk.vit``), its normed output tokens; given
    ``(B, 2, 3, H, W)`` (RGB and skeleton), the tokens of both as ExtPose runs them."""

    def __init__(self, sincos: bool = False, **options) -> None:
        super().__init__()
        from extpose_sdk.extend import ExtendedViT
        from extpose_sdk.vit import ViT

        self.vit = ViT(**{"img_size": (SIZE, SIZE), "embed_dim": 128, "depth": 6, "num_heads": 4,
                          "pos_embed_init": "sincos" if sincos else "noise", **options})
        self.width = self.vit.embed_dim
        # owns self.vit and nothing else: the same parameters (net.parameters() lists them once)
        self.extended = ExtendedViT(self.vit, mask="frame")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 5:
            both = self.extended({"rgb": x[:, None, 0], "skeleton": x[:, None, 1]})
            return both.frame_context()[0]
        return self.vit(x)


def build(arm: str, joints: int = 21, **vit_options) -> nn.Module:
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; the arms: {list(ARMS)}")
    if arm == "cnn":
        tokens = ConvTokens()  # one image a frame: not for --input rgb+skeleton
    elif arm in ("vit-conv", "vit-conv16"):
        tokens = ViTTokens(stem="conv", patch_size=16 if arm == "vit-conv16" else 32,
                           pos_embed_std=1.0, **vit_options)
    else:
        tokens = ViTTokens(sincos=arm == "vit-sincos", **vit_options)
    return nn.Sequential(tokens, QueryReadout(tokens.width, joints=joints))


# -- training and scoring ---------------------------------------------------------------------

def score(net: nn.Module, images: np.ndarray, keypoints: np.ndarray, batch: int = 64) -> float:
    """The mean 2D error (box units) of ``net`` on ``images``."""
    net.eval()
    with torch.no_grad():
        pred = torch.cat([net(normalized(images[i:i + batch])) for i in range(0, len(images), batch)])
    net.train()
    return keypoint_error(pred, torch.as_tensor(keypoints))


def score_each_input(net: nn.Module, images: np.ndarray, keypoints: np.ndarray) -> dict:
    """With both images a frame ``(N, 2, 3, H, W)``: the 2D error from both, from the RGB crop
    alone and from the skeleton image alone (one model trained with ``modality_dropout``)."""
    return {"val_2d": score(net, images, keypoints),
            "val_2d_rgb": score(net, images[:, 0], keypoints),
            "val_2d_skeleton": score(net, images[:, 1], keypoints)}


def train_arm(net: nn.Module, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray],
              *, steps: int, batch: int = 32, lr: float = 3e-4, warmup: int = 100,
              eval_every: int = 200, seed: int = 0, progress: bool = True,
              modality_dropout: float = 0.0, resume: Path | None = None) -> dict:
    """AdamW with a linear warm-up and gradient clipping; the validation error along the way.
    With both images a frame, ``modality_dropout`` is the chance that a step's batch shows one
    of them only (either, equally likely); each scoring then reports the error from each input
    too. Not the engine's draw (``extpose_sdk.extend.ModalityDropout``), which drops each image
    of each sample with chance P and keeps one when both go: at 0.5 it shows both a quarter of
    the time, this half. With ``resume``, the whole training state is written there at every
    scoring and a run that finds it goes on from it: the same steps, the same batches."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    images, keypoints = train
    if modality_dropout and images.ndim != 5:
        raise ValueError(f"modality_dropout needs both images a frame, (N, 2, 3, H, W); "
                         f"the frames are {tuple(images.shape)}")
    optimizer = torch.optim.AdamW(net.parameters(), lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))
    curve, start, done = [], time.perf_counter(), 0
    if resume is not None and Path(resume).is_file():
        done, curve, spent = load_training_state(resume, net, optimizer, schedule, rng, steps)
        start -= spent
        if progress:
            print(f"  resumed at step {done} from {resume}", flush=True)
    for step in range(done + 1, steps + 1):
        pick = np.sort(rng.choice(len(images), batch, replace=False))
        x, y = normalized(images[pick]), torch.as_tensor(keypoints[pick])
        if modality_dropout and rng.random() < modality_dropout:
            x = x[:, rng.integers(2)]  # the RGB crop or the skeleton image alone
        loss = (net(x) - y).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if step % eval_every == 0 or step == steps:
            scores = (score_each_input(net, *val) if modality_dropout
                      else {"val_2d": score(net, *val)})
            scores = {k: round(v, 4) for k, v in scores.items()}
            curve.append({"step": step, "seconds": round(time.perf_counter() - start, 1),
                          "train_l1": round(loss.item(), 4), **scores})
            if progress:
                print(f"  step {step}: train L1 {curve[-1]['train_l1']}, "
                      + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in scores.items()),
                      flush=True)
            if resume is not None:
                save_training_state(resume, step, steps, net, optimizer, schedule, rng, curve,
                                    time.perf_counter() - start)
    scores = {k: v for k, v in curve[-1].items() if k.startswith("val_2d")}
    return {"curve": curve, **scores,
            "seconds": round(time.perf_counter() - start, 1),
            "parameters": sum(p.numel() for p in net.parameters())}


def pretrain(vit_options: dict, path: Path, *, kind: str = "hand", frames: int = 24000,
             steps: int = 2500, progress: bool = True, input: str = "rgb",
             modality_dropout: float = 0.0) -> dict:
    """A synthetic "ViTPose": a ViT of ``vit_options`` (a recipe's backbone options) learns the
    2D keypoints of ``frames`` augmented renders for ``steps`` steps, scored on validation frames
    (test split, seed 1); its backbone is saved to ``path`` for ``model.backbone_weights``.
    ``input="rgb+skeleton"`` reads both images as ExtPose does (with ``modality_dropout``: the
    chance a step shows one only), so the ViT has learnt the skeleton image before the mesh.
    The training frames are kept beside ``path`` until the backbone is saved there, with the
    training state: a stopped run goes on without drawing them again."""
    drawn = path.with_name(path.name + ".frames")  # kept for a resumed run until the end
    train = rendered_once(drawn, split="train", count=frames, seed=11, augment=True, kind=kind,
                          progress=progress, input=input)
    val = rendered("test", min(512, frames), seed=1, kind=kind, progress=progress, input=input)
    tokens = ViTTokens(**vit_options)
    net = nn.Sequential(tokens, QueryReadout(tokens.width, joints=train[1].shape[1]))
    result = train_and_save_backbone(net, tokens.vit, train, val, path, steps=steps,
                                     progress=progress, modality_dropout=modality_dropout)
    shutil.rmtree(drawn)
    return result


def train_and_save_backbone(net: nn.Module, vit: nn.Module, train, val, path: Path,
                            **options) -> dict:
    """``train_arm`` resumable from a state kept beside ``path`` until ``vit`` is saved there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    resume = path.with_name(path.name + ".resume.pt")
    result = train_arm(net, train, val, resume=resume, **options)
    save_backbone(vit, path)
    resume.unlink()  # the backbone is whole: nothing left to resume
    return result


def save_training_state(path: Path, step: int, steps: int, net: nn.Module, optimizer, schedule,
                        rng: np.random.Generator, curve: list, seconds: float) -> None:
    """Everything ``train_arm`` needs to go on after ``step``, written whole or not at all
    (a temporary file renamed into place); read back with ``torch.load(weights_only=True)``."""
    state = {"step": step, "steps": steps, "net": net.state_dict(),
             "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
             "torch_rng": torch.get_rng_state(), "seconds": seconds,
             "numpy_rng": json.dumps(rng.bit_generator.state), "curve": json.dumps(curve)}
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    partial.replace(path)


def load_training_state(path: Path, net: nn.Module, optimizer, schedule,
                        rng: np.random.Generator, steps: int) -> tuple[int, list, float]:
    """Restore what ``save_training_state`` wrote; the step, the curve so far and the seconds
    spent. A state of a run with other steps is refused: its schedule is not this one's."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state["steps"] != steps:
        raise ValueError(f"{path} is the state of a run of {state['steps']} steps, not {steps}: "
                         "delete it to start again, or ask for the same steps")
    net.load_state_dict(state["net"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    torch.set_rng_state(state["torch_rng"])
    rng.bit_generator.state = json.loads(state["numpy_rng"])
    return state["step"], json.loads(state["curve"]), state["seconds"]


def save_backbone(vit: nn.Module, path: Path) -> None:
    """The ViT's weights under the keys of a model's ``backbone``: safetensors plus a JSON with
    their SHA-256, as any ExtPose checkpoint (checked when ``model.backbone_weights`` reads it)."""
    from extpose_sdk.checkpoints import save_extpose_checkpoint

    save_extpose_checkpoint(vit, path, {"backbone_only": True})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=4000, help="frames to render (no --cache)")
    parser.add_argument("--cache", help="an `extpose train` data cache to train on")
    parser.add_argument("--val-cache", help="a data cache to score on (default: 512 rendered "
                        "validation frames: test split, seed 1, as the recipes validate; seed 2 is "
                        "benchmarks/reproduce.py's held-out set)")
    parser.add_argument("--val-every", type=int, default=1, help="score every so many frames "
                        "of --val-cache")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: as is)")
    parser.add_argument("--augment", action="store_true", help="augment the rendered training "
                        "frames as the training recipes do")
    parser.add_argument("--input", default="rgb", choices=INPUTS, help="what the backbones "
                        "read: the RGB crop, the skeleton image of the detector's keypoints, or "
                        "both (ViT arms)")
    parser.add_argument("--kind", choices=["hand", "body"], default="hand",
                        help="the synthetic hands (21 keypoints) or bodies (44)")
    parser.add_argument("--detector-error", type=float, default=1.0, metavar="SCALE",
                        help="with a skeleton input: the stand-in detector makes SCALE times the "
                        "default's errors (0: the true keypoints drawn)")
    parser.add_argument("--modality-dropout", type=float, default=0.0, metavar="P",
                        help="with --input rgb+skeleton: the chance a step shows one image only "
                        "(both the rest; not train.modality_dropout's per-image draw); scores each input too")
    parser.add_argument("--out", type=Path, help="write the results here as JSON (new file)")
    parser.add_argument("--save", type=Path, help="save the one ViT arm's trained backbone here "
                        "(a new .safetensors; a recipe starts from it with model.backbone_weights); "
                        "its training state is kept beside it until then, so the same command "
                        "resumes a stopped run")
    args = parser.parse_args()
    for path in (args.out, args.save):
        if path is not None and path.exists():
            parser.error(f"{path} exists; give a new path")
    if args.save is not None and (len(args.arms) != 1 or not args.arms[0].startswith("vit")):
        parser.error("--save needs exactly one ViT arm (--arms vit-conv)")
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.detector_error < 0:
        parser.error(f"--detector-error must be >= 0; got {args.detector_error}")
    if args.kind != "hand" and (args.cache or args.val_cache):
        parser.error("--cache / --val-cache hold hand frames; --kind body renders its frames")
    if args.input != "rgb" and (args.cache or args.val_cache):
        parser.error(f"--input {args.input} renders its frames; it does not read --cache / "
                     "--val-cache")
    if not 0.0 <= args.modality_dropout <= 1.0:
        parser.error(f"--modality-dropout is a chance, 0 to 1; got {args.modality_dropout}")
    if args.modality_dropout and args.input != "rgb+skeleton":
        parser.error("--modality-dropout needs --input rgb+skeleton")
    if args.input == "rgb+skeleton" and "cnn" in args.arms:
        parser.error("--input rgb+skeleton needs ViT arms (the cnn reads one image a frame)")
    train = (cached(args.cache) if args.cache
             else rendered("train", args.frames, seed=11, augment=args.augment, progress=True,
                           input=args.input, kind=args.kind, detector_error=args.detector_error))
    val = (cached(args.val_cache, every=args.val_every) if args.val_cache
           else rendered("test", 512, seed=1, progress=True, input=args.input, kind=args.kind,
                         detector_error=args.detector_error))
    val = (np.ascontiguousarray(val[0]), val[1])
    mean = keypoint_error(torch.as_tensor(train[1][:2000]).mean(0).expand(len(val[1]), -1, -1),
                          torch.as_tensor(val[1]))
    results = {"kind": args.kind, "input": args.input,
               "detector_error_scale": args.detector_error, "train_frames": len(train[0]),
               "val_frames": len(val[0]), "steps": args.steps, "mean_keypoints_val_2d": round(mean, 4), "arms": {}}
    print(f"always the mean keypoints: val 2D {mean:.3f} of the box")
    if args.input != "rgb":
        results["detector_val_2d"] = round(detector_error("test", 512, seed=1, kind=args.kind,
                                                          scale=args.detector_error), 4)
        print(f"the detector's drawn keypoints: val 2D {results['detector_val_2d']:.3f} of the box")
    for arm in args.arms:
        print(f"{arm}:", flush=True)
        net = build(arm, joints=train[1].shape[1])
        options = {"steps": args.steps, "modality_dropout": args.modality_dropout}
        if args.save is None:
            results["arms"][arm] = train_arm(net, train, val, **options)
        else:
            results["arms"][arm] = train_and_save_backbone(net, net[0].vit, train, val,
                                                           args.save, **options)
            print(f"saved the backbone to {args.save}")
        if args.out is not None:  # written as it goes
            args.out.write_text(json.dumps(results, indent=1))
    print(f"\n{'arm':12s} {'params':>8s} {'val 2D':>7s} {'x mean':>7s} {'seconds':>8s}")
    for arm, r in results["arms"].items():
        print(f"{arm:12s} {r['parameters'] / 1e6:7.2f}M {r['val_2d']:7.3f} "
              f"{r['val_2d'] / mean:7.2f} {r['seconds']:8.0f}")


if __name__ == "__main__":
    main()
