import json
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

pycoco_mask = pytest.importorskip("pycocotools.mask")
from pycocotools.coco import COCO  # noqa: E402

from clothseg_tools import (  # noqa: E402
    CLASSES,
    MaskSet,
    decode_rle,
    encode_rle,
    export_coco,
    load_label_png,
    mask_to_polygons,
    rle_area,
    rle_bbox,
    save_label_png,
)
from clothseg_tools.errors import MaskDecodeError, ShapeMismatchError  # noqa: E402
from clothseg_tools.export import cvat_labelmap, part_category  # noqa: E402
from clothseg_tools.result import LAYOUT  # noqa: E402


def coco_encode(mask):
    return pycoco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))


def assert_same_as_pycocotools(mask):
    ours = encode_rle(mask)
    theirs = coco_encode(mask)
    assert isinstance(ours["counts"], str)
    assert ours["counts"].encode("ascii") == theirs["counts"]
    assert ours["size"] == list(theirs["size"]) == list(mask.shape)
    # uncompressed counts compress to the same bytes in pycocotools
    h, w = mask.shape
    flat = encode_rle(mask, compressed=False)
    assert all(isinstance(c, int) for c in flat["counts"])
    assert pycoco_mask.frPyObjects(flat, h, w)["counts"] == theirs["counts"]
    # decoding, area and box agree, and our decoder reads pycocotools' bytes
    expected = pycoco_mask.decode(theirs)
    for rle in (ours, flat, theirs):
        back = decode_rle(rle)
        assert back.dtype == np.bool_ and back.shape == mask.shape
        np.testing.assert_array_equal(back, expected.astype(bool))
        assert rle_area(rle) == int(pycoco_mask.area(theirs))
        assert rle_bbox(rle) == pycoco_mask.toBbox(theirs).tolist()


def _edge_cases():
    cases = {
        "empty": np.zeros((7, 5), bool),
        "full": np.ones((7, 5), bool),
        "one_pixel_first": np.eye(1, 35, 0, dtype=bool).reshape(7, 5),
        "one_pixel_last": np.eye(1, 35, 34, dtype=bool).reshape(7, 5),
        "one_pixel_middle": np.eye(1, 35, 17, dtype=bool).reshape(7, 5),
        "single_true": np.ones((1, 1), bool),
        "single_false": np.zeros((1, 1), bool),
        "row_1xN": np.array([[0, 1, 1, 0, 1, 0, 0, 1]], bool),
        "column_Nx1": np.array([[0, 1, 1, 0, 1, 0, 0, 1]], bool).T,
        "checkerboard_odd": (np.indices((13, 11)).sum(axis=0) % 2).astype(bool),
        "first_column": np.pad(np.ones((9, 1), bool), ((0, 0), (0, 4))),
        "last_row": np.pad(np.ones((1, 6), bool), ((8, 0), (0, 0))),
    }
    # long runs and shrinking runs: multi-character and negative differences
    big = np.zeros((300, 257), bool)
    big[:, :100] = True
    big[5:7, 200] = True
    cases["long_runs"] = big
    tri = np.tri(97, 101, dtype=bool)
    cases["triangle"] = tri
    return cases


@pytest.mark.parametrize(("name", "mask"), list(_edge_cases().items()))
def test_edge_cases_match_pycocotools(name, mask):
    assert_same_as_pycocotools(mask)


