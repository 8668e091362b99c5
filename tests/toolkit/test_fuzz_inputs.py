"""Hostile inputs through the public CLI: COCO JSON, label CSVs, hand-edited dataset.json, YOLO.

Every input is imported (and the dataset written then loads, saves and loads again) or refused
with exit code 2 and a message, never a traceback, and a refused import leaves nothing behind.
The same :class:`Fuzzer` runs 10,000 inputs in ``make stress``.
"""

from __future__ import annotations

import copy
import importlib.util
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("arnis_stress", ROOT / "benchmarks/stress.py")
stress = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stress)

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(["../x.jpg", "/etc/passwd", "a" * 300, "é" * 130, "clip/000002.jpg"])
)
VALUES = st.one_of(
    st.recursive(
        SCALARS,
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
        max_leaves=8,
    ),
    st.integers(60, 300).map(stress._deep),
)


@pytest.fixture(scope="module")
def fuzzer(tmp_path_factory):
    return stress.Fuzzer(tmp_path_factory.mktemp("fuzz"))


def _edit(doc: object, pick: int, how: str, value: object) -> object:
    doc = copy.deepcopy(doc)
    paths = stress._paths(doc)
    path = paths[pick % len(paths)]
    parent = doc
    for p in path[:-1]:
        parent = parent[p]
    last = path[-1]
    if how == "delete" and isinstance(parent, dict):
        del parent[last]
    elif how == "add" and isinstance(parent[last], dict):
        parent[last]["extra_field"] = value
    else:
        parent[last] = value
    return doc


def _check(fuzzer, family: str, verdict: str) -> None:
    counts = fuzzer.counts[family]
    assert verdict in ("imported", "refused"), fuzzer.examples[-1:]
    assert counts["tracebacks"] == counts["unloadable"] == counts["partial"] == 0, fuzzer.examples


@SETTINGS
@given(pick=st.integers(0, 10**6), how=st.sampled_from(["replace", "delete", "add"]), value=VALUES)
def test_coco_json_imports_or_is_refused_cleanly(fuzzer, pick, how, value):
    doc = _edit(fuzzer.coco_doc, pick, how, value)
    _check(fuzzer, "coco", fuzzer.coco(doc=doc))


@SETTINGS
@given(pick=st.integers(0, 10**6), how=st.sampled_from(["replace", "delete", "add"]), value=VALUES)
def test_hand_edited_dataset_json_loads_or_is_refused_cleanly(fuzzer, pick, how, value):
    doc = _edit(fuzzer.ds_doc, pick, how, value)
    _check(fuzzer, "dataset_json", fuzzer.dataset_json(doc=doc))


CELLS = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["s01_000.jpg", "s02_001.jpg", "clip/000002.jpg", "../x.jpg", "/etc/passwd"]),
    st.sampled_from(["forward_high", "", "a" * 300, '"', "\x00"]),
)


@SETTINGS
@given(
    header=st.sampled_from(["file,stance,subject", "file,stance", "stance,file", "file", ""]),
    rows=st.lists(st.lists(CELLS, max_size=4), max_size=5),
)
def test_labels_csv_imports_or_is_refused_cleanly(fuzzer, header, rows):
    text = header + "\n" + "\n".join(",".join(r) for r in rows)
    _check(fuzzer, "labels_csv", fuzzer.labels_csv(text=text))


def test_random_mutations_of_every_family(fuzzer):
    """A few seeded byte- and token-level mutations per family (YOLO included)."""
    fuzzer.rng = random.Random(7)
    counts = fuzzer.run(24)
    for family, c in counts.items():
        assert c["tracebacks"] == c["unloadable"] == c["partial"] == 0, (family, fuzzer.examples)
    assert sum(c["refused"] for c in counts.values()) > 0


def test_the_measured_hostile_coco_inputs_are_refused_with_exit_2(fuzzer):
    """The cases the issue measured: each refused by import exactly as load refuses it."""
    base = fuzzer.coco_doc
    cases = {
        "deep": lambda d: d["images"][0].__setitem__("x", stress._deep(300)),
        "fractional frame_index": lambda d: d["images"][3].__setitem__("frame_index", 1.5),
        "negative frame_index": lambda d: d["images"][3].__setitem__("frame_index", -1),
        "long file_name": lambda d: d["images"][0].__setitem__("file_name", "a" * 300 + ".jpg"),
        "escaping video": lambda d: d["videos"][0].__setitem__("file_name", "../../clip.mp4"),
        "absolute video": lambda d: d["videos"][0].__setitem__("file_name", "/etc/passwd"),
        "junk skeleton": lambda d: d["categories"][0].__setitem__("skeleton", [[1, "x"], [0]]),
        "visibility 0.5": lambda d: d["annotations"][0]["keypoints"].__setitem__(2, 0.5),
        "visibility 2.5": lambda d: d["annotations"][0]["keypoints"].__setitem__(5, 2.5),
        "1e300": lambda d: d["annotations"][1]["keypoints"].__setitem__(0, 1e300),
        "box 1e300": lambda d: d["annotations"][1].__setitem__("bbox", [0, 0, 1e300, 1e300]),
    }
    for what, mutate in cases.items():
        doc = copy.deepcopy(base)
        mutate(doc)
        assert fuzzer.coco(doc=doc) == "refused", what
    assert fuzzer.counts["coco"]["tracebacks"] == 0, fuzzer.examples
