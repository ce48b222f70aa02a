import io
import logging
import os
import stat
import struct
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from clothseg_tools._io import encode_png
from clothseg_tools.errors import MaskZipError, UnsafeZipError
from clothseg_tools.zipmasks import (
    extract_mask_zip,
    group_parts,
    natural_key,
    normalize_part_names,
    part_class,
    read_mask_zip,
    read_mask_zip_report,
    write_mask_zip,
)

RNG = np.random.default_rng(11)


def mask(seed: int, shape=(9, 13)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def make_zip(entries, compression=zipfile.ZIP_DEFLATED) -> bytes:
    """entries: {name: bytes | ndarray (PNG) | PIL image (by suffix) | None (folder)}."""
    buf = io.BytesIO()
    items = entries.items() if isinstance(entries, dict) else entries
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, value in items:
            if value is None:
                zf.writestr(zipfile.ZipInfo(name.rstrip("/") + "/"), b"")
                continue
            if isinstance(value, np.ndarray):
                value = encode_png(value)
            elif isinstance(value, Image.Image):
                ext = os.path.splitext(name)[1].lower().lstrip(".")
                img_buf = io.BytesIO()
                value.save(img_buf, format={"jpg": "JPEG", "tif": "TIFF"}.get(ext, ext.upper()))
                value = img_buf.getvalue()
            zf.writestr(name, value)
    return buf.getvalue()


def patch_sizes(data: bytes, name: str, *, file_size=None, compress_size=None, flags=None):
    """Rewrite the sizes (or flag bits) an entry declares, in both of its headers."""
    out = bytearray(data)
    encoded = name.encode()
    # central directory: sizes at 20/24, flags at 8, name length at 28, name at 46
    pos = out.find(b"PK\x01\x02")
    while pos >= 0:
        (n,) = struct.unpack("<H", out[pos + 28 : pos + 30])
        if out[pos + 46 : pos + 46 + n] == encoded:
            if compress_size is not None:
                out[pos + 20 : pos + 24] = struct.pack("<I", compress_size)
            if file_size is not None:
                out[pos + 24 : pos + 28] = struct.pack("<I", file_size)
            if flags is not None:
                out[pos + 8 : pos + 10] = struct.pack("<H", flags)
            (offset,) = struct.unpack("<I", out[pos + 42 : pos + 46])
            # local header: flags at 6, sizes at 18/22
            if compress_size is not None:
                out[offset + 18 : offset + 22] = struct.pack("<I", compress_size)
            if file_size is not None:
                out[offset + 22 : offset + 26] = struct.pack("<I", file_size)
            if flags is not None:
                out[offset + 6 : offset + 8] = struct.pack("<H", flags)
        pos = out.find(b"PK\x01\x02", pos + 4)
    return bytes(out)


def zero_bomb(name="tops_0.png", megabytes=40) -> bytes:
    """One entry of `megabytes` MiB of zeros, deflated about 1000:1."""
    buf = io.BytesIO()
    with (
        zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf,
        zf.open(name, "w") as fh,
    ):
        block = bytes(1 << 20)
        for _ in range(megabytes):
            fh.write(block)
    return buf.getvalue()


@pytest.fixture
def inflated(monkeypatch):
    """Counts the bytes read out of ZIP entries, per entry name."""
    counts: dict[str, int] = {}
    real_open = zipfile.ZipFile.open

    def counting_open(self, name, mode="r", *args, **kwargs):
        fh = real_open(self, name, mode, *args, **kwargs)
        if mode != "r":  # building a test archive, not reading one
            return fh
        key = name.filename if isinstance(name, zipfile.ZipInfo) else name
        real_read = fh.read
        counts.setdefault(key, 0)

        def read(n=-1):
            data = real_read(n)
            counts[key] += len(data)
            return data

        fh.read = read
        return fh

    monkeypatch.setattr(zipfile.ZipFile, "open", counting_open)
    return counts


# -- layouts --------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    masks=st.lists(arrays(np.uint8, (5, 7)), min_size=1, max_size=6),
    classes=st.lists(st.sampled_from(["tops", "dress", "bottoms", "scarf"]), min_size=6,
                     max_size=6),
    layout=st.sampled_from(["flat", "folders"]),
)  # fmt: skip
def test_write_read_round_trip(masks, classes, layout):
    parts = {f"{classes[i]}_{i}": m for i, m in enumerate(masks)}
    back = read_mask_zip(write_mask_zip(parts, layout=layout))
    assert len(back) == len(parts)
    renamed = normalize_part_names(parts)
    for (name, got), (_, want) in zip(
        normalize_part_names(back).items(), renamed.items(), strict=True
    ):
        np.testing.assert_array_equal(got, want, err_msg=name)
    if layout == "flat":
        assert set(back) == set(parts)
        for name, m in parts.items():
            np.testing.assert_array_equal(back[name], m)


