"""Collection rules for the whole repository (the tests' fixtures live in tests/conftest.py)."""

from __future__ import annotations

import importlib.util

# The local engine's modules import mediapipe and OpenCV, which the [local] extra installs
# on Python 3.9 to 3.12 only; elsewhere their doctests cannot even be imported, and
# tests/test_local_engine.py says why it skips.
collect_ignore_glob = (
    [] if importlib.util.find_spec("mediapipe") is not None else ["clothseg_tools/engines/local/*"]
)
