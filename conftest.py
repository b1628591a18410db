import pytest

from extpose_sdk import plugins


@pytest.fixture(autouse=True)
def fresh_plugin_manager(monkeypatch):
    """Every test starts from a new plugin manager and the default environment."""
    for variable in ("EXTPOSE_DISABLE_PLUGIN_AUTOLOAD", "EXTPOSE_PLUGINS", "EXTPOSE_STRICT_PLUGINS"):
        monkeypatch.delenv(variable, raising=False)
    plugins.reset_plugins()
    yield
    plugins.reset_plugins()