def test_flat_layout_natural_order():
    names = ["tops_10", "tops_2", "tops_1", "dress-02", "Tops_3", "bottoms_0"]
    data = make_zip({f"{n}.png": mask(i) for i, n in enumerate(names)})
    out = read_mask_zip(data)
    assert list(out) == ["bottoms_0", "dress-02", "tops_1", "tops_2", "Tops_3", "tops_10"]
    np.testing.assert_array_equal(out["tops_10"], mask(0))


def test_nested_folders_and_other_encodings():
    grey = mask(5)
    data = make_zip(
        [
            ("result/", None),
            ("result/tops/", None),
            ("result/tops/0.png", grey),
            ("result/tops/1.png", Image.fromarray(grey).convert("RGBA")),
            ("result/dress/0.bmp", Image.fromarray(grey)),
            ("result/dress/1.TIFF", Image.fromarray(grey.astype(np.uint16) * 257)),
        ]
    )
    out = read_mask_zip(data)
    assert list(out) == ["result/dress/0", "result/dress/1", "result/tops/0", "result/tops/1"]
    for name, m in out.items():
        np.testing.assert_array_equal(m, grey, err_msg=name)
    assert {k: list(v) for k, v in group_parts(out).items()} == {
        "tops": ["result/tops/0", "result/tops/1"],
        "dress": ["result/dress/0", "result/dress/1"],
    }


def test_junk_is_skipped_and_reported(caplog):
    caplog.set_level(logging.INFO, logger="clothseg_tools")
    link = zipfile.ZipInfo("tops/link.png")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("tops/0.png", encode_png(mask(1)))
        zf.writestr("__MACOSX/tops/._0.png", b"\x00\x05\x16\x07resource fork")
        zf.writestr(".DS_Store", b"\x00\x00\x00\x01Bud1")
        zf.writestr("tops/.hidden.png", encode_png(mask(2)))
        zf.writestr("Thumbs.db", b"junk")
        zf.writestr("readme.txt", b"masks for photo 1")
        zf.writestr("labels.json", b"{}")
        zf.writestr(link, "/etc/passwd")
        zf.writestr(zipfile.ZipInfo("tops/"), b"")
    report = read_mask_zip_report(buf.getvalue())
    assert list(report.parts) == ["tops/0"]
    reasons = {s.name: s.reason for s in report.skipped}
    assert reasons == {
        "__MACOSX/tops/._0.png": "operating-system metadata",
        ".DS_Store": "operating-system metadata",
        "tops/.hidden.png": "hidden (dot) file",
        "Thumbs.db": "operating-system metadata",
        "readme.txt": "not an image",
        "labels.json": "not an image",
        "tops/link.png": "symbolic link",
    }
    assert "skipped 7 entries" in caplog.text and "readme.txt (not an image)" in caplog.text


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("tops/0.png", "tops"),
        ("tops_1.png", "tops"),
        ("dress-02.png", "dress"),
        ("Dress (2).png", "dress"),
        ("TOPS3.PNG", "tops"),
        ("upper_clothes_1.png", "tops"),
        ("accessories-4.jpg", "acc"),
        ("masks/bottoms/pants_0.png", "bottoms"),
        ("result\\tops\\7.png", "tops"),
        ("tops_1_2", "tops"),
        ("out/clothes/12", "clothes"),
        ("scarf_1.png", "scarf"),
        ("garments/Scarf/2.png", "Scarf"),
        ("7.png", "7"),
    ],
)
def test_part_class(name, cls):
    assert part_class(name) == cls


