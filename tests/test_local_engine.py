"""The local engine: real photos (scikit-image's astronaut), synthetic figures whose truth
is known by construction, the guided filter, and the engine contract."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import skimage.data
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip(
    "mediapipe", reason="the local engine needs mediapipe, published for Python 3.9 to 3.12"
)
import cv2

from clothseg_tools import CLASS_TYPES, CLASSES, MaskSet
from clothseg_tools.engines import get_engine
from clothseg_tools.engines.local import CLASS_LEAVES, LocalEngine
from clothseg_tools.engines.local.engine import render
from clothseg_tools.engines.local.models import (
    FACE_OVAL,
    Observations,
    observe,
    thread_models,
)
from clothseg_tools.engines.local.parsing import LEAVES, parse
from clothseg_tools.engines.local.refine import (
    GuidedUpsampler,
    guided_filter,
    to_uint8,
)
from clothseg_tools.engines.local.scene import fill_polygon
from clothseg_tools.errors import ConfigurationError, ShapeMismatchError

# ---------------------------------------------------------------------------------------
# fixtures: one engine and one segmentation of each photo per module


@pytest.fixture(scope="module")
def engine() -> LocalEngine:
    return LocalEngine()


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skimage.data.astronaut()


@pytest.fixture(scope="module")
def astro_out(engine, astronaut):
    return engine.segment(astronaut, classes=CLASSES)


@pytest.fixture(scope="module")
def astro_obs(astronaut) -> Observations:
    return observe(astronaut, astronaut)


def _on(mask: np.ndarray) -> np.ndarray:
    return mask >= 128


def assert_consistent(masks: MaskSet) -> None:
    """Composite classes hold their members, pixel by pixel, at every soft level."""
    for parent, members in (("head", ("face", "hair")), ("clothes", ("tops", "bottoms", "dress"))):
        for child in members:
            if parent in masks and child in masks:
                assert (masks[child] <= masks[parent]).all(), f"{child} exceeds {parent}"


# ---------------------------------------------------------------------------------------
# the astronaut: what is plainly true of the photo


def test_astronaut_returns_every_class_at_source_size(astro_out, astronaut):
    masks = astro_out.masks
    assert masks.classes == CLASSES
    assert masks.shape == astronaut.shape[:2]
    assert masks.stack().dtype == np.uint8
    assert astro_out.notes == ()  # one person, face found, colour photo


def test_astronaut_face_is_the_face_mesh_oval(astro_out, astro_obs):
    oval = fill_polygon((512, 512), astro_obs.face[list(FACE_OVAL)])
    oval = oval > 0.5
    face = _on(astro_out.masks["face"])
    assert (face & oval).sum() / oval.sum() > 0.93  # covers the oval
    assert face.sum() < 1.25 * oval.sum()  # and little else


def test_astronaut_hair_lies_above_the_face(astro_out, astro_obs):
    hair = _on(astro_out.masks["hair"])
    face = _on(astro_out.masks["face"])
    hy, _ = np.nonzero(hair)
    fy, _ = np.nonzero(face)
    chin_y = astro_obs.face[152, 1]
    forehead_y = astro_obs.face[10, 1]
    assert hair.sum() > 3000
    assert hy.mean() < fy.mean()
    assert (hy < chin_y).mean() > 0.95
    assert (hy < forehead_y).sum() > 2000  # the crown, above the face oval


def test_astronaut_tops_cover_the_torso(astro_out, astro_obs):
    pose = astro_obs.pose
    x0, x1 = sorted((pose[12, 0], pose[11, 0]))
    width = x1 - x0
    top = int(max(pose[11, 1], pose[12, 1]) + 0.15 * width)
    torso = np.zeros((512, 512), bool)
    torso[top:, int(x0 + 0.1 * width) : int(x1 - 0.1 * width)] = True
    assert (_on(astro_out.masks["tops"])[torso]).mean() > 0.9
    assert _on(astro_out.masks["bottoms"]).sum() == 0  # hips are out of the picture
    assert _on(astro_out.masks["dress"]).sum() == 0


@pytest.mark.parametrize(
    ("what", "rows", "cols"),
    [("flag", slice(0, 230), slice(0, 85)), ("rocket", slice(0, 260), slice(360, 470))],
)
def test_astronaut_background_belongs_to_no_class(astro_out, what, rows, cols):
    claimed = astro_out.masks.stack()[:, rows, cols].max(axis=0)
    assert (claimed >= 128).mean() < 0.005, what
    assert (claimed >= 32).mean() < 0.02, what


def test_astronaut_every_class_lies_within_the_person(astro_out, astro_obs):
    person = cv2.dilate((astro_obs.person > 0.1).astype(np.uint8), np.ones((11, 11), np.uint8))
    outside = astro_out.masks.stack()[:, person == 0]
    assert int(outside.max(initial=0)) < 32


def test_astronaut_masks_are_consistent(astro_out):
    assert_consistent(astro_out.masks)


def test_astronaut_body_is_the_neck_below_the_face(astro_out, astro_obs):
    body = _on(astro_out.masks["body"])
    chin_y = astro_obs.face[152, 1]
    ys, xs = np.nonzero(body)
    neck = (ys > chin_y - 3) & (ys < chin_y + 25) & (np.abs(xs - astro_obs.face[152, 0]) < 40)
    assert neck.sum() > 200
    assert body.sum() < 3000  # the orange suit is not skin


def test_astronaut_parts_split_tops(astro_out):
    parts = astro_out.parts
    assert set(parts) == {"tops_0"}
    np.testing.assert_array_equal(parts["tops_0"], astro_out.masks["tops"])


# ---------------------------------------------------------------------------------------
# options, sizes and the engine contract


def test_class_subset_keeps_order_and_has_no_garment_parts(engine, astronaut, astro_out):
    out = engine.segment(astronaut, classes=CLASS_TYPES[3])
    assert out.masks.classes == CLASS_TYPES[3]
    assert out.parts == {}
    for name in CLASS_TYPES[3]:
        np.testing.assert_array_equal(out.masks[name], astro_out.masks[name])


@pytest.mark.parametrize(("detail_mode", "quality"), [(2, 1), (1, 2), (2, 2)])
def test_more_effort_agrees_with_the_default(engine, astronaut, astro_out, detail_mode, quality):
    out = engine.segment(astronaut, classes=CLASSES, detail_mode=detail_mode, quality=quality)
    assert_consistent(out.masks)
    for name in ("face", "hair", "tops"):
        a, b = _on(out.masks[name]), _on(astro_out.masks[name])
        assert (a & b).sum() / (a | b).sum() > 0.85, name
    assert not np.array_equal(out.masks.stack(), astro_out.masks.stack())


def test_large_image_matches_the_small_one(engine, astronaut, astro_out):
    big = cv2.resize(astronaut, (1536, 1536), interpolation=cv2.INTER_CUBIC)
    out = engine.segment(big, classes=("face", "hair", "tops"))
    assert out.masks.shape == (1536, 1536)
    for name in ("face", "hair", "tops"):
        small = cv2.resize(out.masks[name], (512, 512), interpolation=cv2.INTER_AREA)
        a, b = _on(small), _on(astro_out.masks[name])
        assert (a & b).sum() / (a | b).sum() > 0.85, name


def test_timings_split_model_and_post(engine, astronaut):
    engine.segment(astronaut, classes=("tops",))
    timings = engine.last_timings()
    assert set(timings) == {"model", "post"}
    assert all(v > 0 for v in timings.values())


@pytest.mark.parametrize(
    "image",
    [
        pytest.param(lambda: skimage.data.chelsea(), id="cat"),
        pytest.param(lambda: skimage.data.rocket(), id="rocket"),
        pytest.param(lambda: np.zeros((40, 30, 3), np.uint8), id="black"),
        pytest.param(lambda: np.full((3, 5, 3), 200, np.uint8), id="tiny"),
    ],
)
def test_no_person_gives_empty_masks_and_a_note(engine, image):
    img = image()
    out = engine.segment(img, classes=CLASSES)
    assert out.masks.shape == img.shape[:2]
    assert out.masks.classes == CLASSES
    assert not out.masks.stack().any()
    assert out.parts == {}
    assert out.notes == ("no person found; every mask is empty",)


def test_two_people_segments_the_most_prominent(engine, astronaut):
    canvas = np.full((512, 768, 3), 128, np.uint8)
    canvas[:, :512] = astronaut
    canvas[256:, 512:] = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    out = engine.segment(canvas, classes=("face", "tops"))
    assert any("2 people found" in note for note in out.notes)
    face_x = np.nonzero(_on(out.masks["face"]))[1]
    assert face_x.size and face_x.max() < 512  # the large astronaut's face only


def test_greyscale_photo_has_no_body_and_says_why(engine, astronaut):
    grey = np.repeat(cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)
    out = engine.segment(grey, classes=("face", "body", "tops"))
    assert not out.masks["body"].any()
    assert any("no colour" in note for note in out.notes)
    assert _on(out.masks["tops"]).sum() > 50_000


def test_unknown_class_is_refused(engine, astronaut):
    with pytest.raises(ValueError, match="no class"):
        engine.segment(astronaut, classes=("tops", "scarf"))


@pytest.mark.parametrize("size", [0, 64, 5000, 512.0, "512"])
def test_bad_working_size_is_refused(size):
    with pytest.raises(ConfigurationError, match="working_size"):
        LocalEngine(working_size=size)


def test_registered_as_local():
    engine = get_engine("local")
    assert isinstance(engine, LocalEngine)
    assert engine.name == "local"


def test_threads_give_the_same_masks(engine, astronaut, astro_out):
    flipped = np.ascontiguousarray(astronaut[:, ::-1])
    with ThreadPoolExecutor(max_workers=2) as pool:
        outs = list(
            pool.map(
                lambda im: engine.segment(im, classes=CLASSES),
                [astronaut, flipped, astronaut, flipped],
            )
        )
    for out in outs[0::2]:
        assert out.masks == astro_out.masks
    assert outs[1].masks == outs[3].masks


def test_model_start_up_writes_nothing_to_stderr(capfd):
    capfd.readouterr()
    thread = threading.Thread(target=thread_models)  # a new thread builds its own models
    thread.start()
    thread.join()
    assert capfd.readouterr().err == ""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")
def test_a_finished_thread_releases_its_models():
    thread_models()  # this thread's models are built before counting

    def os_threads() -> int:
        return len(os.listdir("/proc/self/task"))

    before = os_threads()
    for _ in range(3):
        thread = threading.Thread(target=thread_models)
        thread.start()
        thread.join()
    # Each thread's graphs run about eight worker threads of their own: were they
    # kept, three finished threads would leave some twenty behind. Allow one or two
    # that are still on their way out.
    deadline = time.monotonic() + 5
    while os_threads() > before + 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert os_threads() <= before + 2


def test_models_are_reused_within_a_thread():
    assert thread_models() is thread_models()


# ---------------------------------------------------------------------------------------
# synthetic figures: drawn people whose every pixel's class is known

# Pose landmarks of a standing figure facing the camera (the person's left is on the
# image's right), in a 512 x 256 picture.
POSE = np.array(
    [(128, 64), (132, 56), (135, 56), (138, 56), (124, 56), (121, 56), (118, 56),
     (144, 60), (112, 60), (133, 73), (123, 73),
     (156, 104), (100, 104), (168, 160), (88, 160), (172, 208), (84, 208),
     (174, 222), (82, 222), (172, 226), (84, 226), (168, 218), (88, 218),
     (142, 236), (114, 236), (141, 330), (115, 330), (141, 425), (115, 425),
     (139, 438), (117, 438), (150, 448), (106, 448)],
    np.float32,
)  # fmt: skip
SKIN, HAIR, RED = (222, 170, 140), (60, 40, 30), (200, 30, 30)
BLUE, BLACK, GREEN, BROWN = (30, 40, 150), (25, 25, 25), (30, 150, 60), (120, 70, 40)


def _pt(i: int) -> tuple[int, int]:
    return (int(POSE[i, 0]), int(POSE[i, 1]))


def _along(a: int, b: int, f: float) -> tuple[int, int]:
    p = POSE[a] + f * (POSE[b] - POSE[a])
    return (int(p[0]), int(p[1]))


def figure(kind: str = "outfit"):
    """A drawn person, its observations as the models would report them, and the truth."""
    h, w = 512, 256
    img = np.full((h, w, 3), 200, np.uint8)
    names = ("hair", "face", "body", "tops", "bottoms", "dress", "shoes", "acc", "bag")
    truth = {k: np.zeros((h, w), bool) for k in names}

    def draw(name, colour, paint):
        m = np.zeros((h, w), np.uint8)
        paint(m)
        for k in truth:
            truth[k][m > 0] = False
        truth[name][m > 0] = True
        img[m > 0] = colour

    def arms(m):
        for a, b, c in ((11, 13, 15), (12, 14, 16)):
            cv2.line(m, _pt(a), _pt(b), 1, 13)
            cv2.line(m, _pt(b), _pt(c), 1, 11)
            cv2.circle(m, (_pt(c)[0], _pt(c)[1] + 12), 8, 1, -1)

    def legs(m):
        for a, b, c in ((23, 25, 27), (24, 26, 28)):
            cv2.line(m, _pt(a), _pt(b), 1, 22)
            cv2.line(m, _pt(b), _pt(c), 1, 18)

    def sleeves(m):
        for a, b in ((11, 13), (12, 14)):
            cv2.line(m, _pt(a), _along(a, b, 0.5), 1, 17)

    def shoes(m):
        for heel, toe in ((29, 31), (30, 32)):
            cv2.ellipse(m, ((_pt(heel)[0] + _pt(toe)[0]) // 2, 442), (14, 9), 0, 0, 360, 1, -1)

    draw("hair", HAIR, lambda m: cv2.ellipse(m, (128, 52), (21, 23), 0, 0, 360, 1, -1))
    draw("face", SKIN, lambda m: cv2.ellipse(m, (128, 63), (16, 21), 0, 0, 360, 1, -1))
    draw("body", SKIN, lambda m: cv2.rectangle(m, (120, 80), (136, 100), 1, -1))
    draw("body", SKIN, arms)
    if kind == "dress":
        draw("body", SKIN, legs)
        dress = np.array([(98, 98), (158, 98), (172, 345), (84, 345)])
        draw("dress", GREEN, lambda m: cv2.fillPoly(m, [dress], 1))
        draw("dress", GREEN, sleeves)
    else:
        low = RED if kind == "suit" else BLUE
        draw("bottoms", low, legs)
        draw("bottoms", low, lambda m: cv2.rectangle(m, (103, 232), (153, 262), 1, -1))
        shirt = np.array([(98, 98), (158, 98), (152, 236), (104, 236)])
        draw("tops", RED, lambda m: cv2.fillPoly(m, [shirt], 1))
        draw("tops", RED, sleeves)
    draw("shoes", BLACK, shoes)
    if kind == "watch":
        draw("acc", (20, 20, 120), lambda m: cv2.line(m, (166, 196), (180, 199), 1, 6))
    person = np.logical_or.reduce(list(truth.values()))
    foreground = person.copy()
    if kind == "bag":
        bag = np.zeros((h, w), np.uint8)
        cv2.rectangle(bag, (60, 230), (98, 292), 1, -1)
        truth["bag"] = (bag > 0) & ~person
        img[truth["bag"]] = BROWN
        foreground |= truth["bag"]
    rng = np.random.default_rng(0)
    img = np.clip(img + rng.integers(-6, 7, img.shape), 0, 255).astype(np.uint8)
    # models report soft masks: blur the drawn ones a little
    soft = [cv2.GaussianBlur(m.astype(np.float32), (0, 0), 1.5) for m in (person, foreground)]
    pose = np.concatenate([POSE, np.full((33, 1), 0.99, np.float32)], axis=1)
    obs = Observations(soft[0], soft[1], pose, None, np.zeros((0, 4), np.float32))
    return img, obs, truth


def _segment_figure(kind: str):
    img, obs, truth = figure(kind)
    parsing = parse(img, obs)
    masks, parts = render(img, img, parsing, CLASSES)
    return parsing, masks, parts, truth


def _interior(mask: np.ndarray) -> np.ndarray:
    return cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0


# (figure, class drawn, class expected, least share of its interior found)
FIGURE_TABLE = [
    ("outfit", "face", "face", 0.95),
    ("outfit", "hair", "hair", 0.95),
    ("outfit", "body", "body", 0.9),
    ("outfit", "tops", "tops", 0.95),
    ("outfit", "bottoms", "bottoms", 0.95),
    ("outfit", "shoes", "shoes", 0.9),
    ("dress", "dress", "dress", 0.95),
    ("dress", "body", "body", 0.9),
    ("suit", "tops", "tops", 0.95),
    ("suit", "bottoms", "bottoms", 0.95),
    ("bag", "bag", "bag", 0.95),
    ("watch", "acc", "acc", 0.8),
]


@pytest.fixture(scope="module")
def figures():
    return {kind: _segment_figure(kind) for kind in ("outfit", "dress", "suit", "bag", "watch")}


@pytest.mark.parametrize(("kind", "drawn", "expected", "share"), FIGURE_TABLE)
def test_figure_classes_are_found(figures, kind, drawn, expected, share):
    _, masks, _, truth = figures[kind]
    inner = _interior(truth[drawn])
    assert inner.sum() > 20
    assert (_on(masks[expected])[inner]).mean() >= share


@pytest.mark.parametrize("kind", ["outfit", "dress", "suit", "bag", "watch"])
def test_figure_background_is_empty_and_masks_consistent(figures, kind):
    _, masks, _, truth = figures[kind]
    near = cv2.dilate(
        np.logical_or.reduce(list(truth.values())).astype(np.uint8), np.ones((9, 9), np.uint8)
    )
    assert not _on(masks.stack()[:, near == 0]).any()
    assert_consistent(masks)


@pytest.mark.parametrize(
    ("kind", "dress", "garments"),
    [
        ("outfit", False, {"tops_0", "bottoms_0"}),
        ("suit", False, {"tops_0", "bottoms_0"}),
        ("dress", True, {"dress_0"}),
    ],
)
def test_dress_only_when_one_garment_spans_the_thighs(figures, kind, dress, garments):
    parsing, masks, parts, _ = figures[kind]
    assert parsing.details["dress"] is dress
    assert set(parts) == garments
    # parts add up to their class
    for name in {p.rsplit("_", 1)[0] for p in parts}:
        total = np.zeros_like(masks[name])
        for part, m in parts.items():
            if part.startswith(name + "_"):
                assert (m <= masks[name]).all()
                total = np.maximum(total, m)
        np.testing.assert_array_equal(total, masks[name])


def test_leaves_partition_the_person(figures):
    parsing, *_ = figures["outfit"]
    total = parsing.leaves.sum(axis=0)
    assert total.max() <= 1.0 + 1e-5
    assert parsing.leaves.min() >= 0.0
    assert set(LEAVES) == {leaf for leaves in CLASS_LEAVES.values() for leaf in leaves}


def test_figure_without_face_mesh_says_so(figures):
    parsing, *_ = figures["outfit"]
    assert parsing.details["face"] == "pose"
    assert any("face mesh found no face" in n for n in parsing.notes)


def test_two_garments_in_one_class_become_two_parts():
    img, obs, _ = figure("outfit")
    # a bare midriff cuts the shirt in two
    cv2.rectangle(img, (96, 150), (160, 175), SKIN, -1)
    parsing = parse(img, obs)
    masks, parts = render(img, img, parsing, ("tops", "clothes"))
    assert set(parts) == {"tops_0", "tops_1"}
    assert int(parts["tops_0"].sum()) >= int(parts["tops_1"].sum())  # largest first
    assert not (_on(parts["tops_0"]) & _on(parts["tops_1"])).any()
    np.testing.assert_array_equal(np.maximum(parts["tops_0"], parts["tops_1"]), masks["tops"])


def _with_object(kind: str, box: tuple[int, int, int, int]):
    """The figure holding a brown object (outside the person mask, in the foreground)."""
    img, obs, _ = figure(kind)
    x0, y0, x1, y1 = box
    thing = np.zeros(img.shape[:2], bool)
    thing[y0:y1, x0:x1] = True
    thing &= obs.person < 0.5
    img[thing] = BROWN
    foreground = np.maximum(obs.foreground, thing.astype(np.float32))
    return img, Observations(obs.person, foreground, obs.pose, None, obs.face_boxes), thing


@pytest.mark.parametrize(
    ("box", "is_bag"),
    [((60, 224, 98, 292), True), ((54, 150, 84, 214), False)],
    ids=["hanging from the hand", "raised at the hand"],
)
def test_a_bag_hangs_from_the_hand(box, is_bag):
    img, obs, thing = _with_object("outfit", box)
    parsing = parse(img, obs)
    masks, _ = render(img, img, parsing, CLASSES)
    inner = _interior(thing)
    share = _on(masks["bag"])[inner].mean()
    assert share > 0.9 if is_bag else share == 0
    assert not _on(masks["tops"])[inner].any()


def test_an_object_held_off_the_body_is_no_garment():
    img, obs, _ = figure("outfit")
    # a camera held out at the right hand, inside the person mask (as the pose model
    # often draws it), off the arm and the torso
    person = obs.person.copy()
    cv2.rectangle(person, (44, 200), (80, 236), 1.0, -1)
    cv2.rectangle(img, (44, 200), (80, 236), (90, 90, 95), -1)
    obs = Observations(person, np.maximum(obs.foreground, person), obs.pose, None, obs.face_boxes)
    parsing = parse(img, obs)
    masks, _ = render(img, img, parsing, CLASSES)
    camera = np.zeros(img.shape[:2], bool)
    camera[204:232, 48:68] = True
    assert parsing.details["held"] > 0
    assert not _on(masks["clothes"])[camera].any()
    assert _on(masks["others"])[camera].mean() > 0.9  # still the person's: the selfie sees it


def test_no_bottoms_without_hips_and_knees_in_view():
    img, obs, _ = figure("outfit")
    pose = obs.pose.copy()
    pose[[25, 26], 2] = 0.1  # knees hidden
    parsing = parse(img, Observations(obs.person, obs.foreground, pose, None, obs.face_boxes))
    masks, _ = render(img, img, parsing, ("tops", "bottoms"))
    assert parsing.details["legs"] is False
    assert not _on(masks["bottoms"]).any()
    assert _on(masks["tops"])[240:330].any()  # what the torso wears below the hips is a top


# ---------------------------------------------------------------------------------------
# the guided filter


def test_guided_upsampling_puts_the_edge_where_the_photo_has_it():
    big = np.zeros((256, 256), np.float32)
    big[:, 137:] = 1.0  # the photo's edge, between two model pixels
    small = cv2.resize(big, (32, 32), interpolation=cv2.INTER_AREA)
    model = np.zeros((32, 32), np.float32)
    model[:, 16:] = 1.0  # the model puts it one of its pixels (8 photo pixels) off
    blurry = cv2.GaussianBlur(model, (0, 0), 1.0)
    (y0, y1, x0, x1), q = GuidedUpsampler(small, radius=2, eps=1e-3).upsample(blurry, big)
    guided = np.zeros((256, 256), np.float32)
    guided[y0:y1, x0:x1] = q
    plain = cv2.resize(blurry, (256, 256), interpolation=cv2.INTER_LINEAR)
    truth = big > 0.5
    assert not ((guided > 0.5) != truth).any()
    assert ((plain > 0.5) != truth)[0].sum() >= 8


@pytest.mark.parametrize("radius", [2, 3, 4])
def test_colour_guide_sees_an_edge_grey_cannot(radius):
    # red and green of the same grey level: only a colour guide sees the edge
    img = np.zeros((64, 64, 3), np.float32)
    img[:, :30] = (0.8, 0.2, 0.2)
    img[:, 30:] = (0.2, 0.52, 0.2)
    grey = img @ np.array([0.299, 0.587, 0.114], np.float32)
    assert np.ptp(grey) < 0.01
    model = np.zeros((64, 64), np.float32)
    model[:, 31:] = 1.0
    blurry = cv2.GaussianBlur(model, (0, 0), 1.0)
    sharp = guided_filter(img, blurry, radius=radius, eps=1e-4)[0]
    flat = guided_filter(grey, blurry, radius=radius, eps=1e-4)[0]
    assert int(np.argmax(np.diff(sharp))) == 29  # the step is at the colour edge
    assert float(np.diff(sharp).max()) > 0.5
    assert float(np.diff(flat).max()) < 0.25  # the grey guide only smooths


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(8, 40),
    w=st.integers(8, 40),
    zoom_y=st.sampled_from([1.0, 1.5, 2.0, 3.0, 4.0, 2.7]),
    zoom_x=st.sampled_from([1.0, 1.5, 2.0, 3.0, 4.0, 2.7]),
    colour=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_box_upsampling_equals_the_whole_map(h, w, zoom_y, zoom_x, colour, seed):
    rng = np.random.default_rng(seed)
    H, W = round(h * zoom_y), round(w * zoom_x)
    guide_big = rng.random((H, W, 3) if colour else (H, W), dtype=np.float32)
    guide = cv2.resize(guide_big, (w, h), interpolation=cv2.INTER_AREA)
    src = np.zeros((h, w), np.float32)
    y, x = rng.integers(0, h), rng.integers(0, w)
    src[y : y + 3, x : x + 4] = rng.random((min(3, h - y), min(4, w - x)), dtype=np.float32)
    up = GuidedUpsampler(guide, radius=1, eps=1e-3)
    (y0, y1, x0, x1), q = up.upsample(src, guide_big)
    # reference: the coefficients of the whole map, resized whole
    a, b = up.fit(src)
    ref = cv2.resize(b, (W, H), interpolation=cv2.INTER_LINEAR)
    a_big = cv2.resize(a, (W, H), interpolation=cv2.INTER_LINEAR).reshape(H, W, -1)
    ref += (a_big * guide_big.reshape(H, W, -1)).sum(axis=2)
    np.testing.assert_allclose(q, ref[y0:y1, x0:x1], atol=1e-5)
    outside = np.ones((H, W), bool)
    outside[y0:y1, x0:x1] = False
    assert np.abs(ref[outside]).max(initial=0.0) < 1e-4


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), k=st.integers(2, 5))
def test_guided_filter_keeps_a_partition(seed, k):
    rng = np.random.default_rng(seed)
    guide = rng.random((24, 24), dtype=np.float32)
    parts = rng.random((k, 24, 24), dtype=np.float32)
    parts /= parts.sum(axis=0)
    out = sum(guided_filter(guide, p, radius=2, eps=1e-3) for p in parts)
    np.testing.assert_allclose(out, 1.0, atol=1e-4)


def test_guided_filter_refuses_mismatched_shapes():
    with pytest.raises(ShapeMismatchError, match=r"\(4, 4\).*\(5, 5\)"):
        guided_filter(
            np.zeros((5, 5), np.float32), np.zeros((4, 4), np.float32), radius=1, eps=1e-3
        )


def test_to_uint8_rounds_and_clips():
    q = np.array([[-1.0, 0.0, 0.2, 0.5, 1.0, 7.0]], np.float32)
    np.testing.assert_array_equal(to_uint8(q), [[0, 0, 51, 128, 255, 255]])


def test_a_batch_resumed_after_an_engine_upgrade_redoes_its_items(astronaut, tmp_path):
    from PIL import Image

    from clothseg_tools.batch import discover_inputs, read_manifests
    from clothseg_tools.batch.segment import segment_batch

    photo = tmp_path / "photos" / "astronaut.jpg"
    photo.parent.mkdir()
    Image.fromarray(astronaut[::2, ::2]).save(photo, quality=90)
    items = discover_inputs([photo.parent])
    out = tmp_path / "out"
    first = segment_batch(items, out, engine="local", workers=1)
    assert first.done == 1
    (record,) = read_manifests(out).values()
    assert record["options"]["engine"] == LocalEngine().identity()
    # the same engine resumes
    assert segment_batch(items, out, engine="local", workers=1).skipped == 1
    # a folder made by another release of the engine is made again
    manifest = out / "manifest.jsonl"
    text = manifest.read_text(encoding="utf-8")
    version = record["options"]["engine"]["version"]
    manifest.write_text(text.replace(f'"version": "{version}"', '"version": "0.0.0"'))
    assert read_manifests(out)[record["source"]]["options"]["engine"]["version"] == "0.0.0"
    assert segment_batch(items, out, engine="local", workers=1).done == 1
