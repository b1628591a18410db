"""The ExtPose extension: zero new parameters, strict superset, masks, packing, dropout."""

import pytest
import torch
from torch import nn

from extpose_sdk.attention import SegmentMask
from extpose_sdk.extend import ExtendedViT, MaskSpec, ModalityDropout, parse_mask
from extpose_sdk.mask_paths import PaperMask
from extpose_sdk.vit import ViT, ViTConfig


def tiny_vit(seed=0, depth=2):
    torch.manual_seed(seed)
    return ViT(ViTConfig(img_size=(32, 32), patch_size=8, patch_padding=0, embed_dim=32,
                         depth=depth, num_heads=4)).eval()


def clip(B=2, T=3, names=("rgb", "skeleton"), seed=1):
    g = torch.Generator().manual_seed(seed)
    return {name: torch.randn(B, T, 3, 32, 32, generator=g) for name in names}


def test_no_parameter_is_added():
    vit = tiny_vit()
    extended = ExtendedViT(vit, mask="paper")
    assert sum(p.numel() for p in extended.parameters()) == sum(p.numel() for p in vit.parameters())
    assert [n for n, _ in extended.named_parameters()] == [f"vit.{n}" for n, _ in vit.named_parameters()]


@pytest.mark.parametrize("mask", ["frame", "paper", "full", "causal(2)"])
def test_one_frame_rgb_only_equals_the_base_vit(mask):
    vit = tiny_vit()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        out = ExtendedViT(vit, mask=mask)({"rgb": x[:, None]})
        base = vit(x)
    assert out.tokens.shape == (3, 1, 1, 16, 32)
    torch.testing.assert_close(out.tokens[:, 0, 0], base, atol=1e-5, rtol=0)


def changed_outputs(mask, t=1, modality=0, T=4):
    """Which (frame, modality) outputs move when frame t of one modality is perturbed.

    One block: one hop of attention, so the result is exactly the mask's reach.
    """
    vit = tiny_vit(depth=1)
    extended = ExtendedViT(vit, mask=mask)
    inputs = clip(B=1, T=T)
    names = list(inputs)
    perturbed = {k: v.clone() for k, v in inputs.items()}
    perturbed[names[modality]][:, t] += torch.randn(3, 32, 32)
    with torch.no_grad():
        a = extended(inputs).tokens[0]
        b = extended(perturbed).tokens[0]
    return (a - b).abs().amax(dim=(-1, -2)) > 1e-6  # (T, M)


def expected(T, M, allowed_frame, same_modality_only, t=1, m=0):
    out = torch.zeros(T, M, dtype=torch.bool)
    for frame in range(T):
        for modality in range(M):
            if frame == t:
                out[frame, modality] = True
            elif allowed_frame(frame) and (not same_modality_only or modality == m):
                out[frame, modality] = True
    return out


@pytest.mark.parametrize(
    "mask, frame_ok, same_modality",
    [
        ("frame", lambda f: False, False),
        ("full", lambda f: True, False),
        ("paper", lambda f: True, True),
        ("window(1)", lambda f: abs(f - 1) <= 1, False),
        ("causal(1)", lambda f: 0 <= f - 1 <= 1, False),  # only frames after t can see t
        ("paper+causal(8)", lambda f: f >= 1, True),
    ],
)
def test_information_flows_only_where_the_mask_allows(mask, frame_ok, same_modality):
    got = changed_outputs(mask)
    torch.testing.assert_close(got, expected(4, 2, frame_ok, same_modality))


def test_absent_modality_equals_a_batch_without_it():
    vit = tiny_vit()
    extended = ExtendedViT(vit, mask="paper")
    inputs = clip(B=2, T=3)
    present = {"skeleton": torch.tensor([[False, False, False], [True, False, True]])}
    with torch.no_grad():
        out = extended(inputs, present=present)
        alone = extended({"rgb": inputs["rgb"][:1]})
    torch.testing.assert_close(out.tokens[:1, :, 0], alone.tokens[:, :, 0], atol=1e-6, rtol=0)
    assert (out.tokens[0, :, 1] == 0).all() and (out.tokens[1, 1, 1] == 0).all()
    assert out.present[1, :, 1].tolist() == [True, False, True]