def test_group_and_normalize_order():
    m = np.zeros((1, 1), np.uint8)
    parts = {"scarf_1": m, "tops_10": m, "belt_0": m, "tops_9": m, "hair_0": m, "dress": m}
    groups = group_parts(parts)
    # unknown classes follow the known ones, in natural order of their first part
    assert list(groups) == ["hair", "tops", "dress", "belt", "scarf"]
    assert list(groups["tops"]) == ["tops_9", "tops_10"]
    assert list(normalize_part_names(parts)) == [
        "hair_0", "tops_0", "tops_1", "dress_0", "belt_0", "scarf_0"
    ]  # fmt: skip


def test_natural_key():
    names = ["a10", "a2", "a1b", "A1a", "b", "a"]
    assert sorted(names, key=natural_key) == ["a", "A1a", "a1b", "a2", "a10", "b"]


# -- sources --------------------------------------------------------------------------


class _Stream:
    """A non-seekable binary stream (a socket or pipe)."""

    def __init__(self, data: bytes) -> None:
        self._fh = io.BytesIO(data)

    def read(self, n=-1):
        return self._fh.read(n)


def test_sources(tmp_path):
    data = make_zip({"tops_0.png": mask(3)})
    path = tmp_path / "parts.zip"
    path.write_bytes(data)
    for source in (data, bytearray(data), path, str(path), io.BytesIO(data), _Stream(data)):
        out = read_mask_zip(source)
        np.testing.assert_array_equal(out["tops_0"], mask(3))
    with open(path, "rb") as fh:
        assert list(read_mask_zip(fh)) == ["tops_0"]
        assert not fh.closed  # a caller's file stays open
    with pytest.raises(UnsafeZipError, match="larger than 100"):
        read_mask_zip(_Stream(data), max_total_bytes=100)
    with pytest.raises(MaskZipError, match="int"):
        read_mask_zip(42)


@pytest.mark.parametrize(
    "data",
    [b"", b"not a zip at all", make_zip({"tops_0.png": mask(0)})[:-30]],
)
def test_not_a_zip(data):
    with pytest.raises(MaskZipError, match="Not a readable ZIP"):
        read_mask_zip(data)


def test_undecodable_entry_names_the_entry():
    data = make_zip({"tops_0.png": mask(0), "tops_1.png": b"\x89PNG\r\n\x1a\nbroken"})
    with pytest.raises(MaskZipError, match=r"tops_1\.png"):
        read_mask_zip(data)


def test_corrupt_entry_data():
    data = bytearray(make_zip({"tops_0.png": mask(0)}, compression=zipfile.ZIP_STORED))
    pos = data.find(b"IDAT")
    data[pos + 8] ^= 0xFF  # the ZIP CRC no longer matches
    with pytest.raises(MaskZipError, match=r"tops_0\.png"):
        read_mask_zip(bytes(data))


def test_duplicate_part_names():
    data = make_zip({"tops_1.png": mask(0), "tops_1.jpg": Image.fromarray(mask(0))})
    with pytest.raises(MaskZipError, match="both give the part name 'tops_1'"):
        read_mask_zip(data)


def test_encrypted_entry():
    data = make_zip({"tops_0.png": mask(0)}, compression=zipfile.ZIP_STORED)
    with pytest.raises(MaskZipError, match="encrypted"):
        read_mask_zip(patch_sizes(data, "tops_0.png", flags=0x1))


