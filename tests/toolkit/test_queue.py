"""Review queue: schema, atomic save/load, de-duplication, spreading in time, ranking."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from toolkit import layout
from toolkit.dataset import Dataset
from toolkit.errors import InputError
from toolkit.queue import (
    REASONS,
    QueueDocument,
    QueueItem,
    ReviewQueue,
    dedupe,
    items_for_rows,
    rank,
    spread_in_time,
)
from toolkit.schema import load_schema, validate


def _video_items(scores, reason="low_confidence", video="clip.mp4"):
    return [QueueItem(reason, s, video=video, frame_index=i) for i, s in enumerate(scores)]


def test_schema_reasons_match_module():
    schema = load_schema("review_queue")
    assert tuple(schema["definitions"]["reason"]["enum"]) == REASONS


def test_item_needs_a_frame_and_a_known_reason():
    with pytest.raises(ValueError, match="file_name"):
        QueueItem("validation", 1.0)
    with pytest.raises(ValueError, match="reason"):
        QueueItem("typo", 1.0, file_name="a.jpg")
    with pytest.raises(ValueError, match="finite"):
        QueueItem("validation", float("nan"), file_name="a.jpg")


def test_dedupe_keeps_best_and_lists_the_rest():
    items = [
        QueueItem("validation", 0.2, file_name="a.jpg", details={"code": "x"}),
        QueueItem("label_disagreement", 0.9, file_name="a.jpg"),
        QueueItem("low_confidence", 0.5, file_name="b.jpg"),
    ]
    out = {it.file_name: it for it in dedupe(items)}
    assert len(out) == 2
    assert out["a.jpg"].reason == "label_disagreement"
    assert out["a.jpg"].also == [{"reason": "validation", "score": 0.2, "details": {"code": "x"}}]


def test_spread_in_time_suppresses_neighbours_per_video():
    # one peak at frame 50 with 20 neighbours above the background, and a second moment at 200
    scores = np.full(300, 0.1)
    scores[40:61] = 0.8
    scores[50] = 1.0
    scores[200] = 0.7
    items = _video_items(scores) + [
        QueueItem("low_confidence", 0.95, video="other.mp4", frame_index=51)
    ]
    kept = spread_in_time(items, window=15)
    frames = {(it.video, it.frame_index) for it in kept}
    assert ("clip.mp4", 50) in frames and ("clip.mp4", 200) in frames
    assert ("other.mp4", 51) in frames  # another video is not suppressed
    clip = sorted(it.frame_index for it in kept if it.video == "clip.mp4")
    assert np.all(np.diff(clip) > 15)  # no two kept frames of one video within the window
    peak = next(it for it in kept if it.frame_index == 50 and it.video == "clip.mp4")
    assert peak.suppressed >= 20  # at least its 20 raised neighbours
    assert len(kept) + sum(it.suppressed for it in kept) == len(items)
    assert len(spread_in_time(items, window=0)) == len(items)


def test_rank_orders_by_weighted_score_and_numbers_from_one():
    items = [
        QueueItem("low_confidence", 0.9, file_name="a.jpg"),
        QueueItem("label_disagreement", 0.6, file_name="b.jpg"),
    ]
    ranked = rank(items, weights={"label_disagreement": 2.0})
    assert [it.file_name for it in ranked] == ["b.jpg", "a.jpg"]
    assert [it.rank for it in ranked] == [1, 2]


def test_build_save_load_roundtrip_and_done_flags(tmp_path):
    items = _video_items([0.3, 0.9, 0.2, 0.1], video="v.mp4") + [
        QueueItem(
            "stick_geometry",
            0.5,
            file_name="img/a.jpg",
            image_id=3,
            ann_id=7,
            details={"tip_error_px": 12.5},
        )
    ]
    q = ReviewQueue.build(items, window=1, dataset="ds", meta={"model": "m.onnx"})
    assert [it.rank for it in q] == [1, 2, 3]
    assert q[0].frame_index == 1 and q[0].suppressed == 2
    path = q.save(tmp_path / "queue.json")
    doc = orjson.loads(path.read_bytes())
    validate(doc, "review_queue", path)
    assert doc["version"] == 1 and doc["window"] == 1
    q2 = ReviewQueue.load(path)
    assert [it.to_dict() for it in q2] == [it.to_dict() for it in q]
    q2.mark_done(1)  # saves atomically
    q3 = ReviewQueue.load(path)
    assert [it.done for it in q3] == [False, True, False]
    assert len(q3.pending()) == 2
    assert not list(tmp_path.glob(".*tmp"))
    # rebuilding from fresh candidates keeps what the reviewer finished
    q4 = ReviewQueue.build(items, window=1, previous=q3)
    assert [it.done for it in q4] == [False, True, False]
    assert q3.dataset_path() == tmp_path / "ds"
    assert list(q3.to_frame().columns[:3]) == ["rank", "reason", "score"]


def test_build_does_not_mutate_the_candidates():
    items = _video_items([0.9, 0.8])
    ReviewQueue.build(items, window=5)
    assert [it.suppressed for it in items] == [0, 0]
    assert [it.rank for it in items] == [None, None]


def test_load_rejects_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        ReviewQueue.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"version": 1, "items": [{"reason": "nope", "score": 1, "done": false, '
        '"file_name": "a.jpg"}]}'
    )
    with pytest.raises(InputError, match="review_queue schema"):
        ReviewQueue.load(bad)
    bad.write_text(
        '{"version": 1, "items": [{"reason": "validation", "score": 1, "done": false}]}'
    )  # names no frame
    with pytest.raises(InputError):
        ReviewQueue.load(bad)
    bad.write_text("{not json")
    with pytest.raises(InputError, match="JSON"):
        ReviewQueue.load(bad)


def test_items_for_rows_names_video_frames_and_images():
    images = [
        {"id": 1, "file_name": "a.jpg", "width": 10, "height": 10},
        {
            "id": 2,
            "file_name": "clip/000007.jpg",
            "width": 10,
            "height": 10,
            "video_id": 4,
            "frame_index": 7,
        },
    ]
    anns = [{"id": 10, "image_id": 1}, {"id": 11, "image_id": 2}]
    kp = np.full((2, layout.NUM_KEYPOINTS, 3), 5.0)
    ds = Dataset.from_records(images, anns, kp, videos=[{"id": 4, "file_name": "clip.mp4"}])
    items = items_for_rows(
        ds,
        np.array([1, 0]),
        "validation",
        np.array([0.5, 0.25]),
        details=[{"code": "a"}, {"code": "b"}],
    )
    assert items[0].video == "clip.mp4" and items[0].frame_index == 7 and items[0].ann_id == 11
    assert items[1].video is None and items[1].file_name == "a.jpg" and items[1].image_id == 1
    assert items[1].details == {"code": "b"}
    per_image = items_for_rows(ds, np.array([1]), "low_confidence", np.array([1.0]), per="image")
    assert per_image[0].ann_id is None and per_image[0].frame_index == 7


def test_queue_document_reads_leniently_and_writes_back_only_done(tmp_path):
    q = tmp_path / "q.json"
    doc = {
        "version": 1,
        "items": [
            {"file_name": "a.jpg", "reason": "hand_made", "score": 1, "note": {"k": [1, 2]}},
            "junk",
            {"video": "clip.mp4", "frame_index": 3, "reason": "validation", "done": True},
        ],
        "extra": "kept",
    }
    q.write_bytes(orjson.dumps(doc))
    qd = QueueDocument.read(q)
    assert len(qd) == 2 and qd.records[1]["frame_index"] == 3
    qd.set_done(0)
    saved = orjson.loads(q.read_bytes())
    assert saved["items"][0] == {**doc["items"][0], "done": True}
    assert saved["items"][1] == "junk" and saved["extra"] == "kept"
    q.write_bytes(orjson.dumps([{"file_name": "b.jpg"}]))  # a bare list of items
    assert QueueDocument.read(q).records == [{"file_name": "b.jpg"}]
    q.write_bytes(b'{"items": 3}')
    with pytest.raises(InputError, match="'items'"):
        QueueDocument.read(q)
    q.write_bytes(b"{nope")
    with pytest.raises(InputError, match="JSON"):
        QueueDocument.read(q)
    with pytest.raises(FileNotFoundError, match="--queue"):
        QueueDocument.read(tmp_path / "missing.json")