def padded_reference(vit, inputs, present, mask):
    """The straightforward computation: every token in, absent keys masked out."""
    names = list(inputs)
    B, T = inputs[names[0]].shape[:2]
    tokens = torch.stack(
        [vit.embed(inputs[n].flatten(0, 1)).reshape(B, T, -1, 32) for n in names], dim=2
    )
    M, N = tokens.shape[2], tokens.shape[3]
    shown = torch.stack([present.get(n, torch.ones(B, T, dtype=torch.bool)) for n in names], -1)
    key = shown[..., None].expand(B, T, M, N).reshape(B, -1)
    allowed = parse_mask(mask).allowed(T, M, N)
    full = allowed[None] & key[:, None, :] | torch.eye(allowed.shape[0], dtype=torch.bool)
    x = tokens.flatten(1, 3)
    for block in vit.blocks:
        x = block(x, attn_mask=full[:, None])
    return vit.norm(x).reshape(B, T, M, N, 32) * shown[..., None, None]


@pytest.mark.parametrize(
    "mask, packing",
    [("paper", "groups"), ("full", "groups"), ("frame", "groups"), ("window(1)", "groups"),
     ("full", "segments"), ("frame", "segments")],
)
def test_packed_equals_padded(mask, packing):
    vit = tiny_vit()
    inputs = clip(B=3, T=3)
    present = {
        "rgb": torch.tensor([[True, True, True], [False, False, False], [True, False, True]]),
        "skeleton": torch.tensor([[False, True, True], [True, True, True], [True, True, False]]),
    }
    with torch.no_grad():
        packed = ExtendedViT(vit, mask=mask, packing=packing)(inputs, present=present).tokens
        padded = padded_reference(vit, inputs, present, mask)
    torch.testing.assert_close(packed, padded, atol=1e-5, rtol=0)


def test_segment_packing_needs_an_unrestricted_mask_and_a_willing_backbone():
    inputs = clip(B=1, T=3)
    with pytest.raises(ValueError, match="packing='groups'"):
        ExtendedViT(tiny_vit(), mask="paper", packing="segments")(inputs)
    with torch.no_grad():  # one frame: nothing inside the sequence is restricted
        one = ExtendedViT(tiny_vit(), mask="paper", packing="segments")(clip(B=2, T=1))
    assert one.tokens.shape == (2, 1, 2, 16, 32)
    with pytest.raises(ValueError, match="available: auto, groups, segments"):
        ExtendedViT(tiny_vit(), packing="pad")
    unwilling = tiny_vit()
    unwilling.accepts_segment_masks = False
    with pytest.raises(ValueError, match="ViT does not"):
        ExtendedViT(unwilling, packing="segments")


@pytest.mark.parametrize(
    "mask", ["frame", "full", "paper", "window(1)", "window(3)", "causal(3)", "paper+window(5)"]
)
def test_unrestricted_says_whether_the_mask_is_all_true(mask):
    spec = parse_mask(mask)
    for T in (1, 2, 4):
        for M in (1, 2):
            assert spec.unrestricted(T, M) == bool(spec.allowed(T, M, 2).all()), (mask, T, M)


def test_backends_agree():
    inputs = clip(B=2, T=2)
    present = {"skeleton": torch.tensor([[True, False], [True, True]])}
    outs = {}
    for backend in ("reference", "sdpa"):
        with torch.no_grad():
            outs[backend] = ExtendedViT(tiny_vit(), mask="paper", attention=backend)(
                inputs, present=present
            ).tokens
    torch.testing.assert_close(outs["reference"], outs["sdpa"], atol=1e-4, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="xformers runs only on a CUDA GPU")
def test_xformers_agrees_on_gpu():  # pragma: no cover - no GPU in CI
    pytest.importorskip("xformers")
    inputs = {k: v.cuda() for k, v in clip(B=2, T=2).items()}
    present = {"skeleton": torch.tensor([[True, False], [False, True]], device="cuda")}
    vit = tiny_vit().cuda()
    runs = [("sdpa", "groups", "paper"), ("xformers", "groups", "paper"),  # dense bias
            ("sdpa", "groups", "frame"), ("xformers", "segments", "frame")]  # block-diagonal
    with torch.no_grad():
        outs = [
            ExtendedViT(vit, mask=m, attention=b, packing=p)(inputs, present=present).tokens
            for b, p, m in runs
        ]
    torch.testing.assert_close(outs[0], outs[1], atol=1e-4, rtol=0)
    torch.testing.assert_close(outs[2], outs[3], atol=1e-4, rtol=0)


