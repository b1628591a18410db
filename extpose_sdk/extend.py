"""The ExtPose extension: one pretrained ViT over several modalities and frames, no new parameter.

Every modality image of every frame goes through the ViT's own patch and position embedding; the
tokens of a clip form one sequence ``(T, M, N)`` (frames, modalities, tokens per image) and the
ViT's own blocks run over it with an attention mask that decides who sees whom:

``frame``   tokens of the same frame, all modalities (the single-image ExtPose);
``full``    the whole clip;
``paper``   within a frame every modality sees every other; across frames only the same modality
            (our reading of the paper's description; the default);
``window(k)`` / ``causal(k)``  frames within ``k`` / the ``k`` past frames and the present;
            combinable: ``paper+window(4)``, ``paper+causal(8)``.

Absent modalities or frames (``present``) contribute no token to anyone, and only present tokens
are computed ("packing"): a dropped modality costs nothing, and the result equals the padded
computation exactly. Two ways to pack (``packing``):

``groups``    sequences with the same presence pattern run as one batch, a batch per pattern;
``segments``  all sequences run as one packed sequence with a block-diagonal ``SegmentMask`` (one
              kernel call whatever the patterns; xformers runs it without an ``(L, L)`` mask).
              Needs a mask with no restriction inside a sequence (``frame``, ``full``) and a
              backbone whose blocks accept segment masks;
``auto``      ``segments`` where xformers runs and both hold, else ``groups``.

``paper`` (without a window or causal cut that restricts it) is handed to the SDK's blocks as a
``PaperMask``, not a dense ``(L, L)`` mask: SDPA then computes it as two unmasked attentions
merged by their log-sum-exp, at the mask's FLOPs (``extpose_sdk.mask_paths``; on CUDA only
without gradients). A group whose present images are not a full frames x modalities grid (a
modality missing in some frames only) or a backbone with other blocks (timm's) gets the dense
mask.
"""

from __future__ import annotations

import re

import attrs
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from extpose_sdk.attention import SegmentMask, check_backend_name, resolve_backend
from extpose_sdk.mask_paths import PaperMask
from extpose_sdk.vit import Attention, BaseViT, Block

ACROSS = ("none", "all", "same-modality")
PACKING = ("auto", "groups", "segments")


@attrs.frozen
class MaskSpec:
    """Who may attend to whom across frames (within a frame every modality sees every other).

    Attributes:
        across: ``none`` (frames are independent), ``all`` or ``same-modality``.
        window: frames at most this far apart see each other (None: no limit).
        causal: a frame sees only itself and earlier frames.
    """

    across: str = "same-modality"
    window: int | None = None
    causal: bool = False

    def __attrs_post_init__(self) -> None:
        if self.across not in ACROSS:
            raise ValueError(f"MaskSpec.across must be one of {ACROSS}; got {self.across!r}")
        if self.window is not None and self.window < 0:
            raise ValueError(f"MaskSpec.window must be >= 0; got {self.window}")

    @property
    def frames_independent(self) -> bool:
        return self.across == "none" or self.window == 0

    def sequence_frames(self, T: int) -> int:
        """Frames per attention sequence for a T-frame clip: 1 when frames are independent (each
        frame runs as its own sequence: cheaper, same result), else T."""
        return 1 if self.frames_independent else T

    def unrestricted(self, T: int, M: int) -> bool:
        """True if every token of a ``(T, M)`` clip may see every other (``allowed`` all True)."""
        if T == 1:
            return True
        short_window = self.window is not None and self.window < T - 1
        if self.across == "none" or self.causal or short_window:
            return False
        return self.across == "all" or M == 1

    def paper_rule(self, T: int) -> bool:
        """True if over ``T`` frames this is exactly the paper's rule: across frames the same
        modality, cut by no window or causality (``PaperMask``)."""
        short_window = self.window is not None and self.window < T - 1
        return self.across == "same-modality" and not self.causal and not short_window

    def allowed(self, T: int, M: int, N: int) -> torch.Tensor:
        """``(L, L)`` boolean mask over a clip laid out as ``(T, M, N)``, ``L = T * M * N``."""
        frame = torch.arange(T).repeat_interleave(M * N)
        modality = torch.arange(M).repeat_interleave(N).repeat(T)
        same_frame = frame[:, None] == frame[None, :]
        if self.across == "none":
            return same_frame
        across = torch.ones_like(same_frame)
        if self.across == "same-modality":
            across = modality[:, None] == modality[None, :]
        delta = frame[:, None] - frame[None, :]  # query frame - key frame
        if self.window is not None:
            across = across & (delta.abs() <= self.window)
        if self.causal:
            across = across & (delta >= 0)
        return same_frame | across


