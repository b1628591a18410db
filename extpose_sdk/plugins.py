"""Plugin discovery and the component registries.

One pluggy ``PluginManager`` is made by ``get_plugin_manager()``: it registers the built-in
plugin modules first, then every entry point of group ``extpose`` (unless autoloading is turned
off), and any plugin object that code registers in-process with ``register_plugin``. The
registries (one per kind of component) are built from the hooks of ``extpose_sdk.hookspecs`` by
``get_registries()``, one plugin at a time, so every component knows which plugin it came from and
a plugin that breaks is named and skipped (fatal under ``strict``). A plugin that registers a
name a built-in component already has is skipped whole (all its components) with a warning,
fatal under ``strict``; two third-party plugins claiming one name are an error naming both.
A factory that refuses its arguments (``TypeError``: an unknown option) raises
``ComponentBuildError`` naming the component, its plugin and the option.

Environment:
    EXTPOSE_DISABLE_PLUGIN_AUTOLOAD=1   load no entry point automatically
    EXTPOSE_PLUGINS=a,b                 with autoload off, still load these entry points
                                        (by entry-point name or distribution name)
    EXTPOSE_STRICT_PLUGINS=1            a plugin that fails to load or register is fatal
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import os
import re
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pluggy

from extpose_sdk import hookspecs

hookimpl = pluggy.HookimplMarker(hookspecs.PROJECT_NAME)

ENTRY_POINT_GROUP = "extpose"

#: Built-in plugin modules, registered before any third-party plugin, through the same hooks.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "extpose_sdk.builtins.backbones",
    "extpose_sdk.builtins.modalities",
    "extpose_sdk.builtins.heads",
    "extpose_sdk.builtins.keypoint_sources",
    "extpose_sdk.builtins.datasets",
)

#: Kinds of component: registry attribute name -> hook name.
KINDS: dict[str, str] = {
    "backbone": "extpose_register_backbones",
    "modality": "extpose_register_modalities",
    "head": "extpose_register_heads",
    "keypoint_source": "extpose_register_keypoint_sources",
    "dataset": "extpose_register_datasets",
    "model": "extpose_register_models",
    "weights": "extpose_register_weights",
}


#: Components that first-party plugin packages provide: when one is asked for and not
#: installed, the error says which package to install (the core itself holds no model recipe).
PROVIDED_BY: dict[str, dict[str, str]] = {
    "model": {"hmr2": "extpose-plugin-hmr2", "extpose-hmr2": "extpose-plugin-hmr2",
              "hamer": "extpose-plugin-hamer", "extpose-hamer": "extpose-plugin-hamer"},
    "backbone": {"hmr2": "extpose-plugin-hmr2", "hamer": "extpose-plugin-hamer",
                 "timm:*": "extpose-plugin-timm"},
    "keypoint_source": {"mediapipe": "extpose-plugin-mediapipe"},
    "weights": {"extpose-hamer-synthetic": "extpose-plugin-hamer"},
}


class PluginError(RuntimeError):
    """A plugin could not be loaded or registered (raised under strict, warned otherwise)."""


class UnknownComponentError(KeyError):
    """A name that no plugin registered. The message lists what is available."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


class DuplicateComponentError(PluginError):
    """Two plugins registered the same name for one kind of component."""

    def __init__(self, message: str, existing: Component | None = None) -> None:
        super().__init__(message)
        self.existing = existing