def test_frame_context_for_heads():
    out = ExtendedViT(tiny_vit())(clip(B=2, T=3), present={"rgb": torch.zeros(2, 3, dtype=torch.bool)})
    context, valid = out.frame_context()
    assert context.shape == (6, 32, 32) and valid.shape == (6, 32)
    assert not valid[:, :16].any() and valid[:, 16:].all()
    assert out.modality("skeleton").shape == (2, 3, 16, 32)
    with pytest.raises(KeyError, match="available: rgb, skeleton"):
        out.modality("depth")


def test_gradient_checkpointing_gives_the_same_gradients_and_runs_under_autocast():
    """Checkpointing changes memory, not numbers; bf16 autocast stays close to fp32."""
    inputs = clip(B=1, T=2)
    grads = []
    for checkpointing in (False, True):
        vit = tiny_vit().train()
        extended = ExtendedViT(vit, mask="paper", checkpointing=checkpointing)
        extended(inputs).tokens.square().sum().backward()
        grads.append(vit.blocks[0].attn.qkv.weight.grad.clone())
        with torch.no_grad():
            reference = extended(inputs).tokens
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = extended(inputs).tokens
        assert torch.isfinite(out).all()
        torch.testing.assert_close(out.float(), reference, atol=0.1, rtol=0.05)
    torch.testing.assert_close(grads[0], grads[1], atol=1e-6, rtol=1e-5)


def test_mask_names_and_errors():
    assert parse_mask("paper+window(4)") == MaskSpec("same-modality", window=4)
    assert parse_mask("causal(3)") == MaskSpec("all", window=3, causal=True)
    assert parse_mask("frame").frames_independent
    with pytest.raises(ValueError, match="available: frame, full, paper, window"):
        parse_mask("diagonal")
    with pytest.raises(ValueError, match="two kinds"):
        parse_mask("paper+full")
    with pytest.raises(ValueError, match="unknown attention backend"):
        ExtendedViT(tiny_vit(), attention="flash9")


def test_input_shape_errors_name_shapes():
    extended = ExtendedViT(tiny_vit())
    with pytest.raises(ValueError, match=r"rgb \(2, 3, 32, 32\)"):
        extended({"rgb": torch.zeros(2, 3, 32, 32)})
    with pytest.raises(ValueError, match=r"must have shape \(B, T\)"):
        extended(clip(B=1, T=2), present={"rgb": torch.ones(2, dtype=torch.bool)})
    with pytest.raises(ValueError, match="not among the inputs"):
        extended(clip(B=1, T=2), present={"depth": torch.ones(1, 2, dtype=torch.bool)})


def test_modality_dropout_is_seeded_and_never_drops_everything():
    present = {
        "rgb": torch.ones(2000, 4, dtype=torch.bool),
        "skeleton": torch.ones(2000, 4, dtype=torch.bool),
    }
    present["skeleton"][:500] = False  # these samples have only rgb, which must survive
    first = ModalityDropout(p=0.5, seed=3)(present)
    again = ModalityDropout(p=0.5, seed=3)(present)
    assert all(torch.equal(first[k], again[k]) for k in first)
    alive = first["rgb"].any(1) | first["skeleton"].any(1)
    assert alive.all()
    assert first["rgb"][:500].all()
    rate = 1 - first["rgb"][500:, 0].float().mean().item()
    assert 0.25 < rate < 0.45  # p = 0.5, minus the rescues of samples that lost both
    assert not (first["skeleton"] & ~present["skeleton"]).any()  # nothing absent comes back


