"""Collection rules for the whole repository (the tests' fixtures live in tests/conftest.py)."""

from __future__ import annotations

import importlib.util

# tests/_*.py are support modules imported by the tests, not tests: --doctest-modules would
# import them on their own. The local engine's modules import mediapipe and OpenCV, which the
# [local] extra installs on Python 3.9 to 3.12 only; elsewhere their doctests cannot even be
# imported, and tests/test_local_engine.py says why it skips.
collect_ignore_glob = ["tests/_*.py"]
if importlib.util.find_spec("mediapipe") is None:
    collect_ignore_glob.append("clothseg_tools/engines/local/*")