@settings(max_examples=300, deadline=None)
@given(
    arrays(
        np.bool_,
        st.tuples(st.integers(1, 40), st.integers(1, 40)),
        elements=st.booleans(),
    )
)
def test_random_masks_match_pycocotools(mask):
    assert_same_as_pycocotools(mask)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 64),
    st.integers(1, 64),
    st.integers(0, 2**32 - 1),
    st.floats(0.0, 1.0),
)
def test_blob_masks_with_long_runs_match_pycocotools(h, w, seed, fill):
    # runs of very different lengths (smoothed noise), unlike the coin flips above
    rng = np.random.default_rng(seed)
    base = rng.random((h // 4 + 1, w // 4 + 1)) < fill
    mask = np.kron(base, np.ones((4, 4), bool))[:h, :w]
    assert_same_as_pycocotools(mask)


def test_large_mask_uses_tiled_copy_and_matches():
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:1600, :1500]
    mask = ((yy - 700) ** 2 / 500**2 + (xx - 800) ** 2 / 300**2) < 1
    mask ^= rng.random(mask.shape) < 0.01
    assert mask.size > 1 << 21
    assert_same_as_pycocotools(mask)


@pytest.mark.parametrize(
    ("mask", "expected"),
    [
        (np.array([[0, 255], [200, 127]], np.uint8), [[False, True], [True, False]]),
        (np.array([[0, 1], [1, 0]], np.uint8), [[False, True], [True, False]]),  # 0/1 masks
        (np.array([[0, 0], [0, 0]], np.uint8), [[False, False], [False, False]]),
    ],
)
def test_uint8_masks(mask, expected):
    np.testing.assert_array_equal(decode_rle(encode_rle(mask)), expected)


def test_level_and_memory_layout_do_not_matter():
    rng = np.random.default_rng(0)
    soft = rng.integers(0, 256, (23, 17), dtype=np.uint8)
    binary = soft >= 100
    ref = encode_rle(binary)
    assert encode_rle(soft, level=100) == ref
    assert encode_rle(np.asfortranarray(binary)) == ref
    wide = np.zeros((23, 34), bool)
    wide[:, ::2] = binary
    assert encode_rle(wide[:, ::2]) == ref  # a strided view


def test_decode_returns_fortran_view_of_right_values():
    mask = np.arange(12).reshape(3, 4) % 3 == 0
    back = decode_rle(encode_rle(mask))
    assert back.flags.f_contiguous
    np.testing.assert_array_equal(back, mask)


@pytest.mark.parametrize(
    ("rle", "match"),
    [
        ({"size": [2, 2], "counts": "0~"}, "outside COCO's alphabet"),
        ({"size": [2, 2], "counts": "0 "}, "outside COCO's alphabet"),
        ({"size": [2, 2], "counts": "0P"}, "middle of a number"),
        ({"size": [2, 2], "counts": [1, 2]}, "add up to 3 pixels"),
        ({"size": [2, 2], "counts": "05"}, "add up to 5 pixels"),
        ({"size": [2, 2], "counts": [1, -1, 4]}, "non-negative"),
        ({"size": [2, 2], "counts": [[1, 3]]}, "non-negative"),
        ({"size": "2x2", "counts": [4]}, "size"),
        ({"counts": [4]}, "'size'"),
        ("not a dict", "dict"),
    ],
)
def test_bad_rles_raise_mask_decode_error(rle, match):
    with pytest.raises(MaskDecodeError, match=match):
        decode_rle(rle)


@pytest.mark.parametrize(
    ("mask", "match"),
    [(np.zeros((2, 2), np.float32), "dtype float32"), (np.zeros((2, 2, 2), bool), "2-D")],
)
def test_encode_refuses_bad_masks(mask, match):
    with pytest.raises(ValueError, match=match):
        encode_rle(mask)


# -- polygons -------------------------------------------------------------------------------


def polygons_to_mask(polygons, shape):
    h, w = shape
    if not polygons:
        return np.zeros(shape, bool)
    return pycoco_mask.decode(pycoco_mask.merge(pycoco_mask.frPyObjects(polygons, h, w))).astype(
        bool
    )


def iou(a, b):
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else np.logical_and(a, b).sum() / union


def ring_with_holes():
    from skimage.draw import disk, ellipse

    m = np.zeros((160, 220), bool)
    m[ellipse(80, 110, 70, 100, shape=m.shape)] = True
    m[disk((80, 70), 18)] = False  # two holes
    m[disk((70, 150), 12)] = False
    m[disk((72, 150), 5)] = True  # an island inside a hole
    m[5:15, 195:215] = True  # a separate part
    return m


def test_polygons_keep_parts_and_holes_through_pycocotools(record_property):
    m = ring_with_holes()
    polygons = mask_to_polygons(m)
    # main body (with both holes joined in), the island, the separate square
    assert len(polygons) == 3
    assert all(len(p) >= 6 and len(p) % 2 == 0 for p in polygons)
    back = polygons_to_mask(polygons, m.shape)
    score = iou(back, m)
    record_property("polygon_roundtrip_iou", score)
    assert score > 0.995
    assert not back[80, 70] and not back[65, 150]  # holes stay holes
    assert back[72, 150]  # the island inside a hole is kept


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 6))
def test_polygon_roundtrip_iou_on_random_blobs(seed, sigma):
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    m = ndimage.gaussian_filter(rng.random((96, 80)), sigma) > 0.5
    back = polygons_to_mask(mask_to_polygons(m), m.shape)
    assert iou(back, m) > 0.97
    exact = polygons_to_mask(mask_to_polygons(m, tolerance=0), m.shape)
    assert iou(exact, m) > 0.98


