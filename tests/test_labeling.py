"""The labeling round trip: exports to YOLO, CVAT, Label Studio and Hugging Face
datasets, each read by an independent or the tool's own reader, and the readers that
bring corrected labels back into result folders."""

import json
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from scipy import ndimage
from skimage.draw import polygon as draw_polygon

import clothseg_tools as cst
from clothseg_tools import CLASSES, PALETTE, MaskSet, SegmentationResult, label_map
from clothseg_tools.batch.labels import import_labels, save_labeled
from clothseg_tools.classes import LABEL_PRIORITY
from clothseg_tools.cli import main
from clothseg_tools.errors import LabelFormatError, OptionalDependencyError, ShapeMismatchError
from clothseg_tools.export import (
    LabeledItem,
    brush_rle,
    export_coco,
    export_cvat,
    export_hf,
    export_labelstudio,
    export_yolo,
    labelstudio_config,
    mask_to_polygons,
    read_coco,
    read_cvat,
    read_yolo,
)
from clothseg_tools.export._source import PARTS_DIR as SOURCE_PARTS_DIR
from clothseg_tools.export._source import RESULT_NAME as SOURCE_RESULT_NAME
from clothseg_tools.export.cvat import voc_colormap
from clothseg_tools.result import PARTS_DIR, RESULT_NAME

SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


# -- data --------------------------------------------------------------------------


def person(h=60, w=48, seed=0):
    """Overlapping classes, a top with a hole, two separate shoes, hair touching face."""
    rng = np.random.default_rng(seed)
    m = {c: np.zeros((h, w), bool) for c in ("hair", "face", "clothes", "tops", "shoes")}
    m["hair"][2:8, 16:32] = True
    m["face"][8:18, 18:30] = True
    m["tops"][20:38, 12:36] = True
    m["tops"][26:30, 22:26] = False  # a hole
    m["clothes"][20:52, 12:36] = True
    m["shoes"][53:58, 10:20] = True
    m["shoes"][53:58, 28:38] = True
    dy = int(rng.integers(0, 2))
    return MaskSet({c: np.roll(v, dy, axis=0) for c, v in m.items()})


