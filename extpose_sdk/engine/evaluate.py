"""The Evaluator: a model over a data set, scored with a benchmark's protocol.

    from extpose_sdk.engine.evaluate import Evaluator
    result = Evaluator("3dpw", gt_body_model=smpl_by_gender).run(model, dataset)
    print(result.table()); result.write_json("3dpw.json")

Per batch the model gets the batch's modality inputs (``model.modalities``, default ``("rgb",)``;
frames ``(B, C, H, W)`` or clips ``(B, T, C, H, W)``); a modality the batch lacks (``skeleton``)
is rendered from the detected keypoints (``extpose_sdk.data.inputs``), and ``present=`` is
passed when the model's ``forward`` takes it. Predicted 3D joints and vertices come from
the output's ``pred_keypoints_3d`` / ``pred_vertices`` when it has them, else from ``body_model``
applied to the predicted parameters. Ground truth comes from the sample's ``keypoints_3d`` /
``vertices`` when its ``joint_set`` is the protocol's, else from ``gt_body_model`` (one model or
``{gender: model}``) applied to the ground-truth parameters. A body model is any callable taking
rotation matrices ``global_orient (N, 1, 3, 3)``, ``body_pose (N, 23, 3, 3)`` or
``hand_pose (N, 15, 3, 3)`` and ``betas (N, 10)`` and returning an object with ``joints`` (the
protocol's joint set) and ``vertices``.

Under ``torch.distributed`` (initialised by ``torchrun``) each process scores its share of the
data (``DistributedSampler``); per-sample rows are gathered with ``all_gather_object`` and
duplicates (the sampler's padding, overlapping clips) dropped, so every process returns the
same result. The acceleration error (3DPW) is computed per sequence from the gathered frames.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import torch

from extpose_sdk.metrics import Protocol, get_protocol, summarize


@attrs.define
class EvaluationResult:
    """Per-sample metric rows and their means (``summary``, with the count ``n``)."""

    protocol: str
    dataset: str
    summary: dict[str, float]
    rows: list[dict[str, Any]]
    #: HMR2.0's 19 extra joints (scored by 3DPW / H36M) were approximated (no SMPL_to_J19.pkl).
    j19_approximated: bool = False

    @property
    def notes(self) -> list[str]:
        if not self.j19_approximated:
            return []
        return ["the scored joints include HMR2.0's J19 joints approximated from SMPL's own "
                "regressor (no SMPL_to_J19.pkl: --joint-regressor-extra); not comparable with "
                "published numbers"]

    def table(self) -> str:
        """The summary as a small text table (millimetres; F-scores in 0..1)."""
        names = [k for k in self.summary if k != "n"]
        header = ["dataset", "protocol", "n", *names]
        values = [self.dataset, self.protocol, str(self.summary["n"]),
                  *(f"{self.summary[k]:.2f}" if "@" not in k else f"{self.summary[k]:.3f}"
                    for k in names)]
        widths = [max(len(h), len(v)) for h, v in zip(header, values, strict=True)]
        line = "  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))
        row = "  ".join(v.rjust(w) for v, w in zip(values, widths, strict=True))
        return "\n".join([line, "-" * len(line), row, *(f"note: {n}" for n in self.notes)])

    def to_dict(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "dataset": self.dataset, "summary": self.summary,
                "j19_approximated": self.j19_approximated, "notes": self.notes,
                "per_sample": [{k: v for k, v in r.items() if not k.startswith("_")}
                               for r in self.rows]}

    def write_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(finite_json(self.to_dict()), indent=1, allow_nan=False))
        return path


def finite_json(value: Any) -> Any:
    """Strict JSON: NaN and infinities become None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value


def _distributed() -> bool:
    from extpose_sdk.engine.distributed import is_initialized

    return is_initialized()


def _rotmats(axis_angle: torch.Tensor) -> torch.Tensor:
    """(N, 3J) flattened axis-angle -> (N, J, 3, 3)."""
    from extpose_sdk.geometry import axis_angle_to_rotmat

    return axis_angle_to_rotmat(axis_angle.reshape(axis_angle.shape[0], -1, 3))


def _accepts(model: torch.nn.Module, argument: str) -> bool:
    import inspect

    try:
        return argument in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def _flatten(x: torch.Tensor, clip: bool) -> torch.Tensor:
    return x.flatten(0, 1) if clip else x


