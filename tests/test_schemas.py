"""The JSON Schemas in ``schemas/``: valid schemas, mirrored layout, and the fast dataset
validator never accepting what the schema (checked by the reference ``jsonschema``) rejects.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolkit import layout
from toolkit.dataset import Dataset
from toolkit.errors import InputError
from toolkit.schema import load_schema, validate, validate_dataset

jsonschema = pytest.importorskip("jsonschema")
SCHEMAS = sorted(
    p.name.removesuffix(".schema.json")
    for p in (Path(__file__).resolve().parents[1] / "schemas").glob("*.schema.json")
)


@pytest.mark.parametrize("name", SCHEMAS)
def test_schemas_are_valid_draft7(name):
    schema = load_schema(name)
    jsonschema.Draft7Validator.check_schema(schema)
    assert schema["$id"].endswith(f"/{name}.schema.json")


def test_dataset_schema_mirrors_layout():
    schema = load_schema("dataset")
    cat = schema["properties"]["categories"]["items"]["properties"]
    assert tuple(cat["keypoints"]["const"]) == layout.KEYPOINT_NAMES
    src = schema["properties"]["annotations"]["items"]["properties"]["keypoint_source"]
    letter_form = src["oneOf"][0]
    assert letter_form["pattern"] == f"^[{layout.SOURCE_LETTERS}]{{19}}$"
    assert src["oneOf"][1]["items"]["enum"] == list(layout.SOURCES)
    assert len(layout.SOURCE_LETTERS) == len(set(layout.SOURCE_LETTERS)) == len(layout.SOURCES)


def _reference(doc) -> list[str]:
    """Errors of the reference validator (with the taxonomy $ref resolved by hand)."""
    schema = copy.deepcopy(load_schema("dataset"))
    schema["properties"]["taxonomy"] = load_schema("taxonomy")
    v = jsonschema.Draft7Validator(schema)
    return [e.message for e in v.iter_errors(doc)]


def _doc(tmp_path_factory) -> dict:
    rng = np.random.default_rng(0)
    kp = rng.uniform(1, 300, (4, 19, 3)).round(1)
    kp[..., 2] = 2
    kp[0, 18] = np.nan
    images = [
        {
            "id": i,
            "file_name": f"a/{i}.jpg",
            "width": 320,
            "height": 240,
            "stance": "x",
            "subject": "s01",
        }
        for i in range(4)
    ]
    anns = [{"id": 10 + i, "image_id": i} for i in range(4)]
    scores = np.full((4, 19), np.nan)
    scores[1] = 0.5
    ds = Dataset.from_records(images, anns, kp, scores=scores)
    ds.source[2, 17:] = layout.CORRECTED
    ds.keypoints[2, 17, 0] += 1
    return ds.to_coco()


BASE: dict | None = None

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 400),
    st.floats(-1, 2),
    st.text(max_size=4),
    st.lists(st.integers(0, 3), max_size=3),
    st.just("../x.jpg"),
    st.just("i" * 19),
    st.just([1] * 57),
)
PATHS = st.sampled_from(
    [
        ("images", 0, "id"),
        ("images", 1, "file_name"),
        ("images", 2, "width"),
        ("images", 3, "stance"),
        ("images", 0, "frame_index"),
        ("annotations", 0, "id"),
        ("annotations", 1, "image_id"),
        ("annotations", 2, "keypoints"),
        ("annotations", 3, "keypoints", 7),
        ("annotations", 1, "keypoint_scores", 3),
        ("annotations", 2, "keypoint_source"),
        ("annotations", 0, "bbox"),
        ("annotations", 1, "area"),
        ("annotations", 3, "iscrowd"),
        ("annotations", 2, "score"),
        ("annotations", 0, "track_id"),
        ("annotations", 1, "category_id"),
        ("annotations", 3, "keypoints_raw"),
        ("annotations", 2, "keypoints_raw", 0),
        ("version",),
        ("media_root",),
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=PATHS, value=VALUES)
def test_fast_validator_never_accepts_what_the_schema_rejects(path, value):
    global BASE
    if BASE is None:
        BASE = _doc(None)
    doc = copy.deepcopy(BASE)
    target = doc
    for p in path[:-1]:
        target = target[p]
    last = path[-1]
    if isinstance(target, list) and last >= len(target):
        return
    target[last] = value
    reference = _reference(doc)
    try:
        validate_dataset(doc)
    except InputError as exc:
        if not reference:  # stricter than the schema only for what a schema cannot say
            assert any(
                w in str(exc) for w in ("unique", "name an image", "name a video", "finite")
            ), str(exc)
        return
    assert not reference, (path, value, reference)
    # And the compiled full-document validator agrees.
    validate(doc, "dataset")


def test_saved_dataset_passes_the_reference_validator(tmp_path):
    doc = _doc(None)
    assert _reference(doc) == []
    assert json.loads(json.dumps(doc)) == doc