def test_polygon_tolerance_trades_points_for_accuracy():
    m = ring_with_holes()
    counts = [sum(map(len, mask_to_polygons(m, tolerance=t))) for t in (0, 0.25, 1.0, 3.0)]
    assert counts == sorted(counts, reverse=True) and counts[0] > 2 * counts[2]


@pytest.mark.parametrize(
    ("mask", "n"),
    [
        (np.zeros((5, 5), bool), 0),
        (np.eye(1, 25, 12, dtype=bool).reshape(5, 5), 1),
        (np.eye(5, dtype=bool), 1),  # diagonal pixels are one 8-connected part
        (np.ones((1, 7), bool), 1),
    ],
)
def test_polygon_counts(mask, n):
    polygons = mask_to_polygons(mask)
    assert len(polygons) == n
    if n:
        assert polygons_to_mask(polygons, mask.shape)[mask].mean() > 0.5


# -- COCO export ----------------------------------------------------------------------------


def make_masks(h=48, w=40, seed=0):
    rng = np.random.default_rng(seed)
    masks = {}
    for i, name in enumerate(("hair", "face", "tops", "bottoms", "body", "clothes")):
        m = np.zeros((h, w), np.uint8)
        y, x = rng.integers(0, h - 10), rng.integers(0, w - 10)
        m[y : y + 10 + i, x : x + 8] = 255
        m[y, x] = 140  # soft edge above the 128 threshold
        masks[name] = m
    masks["bag"] = np.zeros((h, w), np.uint8)  # empty: no annotation
    return MaskSet(masks)


def make_parts(shape):
    a = np.zeros(shape, bool)
    a[2:10, 2:10] = True
    b = np.zeros(shape, bool)
    b[20:30, 5:15] = True
    return MaskSet({"tops_0": a, "tops_1": b})


def save_result(folder, ms, *, source, parts=None, size=None):
    ms.save(folder)
    if parts is not None:
        parts.save(folder / "parts")
    h, w = ms.shape
    meta = {
        "format": "clothseg-result",
        "version": 1,
        "source": source,
        "image_size": list(size or (w, h)),
        "classes": list(ms.classes),
    }
    (folder / "result.json").write_text(json.dumps(meta))
    return folder


def check_against_pycocotools(path, expected):
    """expected: list of (file_name, {category name: [masks]})"""
    coco = COCO(str(path))
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    assert [names[i + 1] for i in range(len(CLASSES))] == list(CLASSES)
    images = coco.loadImgs(sorted(coco.getImgIds()))
    assert [im["file_name"] for im in images] == [e[0] for e in expected]
    for im, (_, by_class) in zip(images, expected, strict=True):
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[im["id"]]))
        got = {}
        for ann in anns:
            m = coco.annToMask(ann).astype(bool)
            got.setdefault(names[ann["category_id"]], []).append(m)
            assert ann["area"] == int(m.sum())
            assert ann["iscrowd"] == 0
            rle = encode_rle(m)
            assert ann["bbox"] == rle_bbox(rle)
        assert sorted(got) == sorted(by_class)
        for name, masks in by_class.items():
            assert len(got[name]) == len(masks)
            for ours, theirs in zip(masks, got[name], strict=True):
                np.testing.assert_array_equal(theirs, ours)


def test_export_instances_from_folders_with_parts(tmp_path):
    ms1, ms2 = make_masks(seed=1), make_masks(seed=2)
    parts = make_parts(ms1.shape)
    save_result(tmp_path / "res" / "img10", ms2, source="/photos/b.jpg")
    save_result(
        tmp_path / "res" / "img2", ms1, source="https://cdn.example/x/a.png?sig=SECRET", parts=parts
    )
    (tmp_path / "res" / "not_a_result").mkdir()
    out = export_coco(tmp_path / "res", tmp_path / "out" / "coco.json")
    assert "SECRET" not in out.read_text()
    level = lambda m: m >= 128  # noqa: E731
    exp1 = {c: [level(ms1[c])] for c in ms1.classes if c not in ("bag", "tops")}
    exp1["tops"] = [parts["tops_0"] > 0, parts["tops_1"] > 0]  # parts replace the class mask
    exp2 = {c: [level(ms2[c])] for c in ms2.classes if c != "bag"}
    # natural order: img2 before img10
    check_against_pycocotools(out, [("a.png", exp1), ("b.jpg", exp2)])