def make_results(root, n=3, *, parts=True, size=(60, 48)):
    """n result folders under root/results with photos under root/photos."""
    h, w = size
    (root / "photos").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        photo = root / "photos" / f"p{i}.png"
        Image.fromarray(np.full((h, w, 3), 40 * i, np.uint8)).save(photo)
        masks = person(h, w, seed=i)
        part_set = None
        if parts:
            left = masks["tops"].copy()
            left[:, w // 2 :] = 0
            right = masks["tops"].copy()
            right[:, : w // 2] = 0
            part_set = MaskSet({"tops_0": left, "tops_1": right})
        SegmentationResult(masks, part_set, source=str(photo), engine="test").save(
            root / "results" / ("nested" if i == 2 else "") / f"p{i}"
        )
    return root / "results"


def band(mask):
    """The pixels on either side of a mask's outline (what polygons may change)."""
    return ndimage.binary_dilation(mask) & ~ndimage.binary_erosion(mask)


@st.composite
def masks_with_holes(draw, max_side=40):
    """Random masks: several parts, some with holes, touching or not."""
    h = draw(st.integers(4, max_side))
    w = draw(st.integers(4, max_side))
    m = np.zeros((h, w), bool)
    for _ in range(draw(st.integers(1, 5))):
        y, x = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
        hh, ww = draw(st.integers(1, h)), draw(st.integers(1, w))
        m[y : y + hh, x : x + ww] ^= True  # xor: rectangles cut holes into each other
    return m


def rasterise_yolo_line(line, shape):
    """An independent reading of one YOLO line: skimage's polygon fill at pixel centres."""
    values = np.array(line.split()[1:], float).reshape(-1, 2)
    h, w = shape
    mask = np.zeros(shape, bool)
    rr, cc = draw_polygon(values[:, 1] * h - 0.5, values[:, 0] * w - 0.5, shape)
    mask[rr, cc] = True
    return mask


def test_result_layout_is_the_one_result_py_owns():
    assert (SOURCE_RESULT_NAME, SOURCE_PARTS_DIR) == (RESULT_NAME, PARTS_DIR)


# -- YOLO --------------------------------------------------------------------------


def test_yolo_layout_read_independently(tmp_path):
    yaml = pytest.importorskip("yaml")
    results = make_results(tmp_path, parts=False)
    summary = export_yolo(results, tmp_path / "yolo", tolerance=0)
    out = tmp_path / "yolo"
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["names"] == dict(enumerate(CLASSES)) and data["nc"] == 12
    assert (out / data["train"]).is_dir()
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.txt")) == [
        "labels/nested/p2.txt",
        "labels/p0.txt",
        "labels/p1.txt",
    ]
    assert (out / "images" / "nested" / "p2.png").is_file()
    lines_total = 0
    for rel in ["p0", "p1", "nested/p2"]:
        masks = SegmentationResult.load(results / rel).masks
        lines = (out / "labels" / f"{rel}.txt").read_text().splitlines()
        lines_total += len(lines)
        by_class: dict[str, np.ndarray] = {}
        for line in lines:
            cls = CLASSES[int(line.split()[0])]
            region = rasterise_yolo_line(line, masks.shape)
            by_class[cls] = by_class.get(cls, np.zeros(masks.shape, bool)) | region
        for cls in masks.classes:
            np.testing.assert_array_equal(by_class[cls], masks[cls] > 0, err_msg=f"{rel} {cls}")
        # one line per connected region: two shoes, one top (its hole joined by a slit)
        ids = [int(line.split()[0]) for line in lines]
        assert ids.count(CLASSES.index("shoes")) == 2 and ids.count(CLASSES.index("tops")) == 1
    assert summary.images == 3 and summary.annotations == lines_total


def test_yolo_parts_are_one_line_each_and_holes_stay_empty(tmp_path):
    results = make_results(tmp_path, n=1)
    export_yolo(results, tmp_path / "yolo", images=False, tolerance=0)
    lines = (tmp_path / "yolo" / "labels" / "p0.txt").read_text().splitlines()
    tops = [line for line in lines if line.split()[0] == str(CLASSES.index("tops"))]
    assert len(tops) == 2  # the parts, not the merged mask
    saved = SegmentationResult.load(results / "p0")
    hole = ndimage.binary_fill_holes(saved.masks["tops"] > 0) & ~(saved.masks["tops"] > 0)
    assert hole.sum() == 16
    for line, part in zip(tops, saved.parts.classes, strict=True):
        filled = rasterise_yolo_line(line, (60, 48))
        np.testing.assert_array_equal(filled, saved.parts[part] > 0)
        assert not (filled & hole).any()


def test_yolo_min_area_and_tolerance(tmp_path):
    m = np.zeros((40, 40), bool)
    m[5:30, 5:30] = True
    m[35, 35] = True  # a speck
    m[15:17, 15:17] = False  # a small hole
    ms = MaskSet({"tops": m})
    export_yolo([("a.png", ms)], tmp_path / "all", images=False, tolerance=0)
    export_yolo([("a.png", ms)], tmp_path / "big", images=False, min_area=5, tolerance=0)
    all_lines = (tmp_path / "all" / "labels" / "a.txt").read_text().splitlines()
    big_lines = (tmp_path / "big" / "labels" / "a.txt").read_text().splitlines()
    assert len(all_lines) == 2 and len(big_lines) == 1
    assert rasterise_yolo_line(big_lines[0], m.shape)[15:17, 15:17].all()  # hole filled
    export_yolo([("a.png", ms)], tmp_path / "coarse", images=False, tolerance=1.0)
    coarse = (tmp_path / "coarse" / "labels" / "a.txt").read_text().splitlines()
    assert len(coarse[0].split()) <= len(all_lines[0].split())


@SETTINGS
@given(mask=masks_with_holes())
def test_yolo_round_trip_is_exact_without_simplification(tmp_path_factory, mask):
    root = tmp_path_factory.mktemp("yolo")
    Image.new("RGB", mask.shape[::-1]).save(root / "a.png")
    export_yolo([(str(root / "a.png"), MaskSet({"bag": mask}))], root / "ds", tolerance=0)
    item = next(read_yolo(root / "ds"))
    back = item.masks["bag"] > 0 if "bag" in item.masks else np.zeros(mask.shape, bool)
    np.testing.assert_array_equal(back, mask)


@SETTINGS
@given(mask=masks_with_holes(), tolerance=st.sampled_from([0.25, 0.5, 1.0]))
def test_yolo_round_trip_changes_only_outline_pixels(tmp_path_factory, mask, tolerance):
    root = tmp_path_factory.mktemp("yolo")
    Image.new("RGB", mask.shape[::-1]).save(root / "a.png")
    export_yolo([(str(root / "a.png"), MaskSet({"bag": mask}))], root / "ds", tolerance=tolerance)
    item = next(read_yolo(root / "ds"))
    back = item.masks["bag"] > 0 if "bag" in item.masks else np.zeros(mask.shape, bool)
    assert not ((back ^ mask) & ~band(mask)).any()


def write_yolo(root, label_text, *, names="names:\n  0: tops\n  1: dress\n", image=True):
    (root / "labels").mkdir(parents=True)
    (root / "images").mkdir()
    if names is not None:
        (root / "data.yaml").write_text(names)
    if image:
        Image.new("RGB", (10, 10)).save(root / "images" / "a.jpg")
    (root / "labels" / "a.txt").write_text(label_text)
    return root


GOOD = "0 0.1 0.1 0.9 0.1 0.5 0.9\n"


@pytest.mark.parametrize(
    ("text", "names", "image", "line", "match"),
    [
        (GOOD + "x 0.1 0.1 0.2 0.2 0.3 0.3\n", None, True, 2, "integer class"),
        (GOOD + "5 0.1 0.1 0.9 0.1 0.5 0.9\n", None, True, 2, "class id 5"),
        (GOOD + "1 0.5 0.5 0.2 0.2\n", None, True, 2, "detection box"),
        ("1 0.1 0.1 0.9 0.1 0.5\n", None, True, 1, "even number"),
        ("\n1 0.1 0.1 0.9 1.7 0.5 0.9\n", None, True, 2, "normalised"),
        ("1 0.1 0.1 nan 0.1 0.5 0.9\n", None, True, 1, "normalised"),
        (GOOD, "names:\n  0: tops\n  1: scarf\n", True, None, "'scarf'"),
        (GOOD, "names:\n  0: tops\n  2: dress\n", True, 3, "run 0, 1, 2"),
        (GOOD, "nc: 2\n", True, None, "no 'names:'"),
        (GOOD, "names: tops, dress\n", True, 1, "a list"),
        (GOOD, None, False, None, "no image"),
    ],
)
def test_yolo_reader_names_file_and_line(tmp_path, text, names, image, line, match):
    root = write_yolo(
        tmp_path / "ds", text, names=names or "names:\n  0: tops\n  1: dress\n", image=image
    )
    with pytest.raises(LabelFormatError, match=match) as info:
        list(read_yolo(root))
    assert info.value.line == line
    expected = "data.yaml" if names is not None else "a.txt"
    assert Path(info.value.path).name == expected
    assert str(info.value.path) in str(info.value)


def test_yolo_reader_flow_names_aliases_and_background_images(tmp_path):
    root = write_yolo(tmp_path / "ds", GOOD, names="names: [upper_clothes, dress]\n")
    Image.new("RGB", (10, 10)).save(root / "images" / "b.png")  # no label file
    items = list(read_yolo(root))
    assert [i.name for i in items] == ["a", "b"]
    assert items[0].masks.classes == ("tops",) and items[1].masks.classes == ()
    with pytest.raises(FileNotFoundError, match="labels/"):
        list(read_yolo(tmp_path))


# -- CVAT --------------------------------------------------------------------------


def read_cvat_independently(folder):
    """labelmap.txt, SegmentationClass and SegmentationObject read with Pillow alone."""
    colours = {}
    for line in (folder / "labelmap.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, rgb, _, _ = line.split(":")
            colours[tuple(int(v) for v in rgb.split(","))] = name
    names = (folder / "ImageSets/Segmentation/default.txt").read_text().split()
    out = {}
    for name in names:
        rgb = np.asarray(Image.open(folder / "SegmentationClass" / f"{name}.png").convert("RGB"))
        obj = np.asarray(Image.open(folder / "SegmentationObject" / f"{name}.png").convert("RGB"))
        classes = np.zeros(rgb.shape[:2], np.uint8)
        for colour, cls in colours.items():
            hit = (rgb == colour).all(axis=-1)
            classes[hit] = 0 if cls == "background" else CLASSES.index(cls) + 1
        out[name] = (classes, obj)
    return colours, out


def test_cvat_folder_read_independently(tmp_path):
    results = make_results(tmp_path)
    summary = export_cvat(results, tmp_path / "cvat", images=True)
    colours, images = read_cvat_independently(tmp_path / "cvat")
    assert colours[(0, 0, 0)] == "background"
    assert {tuple(v): k for k, v in PALETTE.items()} == {
        c: n for c, n in colours.items() if n != "background"
    }
    assert sorted(images) == ["nested/p2", "p0", "p1"]
    voc = [tuple(c) for c in voc_colormap()]
    n_objects = 0
    for name, (classes, obj) in images.items():
        masks = SegmentationResult.load(results / name).masks
        expected = label_map(masks, CLASSES, priority=LABEL_PRIORITY)
        np.testing.assert_array_equal(classes, expected)
        ids = {voc.index(tuple(c)) for c in obj.reshape(-1, 3)}
        n_objects += len(ids - {0})
        for i in ids - {0}:
            region = (obj == voc[i]).all(axis=-1)
            assert len(np.unique(classes[region])) == 1  # one class per object
        assert (tmp_path / "cvat" / "JPEGImages" / f"{name}.png").is_file()
    assert summary.annotations == n_objects


def test_cvat_zip_is_the_folder_zipped(tmp_path):
    results = make_results(tmp_path, n=2)
    export_cvat(results, tmp_path / "cvat.zip")
    export_cvat(results, tmp_path / "cvat")
    with zipfile.ZipFile(tmp_path / "cvat.zip") as zf:
        names = sorted(zf.namelist())
        folder = sorted(
            p.relative_to(tmp_path / "cvat").as_posix()
            for p in (tmp_path / "cvat").rglob("*")
            if p.is_file()
        )
        assert names == folder
        for name in names:
            assert zf.read(name) == (tmp_path / "cvat" / name).read_bytes()
    with pytest.raises(FileExistsError):
        export_cvat(results, tmp_path / "cvat.zip")


@SETTINGS
@given(
    a=masks_with_holes(max_side=24),
    b=masks_with_holes(max_side=24),
    c=masks_with_holes(max_side=24),
)
def test_cvat_round_trip_keeps_the_label_map(tmp_path_factory, a, b, c):
    h, w = min(a.shape[0], b.shape[0], c.shape[0]), min(a.shape[1], b.shape[1], c.shape[1])
    ms = MaskSet({"clothes": a[:h, :w], "tops": b[:h, :w], "bag": c[:h, :w]})
    out = tmp_path_factory.mktemp("cvat") / "c.zip"
    export_cvat([("x.jpg", ms)], out)
    item = next(read_cvat(out))
    expected = label_map(ms, CLASSES, priority=LABEL_PRIORITY)
    back = label_map(item.masks, CLASSES, priority=LABEL_PRIORITY) if len(item.masks) else 0
    np.testing.assert_array_equal(back, expected)
    # instances: each garment region is a part; their union is the class
    for name in item.parts.classes:
        assert ((item.parts[name] > 0) <= (item.masks[name.split("_")[0]] > 0)).all()


def cvat_dataset(
    root,
    labelmap="# label:color_rgb:parts:actions\nbackground:0,0,0::\ntops:214,39,40::\n",
    picture=None,
    obj=None,
    listed=("a",),
):
    (root / "SegmentationClass").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "labelmap.txt").write_text(labelmap)
    (root / "ImageSets/Segmentation/default.txt").write_text("".join(f"{n}\n" for n in listed))
    if picture is None:
        picture = np.zeros((4, 5, 3), np.uint8)
        picture[1:3, 1:3] = (214, 39, 40)
    Image.fromarray(picture).save(root / "SegmentationClass" / "a.png")
    if obj is not None:
        (root / "SegmentationObject").mkdir()
        Image.fromarray(obj).save(root / "SegmentationObject" / "a.png")
    return root


@pytest.mark.parametrize(
    ("kwargs", "file", "line", "match"),
    [
        ({"labelmap": "background:0,0,0::\nscarf:1,2,3::\n"}, "labelmap.txt", 2, "'scarf'"),
        ({"labelmap": "background:0,0,0::\ntops 214 39 40\n"}, "labelmap.txt", 2, "expected"),
        ({"labelmap": "background:0,0,0::\ntops:0,0,0::\n"}, "labelmap.txt", 2, "both"),
        ({"picture": np.full((4, 5, 3), 7, np.uint8)}, "a.png", None, "colour \\(7, 7, 7\\)"),
        ({"obj": np.zeros((3, 5, 3), np.uint8)}, "a.png", None, "both must have"),
        ({"listed": ("a", "b")}, "default.txt", 2, "'b'"),
    ],
)
def test_cvat_reader_errors_name_file_and_line(tmp_path, kwargs, file, line, match):
    root = cvat_dataset(tmp_path / "ds", **kwargs)
    with pytest.raises(LabelFormatError, match=match) as info:
        list(read_cvat(root))
    assert Path(info.value.path).name == file and info.value.line == line


def test_cvat_reader_missing_labelmap_and_files(tmp_path):
    root = cvat_dataset(tmp_path / "ds")
    (root / "labelmap.txt").unlink()
    with pytest.raises(LabelFormatError, match=r"labelmap\.txt"):
        list(read_cvat(root))
    with pytest.raises(FileNotFoundError):
        list(read_cvat(tmp_path / "nothing"))
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(LabelFormatError, match="not a ZIP"):
        list(read_cvat(tmp_path / "bad.zip"))


# -- Label Studio ------------------------------------------------------------------


def ls_brush():
    for module in ("label_studio_sdk.converter.brush", "label_studio_converter.brush"):
        try:
            return __import__(module, fromlist=["decode_rle"])
        except ImportError:
            continue
    pytest.skip("neither label-studio-sdk nor label-studio-converter is installed")


@settings(max_examples=60, deadline=None)
@given(
    mask=masks_with_holes(max_side=48)
    | st.sampled_from([np.zeros((3, 3), bool), np.ones((300, 300), bool), np.eye(5, dtype=bool)])
)
def test_brush_rle_is_label_studios_encoding(mask):
    brush = ls_brush()
    ours = brush_rle(mask)
    assert ours == brush.mask2rle(mask.astype(np.uint8) * 255)  # byte for byte
    h, w = mask.shape
    decoded = brush.decode_rle(ours).reshape(h, w, 4)
    np.testing.assert_array_equal(decoded[..., 3], mask.astype(np.uint8) * 255)


def test_brush_rle_long_runs_are_cut_as_label_studio_cuts_them():
    brush = ls_brush()
    mask = np.zeros((400, 400), bool)  # runs of 4 * 160000 values: ten 16-bit pieces
    mask[200:, 100:] = True
    assert brush_rle(mask) == brush.mask2rle(mask.astype(np.uint8) * 255)


def test_labelstudio_tasks_decode_to_the_masks(tmp_path):
    brush = ls_brush()
    results = make_results(tmp_path)
    summary = export_labelstudio(results, tmp_path / "ls")
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    assert len(tasks) == 3
    config = ET.fromstring((tmp_path / "ls" / "labeling_config.xml").read_text())
    labels_tag = config.find("BrushLabels")
    assert labels_tag is not None and labels_tag.get("toName") == config.find("Image").get("name")
    assert [lab.get("value") for lab in labels_tag] == list(CLASSES)
    assert labels_tag[4].get("background") == "#d62728"  # tops in PALETTE
    n = 0
    assert sorted(t["data"]["name"] for t in tasks) == ["nested/p2", "p0", "p1"]
    for task in tasks:
        rel = task["data"]["name"]
        result = SegmentationResult.load(results / rel)
        assert task["data"]["image"] == f"/data/local-files/?d=images/{rel}.png"
        assert (tmp_path / "ls" / "images" / f"{rel}.png").is_file()
        regions = task["predictions"][0]["result"]
        n += len(regions)
        got: dict[str, list[np.ndarray]] = {}
        for region in regions:
            assert region["from_name"] == labels_tag.get("name") and region["type"] == "brushlabels"
            h, w = region["original_height"], region["original_width"]
            alpha = brush.decode_rle(region["value"]["rle"]).reshape(h, w, 4)[..., 3]
            got.setdefault(region["value"]["brushlabels"][0], []).append(alpha > 0)
        assert len(got["tops"]) == 2  # the parts
        for name in ("hair", "face", "clothes", "shoes"):
            np.testing.assert_array_equal(got[name][0], result.masks[name] > 0)
        for part, decoded in zip(result.parts.classes, got["tops"], strict=True):
            np.testing.assert_array_equal(decoded, result.parts[part] > 0)
    assert summary.annotations == n


def test_labelstudio_polygons_and_urls(tmp_path):
    results = make_results(tmp_path, n=1)
    export_labelstudio(
        results,
        tmp_path / "ls",
        kind="polygon",
        image_root="https://cdn.example/shop/",
        images=False,
        parts=False,
    )
    task = json.loads((tmp_path / "ls" / "tasks.json").read_text())[0]
    assert task["data"]["image"] == "https://cdn.example/shop/p0.png"
    config = ET.fromstring((tmp_path / "ls" / "labeling_config.xml").read_text())
    assert config.find("PolygonLabels") is not None
    masks = SegmentationResult.load(results / "p0").masks
    shoes = [
        r for r in task["predictions"][0]["result"] if r["value"]["polygonlabels"] == ["shoes"]
    ]
    assert len(shoes) == 2  # one region per connected part
    filled = np.zeros(masks.shape, bool)
    for region in shoes:
        pts = np.array(region["value"]["points"]) / 100 * (48, 60)
        rr, cc = draw_polygon(pts[:, 1] - 0.5, pts[:, 0] - 0.5, masks.shape)
        filled[rr, cc] = True
    assert not ((filled ^ (masks["shoes"] > 0)) & ~band(masks["shoes"] > 0)).any()
    export_labelstudio(results, tmp_path / "ls2", local_root=tmp_path)
    task = json.loads((tmp_path / "ls2" / "tasks.json").read_text())[0]
    assert task["data"]["image"] == "/data/local-files/?d=ls2/images/p0.png"
    with pytest.raises(ValueError, match="document root"):
        export_labelstudio(results, tmp_path / "ls3", local_root=tmp_path / "photos")
    with pytest.raises(ValueError, match="kind"):
        labelstudio_config("box")


# -- Hugging Face datasets ---------------------------------------------------------


def test_hf_shards_load_with_datasets(tmp_path):
    datasets = pytest.importorskip("datasets")
    results = make_results(tmp_path, n=5)
    summary = export_hf(results, tmp_path / "hf", masks=["tops", "Shoe"], max_shard_bytes=1)
    shards = sorted(p.name for p in (tmp_path / "hf" / "data").iterdir())
    assert summary.images == 5 and len(shards) >= 2
    assert shards[0].endswith(f"-of-{len(shards):05d}.parquet")
    ds = datasets.load_dataset("parquet", data_dir=str(tmp_path / "hf"))["train"]
    assert isinstance(ds.features["image"], datasets.Image)
    assert isinstance(ds.features["label"], datasets.Image)
    assert ds.features["classes"].feature.names == ["background", *CLASSES]
    assert isinstance(ds.features["shoes"], datasets.Image)
    names = sorted(ds["name"])
    assert names == ["nested/p2", "p0", "p1", "p3", "p4"]
    for row in ds:
        result = SegmentationResult.load(results / row["name"])
        expected = label_map(result.masks, CLASSES, priority=LABEL_PRIORITY)
        np.testing.assert_array_equal(np.array(row["label"]), expected)
        present = {ds.features["classes"].feature.int2str(v) for v in row["classes"]}
        assert present == {CLASSES[v - 1] for v in np.unique(expected) if v}
        np.testing.assert_array_equal(np.array(row["tops"]) > 0, result.masks["tops"] > 0)
        assert row["image"].size == (48, 60)
    card = (tmp_path / "hf" / "README.md").read_text()
    assert card.startswith("---\n") and "num_examples: 5" in card and "| 5 | tops |" in card
    # the card's configs make the folder loadable by path, too
    assert len(datasets.load_dataset(str(tmp_path / "hf"))["train"]) == 5


def test_hf_without_pyarrow_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(OptionalDependencyError, match=r"clothseg_tools\[hf\]"):
        export_hf([], tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


# -- COCO back ---------------------------------------------------------------------


@SETTINGS
@given(a=masks_with_holes(), b=masks_with_holes())
def test_coco_rle_round_trip_is_exact(tmp_path_factory, a, b):
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    ms = MaskSet({"tops": a[:h, :w], "shoes": b[:h, :w]})
    path = export_coco([("a.jpg", ms)], tmp_path_factory.mktemp("c") / "c.json")
    item = next(read_coco(path))
    for cls in ms.classes:
        back = item.masks[cls] if cls in item.masks else np.zeros((h, w), np.uint8)
        np.testing.assert_array_equal(back > 0, ms[cls] > 0)


@SETTINGS
@given(mask=masks_with_holes())
def test_coco_polygons_round_trip_within_the_outline(tmp_path_factory, mask):
    path = export_coco(
        [("a.jpg", MaskSet({"dress": mask}))],
        tmp_path_factory.mktemp("c") / "c.json",
        encoding="polygon",
    )
    item = next(read_coco(path))
    back = item.masks["dress"] > 0 if "dress" in item.masks else np.zeros(mask.shape, bool)
    assert not ((back ^ mask) & ~band(mask)).any()


def test_coco_reader_agrees_with_pycocotools(tmp_path):
    coco_api = pytest.importorskip("pycocotools.coco")
    results = make_results(tmp_path)
    (tmp_path / "ds" / "annotations").mkdir(parents=True)
    path = export_coco(results, tmp_path / "ds" / "annotations" / "instances.json")
    coco = coco_api.COCO(str(path))
    items = {i.name: i for i in read_coco(path, images=tmp_path / "photos")}
    assert items["p0"].photo == tmp_path / "photos" / "p0.png"
    for img in coco.imgs.values():
        item = items[img["file_name"].rsplit(".", 1)[0]]  # nested/p2.png -> nested/p2
        union: dict[str, np.ndarray] = {}
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]])):
            name = coco.cats[ann["category_id"]]["name"]
            union[name] = union.get(name, 0) | coco.annToMask(ann).astype(bool)
        assert set(union) == set(item.masks.classes)
        for name, m in union.items():
            np.testing.assert_array_equal(item.masks[name] > 0, m)
        # every garment instance is a part: the class mask of clothes, the two tops
        assert item.parts.classes == ("clothes_0", "tops_0", "tops_1")


