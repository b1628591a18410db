"""Helpers for testing ExtPose components, for the SDK's tests and for plugin authors'.

    from extpose_sdk.testing import isolated_plugins

    def test_my_backbone():
        with isolated_plugins(my_plugin_module) as manager:
            model = manager.registries().backbone.build("mine", depth=1)

``fake_distribution`` writes an installed-package record (a ``.dist-info`` with entry points) so
entry-point discovery is exercised for real without installing anything.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from extpose_sdk import plugins


@contextlib.contextmanager
def isolated_plugins(*extra: Any, autoload: bool = False, strict: bool = False) -> Iterator:
    """A fresh process-wide plugin manager with built-ins and ``extra`` plugins, restored after.

    Yields the manager; registries are built on first use, so registration errors surface there.

    Entry points are not loaded unless ``autoload=True``, so tests see only what they ask for.
    """
    saved = plugins._default_manager
    manager = plugins.make_plugin_manager(strict=strict, autoload=autoload, only=[])
    for plugin in extra:
        manager.register(plugin)
    plugins._default_manager = manager
    try:
        yield manager
    finally:
        plugins._default_manager = saved


def fake_distribution(
    site: Path, name: str, entry_points: dict[str, str], modules: dict[str, str] | None = None
) -> Path:
    """Write a minimal installed distribution into ``site`` (add ``site`` to ``sys.path``).

    ``entry_points`` maps entry-point names of group ``extpose`` to ``module[:attr]`` targets;
    ``modules`` maps module file names to their source.
    """
    site = Path(site)
    dist_info = site / f"{name.replace('-', '_')}-0.0.1.dist-info"
    dist_info.mkdir(parents=True, exist_ok=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0.1\n")
    lines = ["[extpose]"] + [f"{key} = {value}" for key, value in entry_points.items()]
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for filename, source in (modules or {}).items():
        (site / filename).write_text(source)
    return dist_info


@contextlib.contextmanager
def on_sys_path(path: Path) -> Iterator[None]:
    """Put ``path`` first on ``sys.path`` for the duration, forgetting modules imported from it."""
    path = str(path)
    before = set(sys.modules)
    sys.path.insert(0, path)
    try:
        yield
    finally:
        sys.path.remove(path)
        for module in set(sys.modules) - before:
            if (getattr(sys.modules[module], "__file__", None) or "").startswith(path):
                del sys.modules[module]
