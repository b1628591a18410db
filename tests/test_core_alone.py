"""``pip install extpose-sdk`` without the first-party model plugins: the core works, and asking
for a model it does not have says which package to install."""

from __future__ import annotations

import importlib.abc
import sys

import numpy as np
import pytest

import extpose_sdk
from extpose_sdk import hookimpl
from extpose_sdk.plugins import UnknownComponentError

torch = pytest.importorskip("torch")

TINY = dict(embed_dim=32, depth=1, num_heads=2, head_dim=16, head_depth=1, head_heads=2,
            head_dim_head=8, head_mlp_dim=16)


class _NoFirstPartyPlugins(importlib.abc.MetaPathFinder):
    """Imports of the first-party plugin packages fail, as if they were not installed."""

    def find_spec(self, name, path=None, target=None):
        if name.startswith("extpose_plugin_"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


@pytest.fixture
def core_alone(monkeypatch):
    monkeypatch.setenv("EXTPOSE_DISABLE_PLUGIN_AUTOLOAD", "1")
    for name in [m for m in sys.modules if m.startswith("extpose_plugin_")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [_NoFirstPartyPlugins(), *sys.meta_path])
    extpose_sdk.reset_plugins()
    yield
    extpose_sdk.reset_plugins()


class Paws:
    """A third party's hand recipe, the only model plugin installed."""

    @hookimpl
    def extpose_register_models(self, register):
        register("paws", self.build, "someone's hand model", subject="hand")

    @staticmethod
    def build(checkpoint=None, **options):
        from extpose_sdk.model import build_mesh_recovery_model

        return build_mesh_recovery_model("mano", checkpoint=checkpoint, **options)


def test_without_a_model_plugin_the_pipeline_says_which_package_to_install(core_alone):
    from extpose_sdk.pipeline import Pipeline

    assert extpose_sdk.get_registries().model.names() == []
    with pytest.raises(UnknownComponentError, match=r"unknown model 'extpose-hamer': no model is "
                       r"registered; 'extpose-hamer' comes with extpose-plugin-hamer: pip "
                       r"install extpose-plugin-hamer"):
        Pipeline.from_plugins()
    with pytest.raises(UnknownComponentError, match=r"'hmr2' comes with extpose-plugin-hmr2"):
        extpose_sdk.load_model("hmr2")
    with pytest.raises(UnknownComponentError, match=r"'timm:vit_small_patch16_224' comes with "
                                                    r"extpose-plugin-timm"):
        extpose_sdk.get_registries().backbone.build("timm:vit_small_patch16_224")


def test_with_only_a_third_party_plugin_everything_runs(core_alone, capsys):
    from extpose_sdk.cli import main
    from extpose_sdk.pipeline import Pipeline

    extpose_sdk.register_plugin(Paws(), name="paws")
    assert extpose_sdk.get_registries().model.names() == ["paws"]
    pipeline = Pipeline.from_plugins(model="paws", modalities=("rgb",), detector=None, **TINY)
    frames = np.random.default_rng(0).integers(0, 255, (3, 32, 48, 3), np.uint8)
    results = pipeline.video(frames)
    assert results.to_numpy()["hand_pose"].shape == (3, 15, 3, 3)
    # and the generic components: the core's own backbone and heads
    generic = Pipeline.from_plugins(backbone="vitpose", head="smpl", modalities=("rgb",),
                                    backbone_options=dict(embed_dim=32, depth=1, num_heads=2),
                                    head_options=dict(dim=16, depth=1, heads=2, dim_head=8,
                                                      mlp_dim=16))
    assert generic.subject.name == "body"
    assert main(["plugins", "--kind", "model"]) == 0
    out = capsys.readouterr().out
    assert "paws" in out and "[hand]" in out
    assert not any(m.startswith("extpose_plugin_") for m in sys.modules)