def coco_doc(**change):
    doc = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 4, "height": 3}],
        "annotations": [
            {
                "id": 7,
                "image_id": 1,
                "category_id": 5,
                "segmentation": {"size": [3, 4], "counts": [1, 2, 9]},
            }
        ],
        "categories": [{"id": 5, "name": "tops"}],
    }
    doc.update(change)
    return doc


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        (coco_doc(categories=[{"id": 5, "name": "scarf"}]), "'scarf'"),
        (coco_doc(categories=[{"id": 6, "name": "tops"}]), "category 5"),
        (coco_doc(images=[]), r"image id\(s\) \[1\]"),
        (
            coco_doc(
                annotations=[
                    {
                        "id": 7,
                        "image_id": 1,
                        "category_id": 5,
                        "segmentation": {"size": [4, 3], "counts": [1, 2, 9]},
                    }
                ]
            ),
            "3 x 4 but its image is 4 x 3",
        ),
        (
            coco_doc(
                annotations=[
                    {
                        "id": 7,
                        "image_id": 1,
                        "category_id": 5,
                        "segmentation": {"size": [3, 4], "counts": [1, 2]},
                    }
                ]
            ),
            "add up",
        ),
        (
            coco_doc(
                annotations=[
                    {"id": 7, "image_id": 1, "category_id": 5, "segmentation": [[0, 0, 1, 1]]}
                ]
            ),
            "at least",
        ),
        (
            coco_doc(annotations=[{"id": 7, "image_id": 1, "category_id": 5, "segmentation": []}]),
            "RLE dict or a list",
        ),
        ({"images": []}, "not a COCO file"),
    ],
)
def test_coco_reader_errors_name_the_file(tmp_path, doc, match):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(LabelFormatError, match=match) as info:
        list(read_coco(path))
    assert info.value.path == str(path) and str(path) in str(info.value)