class ComponentBuildError(ValueError):
    """A component's factory refused the arguments it was given (an unknown option, say).

    ``missing`` names the required options the call lacked (``("root",)``), so that a command
    can say which of its own flags supplies one.
    """

    def __init__(self, message: str, missing: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.missing = missing


@attrs.frozen
class Component:
    """One registered component: a named factory and where it came from."""

    name: str
    kind: str
    factory: Callable[..., Any] = attrs.field(repr=False)
    description: str = ""
    plugin: str = ""
    package: str = ""
    metadata: dict[str, Any] = attrs.field(factory=dict, repr=False)

    @property
    def is_family(self) -> bool:
        """True for a name pattern such as ``timm:*`` that stands for many names."""
        return self.name.endswith("*")

    def build(self, *args: Any, **kwargs: Any) -> Any:
        return self.factory(*args, **kwargs)


@attrs.frozen
class PluginInfo:
    """A loaded plugin: its name, the distribution that provided it, and how it was found."""

    name: str
    package: str
    version: str = ""
    source: str = "builtin"  # builtin | entry point | in-process


@attrs.frozen
class PluginFailure:
    """A plugin that was skipped, and why."""

    name: str
    package: str
    stage: str  # "import" or the hook name
    error: str


def lazy(target: str) -> Callable[..., Any]:
    """A factory that imports ``"package.module:attribute"`` only when called.

    Lets a plugin register components without importing torch or building anything.
    """
    module_name, _, attribute = target.partition(":")
    if not attribute:
        raise ValueError(f"lazy() needs 'module:attribute', got {target!r}")

    def factory(*args: Any, **kwargs: Any) -> Any:
        obj = importlib.import_module(module_name)
        for part in attribute.split("."):
            obj = getattr(obj, part)
        return obj(*args, **kwargs)

    factory.__qualname__ = factory.__name__ = f"lazy({target})"
    factory.target = target  # type: ignore[attr-defined]
    return factory


class Registry:
    """Components of one kind by name, with helpful errors for unknown names."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, Component] = {}

    def add(self, component: Component) -> None:
        existing = self._items.get(component.name)
        if existing is not None:
            raise DuplicateComponentError(
                f"{self.kind} {component.name!r} is registered by two plugins: "
                f"{existing.plugin!r} ({existing.package}) and {component.plugin!r} "
                f"({component.package}); uninstall or disable one of them",
                existing,
            )
        self._items[component.name] = component

    def remove_plugin(self, plugin: str) -> None:
        """Forget every component that ``plugin`` registered."""
        for name in [n for n, c in self._items.items() if c.plugin == plugin]:
            del self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        try:
            self.resolve(name)  # type: ignore[arg-type]
        except (UnknownComponentError, TypeError):
            return False
        return True

    def __iter__(self) -> Iterator[Component]:
        return iter(self._items[name] for name in self.names())

    def __len__(self) -> int:
        return len(self._items)

    def resolve(self, name: str) -> tuple[Component, str | None]:
        """The component for ``name`` and, for a family (``timm:*``), the variant after the prefix."""
        if not isinstance(name, str):
            raise TypeError(f"{self.kind} name must be a string, got {type(name).__name__}")
        if name in self._items:
            return self._items[name], None
        for component in self._items.values():
            prefix = component.name[:-1]
            if component.is_family and name.startswith(prefix) and len(name) > len(prefix):
                return component, name[len(prefix) :]
        raise UnknownComponentError(self._unknown_message(name))

    def get(self, name: str) -> Component:
        return self.resolve(name)[0]

    def build(self, name: str, **kwargs: Any) -> Any:
        """Build the component called ``name`` with ``kwargs`` passed to its factory."""
        component, variant = self.resolve(name)
        try:
            if variant is not None:
                return component.factory(variant, **kwargs)
            return component.factory(**kwargs)
        except TypeError as error:
            missing = _missing_arguments(error)
            raise ComponentBuildError(self._build_message(name, component, error, missing),
                                      missing) from error  # fmt: skip

    def _build_message(self, name: str, component: Component, error: TypeError,
                       missing: tuple[str, ...]) -> str:  # fmt: skip
        origin = f"plugin {component.plugin!r}" + (
            f" from {component.package}" if component.package else ""
        )
        unexpected = re.search(r"unexpected keyword argument '(\w+)'", str(error))
        if unexpected:
            option = unexpected.group(1)
            return (f"{self.kind} {name!r} ({origin}) has no option {option!r} ({error}); "
                    "remove or rename it")  # fmt: skip
        if missing:
            return (f"{self.kind} {name!r} ({origin}) needs the option"
                    f"{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}")
        return f"{self.kind} {name!r} ({origin}) cannot be built: {error}"

    def _unknown_message(self, name: str) -> str:
        names = self.names()
        provided = PROVIDED_BY.get(self.kind, {})
        package = provided.get(name) or next(
            (p for n, p in provided.items() if n.endswith("*") and name.startswith(n[:-1])), None)
        install = f"; {name!r} comes with {package}: pip install {package}" if package else ""
        if not names:
            if not install and provided:
                packages = ", ".join(sorted(set(provided.values())))
                install = f"; install a plugin that provides one ({packages}, or a third party's)"
            return f"unknown {self.kind} {name!r}: no {self.kind} is registered{install}"
        message = f"unknown {self.kind} {name!r}{install}; available: {', '.join(names)}"
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        if close:
            message += f". Did you mean {' or '.join(repr(c) for c in close)}?"
        return message


@attrs.define
class Registries:
    """One registry per kind of component."""

    backbone: Registry = attrs.field(factory=lambda: Registry("backbone"))
    modality: Registry = attrs.field(factory=lambda: Registry("modality"))
    head: Registry = attrs.field(factory=lambda: Registry("head"))
    keypoint_source: Registry = attrs.field(factory=lambda: Registry("keypoint_source"))
    dataset: Registry = attrs.field(factory=lambda: Registry("dataset"))
    model: Registry = attrs.field(factory=lambda: Registry("model"))
    weights: Registry = attrs.field(factory=lambda: Registry("weights"))

    def __getitem__(self, kind: str) -> Registry:
        if kind not in KINDS:
            raise UnknownComponentError(
                f"unknown kind of component {kind!r}; available: {', '.join(KINDS)}"
            )
        return getattr(self, kind)

    def items(self) -> Iterator[tuple[str, Registry]]:
        for kind in KINDS:
            yield kind, getattr(self, kind)


def _missing_arguments(error: TypeError) -> tuple[str, ...]:
    """The names in Python's "missing 2 required keyword-only arguments: 'a' and 'b'"."""
    found = re.search(r"missing \d+ required (?:positional|keyword-only) arguments?: (.+)$",
                      str(error))  # fmt: skip
    return tuple(re.findall(r"'(\w+)'", found.group(1))) if found else ()


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _env_list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


class ExtposePluginManager(pluggy.PluginManager):
    """pluggy's manager plus what ``extpose plugins`` shows: origins and failures."""

    def __init__(self, *, strict: bool = False) -> None:
        super().__init__(hookspecs.PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self.strict = strict
        self.infos: dict[str, PluginInfo] = {}
        self.failures: list[PluginFailure] = []
        self._registries: Registries | None = None
        self._registries_key: tuple[str, ...] | None = None

    # -- loading -----------------------------------------------------------------------------

    def register(self, plugin: Any, name: str | None = None) -> str | None:  # type: ignore[override]
        registered = super().register(plugin, name)
        if registered is not None and registered not in self.infos:
            module = getattr(plugin, "__name__", None) or type(plugin).__module__
            self.infos[registered] = PluginInfo(registered, package=module, source="in-process")
        return registered

    def unregister(self, plugin: Any = None, name: str | None = None) -> Any:  # type: ignore[override]
        removed = super().unregister(plugin, name)
        for key in [k for k in self.infos if self.get_plugin(k) is None]:
            del self.infos[key]
        return removed

    def fail(self, name: str, package: str, stage: str, error: BaseException) -> None:
        """Record a broken plugin; raise instead under strict."""
        failure = PluginFailure(name, package, stage, f"{type(error).__name__}: {error}")
        if self.strict:
            raise PluginError(
                f"plugin {name!r} from {package} failed at {stage}: {failure.error}"
            ) from error
        self.failures.append(failure)
        warnings.warn(
            f"extpose: skipping plugin {name!r} from {package} ({stage}): {failure.error}. "
            "Run with --strict (or EXTPOSE_STRICT_PLUGINS=1) to make this fatal.",
            RuntimeWarning,
            stacklevel=2,
        )

    def load_builtins(self) -> None:
        version = _version("extpose-sdk")
        for module_name in DEFAULT_PLUGINS:
            module = importlib.import_module(module_name)  # a broken built-in is our bug: fatal
            self.register(module, name=module_name)
            self.infos[module_name] = PluginInfo(module_name, "extpose-sdk", version, "builtin")

    def load_entry_points(self, *, autoload: bool = True, only: list[str] | None = None) -> None:
        """Register plugins announced by installed packages in group ``extpose``.

        With ``autoload=False`` only the entry points named in ``only`` (entry-point name or
        distribution name) are loaded.
        """
        wanted = set(only or [])
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = entry_point.dist
            package = dist.metadata["Name"] if dist is not None else "?"
            if not autoload and entry_point.name not in wanted and package not in wanted:
                continue
            if self.get_plugin(entry_point.name) is not None or self.is_blocked(entry_point.name):
                continue
            try:
                plugin = entry_point.load()
                self.register(plugin, name=entry_point.name)
            except Exception as error:  # noqa: BLE001 - any failure of a third party is reported
                self.fail(entry_point.name, package, "import", error)
                continue
            version = dist.version if dist is not None else ""
            self.infos[entry_point.name] = PluginInfo(
                entry_point.name, package, version, "entry point"
            )

    # -- registries --------------------------------------------------------------------------

    def registries(self) -> Registries:
        """The registries built from every plugin's hooks (rebuilt when plugins change)."""
        key = tuple(name for name, _ in self.list_name_plugin())
        if self._registries is None or key != self._registries_key:
            self._registries = self._build_registries()
            self._registries_key = key
        return self._registries

    def _build_registries(self) -> Registries:
        registries = Registries()
        skipped: set[str] = set()  # plugins skipped whole (a built-in's name claimed)
        # get_hookimpls() lists plugins in registration order: built-ins first, so a third
        # party claiming a built-in's name is the one found out.
        for kind, hook_name in KINDS.items():
            registry = registries[kind]
            for impl in getattr(self.hook, hook_name).get_hookimpls():
                if impl.plugin_name in skipped:
                    continue
                info = self.infos.get(impl.plugin_name) or PluginInfo(impl.plugin_name, "?")
                staged: list[Component] = []

                def register(
                    name: str,
                    factory: Callable[..., Any],
                    description: str = "",
                    _kind: str = kind,
                    _info: PluginInfo = info,
                    _staged: list[Component] = staged,
                    **metadata: Any,
                ) -> None:
                    if not isinstance(name, str) or not name:
                        raise TypeError(f"a {_kind} name must be a non-empty string, got {name!r}")
                    if not callable(factory):
                        raise TypeError(f"the factory of {_kind} {name!r} is not callable")
                    first_line = (description or "").strip().splitlines()
                    _staged.append(
                        Component(
                            name=name,
                            kind=_kind,
                            factory=factory,
                            description=first_line[0] if first_line else "",
                            plugin=_info.name,
                            package=_info.package,
                            metadata=metadata,
                        )
                    )

                try:
                    impl.function(register=register)
                    for component in staged:  # all or none: check every name first
                        if component.name in registry._items:
                            registry.add(component)  # raises, naming both plugins
                    for component in staged:
                        registry.add(component)
                except DuplicateComponentError as error:
                    existing = error.existing
                    builtin = existing is not None and self._is_builtin(existing.plugin)
                    if not builtin or self._is_builtin(info.name):
                        raise
                    self.fail(info.name, info.package, hook_name, error)  # raises under strict
                    skipped.add(info.name)
                    for _, other in registries.items():
                        other.remove_plugin(info.name)
                except Exception as error:  # noqa: BLE001 - a third party's bug is reported
                    self.fail(info.name, info.package, hook_name, error)
        return registries

    def _is_builtin(self, plugin: str) -> bool:
        info = self.infos.get(plugin)
        return info is not None and info.source == "builtin"


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return ""


def make_plugin_manager(
    *,
    strict: bool | None = None,
    autoload: bool | None = None,
    only: list[str] | None = None,
) -> ExtposePluginManager:
    """A new plugin manager with built-ins and (unless disabled) installed plugins loaded.

    Arguments default to the environment (see the module docstring).
    """
    if strict is None:
        strict = _env_flag("EXTPOSE_STRICT_PLUGINS")
    if autoload is None:
        autoload = not _env_flag("EXTPOSE_DISABLE_PLUGIN_AUTOLOAD")
    if only is None:
        only = _env_list("EXTPOSE_PLUGINS")
    manager = ExtposePluginManager(strict=strict)
    manager.load_builtins()
    manager.load_entry_points(autoload=autoload, only=only)
    return manager


_default_manager: ExtposePluginManager | None = None


def get_plugin_manager(*, strict: bool | None = None) -> ExtposePluginManager:
    """The process-wide plugin manager, made on first use; ``reset_plugins()`` forgets it."""
    global _default_manager
    if _default_manager is None or (strict is not None and strict != _default_manager.strict):
        _default_manager = make_plugin_manager(strict=strict)
    return _default_manager


def reset_plugins() -> None:
    """Forget the process-wide plugin manager (tests, or after installing a plugin)."""
    global _default_manager
    _default_manager = None


def get_registries(*, strict: bool | None = None) -> Registries:
    """The registries of the process-wide plugin manager."""
    return get_plugin_manager(strict=strict).registries()


def register_plugin(plugin: Any, name: str | None = None) -> str | None:
    """Register a plugin object or module in-process; its components appear at once."""
    return get_plugin_manager().register(plugin, name=name)


def unregister_plugin(plugin: Any = None, name: str | None = None) -> Any:
    """Remove a plugin registered in-process."""
    return get_plugin_manager().unregister(plugin, name=name)
