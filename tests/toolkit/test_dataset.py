"""The dataset model: round trip, compact encoding, journal, schema errors, speed."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import orjson
import pytest

from toolkit import layout
from toolkit.dataset import DATASET_FILE, JOURNAL_FILE, Dataset, read_journal
from toolkit.errors import InputError
from toolkit.schema import validate, validate_dataset

ROOT = Path(__file__).resolve().parents[2]


def make_ds(n: int = 6, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    kp = rng.uniform(5, 300, (n, 19, 3)).round(2)
    kp[..., 2] = 2
    kp[0, layout.TIP] = [np.nan, np.nan, 0]  # missing tip
    kp[1, 3:5, 2] = 0  # missing ears via v = 0
    kp[2, 7, 2] = 1
    images = [
        {
            "id": 10 + i,
            "file_name": f"forward_high/s0{i % 3 + 1}_{i:03d}.jpg",
            "width": 320,
            "height": 240,
            "stance": "forward_high" if i % 2 else None,
            "subject": f"s0{i % 3 + 1}",
            "license": 3,
            "coco_url": f"http://x/{i}.jpg",
        }
        for i in range(n - 1)
    ]
    images.append(
        {
            "id": 99,
            "file_name": "clip/000004.jpg",
            "width": 320,
            "height": 240,
            "video_id": 1,
            "frame_index": 4,
            "stance": "back_low",
            "subject": "s02",
        }
    )
    anns = [
        {
            "id": 100 + i,
            "image_id": images[i]["id"],
            "category_id": 1,
            "segmentation": [[1, 2, 3, 4, 5, 6]],
            "custom": {"a": i},
        }
        for i in range(n)
    ]
    anns[3]["score"] = 0.75
    anns[3]["track_id"] = 7
    scores = np.full((n, 19), np.nan, np.float32)
    scores[4] = rng.uniform(0, 1, 19).round(4)
    scores[4, 5] = np.nan
    ds = Dataset.from_records(
        images,
        anns,
        kp,
        scores=scores,
        videos=[
            {
                "id": 1,
                "file_name": "clip.mp4",
                "fps": 15.0,
                "frame_count": 30,
                "width": 320,
                "height": 240,
            }
        ],
        media_root="../media",
        taxonomy={
            "stances": [
                {"name": "forward_high", "family": "forward", "chamber": "high"},
                {"name": "back_low", "family": "back", "chamber": "low"},
            ]
        },
        meta={"info": {"description": "test"}, "licenses": [{"id": 3, "name": "x"}]},
    )
    ds.source[1, [layout.GRIP, layout.TIP]] = layout.CORRECTED
    ds.source[2, layout.GRIP] = layout.HUMAN
    ds.source[5] = layout.PREDICTED
    ds.keypoints[1, layout.GRIP, :2] += [3.14159, -2.5]
    ds.annotations.at[2, "predictions"] = {"stance": "forward_high", "p": 0.9}
    return ds


def assert_same(a: Dataset, b: Dataset, atol: float = 0.0) -> None:
    np.testing.assert_allclose(a.keypoints, b.keypoints, atol=atol, equal_nan=True)
    np.testing.assert_array_equal(a.keypoints_raw, b.keypoints_raw)
    np.testing.assert_array_equal(a.source, b.source)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-4, equal_nan=True)
    np.testing.assert_allclose(a.bboxes, b.bboxes, equal_nan=True)
    assert a.images.drop(columns="extra").equals(b.images.drop(columns="extra"))
    assert a.images["extra"].tolist() == b.images["extra"].tolist()
    cols = ["id", "image_id", "category_id", "score", "track_id"]
    assert a.annotations[cols].equals(b.annotations[cols])
    assert a.annotations["extra"].tolist() == b.annotations["extra"].tolist()
    assert a.annotations["predictions"].tolist() == b.annotations["predictions"].tolist()
    assert a.videos == b.videos and a.taxonomy == b.taxonomy and a.media_root == b.media_root


def test_round_trip_keeps_everything(tmp_path):
    ds = make_ds()
    ds.save(tmp_path / "ds")
    back = Dataset.load(tmp_path / "ds")
    assert_same(ds, back, atol=1e-3)
    assert (
        np.isnan(back.keypoints[0, layout.TIP, :2]).all() and back.keypoints[0, layout.TIP, 2] == 0
    )
    assert np.isnan(back.keypoints[1, 3:5, :2]).all()
    assert back.meta["info"] == {"description": "test"}
    # Saving what was loaded gives the same bytes (stable encoding).
    assert back.to_bytes() == (tmp_path / "ds" / DATASET_FILE).read_bytes()


def test_on_disk_encoding(tmp_path):
    ds = make_ds()
    ds.save(tmp_path / "ds")
    doc = orjson.loads((tmp_path / "ds" / DATASET_FILE).read_bytes())
    anns = doc["annotations"]
    assert anns[0]["keypoint_source"] == "i" * 19
    assert anns[1]["keypoint_source"] == "i" * 17 + "cc"
    assert anns[5]["keypoint_source"] == "p" * 19
    # Missing points are 0, 0, 0; whole numbers are ints; only changed rows carry keypoints_raw.
    assert anns[0]["keypoints"][54:57] == [0, 0, 0]
    assert all(type(v) is int for v in anns[0]["keypoints"][2::3])
    assert "keypoints_raw" in anns[1] and "keypoints_raw" not in anns[0]
    assert anns[1]["keypoints"][51] == round(ds.keypoints[1, layout.GRIP, 0], 3)
    assert anns[4]["keypoint_scores"][5] is None and "keypoint_scores" not in anns[0]
    assert anns[0]["segmentation"] == [[1, 2, 3, 4, 5, 6]] and anns[0]["custom"] == {"a": 0}
    assert doc["images"][0]["coco_url"] == "http://x/0.jpg"
    assert doc["images"][0]["stance"] is None
    assert anns[1]["num_keypoints"] == 17
    validate(doc, "dataset")  # the full (slow) validator agrees with the file


def test_list_form_of_sources_is_read(tmp_path):
    ds = make_ds()
    ds.save(tmp_path / "ds")
    path = tmp_path / "ds" / DATASET_FILE
    doc = orjson.loads(path.read_bytes())
    doc["annotations"][1]["keypoint_source"] = ["imported"] * 17 + ["corrected"] * 2
    path.write_bytes(orjson.dumps(doc))
    back = Dataset.load(tmp_path / "ds")
    np.testing.assert_array_equal(back.source, ds.source)


def test_pycocotools_loads_a_saved_dataset(tmp_path):
    from pycocotools.coco import COCO

    ds = make_ds()
    ds.save(tmp_path / "ds")
    coco = COCO(str(tmp_path / "ds" / DATASET_FILE))
    assert len(coco.getAnnIds()) == len(ds)
    assert coco.loadCats(1)[0]["keypoints"] == list(layout.KEYPOINT_NAMES)
    ann = coco.loadAnns(coco.getAnnIds(imgIds=[10]))[0]
    assert len(ann["keypoints"]) == 57


def test_empty_dataset_round_trips(tmp_path):
    ds = Dataset.from_records([], [], np.zeros((0, 19, 3)))
    ds.save(tmp_path / "e")
    back = Dataset.load(tmp_path / "e")
    assert len(back) == 0 and len(back.images) == 0


# ---------------------------------------------------------------------- journal
def test_set_points_is_journalled_and_replayed(tmp_path):
    ds = make_ds()
    ds.save(tmp_path / "ds")
    ds.set_points(101, [17, 18], [[10, 20, 2], [np.nan, np.nan, 0]], source="human")
    ds.set_image_field(10, "stance", "back_low")
    assert Dataset.load(tmp_path / "ds").pending_edits() == 2
    back = Dataset.load(tmp_path / "ds")
    assert back.keypoints[1, 17].tolist() == [10, 20, 2]
    assert np.isnan(back.keypoints[1, 18, :2]).all()
    assert back.source[1, 17] == layout.HUMAN
    assert back.images.loc[0, "stance"] == "back_low"
    back.save()
    assert read_journal(tmp_path / "ds" / JOURNAL_FILE).entries == []
    again = Dataset.load(tmp_path / "ds")
    assert again.keypoints[1, 17].tolist() == [10, 20, 2] and again.pending_edits() == 0


@pytest.mark.parametrize("how", ["os_exit", "sigkill"])
def test_acknowledged_edit_survives_a_crash(tmp_path, how):
    make_ds().save(tmp_path / "ds")
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from toolkit.dataset import Dataset
        ds = Dataset.load({str(tmp_path / "ds")!r})
        ds.set_points(100, [18], [[123.5, 45.25, 2]], source="human")
        print("ack", flush=True)
        if {how!r} == "os_exit":
            os._exit(0)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert "ack" in proc.stdout
    assert proc.returncode == (0 if how == "os_exit" else -signal.SIGKILL)
    back = Dataset.load(tmp_path / "ds")
    assert back.keypoints[0, 18].tolist() == [123.5, 45.25, 2]
    assert back.source[0, 18] == layout.HUMAN


def test_torn_last_journal_line_is_ignored(tmp_path):
    ds = make_ds()
    ds.save(tmp_path / "ds")
    ds.set_points(100, [17], [[50, 60, 2]])
    with open(tmp_path / "ds" / JOURNAL_FILE, "ab") as fh:
        fh.write(b'{"op": "set_points", "ann": 100, "idx": [18], "xy')  # crash mid-append
    back = Dataset.load(tmp_path / "ds")
    assert back.keypoints[0, 17].tolist() == [50, 60, 2]
    assert back.source[0, 18] == layout.IMPORTED


def test_corrupt_middle_journal_line_is_an_error(tmp_path):
    ds = make_ds()
    ds.save(tmp_path / "ds")
    (tmp_path / "ds" / JOURNAL_FILE).write_bytes(
        b"garbage\n"
        + orjson.dumps({"op": "set_image", "image": 10, "field": "stance", "value": "x"})
        + b"\n"
    )
    with pytest.raises(InputError, match=r"journal.jsonl:1"):
        Dataset.load(tmp_path / "ds")


def test_save_merges_what_another_program_saved(tmp_path):
    make_ds().save(tmp_path / "ds")
    a = Dataset.load(tmp_path / "ds")
    b = Dataset.load(tmp_path / "ds")
    b.set_image_field(10, "stance", "back_low", journal=False)  # a bulk (unjournalled) change
    b.save()
    a.keypoints[2, layout.GRIP, :2] = [7.5, 8.5]  # a's own bulk change, elsewhere
    a.save()  # compare-and-swap fails: merge instead of overwriting b's save
    back = Dataset.load(tmp_path / "ds")
    assert back.images.loc[0, "stance"] == "back_low"
    assert back.keypoints[2, layout.GRIP, :2].tolist() == [7.5, 8.5]
    assert back.revision == 3  # first save, b's, a's
    # force overwrites b's unjournalled change with a's state
    b.set_image_field(11, "subject", "zz", journal=False)
    b.save()
    a.images.loc[1, "subject"] = "s09"
    a.save(force=True)
    assert Dataset.load(tmp_path / "ds").images.loc[1, "subject"] == "s09"


# ---------------------------------------------------------------------- schema errors
def _saved_doc(tmp_path) -> tuple[Path, dict]:
    make_ds().save(tmp_path / "ds")
    path = tmp_path / "ds" / DATASET_FILE
    return path, orjson.loads(path.read_bytes())


MUTATIONS = {
    "annotations[3].keypoints": lambda d: d["annotations"][3].__setitem__(
        "keypoints", d["annotations"][3]["keypoints"][:-3]
    ),
    "annotations[2].keypoints[4]": lambda d: d["annotations"][2]["keypoints"].__setitem__(4, "12"),
    "annotations[1].keypoints[0]": lambda d: d["annotations"][1]["keypoints"].__setitem__(0, True),
    "annotations[4].keypoint_scores[0]": lambda d: d["annotations"][4][
        "keypoint_scores"
    ].__setitem__(0, 1.5),
    "annotations[0].keypoint_source": lambda d: d["annotations"][0].__setitem__(
        "keypoint_source", "x" * 19
    ),
    "annotations[5].image_id": lambda d: d["annotations"][5].__setitem__("image_id", "10"),
    "annotations[2].id": lambda d: d["annotations"][2].pop("id"),
    "annotations[1].bbox": lambda d: d["annotations"][1].__setitem__("bbox", [1, 2, 3]),
    "images[2].file_name": lambda d: d["images"][2].__setitem__("file_name", "../x.jpg"),
    "images[1].width": lambda d: d["images"][1].__setitem__("width", 0),
    "images[0].stance": lambda d: d["images"][0].__setitem__("stance", 3),
    "categories[0].keypoints": lambda d: d["categories"][0]["keypoints"].pop(),
    "version": lambda d: d.__setitem__("version", 2),
    "videos[0].fps": lambda d: d["videos"][0].__setitem__("fps", 0),
}


@pytest.mark.parametrize("where", list(MUTATIONS))
def test_schema_errors_name_the_field_and_line(tmp_path, where):
    path, doc = _saved_doc(tmp_path)
    MUTATIONS[where](doc)
    raw = orjson.dumps(doc, option=orjson.OPT_INDENT_2)
    path.write_bytes(raw)
    with pytest.raises(InputError) as exc:
        Dataset.load(tmp_path / "ds")
    msg = str(exc.value)
    assert where.split("[")[0] in msg and str(path) in msg
    field = where.rsplit("[", 1)[0] if where.endswith("]") and "keypoint" in where else where
    if where == "annotations[2].id":  # a missing required field: the object is named
        field = "annotations[2]' to satisfy the dataset schema, but data must contain ['id']"
    assert field in msg, msg
    assert exc.value.line is not None and exc.value.line > 1
    # The full compiled validator agrees that the document is invalid.
    with pytest.raises(InputError):
        validate(doc, "dataset")


def test_cross_reference_errors(tmp_path):
    path, doc = _saved_doc(tmp_path)
    bad = copy.deepcopy(doc)
    bad["annotations"][2]["image_id"] = 12345
    with pytest.raises(InputError, match=r"annotations\[2\]\.image_id.*name an image"):
        validate_dataset(bad, path)
    bad = copy.deepcopy(doc)
    bad["annotations"][3]["id"] = bad["annotations"][1]["id"]
    with pytest.raises(InputError, match=r"annotations\[3\]\.id.*unique"):
        validate_dataset(bad, path)
    bad = copy.deepcopy(doc)
    bad["images"][2]["file_name"] = bad["images"][0]["file_name"]
    with pytest.raises(InputError, match=r"images\[2\]\.file_name.*unique"):
        validate_dataset(bad, path)


def test_not_json_and_nan_are_errors(tmp_path):
    path, _ = _saved_doc(tmp_path)
    path.write_bytes(b'{"version": 1, "images": [NaN]}')
    with pytest.raises(InputError, match="valid JSON"):
        Dataset.load(tmp_path / "ds")
    path.write_bytes(b"")
    with pytest.raises(InputError, match="valid JSON"):
        Dataset.load(tmp_path / "ds")


def test_fast_validation_accepts_what_the_schema_accepts(tmp_path):
    _, doc = _saved_doc(tmp_path)
    validate(doc, "dataset")
    arrays = validate_dataset(doc)
    assert arrays["keypoints"].shape == (6, 57) and arrays["keypoint_source"].shape == (6, 19)
    doc["annotations"][0]["category_id"] = 1.0  # a JSON-Schema integer; the screen defers
    validate(doc, "dataset")
    validate_dataset(doc)


def test_load_and_save_of_50k_annotations_round_trip(tmp_path):
    # Speed is measured in benchmarks/bench_io.py; this checks correctness at scale.
    n = 50_000
    rng = np.random.default_rng(0)
    kp = rng.uniform(0, 640, (n, 19, 3)).round(2)
    kp[..., 2] = rng.integers(0, 3, (n, 19))
    images = [
        {
            "id": i,
            "file_name": f"a/{i}.jpg",
            "width": 640,
            "height": 480,
            "stance": "forward_high",
            "subject": "s01",
        }
        for i in range(n)
    ]
    anns = [{"id": i, "image_id": i} for i in range(n)]
    ds = Dataset.from_records(images, anns, kp)
    ds.save(tmp_path / "big")
    back = Dataset.load(tmp_path / "big")
    np.testing.assert_array_equal(back.keypoints, ds.keypoints)
    assert back.images["file_name"].tolist()[-1] == f"a/{n - 1}.jpg"


def test_dataset_file_is_written_atomically(tmp_path, monkeypatch):
    ds = make_ds()
    ds.save(tmp_path / "ds")
    before = (tmp_path / "ds" / DATASET_FILE).read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    ds.set_image_field(10, "stance", "back_low", journal=False)
    with pytest.raises(OSError):
        ds.save()
    assert (tmp_path / "ds" / DATASET_FILE).read_bytes() == before
    leftovers = [p.name for p in (tmp_path / "ds").iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def _two_handles(tmp_path):
    """Two Dataset objects on one directory, as two programs (viewer + CLI) would hold them."""
    kp = np.full((1, 19, 3), 2.0)
    kp[..., :2] = np.arange(38, dtype=float).reshape(1, 19, 2)
    images = [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 64}]
    Dataset.from_records(images, [{"id": 7, "image_id": 1}], kp).save(tmp_path / "ds")
    return Dataset.load(tmp_path / "ds"), Dataset.load(tmp_path / "ds")


def test_edit_after_another_save_lands_in_the_live_journal(tmp_path):
    a, b = _two_handles(tmp_path)
    a.set_points(7, [17], [[1.0, 2.0, 2]])
    b.save(force=True)  # replaces journal.jsonl by rename (and folds a's edit)
    a.set_points(7, [18], [[3.0, 4.0, 2]])  # must not go to the unlinked old journal
    again = Dataset.load(tmp_path / "ds")
    np.testing.assert_allclose(again.keypoints[0, 17:, :2], [[1.0, 2.0], [3.0, 4.0]])
    assert again.source[0, 17] == again.source[0, 18] == layout.HUMAN


def test_save_folds_edits_another_process_journalled(tmp_path):
    a, b = _two_handles(tmp_path)
    b.set_points(7, [18], [[5.0, 6.0, 2]])  # acknowledged by b, not yet saved
    a.set_points(7, [17], [[1.0, 2.0, 2]])
    a.save()  # must fold b's edit, not truncate it away
    assert a.pending_edits() == 0
    again = Dataset.load(tmp_path / "ds")
    np.testing.assert_allclose(again.keypoints[0, 17:, :2], [[1.0, 2.0], [5.0, 6.0]])


# ---------------------------------------------------------------------- batched edits
def test_set_image_fields_is_one_fsync_and_replays_like_single_edits(tmp_path, monkeypatch):
    from toolkit import dataset as D

    monkeypatch.setattr(D, "BATCH_EDITS", 2)
    ds = make_ds()
    ds.save(tmp_path / "ds")
    fsyncs = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: fsyncs.append(fd) or real(fd))
    edits = [
        (10, "stance", "cat_low"),
        (11, "subject", "s09"),
        (12, "review_note", "check the tip"),
        (10, "stance", "horse_high"),  # a later edit of the same cell wins
        (99, "stance", None),
    ]
    assert ds.set_image_fields(edits) == 5
    assert len(fsyncs) == 1
    journal = read_journal(tmp_path / "ds" / JOURNAL_FILE)
    assert [len(e["edits"]) for e in journal.entries] == [2, 2, 1]  # BATCH_EDITS per line
    back = Dataset.load(tmp_path / "ds")
    assert back.pending_edits() == 5
    for got in (ds, back):
        assert got.images["stance"].tolist()[:2] == ["horse_high", "forward_high"]
        assert got.images["stance"].tolist()[-1] is None
        assert got.images["subject"].tolist()[1] == "s09"
        assert got.images["extra"].tolist()[2]["review_note"] == "check the tip"
    back.save()
    again = Dataset.load(tmp_path / "ds")
    assert again.pending_edits() == 0 and again.images["stance"].tolist()[0] == "horse_high"


def test_set_image_fields_checks_everything_before_writing(tmp_path):
    ds = make_ds()
    ds.save(tmp_path / "ds")
    with pytest.raises(KeyError, match="No image with id 404"):
        ds.set_image_fields([(10, "stance", "cat_low"), (404, "stance", "cat_low")])
    with pytest.raises(ValueError, match="'field'"):
        ds.set_image_fields([(10, "stance", "cat_low"), (11, "width", 3)])
    with pytest.raises(ValueError, match="string or None"):
        ds.set_image_fields([(10, "subject", 7)])
    assert ds.set_image_fields([]) == 0
    assert ds.pending_edits() == 0 and ds.images["stance"].tolist()[0] is None


def test_a_torn_batch_record_is_dropped_whole(tmp_path):
    ds = make_ds()
    ds.save(tmp_path / "ds")
    ds.set_image_fields([(10, "stance", "cat_low")])
    jpath = tmp_path / "ds" / JOURNAL_FILE
    whole = jpath.read_bytes()
    ds.set_image_fields([(11, "stance", "cat_high"), (12, "stance", "cat_high")])
    torn = jpath.read_bytes()
    jpath.write_bytes(torn[: len(whole) + (len(torn) - len(whole)) // 2])  # crash mid-record
    with pytest.warns(UserWarning, match="torn"):
        back = Dataset.load(tmp_path / "ds")
    assert back.images["stance"].tolist()[:3] == ["cat_low", "forward_high", None]