def test_coco_reader_not_json_names_the_line(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{\n  "images": [\n  oops\n')
    with pytest.raises(LabelFormatError) as info:
        list(read_coco(path))
    assert info.value.line == 3


# -- back into result folders, and the commands ------------------------------------


def test_imported_folders_are_results_every_command_reads(tmp_path):
    results = make_results(tmp_path)
    export_yolo(results, tmp_path / "yolo", tolerance=0)
    summary = import_labels(tmp_path / "yolo", tmp_path / "back", fmt="yolo")
    assert summary.done == 3 and summary.skipped == 0
    for rel in ("p0", "p1", "nested/p2"):
        back = SegmentationResult.load(tmp_path / "back" / rel)  # checksums verified
        orig = SegmentationResult.load(results / rel)
        assert back.engine == "labels-yolo" and back.source == str(
            tmp_path / "yolo/images" / f"{rel}.png"
        )
        for cls in orig.masks.classes:
            np.testing.assert_array_equal(back.masks[cls] > 0, orig.masks[cls] > 0)
        assert back.parts.classes == ("clothes_0", "tops_0", "tops_1")
    again = import_labels(tmp_path / "yolo", tmp_path / "back", fmt="yolo")
    assert again.done == 0 and again.skipped == 3
    with pytest.raises(ValueError, match="Unknown label format"):
        import_labels(tmp_path / "yolo", tmp_path / "back", fmt="voc")
    with pytest.raises(ValueError, match="leave the output"):
        save_labeled([LabeledItem("../x", MaskSet({}, shape=(2, 2)))], tmp_path / "o", fmt="coco")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize(
    ("fmt", "out", "check"),
    [
        ("coco", "c.json", "c.json"),
        ("yolo", "y", "y/data.yaml"),
        ("cvat", "c.zip", "c.zip"),
        ("labelstudio", "ls", "ls/tasks.json"),
        ("hf", "hf", "hf/README.md"),
    ],
)
def test_cli_export_each_format(tmp_path, fmt, out, check):
    if fmt == "hf":
        pytest.importorskip("pyarrow")
    results = make_results(tmp_path, n=2)
    result = run("export", results, "--format", fmt, "--out", tmp_path / out)
    assert result.exit_code == 0, result.output
    assert f"{fmt}: " in result.output and "2 images" in result.output
    assert (tmp_path / check).is_file()
    again = run("export", results, "--format", fmt, "--out", tmp_path / out)
    assert again.exit_code == 2 and "--overwrite" in again.output
    assert run("export", results, "-f", fmt, "-o", tmp_path / out, "--overwrite").exit_code == 0


def test_cli_export_errors(tmp_path):
    results = make_results(tmp_path, n=2)
    (tmp_path / "photos" / "p1.png").unlink()
    result = run("export", results, "--format", "yolo", "--out", tmp_path / "y")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "FileNotFoundError" in result.output and "p1" in result.output
    assert not (tmp_path / "y").exists()  # nothing half-written
    assert run("export", results, "-f", "yolo", "-o", tmp_path / "y", "--no-images").exit_code == 0
    bad = run("export", results, "-f", "hf", "-o", tmp_path / "h", "--masks", "scarf")
    assert bad.exit_code == 2 and "scarf" in bad.output
    assert run("export", results, "-f", "voc", "-o", tmp_path / "v").exit_code == 2
    assert run("coco", results).exit_code == 0  # the older command, as it was


def test_cli_import_labels_round_trip(tmp_path):
    results = make_results(tmp_path, n=2)
    assert run("export", results, "-f", "cvat", "-o", tmp_path / "c.zip").exit_code == 0
    result = run("import-labels", tmp_path / "c.zip", "-f", "cvat", "-o", tmp_path / "back")
    assert result.exit_code == 0, result.output
    assert "2 result folders written" in result.output
    stats = run("stats", tmp_path / "back", "-q")
    assert stats.exit_code == 0, stats.output
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "labels").mkdir()
    (tmp_path / "bad" / "images").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "bad" / "images" / "a.png")
    (tmp_path / "bad" / "labels" / "a.txt").write_text("4 0.1 0.1 0.5 0.5 zz 0.2\n")
    bad = run("import-labels", tmp_path / "bad", "-f", "yolo", "-o", tmp_path / "o")
    assert bad.exit_code == 1 and "LabelFormatError" in bad.output and "line 1" in bad.output
    assert "Traceback" not in bad.output
    usage = run(
        "import-labels", tmp_path / "bad", "-f", "yolo", "-o", tmp_path / "o", "--images", tmp_path
    )
    assert usage.exit_code == 2


def test_shapes_must_agree(tmp_path):
    results = make_results(tmp_path, n=1)
    Image.new("RGB", (10, 10)).save(tmp_path / "photos" / "p0.png")  # replaced photo
    with pytest.raises(ShapeMismatchError, match="replaced"):
        export_yolo(results, tmp_path / "y")
    assert cst.export_yolo is export_yolo and mask_to_polygons is cst.mask_to_polygons


def test_cli_interrupted_export_exits_130_and_writes_nothing(tmp_path, monkeypatch):
    results = make_results(tmp_path, n=1)
    from clothseg_tools import export

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "export_yolo", interrupted)
    result = run("export", results, "-f", "yolo", "-o", tmp_path / "y")
    assert result.exit_code == 130 and "nothing was written" in result.output
    assert not (tmp_path / "y").exists()