def test_segment_packing_trains_like_group_packing():
    """Gradients through the packed sequence equal those of the per-pattern batches."""
    inputs = clip(B=2, T=2)
    present = {"skeleton": torch.tensor([[True, False], [False, True]])}
    grads = []
    for packing in ("groups", "segments"):
        vit = tiny_vit().train()
        extended = ExtendedViT(vit, mask="frame", packing=packing, checkpointing=True)
        extended(inputs, present=present).tokens.square().sum().backward()
        grads.append(vit.patch_embed.proj.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], atol=1e-5, rtol=1e-4)
    assert grads[0].abs().sum() > 0


def _expected_mask(T, M, N, same_frame_only=False, modality_only=False, window=None,
                   causal=False):
    """Who sees whom, written out token by token: (frame, modality, token) in that order."""
    index = [(t, m, n) for t in range(T) for m in range(M) for n in range(N)]
    out = torch.zeros(len(index), len(index), dtype=torch.bool)
    for i, (tq, mq, _) in enumerate(index):
        for j, (tk, mk, _) in enumerate(index):
            if tq == tk:
                out[i, j] = True
                continue
            if same_frame_only or (modality_only and mq != mk):
                continue
            if window is not None and abs(tq - tk) > window:
                continue
            if causal and tk > tq:
                continue
            out[i, j] = True
    return out


@pytest.mark.parametrize("mask, expected", [
    ("frame", dict(same_frame_only=True)),
    ("full", {}),
    ("paper", dict(modality_only=True)),
    ("window(1)", dict(window=1)),
    ("window(0)", dict(window=0)),
    ("causal(1)", dict(window=1, causal=True)),
    ("paper+window(1)", dict(modality_only=True, window=1)),
    ("paper + causal(2)", dict(modality_only=True, window=2, causal=True)),
])
def test_masks_written_out_token_by_token(mask, expected):
    for T, M, N in ((4, 2, 2), (3, 3, 1), (1, 2, 3)):
        torch.testing.assert_close(parse_mask(mask).allowed(T, M, N),
                                   _expected_mask(T, M, N, **expected))


def test_mask_spec_facts_and_errors():
    assert parse_mask("window(0)").frames_independent and parse_mask("frame").frames_independent
    assert not parse_mask("window(1)").frames_independent
    assert (parse_mask("frame").sequence_frames(8), parse_mask("paper").sequence_frames(8)) == (1, 8)
    assert parse_mask("window(2)").unrestricted(4, 1) is False  # frames 0 and 3 are 3 apart
    assert parse_mask("window(2)").unrestricted(3, 1) is True
    assert parse_mask("causal(9)").unrestricted(2, 1) is False
    assert MaskSpec(window=0).window == 0
    with pytest.raises(ValueError) as error:
        MaskSpec(across="some")
    assert str(error.value) == ("MaskSpec.across must be one of ('none', 'all', 'same-modality'); "
                                "got 'some'")
    with pytest.raises(ValueError) as error:
        MaskSpec(window=-1)
    assert str(error.value) == "MaskSpec.window must be >= 0; got -1"
    with pytest.raises(TypeError) as error:
        parse_mask(3)
    assert str(error.value) == "mask must be a name or a MaskSpec; got int"
    spec = MaskSpec("all", window=2)
    assert parse_mask(spec) is spec


def test_modality_dropout_rows_are_pinned_and_checked():
    present = {
        "rgb": torch.ones(6, 2, dtype=torch.bool),
        "skeleton": torch.tensor([[1, 1], [1, 0], [0, 0], [1, 1], [0, 1], [1, 1]], dtype=torch.bool),
        "depth": torch.ones(6, 2, dtype=torch.bool),
    }
    out = ModalityDropout(p=0.5, seed=3)(present, rows=[0, 1, 2, 3, 1000, 5])
    expected = {"rgb": [0, 0, 1, 1, 0, 0], "skeleton": [1, 1, 0, 1, 0, 1], "depth": [0, 0, 0, 1, 0, 0]}
    for name, kept in expected.items():
        assert out[name][:, 0].int().tolist() == kept, name
    assert out["skeleton"][:, 1].int().tolist() == [1, 0, 0, 1, 1, 1]
    alone = {n: v[4:5] for n, v in present.items()}
    again = ModalityDropout(p=0.5, seed=3)(alone, rows=[1000])  # a row draws the same alone
    assert [again[n][0, 1].item() for n in expected] == [False, True, False]
    none = ModalityDropout(p=0.0)(present, rows=list(range(6)))
    assert all(torch.equal(none[n], present[n]) for n in present)
    every = ModalityDropout(p=1.0, seed=1)(present, rows=list(range(6)))
    assert all(int(sum(every[n][i].any() for n in present)) == 1 for i in range(6))  # one rescued
    empty = ModalityDropout()({n: torch.ones(0, 2, dtype=torch.bool) for n in present}, rows=[])
    assert all(v.shape == (0, 2) for v in empty.values())
    with pytest.raises(ValueError) as error:
        ModalityDropout()(present, rows=[1, 2])
    assert str(error.value) == "rows: one per sample (6); got 2"
    for p in (-0.1, 1.5):
        with pytest.raises(ValueError) as error:
            ModalityDropout(p=p)
        assert str(error.value) == f"ModalityDropout.p must be in [0, 1]; got {p}"


