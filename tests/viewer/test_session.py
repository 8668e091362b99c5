"""The editing rules behind the viewer, without a window."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from toolkit import layout
from toolkit.dataset import Dataset
from toolkit.locate import Locator
from viewer.findings import keypoint_indices
from viewer.review import ReviewList
from viewer.session import EditSession, describe_prediction, rigid_adjust


def test_flags_from_findings_and_pending_corrections(small_dataset):
    s = EditSession.open(small_dataset)
    assert np.flatnonzero(s.flagged_frames()).tolist() == [2, 4]
    assert [s.is_flagged(t) for t in range(6)] == s.flagged_frames().tolist()
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
    if not ok:  # refused (or merged at once, when the dataset can fold both)
        assert "changed on disk" in msg and s.conflict
        s.reload()
        assert s.save()[0]
    assert s.conflict is None
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
    lookup = Locator.build(ds)
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


# ---------------------------------------------------------------------- keyframes, proposals
def _journal_ops(path):
    from toolkit.dataset import JOURNAL_FILE, read_journal

    return read_journal(path / JOURNAL_FILE).entries


def test_two_keyframes_fill_the_drift_in_one_undoable_step(video_dataset, stick_truth):
    clean_stick = stick_truth
    s = EditSession.open(video_dataset)
    assert s.track.tolist() == [0] * 12  # one person (subject s01) in one video
    edit, msg = s.set_keyframe(3, 3)
    assert "press I" in msg and s.pending_key == {0: (3, 3)}
    assert (s.ds.source[3, [layout.GRIP, layout.TIP]] == layout.HUMAN).all()
    edit, msg = s.set_keyframe(8, 8)
    assert "4 frames" in edit.label and not s.pending_key
    kp = s.ds.keypoints
    for f in range(4, 8):  # the grip follows the wrist, the angle turns: exact here
        np.testing.assert_allclose(kp[f, [layout.GRIP, layout.TIP], :2], clean_stick(kp[f], f))
        assert (s.ds.source[f, [layout.GRIP, layout.TIP]] == layout.INTERPOLATED).all()
    assert s.ds.source[8, layout.TIP] == layout.HUMAN
    assert s.ds.source[2, layout.TIP] == layout.IMPORTED and s.ds.source[9, layout.TIP] == 0
    assert s.corrected_frames()[4:8].all()  # pending review: flagged
    ops = _journal_ops(video_dataset)
    assert [o["source"] for o in ops[-6:]].count("interpolated") == 4
    replayed = Dataset.load(video_dataset)  # what a crash now would leave
    np.testing.assert_allclose(replayed.keypoints[5], kp[5])
    assert replayed.source[5, layout.TIP] == layout.INTERPOLATED

    before = Dataset.load(video_dataset, replay=False).keypoints
    assert s.undo() is edit  # one step undoes the whole fill and both keyframes' provenance
    np.testing.assert_allclose(s.ds.keypoints[3:9], before[3:9])
    assert (s.ds.source[4:8, layout.TIP] == layout.IMPORTED).all()
    assert s.ds.source[8, layout.TIP] == layout.IMPORTED
    assert s.redo() is edit
    assert (s.ds.source[4:8, layout.TIP] == layout.INTERPOLATED).all()

    np.testing.assert_array_equal(s.pending_run(8), [4, 5, 6, 7])  # next to the keyframe
    np.testing.assert_array_equal(s.pending_run(5), [4, 5, 6, 7])
    accepted = s.accept_range(8)
    assert "4 frames" in accepted.label
    assert (s.ds.source[3:9, layout.TIP] == layout.HUMAN).all()
    np.testing.assert_allclose(s.ds.keypoints[3:9], kp[3:9])  # same coordinates
    assert not s.corrected_frames().any() and s.accept_range(8) is None
    s.save()
    back = Dataset.load(video_dataset)
    assert (back.source[3:9, [layout.GRIP, layout.TIP]] == layout.HUMAN).all()
    np.testing.assert_allclose(back.keypoints[6, layout.TIP, :2], kp[6, layout.TIP, :2], atol=1e-3)


def test_keyframe_again_cancels_and_human_frames_between_are_kept(video_dataset):
    s = EditSession.open(video_dataset)
    s.set_keyframe(2, 2)
    assert s.set_keyframe(2, 2)[0] is None and not s.pending_key  # cancelled
    s.move_points(6, 6, [layout.TIP], [[55.0, 44.0]])  # a person set frame 6 already
    s.set_keyframe(2, 2)
    s.set_keyframe(9, 9)
    np.testing.assert_allclose(s.ds.keypoints[6, layout.TIP, :2], [55, 44])
    assert s.ds.source[6, layout.TIP] == layout.HUMAN
    assert (s.ds.source[[3, 4, 5, 7, 8], layout.TIP] == layout.INTERPOLATED).all()
    # still images have no neighbours in time
    assert s.interpolate(2, 9, 9, length="subject") is not None
    with pytest.raises(ValueError, match="length"):
        s.interpolate(2, 9, 9, length="guess")


def test_copy_previous_stick_follows_the_wrist(video_dataset, stick_truth):
    clean_stick = stick_truth
    s = EditSession.open(video_dataset)
    edit, msg = s.copy_previous_stick(4, 4)  # frame 3 is clean; 4 drifted
    kp = s.ds.keypoints
    # carried by the wrist (2 px right), angle of frame 3 (5 deg behind the truth)
    np.testing.assert_allclose(kp[4, layout.GRIP, :2], clean_stick(kp[4], 4)[0])
    np.testing.assert_allclose(
        kp[4, layout.TIP, :2] - kp[4, layout.GRIP, :2], np.diff(clean_stick(kp[3], 3), axis=0)[0]
    )
    assert (s.ds.source[4, [layout.GRIP, layout.TIP]] == layout.HUMAN).all()
    assert "1 frame back" in msg
    assert s.copy_previous_stick(0, 0)[0] is None  # nothing before the first frame


def _write_proposals(path, findings):
    (path / "validation.json").write_bytes(orjson.dumps({"version": 1, "findings": findings}))


def test_enter_applies_validate_proposals_but_never_over_a_person(video_dataset):
    _write_proposals(
        video_dataset,
        [
            {
                "code": "stick.angle",
                "severity": "warning",
                "ann_id": 1005,
                "video": "clip",
                "frame_index": 5,
                "keypoints": ["stick_tip"],
                "proposal": {
                    "keypoints": [[18, 70.5, 30.25]],
                    "method": "temporal",
                    "confidence": 0.9,
                },
            },
            {
                "code": "stick.angle",
                "severity": "warning",
                "ann_id": 1006,
                "video": "clip",
                "frame_index": 6,
                "proposal": {"keypoints": [[18, 71.0, 31.0], [17, 1.0, 2.0]], "method": "t"},
            },
            {  # malformed: ignored with a warning, the finding still listed
                "code": "stick.length",
                "severity": "warning",
                "ann_id": 1007,
                "proposal": {"keypoints": [[99, 1, 2]]},
            },
        ],
    )
    with pytest.warns(UserWarning, match="malformed 'proposal'"):
        s = EditSession.open(video_dataset)
    assert sorted(s.findings.proposals) == [5, 6] and s.findings.flagged[7]
    assert [f["code"] for f in s.frame_findings(5)] == ["stick.angle", "proposal"]
    grip6 = s.ds.keypoints[6, layout.GRIP].copy()
    s.move_points(6, 6, [layout.GRIP], [[grip6[0] + 1, grip6[1]]])  # a person's edit first
    np.testing.assert_array_equal(np.flatnonzero(s.proposal_frames()), [5, 6])
    edit = s.accept_correction(5)
    np.testing.assert_allclose(s.ds.keypoints[5, layout.TIP], [70.5, 30.25, 2])
    assert s.ds.source[5, layout.TIP] == layout.HUMAN and not s.proposal_frames()[5]
    assert s.accept_correction(5) is None  # applied once
    edit = s.accept_frames([6, 7], 6, "accepted")
    np.testing.assert_allclose(s.ds.keypoints[6, layout.TIP, :2], [71, 31])
    np.testing.assert_allclose(s.ds.keypoints[6, layout.GRIP, :2], [grip6[0] + 1, grip6[1]])
    ops = _journal_ops(video_dataset)
    assert ops[-1]["source"] == "human" and ops[-1]["idx"] == [18]
    s.undo()
    np.testing.assert_allclose(
        s.ds.keypoints[6, layout.TIP],
        Dataset.load(video_dataset, replay=False).keypoints[6, layout.TIP],
    )
    assert s.ds.source[6, layout.TIP] == layout.IMPORTED and edit.frame == 6


def test_review_filters_and_accept_in_filter(video_dataset):
    from viewer.review import FILTER_ALL, FILTER_OPEN, FILTER_PROPOSAL

    _write_proposals(
        video_dataset,
        [
            {
                "code": code,
                "severity": "warning",
                "ann_id": 1000 + f,
                "proposal": {"keypoints": [[18, 50.0 + f, 20.0]], "method": "m"},
            }
            for f, code in ((2, "stick.angle"), (5, "stick.length"), (9, "stick.angle"))
        ],
    )
    s = EditSession.open(video_dataset)
    review = s.review
    assert review.filters() == [
        FILTER_ALL,
        FILTER_OPEN,
        FILTER_PROPOSAL,
        "stick.angle",
        "stick.length",
    ]
    assert review.matching("stick.angle") == [0, 2]
    assert review.matching(FILTER_PROPOSAL, s) == [0, 1, 2]
    frames = [review.items[i].frame for i in review.matching("stick.angle")]
    edit = s.accept_frames(frames, 2, "accepted the listed frames")
    assert "2 frames" in edit.label
    np.testing.assert_allclose(s.ds.keypoints[[2, 9], layout.TIP, 0], [52, 59])
    assert s.ds.source[5, layout.TIP] == layout.IMPORTED
    assert review.matching(FILTER_PROPOSAL, s) == [1]


def test_a_keyframe_inside_the_fill_refills_both_sides_and_a_takes_it_all(
    video_dataset, stick_truth
):
    s = EditSession.open(video_dataset)
    s.set_keyframe(2, 2)
    s.set_keyframe(10, 10)
    assert (s.ds.source[3:10, layout.TIP] == layout.INTERPOLATED).all()
    kp = s.ds.keypoints
    s.move_points(6, 6, [layout.TIP], [stick_truth(kp[6], 6)[1] + [0.0, 3.0]])  # a drag
    edit, msg = s.set_keyframe(6, 6)  # inside the fill: a keyframe there, both sides re-filled
    assert "re-filled" in msg and not s.pending_key
    assert (s.ds.source[6, [layout.GRIP, layout.TIP]] == layout.HUMAN).all()
    assert (s.ds.source[[3, 4, 5, 7, 8, 9], layout.TIP] == layout.INTERPOLATED).all()
    np.testing.assert_allclose(kp[6, layout.TIP, :2], stick_truth(kp[6], 6)[1] + [0, 3])
    s.set_keyframe(7, 7)  # next to a keyframe: still inside, still a re-fill
    assert not s.pending_key and s.ds.source[7, layout.TIP] == layout.HUMAN
    np.testing.assert_array_equal(s.interpolation_range(7), [3, 4, 5, 8, 9])
    accepted = s.accept_range(7)
    assert "5 frames" in accepted.label
    assert (s.ds.source[2:11, layout.TIP] == layout.HUMAN).all()
