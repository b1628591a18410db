"""The tests also run from a checkout where the package is not installed (``pytest`` at the
SDK's root collects them): then its folder goes on ``sys.path``. Installed (CI:
requirements/test.txt), the installed package is used and its entry point is discovered."""

import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("extpose_plugin_depth") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