_NAMED = {
    "frame": MaskSpec(across="none"),
    "full": MaskSpec(across="all"),
    "paper": MaskSpec(across="same-modality"),
}
_TERM = re.compile(r"^(window|causal)\((\d+)\)$")


def parse_mask(mask: str | MaskSpec) -> MaskSpec:
    """``"paper"``, ``"window(4)"``, ``"paper+causal(8)"`` or a ``MaskSpec`` -> ``MaskSpec``."""
    if isinstance(mask, MaskSpec):
        return mask
    if not isinstance(mask, str):
        raise TypeError(f"mask must be a name or a MaskSpec; got {type(mask).__name__}")
    spec = None
    for term in mask.replace(" ", "").split("+"):
        if term in _NAMED:
            if spec is not None:
                raise ValueError(f"mask {mask!r} names two kinds of cross-frame attention")
            spec = _NAMED[term]
            continue
        match = _TERM.match(term)
        if not match:
            raise ValueError(
                f"unknown attention mask {term!r} in {mask!r}; available: frame, full, paper, "
                "window(k), causal(k), and combinations such as paper+window(4)"
            )
        spec = spec or _NAMED["full"]
        spec = attrs.evolve(spec, window=int(match[2]), causal=match[1] == "causal")
    return spec


@attrs.frozen
class ExtendedTokens:
    """Output of ``ExtendedViT``.

    Attributes:
        tokens: ``(B, T, M, N, D)`` final-normalised tokens per frame and modality; zeros where
            absent.
        modalities: names of the M modalities, in order.
        present: ``(B, T, M)`` boolean, which images were present.
    """

    tokens: torch.Tensor
    modalities: tuple[str, ...]
    present: torch.Tensor

    def frame_context(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-frame context for a head: ``(B*T, M*N, D)`` tokens and ``(B*T, M*N)`` validity."""
        B, T, M, N, D = self.tokens.shape
        context = self.tokens.reshape(B * T, M * N, D)
        valid = self.present[..., None].expand(B, T, M, N).reshape(B * T, M * N)
        return context, valid

    def modality(self, name: str) -> torch.Tensor:
        """``(B, T, N, D)`` tokens of one modality."""
        if name not in self.modalities:
            raise KeyError(f"no modality {name!r}; available: {', '.join(self.modalities)}")
        return self.tokens[:, :, self.modalities.index(name)]


class ExtendedViT(nn.Module):
    """A pretrained ``BaseViT`` run over modalities and frames with an attention mask.

    Owns the ViT as its only submodule, so the parameters are exactly the base model's.
    ``encoders`` (modality name -> module, kept by the caller: ``MeshRecoveryModel.encoders``)
    embed the modalities that bring their own encoder; the others go through ``vit.embed``.
    """

    def __init__(
        self,
        vit: BaseViT,
        mask: str | MaskSpec = "paper",
        attention: str = "auto",
        checkpointing: bool = False,
        packing: str = "auto",
        encoders: dict[str, nn.Module] | None = None,
    ) -> None:
        super().__init__()
        if packing not in PACKING:
            raise ValueError(f"unknown packing {packing!r}; available: {', '.join(PACKING)}")
        self.vit = vit
        self.mask = parse_mask(mask)
        self.attention = attention
        self.checkpointing = checkpointing
        self.packing = packing
        self._encoders = dict(encoders or {})  # not submodules: the model owns them
        self._mask_cache: dict[tuple, torch.Tensor] = {}
        check_backend_name(attention)
        if packing == "segments" and not getattr(vit, "accepts_segment_masks", False):
            raise ValueError(
                f"packing='segments' needs a backbone whose blocks accept segment masks; "
                f"{type(vit).__name__} does not (use packing='groups')"
            )
        for module in vit.modules():
            if isinstance(module, Attention):
                module.backend = attention
        # the SDK's blocks hand any mask to extpose_sdk.attention, which takes a PaperMask
        self._blocks_take_paper_masks = all(isinstance(block, Block) for block in vit.blocks)

    def forward(
        self,
        inputs: dict[str, torch.Tensor],
        present: dict[str, torch.Tensor] | None = None,
    ) -> ExtendedTokens:
        """``inputs[name]``: ``(B, T, C, H, W)``; ``present[name]``: ``(B, T)`` bool (default all)."""
        names, B, T = self._check(inputs, present)
        tokens = torch.stack([self._embed(name, inputs[name]) for name in names], dim=2)
        _, _, M, N, D = tokens.shape
        shown = self._presence(names, present, B, T, tokens.device)  # (B, T, M)
        T_unit = self.mask.sequence_frames(T)
        units = tokens.reshape(B * T // T_unit, T_unit * M * N, D)
        shown_units = shown.reshape(B * T // T_unit, T_unit, M)
        out = self._run_packed(units, shown_units, T_unit, M, N)
        out = out.reshape(B, T, M, N, D) * shown[..., None, None]
        return ExtendedTokens(out, names, shown)

    # -- steps of forward, in order ---------------------------------------------------------

    def _check(self, inputs, present) -> tuple[tuple[str, ...], int, int]:
        if not isinstance(inputs, dict) or not inputs:
            raise ValueError("ExtendedViT expects a non-empty dict: modality name -> (B, T, C, H, W)")
        shapes = {name: tuple(x.shape) for name, x in inputs.items()}
        first = next(iter(shapes.values()))
        for shape in shapes.values():
            if len(shape) != 5 or shape[:2] != first[:2]:
                raise ValueError(
                    "every modality must be (B, T, C, H, W) with the same B and T; got "
                    + ", ".join(f"{n} {s}" for n, s in shapes.items())
                )
        for name, mask in (present or {}).items():
            if name not in inputs:
                raise ValueError(f"present names {name!r}, which is not among the inputs {list(inputs)}")
            if tuple(mask.shape) != first[:2]:
                raise ValueError(
                    f"present[{name!r}] must have shape (B, T) = {first[:2]}; got {tuple(mask.shape)}"
                )
        return tuple(inputs), first[0], first[1]

    def _embed(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, C, H, W)`` -> ``(B, T, N, D)`` with the modality's encoder, else the ViT's
        own embeddings."""
        B, T = x.shape[:2]
        encoder = self._encoders.get(name)
        tokens = (encoder if encoder is not None else self.vit.embed)(x.flatten(0, 1))
        expected = (self.vit.num_tokens, self.vit.embed_dim)
        if encoder is not None and tuple(tokens.shape[1:]) != expected:
            raise ValueError(f"the encoder of modality {name!r} made tokens of shape "
                             f"{tuple(tokens.shape)}; expected (B, {expected[0]}, {expected[1]}) "
                             "like the backbone's")
        return tokens.reshape(B, T, *tokens.shape[1:])

    @staticmethod
    def _presence(names, present, B, T, device) -> torch.Tensor:
        columns = []
        for name in names:
            mask = (present or {}).get(name)
            if mask is None:
                columns.append(torch.ones(B, T, dtype=torch.bool, device=device))
            else:
                columns.append(mask.to(device=device, dtype=torch.bool))
        return torch.stack(columns, dim=-1)

    def _run_packed(self, x: torch.Tensor, shown: torch.Tensor, T: int, M: int, N: int):
        """Blocks over ``x`` ``(U, L, D)`` (U sequences), computing present tokens only."""
        U, L, _ = x.shape
        token_shown = shown[..., None].expand(U, T, M, N).reshape(U, L)
        if self._packs_segments(T, M, x.device):
            return self._run_segments(x, token_shown)
        out = torch.zeros_like(x)
        patterns, group_of = torch.unique(token_shown, dim=0, return_inverse=True)
        for g, pattern in enumerate(patterns):
            keep = pattern.nonzero().squeeze(1)
            if keep.numel() == 0:
                continue
            rows = (group_of == g).nonzero().squeeze(1)
            mask = self._group_mask(pattern, keep, T, M, N, x.device)
            out[rows[:, None], keep[None, :]] = self._run_blocks(x[rows][:, keep], mask)
        return out

    def _group_mask(self, pattern, keep, T: int, M: int, N: int, device):
        """The mask over one presence pattern's kept tokens: None (no restriction), a
        ``PaperMask`` where the kept images form a frames x modalities grid under the paper's
        rule and the blocks are the SDK's, else a dense ``(1, 1, L, L)`` boolean mask."""
        if self.mask.paper_rule(T) and self._blocks_take_paper_masks:
            images = pattern.reshape(T, M, N)[..., 0]  # (T, M): which images are present
            frames, modalities = images.any(dim=1), images.any(dim=0)
            if bool((images == (frames[:, None] & modalities[None, :])).all()):
                T_kept, M_kept = int(frames.sum()), int(modalities.sum())
                return None if T_kept == 1 or M_kept == 1 else PaperMask(T_kept, M_kept, N)
        mask = self._allowed(T, M, N, device)[keep][:, keep]
        return None if bool(mask.all()) else mask[None, None]

    def _packs_segments(self, T: int, M: int, device) -> bool:
        if self.packing == "groups":
            return False
        unrestricted = self.mask.unrestricted(T, M)
        if self.packing == "segments":
            if not unrestricted:
                raise ValueError(
                    f"packing='segments' needs a mask with no restriction inside a sequence "
                    f"(frame or full); {self.mask} restricts it (use packing='groups')"
                )
            return True
        return (
            unrestricted
            and getattr(self.vit, "accepts_segment_masks", False)
            and resolve_backend(self.attention, device) == "xformers"
        )

    def _run_segments(self, x: torch.Tensor, token_shown: torch.Tensor) -> torch.Tensor:
        """Present tokens of every sequence back to back, one sequence per segment."""
        lengths = token_shown.sum(dim=1)
        out = torch.zeros_like(x)
        if not bool(lengths.any()):
            return out
        segments = SegmentMask(lengths[lengths > 0].tolist())
        out[token_shown] = self._run_blocks(x[token_shown][None], segments)[0]
        return out

    def _allowed(self, T: int, M: int, N: int, device) -> torch.Tensor:
        key = (T, M, N, str(device))
        if key not in self._mask_cache:
            self._mask_cache[key] = self.mask.allowed(T, M, N).to(device)
        return self._mask_cache[key]

    def _run_blocks(self, x: torch.Tensor, mask: torch.Tensor | SegmentMask | None) -> torch.Tensor:
        for block in self.vit.blocks:
            if self.checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, mask, use_reentrant=False)
            else:
                x = block(x, attn_mask=mask)
        return self.vit.norm(x)


