"""``toolkit label``: stance labels from a CSV onto an existing dataset, journalled."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from toolkit import layout
from toolkit.cli import main
from toolkit.dataset import JOURNAL_FILE, Dataset
from toolkit.errors import InputError
from toolkit.labels import label_dataset

N_FRAMES = 20


@pytest.fixture
def detected(tmp_path, samples_root) -> Path:
    """A dataset as `toolkit detect` leaves it: 20 frames of clip.mp4 (every one) and two
    photos, predicted points with scores, an absent tip, no stances.
    """
    images = [
        {
            "id": i + 1,
            "file_name": f"clip/{i:06d}.jpg",
            "width": 64,
            "height": 48,
            "video_id": 1,
            "frame_index": i,
        }
        for i in range(N_FRAMES)
    ]
    images += [
        {"id": 21, "file_name": "photos/a.jpg", "width": 64, "height": 48, "stance": "cat_low"},
        {"id": 22, "file_name": "photos/b.jpg", "width": 64, "height": 48},
    ]
    rng = np.random.default_rng(0)
    n = len(images)
    kp = np.concatenate([rng.uniform(5, 40, (n, 19, 2)), np.full((n, 19, 1), 2.0)], -1)
    kp[:, layout.TIP] = [np.nan, np.nan, 0]
    scores = rng.uniform(0.3, 1, (n, 19)).astype(np.float32)
    scores[:, layout.TIP] = np.nan
    source = np.full((n, 19), layout.PREDICTED, np.uint8)
    source[:, layout.TIP] = layout.IMPORTED
    anns = [{"id": i + 1, "image_id": i + 1, "category_id": 1, "score": 0.9} for i in range(n)]
    videos = [
        {
            "id": 1,
            "file_name": "clip.mp4",
            "fps": 10.0,
            "frame_count": 20,
            "width": 64,
            "height": 48,
        }
    ]
    ds = Dataset.from_records(
        images,
        anns,
        kp,
        scores=scores,
        source=source,
        videos=videos,
        taxonomy=json.loads((samples_root / "taxonomy.json").read_text()),
    )
    ds.save(tmp_path / "ds")
    return tmp_path / "ds"


def csv_file(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_segments_label_held_stances_and_keep_the_points(detected, tmp_path):
    before = Dataset.load(detected)
    labels = csv_file(
        tmp_path / "seg.csv",
        "video,start,end,stance,subject\n"
        "clip.mp4,0,9,forward_high,s01\n"
        "# a comment line\n"
        "clip,1.0s,1.5s,cat_low,s01\n"  # frames 10..15 (10 fps)
        "1,16,19,forward_high,\n",
    )
    s = label_dataset(detected, labels)
    assert (s.n_rows, s.n_images, s.stance_set, s.stance_replaced) == (3, 20, 20, 0)
    assert s.per_stance == {"cat_low": 6, "forward_high": 14}
    assert s.unlabelled == 1  # photos/b.jpg
    ds = Dataset.load(detected)
    stance = ds.images["stance"].tolist()
    assert stance[:10] == ["forward_high"] * 10
    assert stance[10:16] == ["cat_low"] * 6 and stance[16:20] == ["forward_high"] * 4
    assert stance[20] == "cat_low" and stance[21] is None
    assert ds.images["subject"].tolist()[:16] == ["s01"] * 16
    # Points, scores and provenance untouched; the journal is folded.
    np.testing.assert_array_equal(ds.keypoints, before.keypoints)
    np.testing.assert_array_equal(ds.scores, before.scores)
    np.testing.assert_array_equal(ds.source, before.source)
    assert ds.pending_edits() == 0


def test_edits_are_journalled_and_replayed(detected, tmp_path):
    labels = csv_file(
        tmp_path / "f.csv", "file,stance\nphotos/b.jpg,horse_low\nclip/000003.jpg,back_low\n"
    )
    label_dataset(detected, labels, fold=False)
    assert b"horse_low" in (detected / JOURNAL_FILE).read_bytes()
    assert Dataset.load(detected).pending_edits() == 2
    raw = json.loads((detected / "dataset.json").read_text())
    assert all(im.get("stance") != "horse_low" for im in raw["images"])  # not folded yet
    ds = Dataset.load(detected)  # replays the journal
    assert ds.images["stance"].tolist()[21] == "horse_low"
    assert ds.images["stance"].tolist()[3] == "back_low"


def test_rows_by_id_replace_and_dry_run(detected, tmp_path):
    labels = csv_file(tmp_path / "ids.csv", "image_id,stance,subject\n21,horse_high,s02\n22,,s03\n")
    dry = label_dataset(detected, labels, dry_run=True)
    assert (dry.stance_replaced, dry.subject_set) == (1, 2)
    assert Dataset.load(detected).images["stance"].tolist()[20] == "cat_low"  # unchanged
    s = label_dataset(detected, labels)
    assert (s.stance_set, s.stance_replaced, s.subject_set) == (0, 1, 2)
    ds = Dataset.load(detected)
    assert ds.images["stance"].tolist()[20:] == ["horse_high", None]
    assert ds.images["subject"].tolist()[20:] == ["s02", "s03"]
    again = label_dataset(detected, labels)
    assert again.unchanged == 2 and again.stance_replaced == 0


@pytest.mark.parametrize(
    ("text", "line", "match"),
    [
        ("file,stance\nphotos/a.jpg,cat_low\nphotos/zzz.jpg,cat_low\n", 3, "not one"),
        ("file,stance\nphotos/a.jpg,dancing\n", 2, "taxonomy's 12 stances"),
        (
            "video,start,end,stance\nclip.mp4,0,10,forward_high\nclip.mp4,8,12,cat_low\n",
            3,
            r"frames 8\.\.10 are 'forward_high' on line 2",
        ),
        ("video,start,end,stance\nclip.mp4,5,2,cat_low\n", 2, "at or after 'start'"),
        ("video,start,end,stance\nclip.mp4,50,60,cat_low\n", 2, r"has frames 0\.\.19"),
        ("video,start,end,stance\nother.mp4,0,5,cat_low\n", 2, "clip.mp4"),
        ("video,start,end,stance\nclip.mp4,0,x,cat_low\n", 2, "a time"),
        ("image_id,stance\n999,cat_low\n", 2, "image_id"),
        ("file,stance\nclip/000001.jpg,cat\rlow\n", 2, "cannot be parsed"),  # a bare CR
        ("name,label\na,b\n", 1, "header"),
        (
            "file,stance\nclip/000001.jpg,cat_low\nfile,stance\n",
            3,
            "not one",
        ),
        (
            "file,video,start,end,stance\nclip/000002.jpg,,,,cat_low\n,clip.mp4,0,5,forward_low\n",
            3,
            r"'clip/000002.jpg' is 'cat_low' on line 2",
        ),
    ],
)
def test_bad_rows_name_the_file_and_line(detected, tmp_path, text, line, match):
    labels = csv_file(tmp_path / "bad.csv", text)
    with pytest.raises(InputError, match=match) as err:
        label_dataset(detected, labels)
    assert err.value.path == labels and err.value.line == line
    ds = Dataset.load(detected)  # nothing changed, nothing journalled
    assert ds.pending_edits() == 0 and ds.images["stance"].notna().sum() == 1


def test_same_stance_overlap_is_fine(detected, tmp_path):
    labels = csv_file(
        tmp_path / "s.csv",
        "video,start,end,stance\nclip.mp4,0,10,cat_low\nclip.mp4,5,19,cat_low\n",
    )
    assert label_dataset(detected, labels).per_stance == {"cat_low": 20}


def test_without_a_taxonomy_stances_are_noted_or_checked_against_a_file(
    detected, tmp_path, samples_root
):
    ds = Dataset.load(detected)
    ds.taxonomy = None
    ds.save(force=True)
    labels = csv_file(tmp_path / "f.csv", "file,stance\nphotos/b.jpg,dancing\n")
    s = label_dataset(detected, labels, dry_run=True)
    assert any("no stance taxonomy" in n for n in s.notes)
    with pytest.raises(InputError, match="dancing"):
        label_dataset(detected, labels, taxonomy=samples_root / "taxonomy.json")


def test_cli(detected, tmp_path):
    labels = csv_file(tmp_path / "seg.csv", "video,start,end,stance\nclip.mp4,0,19,back_high\n")
    res = CliRunner().invoke(main, ["label", str(detected), "--labels", str(labels)])
    assert res.exit_code == 0, res.output
    assert "labelled 20 images" in res.output and "back_high 20" in res.output
    assert "images still without a stance: 1" in res.output
    bad = csv_file(tmp_path / "bad.csv", "file,stance\nnope.jpg,back_high\n")
    res = CliRunner().invoke(main, ["label", str(detected), "--labels", str(bad)])
    assert res.exit_code == 2
    assert f"{bad}:2:" in res.output and "Example: toolkit label" in res.output
    res = CliRunner().invoke(main, ["label", "--help"])
    assert res.exit_code == 0 and "Examples:" in res.output and "video,start,end" in res.output


def test_from_detected_footage_to_a_training_set(tmp_path):
    """AlphaPose results of a video -> label by segment -> YOLO export keeps the stances."""
    from toolkit import io

    from .test_io_alphapose import FORMATS, make_video

    video = make_video(tmp_path / "strike.mp4")
    io.import_dataset(
        FORMATS / "alphapose" / "alphapose-results.json", tmp_path / "ds", video=video
    )
    labels = csv_file(
        tmp_path / "seg.csv",
        "video,start,end,stance,subject\nstrike.mp4,0,5,forward_high,s01\n"
        "strike.mp4,6,10,cat_low,s01\n",
    )
    res = CliRunner().invoke(main, ["label", str(tmp_path / "ds"), "--labels", str(labels)])
    assert res.exit_code == 0, res.output
    ds = Dataset.load(tmp_path / "ds")
    assert ds.images["stance"].tolist() == ["forward_high"] * 6 + ["cat_low"] * 5
    assert (ds.source[ds.keypoints[..., 2] > 0] == layout.PREDICTED).all()  # kept
    out = io.write(ds, "yolo", tmp_path / "yolo")
    back = io.read(out / "data.yaml", labels=out / "labels.csv").dataset
    assert back.images["stance"].tolist() == ds.images["stance"].tolist()
    assert len(back) == len(ds) == 12


def test_segments_over_a_folder_of_numbered_frames(tmp_path):
    """`toolkit detect frames/` output: no video, frame numbers in the image names."""
    names = ["frame_1.png", "frame_2.png", "frame_10.png", "b/shot_5.jpg", "notes.jpg"]
    images = [{"id": i + 1, "file_name": n, "width": 8, "height": 8} for i, n in enumerate(names)]
    ds = Dataset.from_records(images, [], np.zeros((0, 19, 3)), media_root="../frames")
    ds.save(tmp_path / "ds")
    labels = csv_file(
        tmp_path / "s.csv",
        "video,start,end,stance\nframes,1,2,cat_low\n.,3,10,forward_high\nb,5,5,back_low\n",
    )
    s = label_dataset(tmp_path / "ds", labels)
    assert s.n_images == 4
    stance = Dataset.load(tmp_path / "ds").images["stance"].tolist()
    assert stance == ["cat_low", "cat_low", "forward_high", "back_low", None]
    overlap = csv_file(
        tmp_path / "o.csv", "video,start,end,stance\n.,1,5,cat_low\n.,2,10,forward_high\n"
    )
    with pytest.raises(InputError, match="on line 2") as err:
        label_dataset(tmp_path / "ds", overlap)
    assert err.value.line == 3
    unknown = csv_file(tmp_path / "u.csv", "video,start,end,stance\nclips,1,5,cat_low\n")
    with pytest.raises(InputError, match=r"image folder of numbered frames \['\.', 'b'\]"):
        label_dataset(tmp_path / "ds", unknown)
