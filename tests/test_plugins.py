"""The plugin system: discovery, registration, errors, strictness and autoload control."""

import subprocess
import sys
import textwrap
import types

import pytest

import extpose_sdk
from extpose_sdk import hookspecs, plugins
from extpose_sdk.testing import fake_distribution, isolated_plugins, on_sys_path


def make_plugin(name="demo", kind_hook="extpose_register_heads", components=("toy",)):
    module = types.ModuleType(name)

    def hook(register):
        for component in components:
            register(component, lambda **kw: ("built", kw), f"the {component} component\nmore")

    hook.__name__ = kind_hook
    setattr(module, kind_hook, plugins.hookimpl(hook))
    return module


def test_in_process_plugin_is_found_with_its_origin():
    plugin = make_plugin("my_plugin")
    extpose_sdk.register_plugin(plugin)
    component = extpose_sdk.get_registries().head.get("toy")
    assert component.plugin == "my_plugin"
    assert component.description == "the toy component"  # first line only
    assert extpose_sdk.get_registries().head.build("toy", size=2) == ("built", {"size": 2})
    extpose_sdk.unregister_plugin(plugin)
    assert "toy" not in extpose_sdk.get_registries().head


def test_installed_plugin_packages_are_found_through_entry_points():
    manager = plugins.get_plugin_manager()
    for name, package in (("hmr2", "extpose-plugin-hmr2"), ("hamer", "extpose-plugin-hamer")):
        info = manager.infos[name]
        assert (info.package, info.source) == (package, "entry point")
        assert manager.registries().backbone.get(name).package == package


def test_builtins_come_through_the_same_hooks():
    manager = plugins.get_plugin_manager()
    rgb = manager.registries().modality.get("rgb")
    assert rgb.plugin == "extpose_sdk.builtins.modalities"
    assert rgb.package == "extpose-sdk"
    assert manager.infos[rgb.plugin].source == "builtin"


def test_unknown_name_lists_available_names_and_close_matches():
    with pytest.raises(extpose_sdk.UnknownComponentError) as error:
        extpose_sdk.get_registries().backbone.build("vitpos")
    message = str(error.value)
    assert "unknown backbone 'vitpos'" in message
    assert "available: hamer, hmr2, timm:*, vitpose" in message  # timm:* from extpose-plugin-timm
    assert "Did you mean 'vitpose'" in message


def test_a_build_that_lacks_or_misnames_options_says_which():
    module = types.ModuleType("needs")

    @plugins.hookimpl
    def extpose_register_datasets(register):
        def factory(root, *, split, clip_length=1):
            return root, split, clip_length

        register("folders", factory, "a data set read from a folder")

    module.extpose_register_datasets = extpose_register_datasets
    with isolated_plugins(module):
        datasets = extpose_sdk.get_registries().dataset
        with pytest.raises(plugins.ComponentBuildError) as error:
            datasets.build("folders", clip_length=2)
        assert error.value.missing == ("root",)  # Python reports one kind of argument at a time
        assert str(error.value) == "dataset 'folders' (plugin 'needs' from needs) needs the option 'root'"
        with pytest.raises(plugins.ComponentBuildError) as error:
            datasets.build("folders", root="r")
        assert error.value.missing == ("split",)
        with pytest.raises(plugins.ComponentBuildError) as error:
            datasets.build("folders", root="r", split="a", frames=3)
        assert error.value.missing == () and "has no option 'frames'" in str(error.value)
        assert datasets.build("folders", root="r", split="a") == ("r", "a", 1)
    two = TypeError("f() missing 3 required positional arguments: 'a', 'b', and 'c'")
    assert plugins._missing_arguments(two) == ("a", "b", "c")


def test_unknown_kind_lists_kinds():
    with pytest.raises(extpose_sdk.UnknownComponentError, match="available: backbone, modality"):
        extpose_sdk.get_registries()["bones"]


def test_two_plugins_registering_one_name_is_an_error_naming_both():
    with isolated_plugins(make_plugin("first"), make_plugin("second")):
        with pytest.raises(plugins.DuplicateComponentError) as error:
            extpose_sdk.get_registries()
    assert "'first'" in str(error.value) and "'second'" in str(error.value)


def test_family_names_resolve_with_their_variant():
    module = types.ModuleType("family")

    @plugins.hookimpl
    def extpose_register_backbones(register):
        register("toy:*", lambda variant, **kw: (variant, kw), "toy family", example="toy:small")

    module.extpose_register_backbones = extpose_register_backbones
    with isolated_plugins(module) as manager:
        registries = manager.registries()
        assert registries.backbone.build("toy:small", depth=1) == ("small", {"depth": 1})
        assert "toy:" not in registries.backbone  # the bare prefix names nothing
        assert registries.backbone.get("toy:*").metadata == {"example": "toy:small"}