class Evaluator:
    """Scores models on a data set with a protocol (``"3dpw"``, ``"freihand"``...).

    Args:
        protocol: a ``Protocol`` or its name.
        body_model: turns predicted parameters into joints / vertices (see module docstring);
            not needed when the model's output has ``pred_keypoints_3d``.
        gt_body_model: one body model or ``{gender: model}`` for ground truth given as
            parameters (3DPW); not needed when samples carry the protocol's joints.
        batch_size, num_workers: of the ``DataLoader``.
        device: where the model runs.
        progress: show a tqdm progress bar (on the first process only).
    """

    def __init__(self, protocol: str | Protocol, *, body_model: Callable | None = None,
                 gt_body_model: Callable | Mapping[str, Callable] | None = None,
                 batch_size: int = 8, num_workers: int = 0, device: str | torch.device = "cpu",
                 progress: bool = True) -> None:
        self.protocol = get_protocol(protocol) if isinstance(protocol, str) else protocol
        self.body_model = body_model
        self.gt_body_model = gt_body_model
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.device = torch.device(device)
        self.progress = progress

    @torch.no_grad()
    def run(self, model: torch.nn.Module, dataset, *, name: str | None = None) -> EvaluationResult:
        """Score ``model`` on ``dataset``; every process returns the same result."""
        from extpose_sdk.data.sample import collate

        sampler = None
        if _distributed():
            sampler = torch.utils.data.DistributedSampler(dataset, shuffle=False)
        loader = torch.utils.data.DataLoader(dataset, batch_size=self.batch_size,
                                             sampler=sampler, num_workers=self.num_workers,
                                             collate_fn=collate)
        first = not _distributed() or torch.distributed.get_rank() == 0
        batches = loader
        if self.progress and first:
            from tqdm.auto import tqdm

            batches = tqdm(loader, desc=f"eval {self.protocol.name}", unit="batch")
        gt_models = (self.gt_body_model.values() if isinstance(self.gt_body_model, Mapping)
                     else [self.gt_body_model])
        for body_model in (self.body_model, *gt_models):
            if isinstance(body_model, torch.nn.Module):
                body_model.to(self.device)
        was_training = model.training
        model.eval()
        rows: list[dict[str, Any]] = []
        try:
            for batch in batches:
                rows.extend(self.score_batch(model, batch))
        finally:
            model.train(was_training)
        rows = self._gather(rows)
        dataset_name = name or getattr(dataset, "name", type(dataset).__name__)
        summary = summarize([{k: v for k, v in r.items() if k not in _ROW_META} for r in rows])
        summary.update(self._sequence_metrics(rows))
        for row in rows:
            row.pop("_pred", None)
            row.pop("_gt", None)
        approximated = self.protocol.joint_set == "smpl44" and any(
            getattr(m, "j19_approximated", False)
            for m in (self.body_model, *gt_models, getattr(model, "body_model", None))
        )
        return EvaluationResult(self.protocol.name, dataset_name, summary, rows, approximated)

    def score_batch(self, model: torch.nn.Module, batch: Mapping[str, Any]) -> list[dict]:
        """Per-frame metric rows of one collated batch (frames or clips)."""
        clip = "valid" in batch
        from extpose_sdk.data.inputs import model_inputs

        modalities = tuple(getattr(model, "modalities", ("rgb",)))
        inputs, present = model_inputs(batch, modalities, size=_crop_size(batch))
        inputs = {m: x.to(self.device) for m, x in inputs.items()}
        if _accepts(model, "present"):
            output = model(inputs, present={m: p.to(self.device) for m, p in present.items()})
        else:
            output = model(inputs)
        pred_joints, pred_vertices = self._predicted(output, clip)
        gt_joints, gt_vertices = self._ground_truth(batch, clip)
        if pred_joints.shape[1] != gt_joints.shape[1]:
            raise ValueError(f"predicted joints have shape {tuple(pred_joints.shape)} but the "
                             f"ground truth {tuple(gt_joints.shape)} ({self.protocol.joint_set})")
        if pred_vertices is None or gt_vertices is None:
            pred_vertices = gt_vertices = None
        metrics = self.protocol.evaluate(pred_joints.double(), gt_joints.double(),
                                         pred_vertices=None if pred_vertices is None
                                         else pred_vertices.double(),
                                         gt_vertices=None if gt_vertices is None
                                         else gt_vertices.double())
        reprojection = self._reprojection(output, batch, clip)
        if reprojection is not None:
            metrics["reproj_2d"] = reprojection
        frames = _flatten(batch["frame"], clip).tolist()
        valid = _flatten(batch["valid"], clip).tolist() if clip else [True] * len(frames)
        t = batch["valid"].shape[1] if clip else 1
        sequences = [s for s in batch["sequence"] for _ in range(t)]
        datasets = [s for s in batch.get("dataset", [""] * (len(frames) // t)) for _ in range(t)]
        rows = []
        for i, keep in enumerate(valid):
            if not keep:
                continue
            row = {"dataset": datasets[i], "sequence": sequences[i], "frame": int(frames[i])}
            row.update({k: float(v[i]) for k, v in metrics.items()})
            if self.protocol.acceleration:
                row["_pred"] = pred_joints[i].float()
                row["_gt"] = gt_joints[i, :, :3].float()
            rows.append(row)
        return rows

    @staticmethod
    def _reprojection(output: Any, batch: Mapping[str, Any], clip: bool):
        """Per-frame mean 2D joint error as a fraction of the crop side (``pred_keypoints_2d``
        against the labelled crop-normalised ``keypoints_2d``), or ``None`` without them."""
        pred = getattr(output, "pred_keypoints_2d", None)
        if pred is None or "keypoints_2d" not in batch:
            return None
        pred = _flatten(pred, clip).detach().cpu().double()
        gt = _flatten(batch["keypoints_2d"], clip).double()
        if pred.shape[-2] != gt.shape[-2]:
            return None
        labelled = (gt[..., 2] > 0).double()
        distance = (pred - gt[..., :2]).norm(dim=-1)
        return (distance * labelled).sum(-1) / labelled.sum(-1).clamp_min(1)

    def _predicted(self, output: Any, clip: bool):
        joints = getattr(output, "pred_keypoints_3d", None)
        vertices = getattr(output, "pred_vertices", None)
        if joints is None:
            if self.body_model is None:
                raise ValueError("the model's output has no pred_keypoints_3d: give a body model "
                                 "to compute joints from its parameters (extpose eval: "
                                 "--body-model PATH; Python: Evaluator(body_model=...))")
            pose_key = self.protocol.subject.pose_key
            params = {k: _flatten(getattr(output, k), clip).to(self.device)
                      for k in ("global_orient", pose_key, "betas")}
            result = self.body_model(**params)
            joints, vertices = result.joints, getattr(result, "vertices", None)
        else:
            joints = _flatten(joints, clip)
            vertices = None if vertices is None else _flatten(vertices, clip)
        return joints.detach().cpu(), None if vertices is None else vertices.detach().cpu()

    def _ground_truth(self, batch: Mapping[str, Any], clip: bool):
        joint_sets = set(batch.get("joint_set", [self.protocol.joint_set]))
        if joint_sets == {self.protocol.joint_set}:
            joints = _flatten(batch["keypoints_3d"], clip)
            vertices = _flatten(batch["vertices"], clip) if "vertices" in batch else None
            return joints, vertices
        if self.gt_body_model is None:
            raise ValueError(f"the samples' joint set is {sorted(joint_sets)}, the protocol "
                             f"{self.protocol.name!r} scores {self.protocol.joint_set}: give "
                             "ground-truth body models to compute it from the parameters "
                             "(extpose eval: --gt-body-model [GENDER=]PATH, e.g. --gt-body-model "
                             "male=SMPL_MALE.pkl --gt-body-model female=SMPL_FEMALE.pkl; Python: "
                             "Evaluator(gt_body_model=...))")
        pose_key = self.protocol.subject.pose_key
        params = {"global_orient": _rotmats(_flatten(batch["global_orient"], clip)),
                  pose_key: _rotmats(_flatten(batch[pose_key], clip)),
                  "betas": _flatten(batch["betas"], clip)}
        n = params["betas"].shape[0]
        t = batch["valid"].shape[1] if clip else 1
        genders = [g for g in batch.get("gender", ["neutral"] * (n // t)) for _ in range(t)]
        models = self.gt_body_model
        if not isinstance(models, Mapping):
            models = {g: models for g in genders}
        joints = vertices = None
        for gender in dict.fromkeys(genders):
            if gender not in models:
                raise ValueError(f"no ground-truth body model for gender {gender!r}; "
                                 f"have {sorted(models)} (extpose eval: --gt-body-model "
                                 f"{gender}=PATH)")
            index = torch.tensor([i for i, g in enumerate(genders) if g == gender])
            out = models[gender](**{k: v[index].to(self.device) for k, v in params.items()})
            if joints is None:
                joints = out.joints.new_zeros((n, *out.joints.shape[1:]))
                vertices = out.vertices.new_zeros((n, *out.vertices.shape[1:]))
            joints[index] = out.joints
            vertices[index] = out.vertices
        return joints.detach().cpu(), vertices.detach().cpu()

    def _gather(self, rows: list[dict]) -> list[dict]:
        from extpose_sdk.engine.distributed import gather_objects

        rows = [row for part in gather_objects(rows) for row in (part or [])]
        unique = {(r["dataset"], r["sequence"], r["frame"]): r for r in rows}
        return sorted(unique.values(), key=lambda r: (r["dataset"], r["sequence"], r["frame"]))

    def _sequence_metrics(self, rows: list[dict]) -> dict[str, float]:
        """Per-sequence metrics (acceleration error), averaged weighted by frame triples."""
        if not self.protocol.acceleration or not rows:
            return {}
        by_sequence: dict[tuple[str, str], list[dict]] = {}
        for row in rows:
            by_sequence.setdefault((row["dataset"], row["sequence"]), []).append(row)
        total, weight = 0.0, 0
        for frames in by_sequence.values():
            first, last = frames[0]["frame"], frames[-1]["frame"]
            length = last - first + 1
            shape = frames[0]["_pred"].shape
            pred, gt = torch.zeros(length, *shape), torch.zeros(length, *shape)
            valid = torch.zeros(length, dtype=torch.bool)
            for row in frames:
                pred[row["frame"] - first], gt[row["frame"] - first] = row["_pred"], row["_gt"]
                valid[row["frame"] - first] = True
            triples = int((valid[:-2] & valid[1:-1] & valid[2:]).sum()) if length >= 3 else 0
            if triples == 0:
                continue
            accel = self.protocol.sequence_metrics(pred.double(), gt.double(), valid)["accel"]
            total += float(accel) * triples
            weight += triples
        return {"accel": total / weight if weight else math.nan}


_ROW_META = frozenset({"dataset", "sequence", "frame", "_pred", "_gt"})


def mean_articulation(model: torch.nn.Module, *, zero: bool = False) -> torch.nn.Module:
    """The "mean pose" baseline of ``model``: a copy whose head always predicts its mean
    articulation (the pose readout after the global orientation zeroed; orientation, shape and
    camera are still predicted). ``zero=True``: the zero articulation (identity rotations)."""
    import copy

    baseline = copy.deepcopy(model)
    head = baseline.head
    with torch.no_grad():
        head.decpose.weight[6:].zero_()  # rows 0-5: the global orientation (6D)
        head.decpose.bias[6:].zero_()
        if zero:
            init = getattr(head, f"init_{head.pose_name}")
            init[:, 6:] = torch.tensor([1.0, 0, 0, 0, 1, 0]).repeat(init.shape[1] // 6 - 1)
    return baseline


def mean_prediction(model: torch.nn.Module) -> torch.nn.Module:
    """The "always the mean" baseline of ``model``: a copy whose head predicts its mean
    parameters for every input (orientation and articulation, shape and camera: the head's
    ``init_*`` buffers, which training from scratch takes from the data)."""
    import copy

    baseline = copy.deepcopy(model)
    with torch.no_grad():
        for layer in (baseline.head.decpose, baseline.head.decshape, baseline.head.deccam):
            layer.weight.zero_()
            layer.bias.zero_()
    return baseline


def score_sequences(model: torch.nn.Module, dataset, modalities, *, frames: int,
                    overlap: int = 0, batch_size: int | None = None) -> dict[str, float]:
    """The summary metrics of ``model`` seeing ``modalities`` (set on the model) on a
    ``SequenceDataset`` with the protocol of its subject's joint set: its frames one by one
    (``frames=1``), its own clips of ``frames`` frames, or with ``overlap`` the windows
    ``extpose predict`` runs (``PipelineWindows``; frames one by one need none). Rendered
    modalities match its crops."""
    from extpose_sdk.data.sample import CROP_SIZE
    from extpose_sdk.datasets.base import PipelineWindows, SequenceFrames
    from extpose_sdk.engine.data import WithModalities
    from extpose_sdk.metrics import protocol_for_joint_set

    if frames == 1:
        view = SequenceFrames(dataset)
    elif overlap:
        view = PipelineWindows(dataset, frames, overlap)
    elif dataset.clip_length == frames:
        view = dataset
    else:
        raise ValueError(f"a model of {frames} frames on clips of {dataset.clip_length}: build "
                         f"the data set with clip_length={frames}, or give an overlap")
    model.modalities = tuple(modalities)
    data = WithModalities(view, modalities=modalities,
                          size=getattr(dataset, "crop_size", CROP_SIZE))
    evaluator = Evaluator(protocol_for_joint_set(dataset.subject.joint_set),
                          batch_size=batch_size or (32 if frames == 1 else 8), progress=False)
    return evaluator.run(model, data).summary


def _crop_size(batch: Mapping[str, Any]) -> int:
    """The side of the batch's crops (its ``rgb``), so that rendered modalities such as the
    skeleton image match them; the default crop size for a batch without images."""
    from extpose_sdk.data.sample import CROP_SIZE

    rgb = batch.get("rgb")
    return int(rgb.shape[-1]) if torch.is_tensor(rgb) else CROP_SIZE