def test_export_tuples_polygons_and_no_parts(tmp_path):
    ms = make_masks(seed=5)
    parts = make_parts(ms.shape)
    out = export_coco([("x.jpg", ms, parts)], tmp_path / "p.json", encoding="polygon", parts=False)
    doc = json.loads(out.read_text())
    assert all(isinstance(a["segmentation"], list) for a in doc["annotations"])
    expected = {c: [ms[c] >= 128] for c in ms.classes if c != "bag"}
    check_against_pycocotools(out, [("x.jpg", expected)])


def test_export_semantic_gives_each_pixel_one_class(tmp_path):
    h, w = 20, 20
    tops = np.zeros((h, w), bool)
    tops[2:12, 2:12] = True
    clothes = np.zeros((h, w), bool)
    clothes[2:18, 2:12] = True
    face = np.zeros((h, w), bool)
    face[0:4, 0:4] = True
    ms = MaskSet({"clothes": clothes, "tops": tops, "face": face})
    out = export_coco([("s.png", ms)], tmp_path / "s.json", mode="semantic")
    expected = {"face": [face], "tops": [tops & ~face], "clothes": [clothes & ~tops & ~face]}
    check_against_pycocotools(out, [("s.png", expected)])
    coco = COCO(str(out))
    total = sum(coco.annToMask(a).astype(int) for a in coco.loadAnns(coco.getAnnIds()))
    assert total.max() == 1


def test_export_accepts_result_objects(tmp_path):
    class Result:  # the attributes export_coco reads from a SegmentationResult
        def __init__(self, masks, parts, source):
            self.masks, self.parts, self.source = masks, parts, source

    ms = make_masks(seed=9)
    res = Result(ms, MaskSet({}, shape=ms.shape), "C:\\photos\\w.webp")
    out = export_coco([res], tmp_path / "r.json")
    assert json.loads(out.read_text())["images"][0]["file_name"] == "w.webp"


def test_export_errors(tmp_path):
    ms = make_masks()
    with pytest.raises(ValueError, match="mode"):
        export_coco([("a", ms)], tmp_path / "x.json", mode="panoptic")
    with pytest.raises(ValueError, match="encoding"):
        export_coco([("a", ms)], tmp_path / "x.json", encoding="bitmap")
    ms.save(tmp_path / "half")  # no result.json: an interrupted save
    (tmp_path / "half" / LAYOUT["saving"]).touch()
    with pytest.raises(FileNotFoundError, match=r"result\.json"):
        export_coco([tmp_path / "half"], tmp_path / "x.json")
    save_result(tmp_path / "bad", ms, source="a.jpg", size=(99, 99))
    with pytest.raises(ShapeMismatchError, match="99"):
        export_coco([tmp_path / "bad"], tmp_path / "x.json")
    with pytest.raises(FileNotFoundError, match="no result folders"):
        export_coco(tmp_path / "half", tmp_path / "x.json")
    with pytest.raises(TypeError, match="results must hold"):
        export_coco([42], tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()  # nothing half-written


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("tops_0", "tops"),
        ("tops/3.png", "tops"),
        ("dress-02", "dress"),
        ("Bottoms 1", "bottoms"),
        ("skirt_1", "bottoms"),
        ("scarf_0", "clothes"),
        ("clothes", "clothes"),
    ],
)
def test_part_category(name, cls):
    assert part_category(name) == cls


# -- label PNGs -----------------------------------------------------------------------------


def test_label_png_round_trip_palette_and_atomic(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, len(CLASSES) + 1, (33, 21), dtype=np.uint8)
    path = save_label_png(labels, tmp_path / "sub" / "l.png")
    with Image.open(path) as im:
        assert im.mode == "P"
        palette = np.array(im.getpalette()[: 3 * 13]).reshape(13, 3)
    from clothseg_tools.classes import PALETTE

    assert palette[0].tolist() == [0, 0, 0]
    assert [tuple(p) for p in palette[1:]] == [PALETTE[c] for c in CLASSES]
    np.testing.assert_array_equal(load_label_png(path), labels)
    assert os.listdir(tmp_path / "sub") == ["l.png"]  # no temporary files left