def test_input_checks_say_exactly_what_is_wrong():
    extended = ExtendedViT(tiny_vit())
    for bad in ({}, [torch.zeros(1)]):
        with pytest.raises(ValueError) as error:
            extended(bad)
        assert str(error.value) == ("ExtendedViT expects a non-empty dict: modality name -> "
                                    "(B, T, C, H, W)")
    with pytest.raises(ValueError) as error:
        extended({"rgb": torch.zeros(1, 2, 3, 64, 48), "skeleton": torch.zeros(1, 3, 3, 64, 48)})
    assert str(error.value) == ("every modality must be (B, T, C, H, W) with the same B and T; got "
                                "rgb (1, 2, 3, 64, 48), skeleton (1, 3, 3, 64, 48)")
    with pytest.raises(ValueError) as error:
        extended({"rgb": torch.zeros(1, 2, 3, 64, 48)}, present={"rgb": torch.ones(1, 3)})
    assert str(error.value) == "present['rgb'] must have shape (B, T) = (1, 2); got (1, 3)"


def test_presence_of_any_dtype_and_fully_absent_sequences():
    inputs = clip(B=3, T=2)
    as_bool = {"skeleton": torch.tensor([[True, False], [False, False], [True, True]]),
               "rgb": torch.tensor([[True, True], [False, False], [True, False]])}
    as_int = {k: v.long() for k, v in as_bool.items()}
    with torch.no_grad():
        for packing in ("groups", "segments"):
            extended = ExtendedViT(tiny_vit(), mask="full", packing=packing)
            reference = extended(inputs, present=as_bool)
            torch.testing.assert_close(extended(inputs, present=as_int).tokens, reference.tokens)
            assert reference.present.dtype == torch.bool
            assert not reference.tokens[1].any()  # sample 1 shows nothing: zeros, no error
            assert reference.tokens[0, 0].abs().sum() > 0


def test_segments_are_packed_when_xformers_would_run(monkeypatch):
    import extpose_sdk.extend as extend

    # xformers "runs" on the tensors' own device only: the device asked about must be theirs
    monkeypatch.setattr(extend, "resolve_backend", lambda name, device: (
        "xformers" if torch.device(device).type == "cpu" else "sdpa"))
    auto = ExtendedViT(tiny_vit(), mask="full")
    assert auto._packs_segments(2, 2, "cpu") is True
    assert ExtendedViT(tiny_vit(), mask="paper")._packs_segments(2, 2, "cpu") is False
    assert ExtendedViT(tiny_vit(), mask="paper")._packs_segments(1, 2, "cpu") is True
    assert ExtendedViT(tiny_vit(), mask="full", packing="groups")._packs_segments(2, 2, "cpu") is False
    unwilling = tiny_vit()
    unwilling.accepts_segment_masks = False
    assert ExtendedViT(unwilling, mask="full")._packs_segments(2, 2, "cpu") is False
    del unwilling.accepts_segment_masks  # a backbone that does not say: not packed
    assert ExtendedViT(unwilling, mask="full")._packs_segments(2, 2, "cpu") is False
    assert ExtendedViT(Plain(tiny_vit()), mask="full")._packs_segments(2, 2, "cpu") is False
    inputs = clip(B=2, T=2)
    present = {"skeleton": torch.tensor([[True, False], [False, True]])}
    packed = []
    with torch.no_grad():
        for vit in (tiny_vit(), Plain(tiny_vit())):  # packed as segments, as groups
            packed.append(ExtendedViT(vit, mask="full")(inputs, present=present).tokens)
            ran = _masks_given(vit)
            ExtendedViT(vit, mask="full")(inputs, present=present)
            assert isinstance(ran[0], SegmentMask) is (type(vit) is not Plain)
    torch.testing.assert_close(packed[0], packed[1], atol=1e-5, rtol=0)
    monkeypatch.setattr(extend, "resolve_backend", lambda name, device: "sdpa")
    assert ExtendedViT(tiny_vit(), mask="full")._packs_segments(2, 2, "cpu") is False
    assert ExtendedViT(tiny_vit(), mask="full", packing="segments")._packs_segments(2, 2, "cpu")


