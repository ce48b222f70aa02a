"""The public namespace: every exported name resolves, and nothing heavy loads on import."""

import subprocess
import sys

import pytest

import clothseg_tools as cst


@pytest.mark.parametrize("name", sorted(set(cst.__all__) - {"__version__"}))
def test_every_exported_name_resolves(name):
    value = getattr(cst, name)
    assert value is not None
    assert name in dir(cst)


def test_all_lists_exactly_the_lazy_exports():
    assert set(cst.__all__) == set(cst._EXPORTS) | {"__version__"}


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = cst.nope


def test_design_names_are_public():
    # The names DESIGN.md promises users.
    for name in [
        "CLASSES",
        "CLASS_TYPES",
        "Client",
        "MaskSet",
        "decode_mask",
        "read_mask_zip",
        "merge",
        "threshold",
        "label_map",
        "clean",
        "feather",
        "cutout",
        "replace_background",
        "overlay",
        "estimate_foreground",
        "coverage",
        "iou",
        "dice",
        "tryon_mask",
        "encode_rle",
        "decode_rle",
    ]:
        assert name in cst.__all__


def test_import_is_light():
    # The CLI starts on every invocation: importing the package must not pull in
    # scikit-image, requests or mediapipe until a function needs them.
    code = (
        "import sys, clothseg_tools; "
        "heavy = [m for m in ('skimage', 'requests', 'mediapipe', 'fastapi') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
