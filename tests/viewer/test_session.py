"""The editing rules behind the viewer, without a window."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from toolkit import layout
from toolkit.dataset import Dataset
from viewer.findings import FrameLookup, keypoint_indices
from viewer.review import ReviewList
from viewer.session import EditSession, describe_prediction, rigid_adjust


def test_flags_from_findings_and_pending_corrections(small_dataset):
    s = EditSession.open(small_dataset)
    assert np.flatnonzero(s.flagged_frames()).tolist() == [2, 4]
    assert s.first_flagged() == 2
    assert s.next_flagged(2) == 4 and s.next_flagged(4) is None
    assert s.next_flagged(4, -1) == 2 and s.next_flagged(2, -1) is None
    flags = s.point_flags(4)
    assert flags.shape == (1, 19) and flags[0, [layout.GRIP, layout.TIP]].all()
    assert flags[0, :17].sum() == 0
    assert [f["code"] for f in s.frame_findings(4)] == ["stick.length"]
    assert "corrected" in s.frame_findings(2)[0]["code"]
    assert len(s.review) == 1 and s.review.items[0].frame == 4


def test_edit_is_journalled_human_and_undo_restores_provenance(small_dataset):
    s = EditSession.open(small_dataset)
    row = int(s.ann_rows(2)[0])
    before = s.ds.keypoints[row, layout.TIP].copy()
    edit = s.move_points(2, row, [layout.TIP], [[10.0, 20.0]])
    assert edit is not None and s.ds.pending_edits() == 1
    assert s.ds.source[row, layout.TIP] == layout.HUMAN
    assert s.move_points(2, row, [layout.TIP], [[10.0, 20.0]]) is None  # no-op: no step
    assert s.undo() is edit
    np.testing.assert_array_equal(s.ds.keypoints[row, layout.TIP], before)
    assert s.ds.source[row, layout.TIP] == layout.CORRECTED
    assert s.redo() is edit
    np.testing.assert_array_equal(s.ds.keypoints[row, layout.TIP], [10, 20, 2])
    replayed = Dataset.load(small_dataset)  # what a crash now would leave
    np.testing.assert_array_equal(replayed.keypoints[row, layout.TIP], [10, 20, 2])
    assert replayed.source[row, layout.TIP] == layout.HUMAN


def test_accept_revert_missing_stance(small_dataset):
    s = EditSession.open(small_dataset)
    row = int(s.ann_rows(2)[0])
    corrected_tip = s.ds.keypoints[row, layout.TIP].copy()
    assert s.accept_correction(2) is not None
    np.testing.assert_array_equal(s.ds.keypoints[row, layout.TIP], corrected_tip)
    assert (s.ds.source[row, [layout.GRIP, layout.TIP]] == layout.HUMAN).all()
    assert s.accept_correction(2) is None and not s.flagged_frames()[2]
    s.revert_stick(2)
    np.testing.assert_array_equal(
        s.ds.keypoints[row, layout.TIP], s.ds.keypoints_raw[row, layout.TIP]
    )
    s.mark_missing(2, [(row, layout.GRIP)])
    assert np.isnan(s.ds.keypoints[row, layout.GRIP, :2]).all()
    assert s.stance(2) == "back_high"
    s.cycle_stance(2, 1)
    assert s.stance(2) == "forward_high"
    s.cycle_stance(2, -1)
    assert s.stance(2) == "back_high"
    s.undo()
    assert s.stance(2) == "forward_high"
    ok, msg = s.save()
    assert ok and s.unsaved == 0 and s.ds.pending_edits() == 0
    back = Dataset.load(small_dataset)
    assert np.isnan(back.keypoints[row, layout.GRIP, :2]).all()
    assert back.images["stance"].iat[2] == "forward_high"


def test_save_conflict_keeps_both(small_dataset):
    s = EditSession.open(small_dataset)
    s.set_stance(0, "back_high")
    other = Dataset.load(small_dataset)
    other.images.at[other.images.index[1], "subject"] = "s42"
    other.save()
    s.set_stance(1, "back_high")
    ok, msg = s.save()
    assert not ok and "changed on disk" in msg and s.conflict
    s.reload()
    assert s.save()[0]
    back = Dataset.load(small_dataset)
    assert back.images["subject"].iat[1] == "s42"
    assert back.images["stance"].iloc[:2].tolist() == ["back_high", "back_high"]


def test_rigid_adjust_rotates_tip_and_carries_it_with_the_grip():
    old = np.zeros((19, 2))
    old[layout.GRIP] = [10, 10]
    old[layout.TIP] = [10, 50]  # length 40
    new = old.copy()
    new[layout.TIP] = [30, 10]
    moved = np.zeros(19, bool)
    moved[layout.TIP] = True
    np.testing.assert_allclose(rigid_adjust(old, new, moved)[layout.TIP], [50, 10])
    new = old.copy()
    new[layout.GRIP] = [15, 12]
    moved = np.zeros(19, bool)
    moved[layout.GRIP] = True
    np.testing.assert_allclose(rigid_adjust(old, new, moved)[layout.TIP], [15, 52])
    old[layout.TIP] = np.nan  # incomplete stick: left as the user put it
    np.testing.assert_array_equal(rigid_adjust(old, new, moved), new)


def test_findings_map_video_frames_and_queue_reads_defensively(tmp_path):
    images = [
        {
            "id": i + 1,
            "file_name": f"clip/{i:06d}.jpg",
            "width": 8,
            "height": 8,
            "video_id": 7,
            "frame_index": i,
        }
        for i in range(5)
    ]
    anns = [{"id": i + 1, "image_id": i + 1} for i in range(5)]
    ds = Dataset.from_records(
        images,
        anns,
        np.full((5, 19, 3), np.nan),
        videos=[
            {
                "id": 7,
                "file_name": "videos/clip.mp4",
                "fps": 15,
                "frame_count": 5,
                "width": 8,
                "height": 8,
            }
        ],
    )
    lookup = FrameLookup.build(ds)
    assert lookup.frame_of({"video": "clip", "frame_index": 3}) == 3
    assert lookup.frame_of({"video": "videos/clip.mp4", "frame_index": 2}) == 2
    assert lookup.frame_of({"video": 7, "frame_index": 1}) == 1
    assert lookup.frame_of({"file_name": "clip/000004.jpg"}) == 4
    assert lookup.frame_of({"ann_id": 2}) == 1
    assert lookup.frame_of({"video": "other", "frame_index": 1}) is None
    assert keypoint_indices("stick_grip,stick_tip") == [17, 18]
    assert keypoint_indices(["nose", 18, "bogus", 99]) == [0, 18]
    q = tmp_path / "q.json"
    q.write_bytes(
        orjson.dumps(
            [{"video": "clip.mp4", "frame_index": 1, "reason": "x"}, "junk", {"reason": "y"}]
        )
    )
    review = ReviewList.from_queue(q, lookup)
    assert [it.frame for it in review.items] == [1, None]
    review.set_done(0)
    assert orjson.loads(q.read_bytes())[0]["done"] is True
    q.write_bytes(b"{not json")
    with pytest.raises(ValueError, match="JSON"):
        ReviewList.from_queue(q, lookup)


def test_unreadable_findings_file_means_no_findings(small_dataset):
    (small_dataset / "validation.json").write_text("{broken")
    with pytest.warns(UserWarning, match="validation.json"):
        s = EditSession.open(small_dataset)
    assert np.flatnonzero(s.flagged_frames()).tolist() == [2]  # the correction only


def test_describe_prediction_reads_common_shapes():
    assert (
        describe_prediction({"stance": "forward_high", "confidence": 0.91}) == "forward_high (0.91)"
    )
    assert describe_prediction({"probs": {"a": 0.2, "b": 0.7}}) == "b (0.70)"
    assert describe_prediction({"stance": {"name": "x", "score": 0.5}}) == "x (0.50)"


def test_empty_dataset_is_refused(tmp_path):
    Dataset.from_records([], [], np.zeros((0, 19, 3))).save(tmp_path / "empty")
    with pytest.raises(ValueError, match="no images|has none"):
        EditSession.open(tmp_path / "empty")