def test_checkpointing_only_while_training_with_gradients(monkeypatch):
    import extpose_sdk.extend as extend

    calls = []
    real = extend.checkpoint

    def counting(*args, **kwargs):
        calls.append(kwargs.get("use_reentrant"))
        return real(*args, **kwargs)

    monkeypatch.setattr(extend, "checkpoint", counting)
    inputs = clip(B=1, T=2)
    assert ExtendedViT(tiny_vit()).checkpointing is False
    extended = ExtendedViT(tiny_vit().train(), mask="full", checkpointing=True).train()
    extended(inputs)
    assert calls == [False, False]  # one per block, not reentrant
    with torch.no_grad():
        extended(inputs)
    extended.eval()
    extended(inputs)
    ExtendedViT(tiny_vit().train(), mask="full").train()(inputs)
    assert len(calls) == 2


class Plain(nn.Module):
    """A backbone that is no ``BaseViT`` and says nothing about segment masks (duck-typed)."""

    def __init__(self, vit):
        super().__init__()
        self.inner, self.blocks, self.norm = vit, vit.blocks, vit.norm
        self.num_tokens, self.embed_dim = vit.num_tokens, vit.embed_dim

    def embed(self, x):
        return self.inner.embed(x)


def _masks_given(vit):
    """The ``attn_mask`` each call of the first block is given, in order."""
    seen = []
    vit.blocks[0].register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs.get("attn_mask")), with_kwargs=True)
    return seen


def test_segment_packing_refuses_a_backbone_that_does_not_say_it_can():
    with pytest.raises(ValueError) as error:
        ExtendedViT(Plain(tiny_vit()), packing="segments")
    assert str(error.value) == ("packing='segments' needs a backbone whose blocks accept segment "
                                "masks; Plain does not (use packing='groups')")
    ExtendedViT(Plain(tiny_vit()), packing="groups")


def test_one_modality_packs_as_segments_under_the_paper_mask():
    vit = tiny_vit()
    inputs = clip(B=2, T=3, names=("rgb",))
    present = {"rgb": torch.tensor([[True, False, True], [True, True, True]])}
    with torch.no_grad():  # one modality: "paper" restricts nothing inside a clip
        packed = ExtendedViT(vit, mask="paper", packing="segments")(inputs, present=present)
        padded = padded_reference(vit, inputs, present, "paper")
    torch.testing.assert_close(packed.tokens, padded, atol=1e-5, rtol=0)


@pytest.mark.parametrize("packing", ["groups", "segments"])
def test_a_sequence_of_one_token_is_computed(packing):
    torch.manual_seed(5)
    vit = ViT(ViTConfig(img_size=(8, 8), patch_size=8, patch_padding=0, embed_dim=32, depth=2,
                        num_heads=4)).eval()  # one token per image
    inputs = {name: torch.randn(2, 2, 3, 8, 8) for name in ("rgb", "skeleton")}
    present = {"rgb": torch.tensor([[True, False], [True, True]]),
               "skeleton": torch.tensor([[False, True], [False, True]])}
    with torch.no_grad():
        out = ExtendedViT(vit, mask="frame", packing=packing)(inputs, present=present).tokens
        padded = padded_reference(vit, inputs, present, "frame")
    torch.testing.assert_close(out, padded, atol=1e-5, rtol=0)
    assert out[0, 0, 0].abs().sum() > 0 and out[0, 1, 1].abs().sum() > 0


