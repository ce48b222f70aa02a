"""What the tests know about the engines installed here."""

from __future__ import annotations

import importlib.util

import pytest

#: mediapipe (the [local] extra) is published for Python 3.9 to 3.12 only.
LOCAL_ENGINE_INSTALLED = importlib.util.find_spec("mediapipe") is not None

needs_local_engine = pytest.mark.skipif(
    not LOCAL_ENGINE_INSTALLED,
    reason="segments photos with the local engine, which needs mediapipe "
    "(the [local] extra, published for Python 3.9 to 3.12)",
)
