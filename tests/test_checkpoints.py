"""Official Lightning checkpoints and ExtPose safetensors checkpoints, at the public boundary.

The checkpoints here are written in the official layout (``state_dict`` with ``backbone.*``,
``smpl_head.*`` / ``mano_head.*``, ``discriminator.*``, licensed ``smpl.*`` buffers, a pickled
OmegaConf ``cfg`` in ``hyper_parameters``) at tiny sizes, so the real loading code runs.
"""

from __future__ import annotations

import datetime
import json
import sys
import types
from pathlib import Path

import pytest
import torch

import extpose_sdk
from extpose_sdk import checkpoints, safe_pickle
from extpose_sdk.checkpoints import CheckpointError, UnsafeCheckpointError

DATA = Path(__file__).parent / "data"
TINY = dict(embed_dim=32, depth=2, num_heads=4, head_dim=32, head_depth=1, head_heads=2,
            head_dim_head=8, head_mlp_dim=16)
RECIPES = [("hmr2", "smpl_head", "hmr2_checkpoint_keys.json"),
           ("hamer", "mano_head", "hamer_checkpoint_keys.json")]


class _OmegaConfStandIn:
    """Pickled under omegaconf's module name, as the official ``cfg`` is."""

    def __init__(self, content):
        self._content = content


def _pickled_omegaconf(content):
    module = types.ModuleType("omegaconf.dictconfig")
    cls = type("DictConfig", (_OmegaConfStandIn,), {"__module__": "omegaconf.dictconfig"})
    module.DictConfig = cls
    return module, cls(content)


def write_official_checkpoint(path, model, extra=None):
    """torch.save in the Lightning layout, with the official extras the loader must skip:
    the discriminator, and HMR2.0's licensed SMPL buffers or HaMeR's MANO ones."""
    state_dict = dict(model.state_dict())
    state_dict["discriminator.D_conv1.weight"] = torch.randn(32, 9, 1, 1)
    if model.subject.name == "body":
        state_dict["smpl.body_pose_mean"] = torch.zeros(69)
    else:
        state_dict["mano.faces_tensor"] = torch.zeros(4, 3, dtype=torch.long)
    state_dict["initialized"] = torch.tensor(True)
    module, cfg = _pickled_omegaconf({"MODEL": {"IMAGE_SIZE": 256}})
    saved = {"omegaconf": types.ModuleType("omegaconf"), "omegaconf.dictconfig": module}
    sys.modules.update(saved)
    try:
        torch.save(
            {"state_dict": state_dict, "hyper_parameters": {"cfg": cfg}, "epoch": 35,
             "global_step": 1000000, "pytorch-lightning_version": "2.0.0", **(extra or {})},
            path,
        )
    finally:
        for name in saved:
            sys.modules.pop(name, None)
    return path


@pytest.mark.parametrize("name, head_prefix, keys_file", RECIPES)
def test_full_size_model_has_exactly_the_official_keys(name, head_prefix, keys_file):
    official = json.loads((DATA / keys_file).read_text())
    with torch.device("meta"):
        model = extpose_sdk.load_model(name)
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert ours == official
    head = sum(p.numel() for k, p in model.named_parameters() if k.startswith(head_prefix))
    assert 39.4e6 < head < 39.6e6


@pytest.mark.parametrize("name", ["hmr2", "hamer"])
def test_official_layout_checkpoint_loads_with_nothing_missing(tmp_path, name):
    torch.manual_seed(0)
    source = extpose_sdk.load_model(name, **TINY)
    for p in source.parameters():
        torch.nn.init.normal_(p)
    path = write_official_checkpoint(tmp_path / "epoch=35-step=1000000.ckpt", source)
    assert "omegaconf" not in sys.modules  # the loader must not need the real library
    loaded = extpose_sdk.load_model(name, checkpoint=str(path), **TINY)
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert not any(t.is_meta for t in loaded.state_dict().values())  # built on meta, all assigned
    assert all(p.requires_grad for p in loaded.parameters())
    extras = extpose_sdk.get_registries().model.get(name).metadata["checkpoint_extras"]
    report = checkpoints.load_official_checkpoint(loaded, path, extras=extras)
    licensed = {"hmr2": "smpl.body_pose_mean", "hamer": "mano.faces_tensor"}[name]
    assert set(report.skipped) == {"discriminator.D_conv1.weight", licensed, "initialized"}
    # what the plugin declares is what is skipped: without it, the extras do not fit the model
    with pytest.raises(CheckpointError, match=r"unexpected keys \(2\): discriminator"):
        checkpoints.load_official_checkpoint(loaded, path)


def test_cfg_comes_back_as_an_inert_stand_in(tmp_path):
    model = extpose_sdk.load_model("hmr2", **TINY)
    path = write_official_checkpoint(tmp_path / "a.ckpt", model)
    cfg = checkpoints.read_checkpoint(path)["hyper_parameters"]["cfg"]
    assert isinstance(cfg, safe_pickle.InertObject)
    assert "omegaconf.dictconfig.DictConfig" in repr(cfg)
    assert cfg.state == {"_content": {"MODEL": {"IMAGE_SIZE": 256}}}


def test_yacs_cfgnode_dict_subclass_comes_back_inert(tmp_path):
    module = types.ModuleType("yacs.config")
    CfgNode = type("CfgNode", (dict,), {"__module__": "yacs.config"})
    module.CfgNode = CfgNode
    cfg = CfgNode(MODEL=CfgNode(IMAGE_SIZE=256))
    cfg.frozen = True
    path = tmp_path / "yacs.ckpt"
    sys.modules.update({"yacs": types.ModuleType("yacs"), "yacs.config": module})
    try:
        torch.save({"state_dict": {"w": torch.ones(2)}, "hyper_parameters": {"cfg": cfg}}, path)
    finally:
        sys.modules.pop("yacs"), sys.modules.pop("yacs.config")
    loaded = checkpoints.read_checkpoint(path)["hyper_parameters"]["cfg"]
    assert loaded.mapping["MODEL"].mapping == {"IMAGE_SIZE": 256}
    assert loaded.state == {"frozen": True}
    assert checkpoints.read_lightning_state_dict(path).keys() == {"w"}