# -- refusals -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "../evil.png",
        "tops/../../evil.png",
        "/etc/cron.d/evil.png",
        "\\\\server\\share\\x.png",
        "C:\\Windows\\evil.png",
        "c:evil.png",
        "..\\evil.png",
        "tops/..",
        "__MACOSX/../evil.png",  # junk does not excuse a path trick
        "notes/../../x.txt",  # neither does a non-image
    ],
)
def test_path_tricks_are_refused(name, inflated):
    data = make_zip([("tops_0.png", mask(0)), (name, encode_png(mask(1)))])
    with pytest.raises(UnsafeZipError, match="refusing the whole archive") as exc:
        read_mask_zip(data)
    assert repr(name)[1:-1] in str(exc.value)
    assert inflated == {}  # refused before anything was inflated


def test_too_many_entries_refused_from_the_end_record(monkeypatch):
    data = make_zip({f"tops_{i}.png": b"x" for i in range(30)})

    def no_parse(*args, **kwargs):
        raise AssertionError("the central directory was parsed")

    with monkeypatch.context() as m:
        m.setattr(zipfile, "ZipFile", no_parse)
        with pytest.raises(UnsafeZipError, match="declares 30 entries, over the limit of 10"):
            read_mask_zip(data, max_entries=10)


def test_too_many_entries_when_the_end_record_lies():
    data = bytearray(make_zip({f"tops_{i}.png": b"x" for i in range(30)}))
    eocd = data.rfind(b"PK\x05\x06")
    data[eocd + 8 : eocd + 12] = struct.pack("<HH", 3, 3)  # claims 3 entries
    with pytest.raises(UnsafeZipError, match="has 30 entries"):
        read_mask_zip(bytes(data), max_entries=10)


def test_per_entry_size_limit(inflated):
    data = make_zip({"tops_0.png": mask(0, (300, 300)), "tops_1.png": mask(1)})
    with pytest.raises(UnsafeZipError, match=r"tops_0\.png.*per-entry limit of 10,000"):
        read_mask_zip(data, max_entry_bytes=10_000)
    assert inflated == {}


def test_total_size_limit(inflated):
    data = make_zip({f"tops_{i}.png": mask(i, (100, 100)) for i in range(5)})
    one = len(encode_png(mask(0, (100, 100))))
    with pytest.raises(UnsafeZipError, match="in total"):
        read_mask_zip(data, max_total_bytes=3 * one)
    assert inflated == {}
    assert len(read_mask_zip(data, max_total_bytes=6 * one)) == 5


def test_zip_bomb_is_refused_without_inflating(inflated):
    data = zero_bomb(megabytes=40)
    assert len(data) < 100_000  # 40 MiB in a few dozen kB
    with pytest.raises(UnsafeZipError, match=r"compression ratio of [\d,]+:1, over the limit"):
        read_mask_zip(data)
    assert inflated == {}


def test_huge_declared_size_is_refused_without_inflating(inflated):
    data = patch_sizes(zero_bomb(megabytes=1), "tops_0.png", file_size=3_000_000_000)
    with pytest.raises(UnsafeZipError, match="3,000,000,000 bytes"):
        read_mask_zip(data)
    assert inflated == {}


def test_lying_header_cannot_inflate_past_its_declared_size(inflated):
    # 40 MiB of zeros whose headers claim 1,000 bytes: the ratio looks harmless
    data = patch_sizes(zero_bomb(megabytes=40), "tops_0.png", file_size=1000)
    with pytest.raises(MaskZipError, match=r"tops_0\.png"):
        read_mask_zip(data)
    assert inflated["tops_0.png"] <= 1001  # stopped at the declared size, not 40 MiB


def test_ratio_is_not_checked_on_small_entries():
    # a small, highly compressible mask is normal (a raw BMP of a mostly empty mask)
    data = make_zip({"tops_0.bmp": Image.fromarray(np.zeros((1000, 1000), np.uint8))})
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo("tops_0.bmp")
    assert info.file_size / info.compress_size > 100
    assert read_mask_zip(data)["tops_0"].shape == (1000, 1000)


# -- extract --------------------------------------------------------------------------