BROKEN_IMPORT = "raise ImportError('needs a library that is not installed')\n"
BROKEN_HOOK = textwrap.dedent(
    """
    from extpose_sdk import hookimpl

    @hookimpl
    def extpose_register_heads(register):
        raise RuntimeError("bug in the plugin")
    """
)
GOOD = textwrap.dedent(
    """
    from extpose_sdk import hookimpl, lazy

    @hookimpl
    def extpose_register_heads(register):
        register("goodhead", lazy("builtins:dict"), "a head from an installed package")
    """
)


@pytest.fixture
def site(tmp_path):
    fake_distribution(tmp_path, "extpose-plugin-broken", {"broken": "broken_plugin"},
                      {"broken_plugin.py": BROKEN_IMPORT})
    fake_distribution(tmp_path, "extpose-plugin-buggy", {"buggy": "buggy_plugin"},
                      {"buggy_plugin.py": BROKEN_HOOK})
    fake_distribution(tmp_path, "extpose-plugin-good", {"good": "good_plugin"},
                      {"good_plugin.py": GOOD})
    with on_sys_path(tmp_path):
        yield tmp_path


def test_broken_plugins_are_reported_and_skipped(site):
    with pytest.warns(RuntimeWarning, match="skipping plugin 'broken'"):
        manager = plugins.make_plugin_manager()
        with pytest.warns(RuntimeWarning, match="skipping plugin 'buggy'"):
            registries = manager.registries()
    failures = {(f.name, f.package, f.stage) for f in manager.failures}
    assert ("broken", "extpose-plugin-broken", "import") in failures
    assert ("buggy", "extpose-plugin-buggy", "extpose_register_heads") in failures
    assert registries.head.get("goodhead").package == "extpose-plugin-good"


def test_broken_plugin_is_fatal_under_strict(site):
    with pytest.raises(plugins.PluginError, match="'broken' from extpose-plugin-broken"):
        plugins.make_plugin_manager(strict=True)


def test_strict_from_the_environment(site, monkeypatch):
    monkeypatch.setenv("EXTPOSE_STRICT_PLUGINS", "1")
    with pytest.raises(plugins.PluginError, match="ImportError"):
        plugins.get_plugin_manager()


def test_autoload_off_loads_no_entry_point(site, monkeypatch):
    monkeypatch.setenv("EXTPOSE_DISABLE_PLUGIN_AUTOLOAD", "1")
    manager = plugins.get_plugin_manager()
    assert manager.failures == []
    assert not any(info.source == "entry point" for info in manager.infos.values())
    assert manager.registries().modality.names() == ["rgb", "skeleton"]  # built-ins stay


def test_autoload_off_with_named_opt_in(site, monkeypatch):
    monkeypatch.setenv("EXTPOSE_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("EXTPOSE_PLUGINS", "good, extpose-plugin-hmr2")  # by name or package
    manager = plugins.get_plugin_manager()
    loaded = {n for n, i in manager.infos.items() if i.source == "entry point"}
    assert loaded == {"good", "hmr2"}


def test_register_rejects_bad_components():
    module = types.ModuleType("bad")

    @plugins.hookimpl
    def extpose_register_datasets(register):
        register("nofactory", "not callable")

    module.extpose_register_datasets = extpose_register_datasets
    with isolated_plugins(module), pytest.warns(RuntimeWarning, match="not callable"):
        assert "nofactory" not in extpose_sdk.get_registries().dataset


def test_lazy_imports_only_when_called():
    factory = plugins.lazy("collections:OrderedDict")
    assert factory(a=1) == {"a": 1}
    with pytest.raises(ValueError, match="module:attribute"):
        plugins.lazy("collections")


def test_every_hook_is_documented_and_tested():
    from pathlib import Path

    test_sources = "".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    for hook_name in plugins.KINDS.values():
        spec = getattr(hookspecs, hook_name)
        assert spec.__doc__ and len(spec.__doc__.split()) > 15, hook_name
        assert "register" in spec.__code__.co_varnames
    assert set(plugins.KINDS.values()) == {
        name for name in dir(hookspecs) if name.startswith("extpose_register_")
    }
    for kind in plugins.KINDS:  # each kind's registry is exercised by name somewhere in the tests
        assert f".{kind}." in test_sources or f'"{kind}"' in test_sources, kind


def test_plain_import_pulls_in_no_heavy_library():
    code = (
        "import sys, extpose_sdk; extpose_sdk.get_registries();"
        "heavy = [m for m in ('torch', 'timm', 'cv2', 'smplx', 'xformers', 'decord') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_strict_fails_on_a_broken_plugin(site, capsys):
    from extpose_sdk import cli

    assert cli.main(["--strict", "plugins"]) == 1
    assert "'broken' from extpose-plugin-broken" in capsys.readouterr().err


def test_cli_reports_skipped_plugins(site, capsys):
    from extpose_sdk import cli

    assert cli.main(["plugins"]) == 0
    captured = capsys.readouterr()
    assert "goodhead" in captured.out
    assert "skipped plugin 'broken'" in captured.err