def test_unexpected_pickled_object_is_refused_unless_trusted(tmp_path):
    model = extpose_sdk.load_model("hmr2", **TINY)
    path = write_official_checkpoint(tmp_path / "b.ckpt", model, extra={"when": datetime.date(2024, 1, 1)})
    with pytest.raises(UnsafeCheckpointError, match=r"datetime\.date.*trust=True"):
        extpose_sdk.load_model("hmr2", checkpoint=str(path), **TINY)
    with pytest.raises(UnsafeCheckpointError, match="trust-checkpoint"):
        checkpoints.read_checkpoint(path)


def test_trusted_file_unpickles_in_full(tmp_path):
    path = tmp_path / "c.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "when": datetime.date(2024, 1, 1)}, path)
    assert checkpoints.read_checkpoint(path, trust=True)["when"] == datetime.date(2024, 1, 1)


def test_mismatched_checkpoint_fails_naming_the_keys(tmp_path):
    model = extpose_sdk.load_model("hmr2", **TINY)
    state_dict = dict(model.state_dict())
    del state_dict["smpl_head.decshape.bias"]
    state_dict["smpl_head.deccam.weight"] = torch.zeros(4, 32)
    state_dict["smpl_head.extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad.ckpt"
    torch.save({"state_dict": state_dict, "epoch": 1}, path)
    with pytest.raises(CheckpointError) as error:
        extpose_sdk.load_model("hmr2", checkpoint=str(path), **TINY)
    message = str(error.value)
    assert "missing keys (1): smpl_head.decshape.bias" in message
    assert "unexpected keys (1): smpl_head.extra.weight" in message
    assert "smpl_head.deccam.weight: checkpoint (4, 32), model (3, 32)" in message


def test_a_hand_checkpoint_does_not_load_into_the_body_model(tmp_path):
    hand = extpose_sdk.load_model("hamer", **TINY)
    path = write_official_checkpoint(tmp_path / "hamer.ckpt", hand)
    with pytest.raises(CheckpointError, match="missing keys .*smpl_head"):
        extpose_sdk.load_model("hmr2", checkpoint=str(path), **TINY)


def test_corrupted_file_fails_clearly(tmp_path):
    model = extpose_sdk.load_model("hmr2", **TINY)
    path = write_official_checkpoint(tmp_path / "d.ckpt", model)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="d.ckpt"):
        checkpoints.read_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="nothere.ckpt"):
        checkpoints.read_checkpoint(tmp_path / "nothere.ckpt")


@pytest.mark.parametrize("options", [TINY, dict(TINY, stem="conv", patch_size=32, pos_embed_std=1.0)],
                         ids=["patch", "conv-stem"])
def test_safetensors_checkpoint_round_trip_with_its_config(tmp_path, options):
    torch.manual_seed(1)
    model = extpose_sdk.load_model("extpose-hamer", **options)
    weights, config = checkpoints.save_extpose_checkpoint(
        model, tmp_path / "tiny.safetensors", {"recipe": "extpose-hamer", "options": options}
    )
    assert json.loads(config.read_text())["options"] == options
    loaded = extpose_sdk.load_model("extpose-hamer", checkpoint=str(weights))  # sizes from JSON
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    weights.write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="tiny.safetensors"):
        extpose_sdk.load_model("extpose-hamer", checkpoint=str(weights))


def test_convert_official_to_safetensors(tmp_path):
    model = extpose_sdk.load_model("hmr2", **TINY)
    source = write_official_checkpoint(tmp_path / "e.ckpt", model)
    target = checkpoints.convert_checkpoint(source, tmp_path / "e.safetensors",
                                            extras=checkpoints.official_extras(),
                                            config={"options": TINY})
    assert checkpoints.official_extras() == ("discriminator.", "mano.", "smpl.")
    state_dict, config = checkpoints.read_extpose_checkpoint(target)
    assert set(state_dict) == set(model.state_dict())  # official extras dropped
    assert config["source"] == "e.ckpt"
    loaded = extpose_sdk.load_model("hmr2", checkpoint=str(target))
    assert torch.equal(loaded.smpl_head.deccam.weight, model.smpl_head.deccam.weight)


def test_extpose_convert_checkpoint_command(tmp_path, capsys):
    from extpose_sdk.cli import main

    model = extpose_sdk.load_model("hmr2", **TINY)
    source = write_official_checkpoint(tmp_path / "f.ckpt", model)
    assert main(["convert", "checkpoint", str(source), str(tmp_path / "f.safetensors")]) == 0
    state_dict, _ = checkpoints.read_extpose_checkpoint(tmp_path / "f.safetensors")
    assert set(state_dict) == set(model.state_dict())
    unsafe = tmp_path / "g.ckpt"
    torch.save({"state_dict": model.state_dict(), "when": datetime.date(2024, 1, 1)}, unsafe)
    assert main(["convert", "checkpoint", str(unsafe), str(tmp_path / "g.safetensors")]) == 1
    assert "datetime.date" in capsys.readouterr().err
    argv = ["convert", "checkpoint", str(unsafe), str(tmp_path / "g.safetensors"), "--trust-checkpoint"]
    assert main(argv) == 0