def test_extract_writes_inside_the_folder(tmp_path):
    parts = {"tops_0": mask(0), "tops_1": mask(1), "dress_0": mask(2)}
    data = write_mask_zip(parts, layout="folders")
    out = tmp_path / "out"
    written = extract_mask_zip(data, out)
    assert [p.relative_to(out).as_posix() for p in written] == [
        "dress/0.png", "tops/0.png", "tops/1.png"
    ]  # fmt: skip
    np.testing.assert_array_equal(np.asarray(Image.open(out / "tops" / "1.png")), mask(1))
    assert not [p for p in out.rglob(".*")]  # atomic writes leave no temporaries


def test_extract_refuses_to_follow_links_out(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(outside, out / "tops")
    data = write_mask_zip({"tops_0": mask(0)}, layout="folders")
    with pytest.raises(UnsafeZipError, match="outside"):
        extract_mask_zip(data, out)
    assert list(outside.iterdir()) == []


def test_extract_refuses_path_tricks(tmp_path):
    data = make_zip({"../escape.png": mask(0)})
    with pytest.raises(UnsafeZipError):
        extract_mask_zip(data, tmp_path / "out")
    assert not (tmp_path / "escape.png").exists()


# -- write ----------------------------------------------------------------------------


def test_write_is_deterministic_and_stores_pngs():
    parts = {"tops_0": mask(0), "tops_1": mask(1) > 128}
    a, b = write_mask_zip(parts), write_mask_zip(dict(parts))
    assert a == b
    with zipfile.ZipFile(io.BytesIO(a)) as zf:
        assert zf.namelist() == ["tops_0.png", "tops_1.png"]
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}
        assert zf.testzip() is None
    np.testing.assert_array_equal(read_mask_zip(a)["tops_1"], (mask(1) > 128) * np.uint8(255))


def test_write_refusals():
    with pytest.raises(ValueError, match="layout"):
        write_mask_zip({"a": mask(0)}, layout="tree")
    with pytest.raises(ValueError, match="same file name"):
        write_mask_zip({"tops/0": mask(0), "tops_0": mask(1)})
    with pytest.raises(ValueError, match="dtype float64"):
        write_mask_zip({"tops_0": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="Unsafe"):
        write_mask_zip({"../0": mask(0)}, layout="folders")


# -- one signature for every reader ----------------------------------------------------


def test_the_readers_take_the_reports_keywords():
    """ZipReadOptions, what read_mask_zip and extract_mask_zip pass on, names exactly
    the keywords of read_mask_zip_report, so no reader can drift from it."""
    import inspect

    from clothseg_tools.zipmasks import ZipReadOptions

    keywords = [
        p.name
        for p in inspect.signature(read_mask_zip_report).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    assert list(ZipReadOptions.__annotations__) == keywords


@pytest.mark.parametrize(
    ("limits", "match"),
    [
        ({"max_entries": 2}, "over the limit of 2"),
        ({"max_entry_bytes": 50}, "per-entry limit of 50"),
        ({"max_total_pixels": 200}, "more than 200 pixels"),
    ],
)
def test_every_reader_applies_the_same_limits(tmp_path, limits, match):
    data = make_zip({f"tops_{i}.png": mask(i, (10, 12)) for i in range(3)})
    readers = [
        lambda: read_mask_zip_report(data, **limits),
        lambda: read_mask_zip(data, **limits),
        lambda: extract_mask_zip(data, tmp_path / "out", **limits),
    ]
    for read in readers:
        with pytest.raises(UnsafeZipError, match=match):
            read()
    assert not list((tmp_path / "out").glob("*.png"))
    loose = {"max_entries": 3, "max_entry_bytes": 10_000, "max_total_pixels": 360, "workers": 1}
    names = ["tops_0", "tops_1", "tops_2"]
    assert list(read_mask_zip(data, **loose)) == names
    assert list(read_mask_zip_report(data, **loose).parts) == names
    written = extract_mask_zip(data, tmp_path / "out", **loose)
    assert [p.name for p in written] == ["tops_0.png", "tops_1.png", "tops_2.png"]