def test_an_unrestricted_group_runs_without_a_mask():
    inputs = clip(B=1, T=2)
    for mask, masked in (("full", False), ("frame", False), ("paper", True)):
        vit = tiny_vit(depth=1)
        seen = _masks_given(vit)
        with torch.no_grad():
            ExtendedViT(vit, mask=mask, packing="groups")(inputs)
        assert len(seen) == 1 and (seen[0] is not None) == masked, mask
    assert seen[0] == PaperMask(2, 2, 16)  # the rule, not a dense (L, L) mask
    assert torch.equal(seen[0].dense(), parse_mask("paper").allowed(2, 2, 16))


def test_presence_and_masks_are_made_on_the_tokens_device():
    present = {"skeleton": torch.tensor([[1, 0, 1]])}
    shown = ExtendedViT._presence(("rgb", "skeleton"), present, 1, 3, torch.device("cpu"))
    assert shown.dtype == torch.bool
    assert shown[0].tolist() == [[True, True], [True, False], [True, True]]
    meta = ExtendedViT._presence(("rgb", "skeleton"), present, 1, 3, torch.device("meta"))
    assert meta.device.type == "meta" and meta.dtype == torch.bool and meta.shape == (1, 3, 2)
    extended = ExtendedViT(tiny_vit(), mask="paper")
    assert extended._allowed(2, 2, 3, torch.device("meta")).device.type == "meta"
    on_cpu = extended._allowed(2, 2, 3, torch.device("cpu"))  # cached per device
    assert on_cpu.device.type == "cpu" and torch.equal(on_cpu, parse_mask("paper").allowed(2, 2, 3))


class Doubled(nn.Module):
    """A 1-channel modality's own encoder: the ViT's embedding of the channel repeated, twice."""

    def __init__(self, vit, tokens=16):
        super().__init__()
        self.vit, self.tokens = vit, tokens

    def forward(self, x):
        return 2 * self.vit.embed(x.expand(-1, 3, -1, -1))[:, :self.tokens]


def test_a_modality_with_its_own_encoder():
    vit = tiny_vit(depth=1)
    g = torch.Generator().manual_seed(7)
    depth, rgb = torch.randn(2, 1, 32, 32, generator=g), torch.randn(2, 3, 32, 32, generator=g)
    extended = ExtendedViT(vit, mask="frame", encoders={"depth": Doubled(vit)})
    with torch.no_grad():
        out = extended({"rgb": rgb[:, None], "depth": depth[:, None]})
        tokens = torch.cat([vit.embed(rgb), 2 * vit.embed(depth.expand(-1, 3, -1, -1))], dim=1)
        expected = vit.norm(vit.blocks[0](tokens))
    torch.testing.assert_close(out.tokens[:, 0].flatten(1, 2), expected, atol=1e-5, rtol=0)
    wrong = ExtendedViT(vit, encoders={"depth": Doubled(vit, tokens=15)})
    with pytest.raises(ValueError) as error:
        wrong({"depth": depth[:, None]})
    assert str(error.value) == ("the encoder of modality 'depth' made tokens of shape (2, 15, 32); "
                                "expected (B, 16, 32) like the backbone's")


def test_modality_dropout_keeps_a_draw_equal_to_p():
    def draws(row, seed=3):  # what a row draws: keep, then rescue, per modality
        return torch.rand(2, 2, generator=torch.Generator().manual_seed(seed * 1_000_003 + row))

    row = next(r for r in range(100) if draws(r)[0, 1] > draws(r)[0, 0])
    present = {"rgb": torch.ones(1, 2, dtype=torch.bool), "skeleton": torch.ones(1, 2, dtype=torch.bool)}
    out = ModalityDropout(p=draws(row)[0, 0].item(), seed=3)(present, rows=[row])
    assert out["rgb"].all() and out["skeleton"].all()
    out = ModalityDropout(p=draws(row)[0, 1].item(), seed=3)(present, rows=[row])
    assert out["skeleton"].all() and not out["rgb"].any()
