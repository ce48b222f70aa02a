"""The batch library: input discovery, output keys, manifest, resume plan and runner."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clothseg_tools.batch import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    BatchItem,
    InputNotFoundError,
    ItemOutput,
    Job,
    Manifest,
    RateLimiter,
    assign_keys,
    discover_inputs,
    discover_results,
    file_checksums,
    read_manifest,
    run_job,
    scan_inputs,
)
from clothseg_tools.errors import ConfigurationError


def touch(root: Path, *names: str) -> None:
    for name in names:
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")


# -- discovery -------------------------------------------------------------------------


_PART = st.text(alphabet="abcXYZ019-_", min_size=1, max_size=5)
_EXT = st.sampled_from([".jpg", ".JPEG", ".png", ".webp", ".tif", ".gif", ".txt", ".json", ""])


@settings(max_examples=40, deadline=None)
@given(
    files=st.lists(
        st.tuples(
            st.lists(st.tuples(_PART, st.booleans()), max_size=2),  # folders (hidden?)
            _PART,
            _EXT,
            st.booleans(),  # a hidden file
        ),
        min_size=1,
        max_size=10,
    )
)
def test_every_file_of_a_folder_is_an_item_or_skipped_with_its_reason(tmp_path_factory, files):
    from clothseg_tools.limits import INPUT_EXTENSIONS

    root = tmp_path_factory.mktemp("tree")
    visible = set()
    for folders, stem, ext, hidden in files:
        parts = [("." if h else "") + name for name, h in folders]
        name = ("." if hidden else "") + stem + ext
        path = root.joinpath(*parts, name)
        if any(p.is_file() for p in [root.joinpath(*parts[: i + 1]) for i in range(len(parts))]):
            continue  # a file already took a folder's name
        if path.is_dir():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        if not hidden and not any(h for _, h in folders):
            visible.add(str(path.resolve()))
    found = scan_inputs([root])
    items = {i.source for i in found.items}
    skipped = {s.source: s.reason for s in found.skipped}
    # nothing visible is dropped silently, nothing is both, nothing hidden is either
    assert items | set(skipped) == visible
    assert not items & set(skipped)
    for source in items:
        assert os.path.splitext(source)[1].lower() in INPUT_EXTENSIONS
    for source, reason in skipped.items():
        ext = os.path.splitext(source)[1].lower()
        assert ext not in INPUT_EXTENSIONS
        assert reason == (f"unsupported file type {ext!r}" if ext else "no file extension")


def test_folder_is_searched_recursively_for_image_extensions(tmp_path):
    touch(
        tmp_path,
        "a.jpg",
        "sub/b.PNG",
        "sub/deep/c.webp",
        "notes.txt",
        "x.pdf",
        ".hidden.jpg",
        ".cache/d.jpg",
        "sub/e.tiff",
    )
    items = discover_inputs([tmp_path])
    assert [i.key for i in items] == ["a", "sub/b", "sub/deep/c", "sub/e"]
    assert all(Path(i.source).is_absolute() and Path(i.source).exists() for i in items)


def test_output_folder_inside_the_inputs_is_never_an_input(tmp_path):
    touch(tmp_path, "a.jpg", "out/a/tops.png")
    items = discover_inputs([tmp_path], exclude=[tmp_path / "out"])
    assert [i.key for i in items] == ["a"]


def test_same_named_files_in_different_folders_get_different_outputs(tmp_path):
    touch(tmp_path, "shop1/shirt.jpg", "shop2/shirt.jpg")
    items = discover_inputs([tmp_path])
    assert [i.key for i in items] == ["shop1/shirt", "shop2/shirt"]
    # named as two separate folders, both would be "shirt": they still must not collide
    items = discover_inputs([tmp_path / "shop1", tmp_path / "shop2"])
    keys = [i.key for i in items]
    assert len(set(keys)) == 2 and all(k.startswith("shirt") for k in keys)


@pytest.mark.parametrize(
    ("candidates", "expected"),
    [
        ({"/a/x.jpg": "x", "/a/x.png": "x"}, {"/a/x.jpg": "x_jpg", "/a/x.png": "x_png"}),
        ({"/a/X.jpg": "X", "/b/x.png": "x"}, {"/a/X.jpg": "X_jpg", "/b/x.png": "x_png"}),
        ({"/a/y.jpg": "y", "/b/z.jpg": "z"}, {"/a/y.jpg": "y", "/b/z.jpg": "z"}),
        (
            {"/a/m.jpg": "m", "/b/m.jpg": "m"},
            {
                "/a/m.jpg": "m_jpg",
                "/b/m.jpg": "m-" + __import__("hashlib").sha1(b"/b/m.jpg").hexdigest()[:8],
            },
        ),
    ],
)
def test_colliding_keys_are_made_unique(candidates, expected):
    assert {i.source: i.key for i in assign_keys(candidates)} == expected


def test_keys_from_an_earlier_run_are_kept(tmp_path):
    touch(tmp_path, "x.jpg")
    first = discover_inputs([tmp_path])
    # a new same-named file appears: the old one keeps its folder, the new one moves aside
    touch(tmp_path, "x.png")
    known = {i.source: i.key for i in first}
    second = {i.source: i.key for i in discover_inputs([tmp_path], known_keys=known)}
    assert second[first[0].source] == "x"
    assert second[str(tmp_path / "x.png")] != "x"


def test_a_folder_named_parts_inside_another_output_is_moved_aside():
    items = assign_keys({"/d/a.jpg": "a", "/d/a/parts.jpg": "a/parts"})
    assert {i.source: i.key for i in items}["/d/a/parts.jpg"].startswith("a/parts-")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["", "a/", "A/", "a/b/", "c/"]),
            st.sampled_from(["x", "X", "y", "parts", "z.1"]),
            st.sampled_from([".jpg", ".png", ".JPG", ".webp"]),
        ),
        min_size=1,
        max_size=12,
        unique=True,
    ),
    st.randoms(),
)
def test_keys_are_unique_and_independent_of_input_order(names, rnd):
    candidates = {f"/root/{d}{s}{e}": f"{d}{s}" for d, s, e in names}
    items = assign_keys(candidates)
    keys = [i.key.casefold() for i in items]
    assert len(keys) == len(set(keys)) == len(candidates)
    shuffled = list(candidates.items())
    rnd.shuffle(shuffled)
    assert assign_keys(dict(shuffled)) == items


def test_globs_and_recursive_globs(tmp_path, monkeypatch):
    touch(tmp_path, "p/a.jpg", "p/b.png", "p/q/c.jpg", "p/q/d.txt")
    monkeypatch.chdir(tmp_path)
    assert [i.key for i in discover_inputs(["p/*.jpg"])] == ["a"]
    assert [i.key for i in discover_inputs(["p/**/*"])] == ["a", "b", "q/c"]
    with pytest.raises(InputNotFoundError, match="matches no image"):
        discover_inputs(["p/*.gif"])


def test_text_list_of_paths_and_urls(tmp_path):
    touch(tmp_path, "imgs/a.jpg", "imgs/sub/b.jpg")
    listing = tmp_path / "list.txt"
    listing.write_text(
        "# photos to do\n"
        "imgs/a.jpg\n"
        f"{tmp_path / 'imgs' / 'sub' / 'b.jpg'}\n"
        "\n"
        "imgs/missing.jpg\n"
        "https://cdn.example.com/p/shirt.jpg?X-Signature=secret\n"
    )
    items = discover_inputs([listing])
    by_key = {i.key: i for i in items}
    assert set(by_key) == {"imgs/a", "imgs/sub/b", "imgs/missing", "shirt"}
    # a listed file that does not exist is kept: it fails with its reason, visibly
    assert by_key["imgs/missing"].source == str(tmp_path / "imgs" / "missing.jpg")
    url_item = by_key["shirt"]
    assert "secret" not in url_item.source and "secret" not in repr(url_item)
    assert url_item.location.endswith("X-Signature=secret") and url_item.is_url


def test_a_named_file_is_taken_whatever_its_extension(tmp_path):
    touch(tmp_path, "odd.gif")
    assert [i.key for i in discover_inputs([tmp_path / "odd.gif"])] == ["odd"]


def test_missing_input_is_a_configuration_error(tmp_path):
    with pytest.raises(InputNotFoundError, match="does not exist") as exc:
        discover_inputs([tmp_path / "nope"])
    assert isinstance(exc.value, ConfigurationError)


def test_same_file_named_twice_is_one_item(tmp_path):
    touch(tmp_path, "a.jpg")
    assert len(discover_inputs([tmp_path, tmp_path / "a.jpg", str(tmp_path / "*.jpg")])) == 1


def test_discover_results_finds_complete_folders_only(tmp_path):
    for key in ("a", "b/c"):
        (tmp_path / key).mkdir(parents=True)
        (tmp_path / key / "result.json").write_text("{}")
    (tmp_path / "incomplete").mkdir()
    (tmp_path / "incomplete" / "tops.png").write_bytes(b"")
    (tmp_path / "a" / "parts").mkdir()
    (tmp_path / "a" / "parts" / "result.json").write_text("{}")
    assert [i.key for i in discover_results(tmp_path)] == ["a", "b/c"]
    with pytest.raises(InputNotFoundError):
        discover_results(tmp_path / "nothing")


# -- manifest --------------------------------------------------------------------------


def test_manifest_survives_a_cut_off_last_line(tmp_path):
    path = tmp_path / "manifest.jsonl"
    with Manifest(path) as m:
        m.append({"source": "a", "status": "done"})
    with open(path, "ab") as fh:
        fh.write(b'{"source": "b", "sta')  # what kill -9 mid-write could leave
    assert list(read_manifest(path)) == ["a"]
    with Manifest(path) as m:
        m.append({"source": "b", "status": "failed"})
    records = read_manifest(path)
    assert records["b"]["status"] == "failed" and records["a"]["status"] == "done"


def test_manifest_lines_from_many_threads_stay_whole(tmp_path):
    path = tmp_path / "m.jsonl"
    manifest = Manifest(path)

    def write(n: int) -> None:
        for i in range(50):
            manifest.append({"source": f"{n}-{i}", "payload": "x" * 5000})

    threads = [threading.Thread(target=write, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    manifest.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 300
    assert all(json.loads(line)["payload"] == "x" * 5000 for line in lines)


# -- runner ----------------------------------------------------------------------------


class Recorder:
    """A per-item function that writes one file per item and counts its calls."""

    def __init__(self, out: Path, *, fail: frozenset[str] = frozenset(), delay: float = 0.0):
        self.out = out
        self.fail = set(fail)
        self.delay = delay
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, item: BatchItem) -> ItemOutput:
        with self._lock:
            self.calls.append(item.source)
        if self.delay:
            time.sleep(self.delay)
        if item.source in self.fail:
            raise ValueError(f"{item.source} is broken")
        rel = f"{item.key}/out.txt"
        (self.out / item.key).mkdir(parents=True, exist_ok=True)
        (self.out / rel).write_text(item.source.upper())
        return ItemOutput(checksums=file_checksums(self.out, [rel]), timings={"work": 0.1})


def make_items(n: int) -> list[BatchItem]:
    return [BatchItem(f"src{i:03d}", f"k{i:03d}") for i in range(n)]


def test_every_item_ends_in_the_manifest_done_or_failed(tmp_path):
    work = Recorder(tmp_path, fail=frozenset({"src001", "src003"}))
    summary = run_job(Job("t", work, tmp_path), make_items(5), workers=3)
    assert (summary.done, summary.failed, summary.exit_code) == (3, 2, EXIT_FAILED)
    assert dict(summary.errors) == {"ValueError": 2}
    records = read_manifest(tmp_path / "manifest-t.jsonl")
    assert set(records) == {f"src{i:03d}" for i in range(5)}
    bad = records["src001"]
    assert bad["status"] == "failed"
    assert bad["error"] == {"type": "ValueError", "message": "src001 is broken"}
    good = records["src000"]
    assert good["status"] == "done" and good["error"] is None
    assert set(good["checksums"]) == {"k000/out.txt"} and good["timings"] == {"work": 0.1}


def test_rerun_skips_verified_outputs_and_redoes_damaged_ones(tmp_path):
    items = make_items(4)
    run_job(Job("t", Recorder(tmp_path), tmp_path), items)
    (tmp_path / "k002" / "out.txt").write_text("changed by hand")
    (tmp_path / "k003" / "out.txt").unlink()
    work = Recorder(tmp_path)
    summary = run_job(Job("t", work, tmp_path), items)
    assert sorted(work.calls) == ["src002", "src003"]
    assert (summary.skipped, summary.done, summary.exit_code) == (2, 2, EXIT_OK)
    assert (tmp_path / "k002" / "out.txt").read_text() == "SRC002"


def test_retry_failed_touches_only_failures(tmp_path):
    items = make_items(6)
    run_job(Job("t", Recorder(tmp_path, fail=frozenset({"src002", "src004"})), tmp_path), items)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("out.txt")}

    plain = Recorder(tmp_path)
    summary = run_job(Job("t", plain, tmp_path), items)
    assert plain.calls == []  # failures stay failed until asked
    assert (summary.skipped, summary.failed_before, summary.exit_code) == (4, 2, EXIT_FAILED)

    retry = Recorder(tmp_path)
    summary = run_job(Job("t", retry, tmp_path), items, retry_failed=True)
    assert sorted(retry.calls) == ["src002", "src004"]
    assert (summary.done, summary.skipped, summary.exit_code) == (2, 4, EXIT_OK)
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_overwrite_redoes_everything(tmp_path):
    items = make_items(3)
    run_job(Job("t", Recorder(tmp_path), tmp_path), items)
    work = Recorder(tmp_path)
    assert run_job(Job("t", work, tmp_path), items, overwrite=True).done == 3
    assert sorted(work.calls) == ["src000", "src001", "src002"]


@pytest.mark.parametrize("change", ["options", "fingerprint"])
def test_changed_options_or_input_redo_the_item(tmp_path, change):
    items = make_items(2)
    run_job(
        Job("t", Recorder(tmp_path), tmp_path, options={"a": 1}, fingerprint=lambda i: "v1"), items
    )
    work = Recorder(tmp_path)
    job = Job(
        "t",
        work,
        tmp_path,
        options={"a": 2} if change == "options" else {"a": 1},
        fingerprint=(lambda i: "v2") if change == "fingerprint" else (lambda i: "v1"),
    )
    assert run_job(job, items).done == 2 and len(work.calls) == 2


def test_workers_run_items_concurrently(tmp_path):
    work = Recorder(tmp_path, delay=0.05)
    t0 = time.perf_counter()
    run_job(Job("t", work, tmp_path), make_items(16), workers=8)
    # 16 x 50 ms serially is 0.8 s; eight at a time is about 0.1 s
    assert time.perf_counter() - t0 < 0.6


def test_stop_event_lets_in_flight_items_finish(tmp_path):
    stop = threading.Event()

    class StopAfter(Recorder):
        def __call__(self, item):
            out = super().__call__(item)
            if len(self.calls) >= 3:
                stop.set()
            return out

    work = StopAfter(tmp_path, delay=0.02)
    items = make_items(40)
    summary = run_job(Job("t", work, tmp_path), items, workers=2, stop=stop)
    assert summary.interrupted and summary.not_started > 0
    assert summary.exit_code == EXIT_INTERRUPTED
    # everything that started was recorded, nothing else
    assert len(read_manifest(tmp_path / "manifest-t.jsonl")) == len(work.calls)
    assert summary.done + summary.not_started == 40
    rest = Recorder(tmp_path)
    assert run_job(Job("t", rest, tmp_path), items).done == summary.not_started


def test_ctrl_c_finishes_in_flight_items_and_records_them(tmp_path):
    started = threading.Event()

    class InterruptOnce(Recorder):
        def __call__(self, item):
            if item.source == "src004":
                started.set()
                # Ctrl-C arrives while this item is in flight
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.1)
            return super().__call__(item)

    work = InterruptOnce(tmp_path)
    summary = run_job(Job("t", work, tmp_path), make_items(50), workers=2)
    assert started.is_set() and summary.interrupted
    assert summary.exit_code == EXIT_INTERRUPTED
    records = read_manifest(tmp_path / "manifest-t.jsonl")
    assert records["src004"]["status"] == "done"  # the in-flight item finished
    assert len(records) == summary.done == len(work.calls) < 50


def test_rate_limiter_spaces_starts():
    limiter = RateLimiter(50.0)
    t0 = time.perf_counter()
    for _ in range(6):
        limiter.acquire()
    assert time.perf_counter() - t0 >= 5 / 50.0 - 0.005
    with pytest.raises(ValueError, match="above 0"):
        RateLimiter(0)


def test_summary_table_lists_failures_by_type(tmp_path):
    work = Recorder(tmp_path, fail=frozenset({"src000"}))
    summary = run_job(Job("t", work, tmp_path), make_items(3))
    table = summary.table()
    assert "done" in table and "failed" in table and "ValueError" in table
    summary = run_job(Job("t", Recorder(tmp_path), tmp_path), make_items(3))
    assert "skipped (complete)" in summary.table() and "failed before" in summary.table()