@attrs.define
class ModalityDropout:
    """Training transform: drop each modality of a sample as a whole with probability ``p``.

    Never leaves a sample with nothing: if every modality it had would go, one of them (at
    random) is kept. Seeded, so a run is reproducible.
    """

    p: float = 0.5
    seed: int = 0
    _generator: torch.Generator = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"ModalityDropout.p must be in [0, 1]; got {self.p}")
        self._generator = torch.Generator().manual_seed(self.seed)

    def __call__(self, present: dict[str, torch.Tensor],
                 rows: list[int] | None = None) -> dict[str, torch.Tensor]:
        """``present[name]`` ``(B, T)`` -> the same with dropped modalities set to False.

        ``rows``: one integer per sample (its position in a training stream). Each sample's draw
        then depends only on ``(seed, row)``, so a batch split over processes, or resumed,
        drops exactly what one uninterrupted process would.
        """
        names = list(present)
        had = torch.stack([present[name].bool().any(dim=1).cpu() for name in names], dim=1)
        if rows is None:
            keep_draw = torch.rand(had.shape, generator=self._generator)
            rescue_draw = torch.rand(had.shape, generator=self._generator)
        else:
            if len(rows) != had.shape[0]:
                raise ValueError(f"rows: one per sample ({had.shape[0]}); got {len(rows)}")
            draws = [torch.rand(2, len(names), generator=torch.Generator().manual_seed(
                self.seed * 1_000_003 + int(row))) for row in rows]
            both = torch.stack(draws) if draws else torch.zeros(0, 2, len(names))
            keep_draw, rescue_draw = both[:, 0], both[:, 1]
        keep = keep_draw >= self.p
        lost = had.any(dim=1) & ~(keep & had).any(dim=1)
        rescue = (rescue_draw * had).argmax(dim=1)
        keep[lost, rescue[lost]] = True
        return {
            name: present[name].bool() & keep[:, i, None].to(present[name].device)
            for i, name in enumerate(names)
        }