def test_label_png_from_rgb_and_other_class_orders(tmp_path):
    labels = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    path = save_label_png(labels, tmp_path / "l.png", classes=["tops", "face"])
    # a labelling tool re-saved it as RGB, keeping the text chunk
    np.testing.assert_array_equal(
        load_label_png(path, classes=["face", "tops"]), [[0, 2, 1], [1, 2, 0]]
    )
    with Image.open(path) as im:
        im.convert("RGB").save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(
        load_label_png(tmp_path / "rgb.png", classes=["tops", "face"]), labels
    )
    with pytest.raises(MaskDecodeError, match="not among the classes"):
        load_label_png(path, classes=["hair"])
    odd = np.zeros((2, 2, 3), np.uint8)
    odd[0, 1] = (1, 2, 3)
    Image.fromarray(odd).save(tmp_path / "odd.png")
    with pytest.raises(MaskDecodeError, match=r"\(1, 2, 3\) at \(x=1, y=0\)"):
        load_label_png(tmp_path / "odd.png")


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (np.full((2, 2), 13, np.uint8), "0..12"),
        (np.full((2, 2), -1, np.int16), "-1"),
        (np.zeros((2, 2), np.float32), "integer"),
        (np.zeros((2, 2, 3), np.uint8), "2-D"),
    ],
)
def test_label_png_refuses_bad_labels(tmp_path, labels, match):
    with pytest.raises(ValueError, match=match):
        save_label_png(labels, tmp_path / "l.png")


def test_load_label_png_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_label_png(tmp_path / "missing.png")
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(MaskDecodeError, match="not a readable"):
        load_label_png(tmp_path / "junk.png")


def test_cvat_labelmap_matches_palette():
    lines = cvat_labelmap().splitlines()
    assert lines[1] == "background:0,0,0::"
    assert lines[2 + CLASSES.index("tops")] == "tops:214,39,40::"
    assert len(lines) == 2 + len(CLASSES)


def test_export_reads_folders_saved_by_segmentation_result(tmp_path):
    from clothseg_tools.result import SegmentationResult

    ms = make_masks(seed=11)
    parts = make_parts(ms.shape)
    SegmentationResult(masks=ms, parts=parts, source="shots/p1.jpg").save(tmp_path / "r" / "p1")
    SegmentationResult(masks=ms, source="p2.png").save(tmp_path / "r" / "p2")
    out = export_coco(tmp_path / "r", tmp_path / "c.json")
    with_parts = {c: [ms[c] >= 128] for c in ms.classes if c not in ("bag", "tops")}
    with_parts["tops"] = [parts["tops_0"] > 0, parts["tops_1"] > 0]
    plain = {c: [ms[c] >= 128] for c in ms.classes if c != "bag"}
    check_against_pycocotools(out, [("p1.jpg", with_parts), ("p2.png", plain)])
    # the result objects themselves give the same file
    again = export_coco(
        [SegmentationResult.load(tmp_path / "r" / n) for n in ("p1", "p2")], tmp_path / "d.json"
    )
    assert json.loads(again.read_text()) == json.loads(out.read_text())


def test_export_finds_results_at_any_depth_of_a_segment_output(tmp_path):
    # `clothseg segment` mirrors the input tree: results/a/p1, results/b/deep/p10, ...
    from clothseg_tools.result import SegmentationResult

    ms = make_masks(seed=5)
    for rel in ("b/deep/p10", "a/p2", "p1"):
        SegmentationResult(masks=ms, source=f"{rel}.png").save(tmp_path / "r" / rel)
    (tmp_path / "r" / ".tmp" / "x").mkdir(parents=True)  # tool folders are not results
    out = export_coco(tmp_path / "r", tmp_path / "c.json")
    names = [img["file_name"] for img in json.loads(out.read_text())["images"]]
    assert names == ["a/p2.png", "b/deep/p10.png", "p1.png"]
    with pytest.raises(FileNotFoundError, match=r"no result\.json below it"):
        export_coco(tmp_path / "r" / ".tmp", tmp_path / "e.json")


def test_same_named_photos_in_different_folders_get_distinct_file_names(tmp_path):
    from clothseg_tools.result import SegmentationResult

    ms = make_masks(seed=2)
    # two shops' shirt.jpg, and two inputs named alike that segment told apart by key
    for key, source in (
        ("shop1/shirt", "/photos/shop1/shirt.jpg"),
        ("shop2/shirt", "/photos/shop2/shirt.jpg"),
        ("look", "/a/look.jpg"),
        ("look-3f2a1b0c", "/b/look.jpg"),
    ):
        SegmentationResult(masks=ms, source=source).save(tmp_path / "r" / key)
    out = export_coco(tmp_path / "r", tmp_path / "c.json")
    names = [img["file_name"] for img in json.loads(out.read_text())["images"]]
    assert names == ["look.jpg", "look-2.jpg", "shop1/shirt.jpg", "shop2/shirt.jpg"]