def test_interrupted_dataset_leaves_no_folder(tmp_path):
    results = make_results(tmp_path, n=2)

    def items():
        yield from cst.export._source.iter_items(results)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export_cvat(items(), tmp_path / "c")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos", "results"]


def test_labeled_items_unpack_as_name_masks_photo(tmp_path):
    results = make_results(tmp_path, n=1)
    export_yolo(results, tmp_path / "y")
    name, masks, photo, parts = next(read_yolo(tmp_path / "y", parts=False))
    assert name == "p0" and photo.name == "p0.png" and parts is None
    assert isinstance(masks, MaskSet) and masks.shape == (60, 48)


def test_cvat_more_regions_than_a_png_index_holds(tmp_path, caplog):
    dots = np.zeros((44, 44), bool)
    dots[::2, ::2] = True  # 484 separate specks
    big = np.zeros((44, 44), bool)
    big[1:43:2, 1:20] = True
    ms = MaskSet({"acc": dots & ~big, "tops": big})
    summary = export_cvat([("x.jpg", ms)], tmp_path / "c")
    assert summary.annotations == 255 and "smallest have no instance" in caplog.text
    objects = np.array(Image.open(tmp_path / "c" / "SegmentationObject" / "x.png"))
    sizes = np.bincount(objects.reshape(-1))
    assert int(objects.max()) == 255 and sizes[1:].max() == 19  # the tops rows kept theirs
    item = next(read_cvat(tmp_path / "c"))
    np.testing.assert_array_equal(
        label_map(item.masks, CLASSES, priority=LABEL_PRIORITY),
        label_map(ms, CLASSES, priority=LABEL_PRIORITY),
    )


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(st.tuples(st.integers(-3, 3), st.integers(-3, 3)), min_size=2, max_size=80),
    tolerance=st.sampled_from([0.1, 0.25, 0.5, 1.0, 3.0]),
    closed=st.booleans(),
)
def test_douglas_peucker_keeps_the_points_scikit_image_keeps(steps, tolerance, closed):
    from skimage.measure import approximate_polygon as reference

    from clothseg_tools.export.polygons import approximate_polygon

    coords = np.cumsum(np.array([(0, 0), *steps], float) / 2, axis=0)
    if closed:
        coords = np.concatenate([coords, coords[:1]])
    np.testing.assert_array_equal(
        approximate_polygon(coords, tolerance), reference(coords, tolerance)
    )
