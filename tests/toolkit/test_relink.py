"""``toolkit relink``: a moved or copied dataset finds its media again."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import orjson
import pytest
from click.testing import CliRunner

from toolkit.cli import main as cli
from toolkit.dataset import DATASET_FILE, Dataset
from toolkit.errors import MediaError


def _dataset(tmp_path: Path) -> Path:
    media = tmp_path / "project" / "media"
    (media / "clips").mkdir(parents=True)
    for i in range(3):
        (media / f"img{i}.jpg").write_bytes(b"jpeg")
    (media / "clips" / "c.mp4").write_bytes(b"mp4")
    images = [{"id": i, "file_name": f"img{i}.jpg", "width": 8, "height": 8} for i in range(3)]
    images.append(
        {
            "id": 9,
            "file_name": "c/000001.jpg",
            "width": 8,
            "height": 8,
            "video_id": 1,
            "frame_index": 1,
        }
    )
    anns = [{"id": 100 + i, "image_id": i} for i in range(3)]
    ds = Dataset.from_records(
        images,
        anns,
        np.full((3, 19, 3), 2.0),
        videos=[{"id": 1, "file_name": "clips/c.mp4", "fps": 15, "frame_count": 3}],
        media_root="../media",
    )
    ds.save(tmp_path / "project" / "ds")
    return tmp_path / "project" / "ds"


def test_copied_dataset_is_relinked_and_keeps_pending_edits(tmp_path):
    path = _dataset(tmp_path)
    moved = tmp_path / "elsewhere" / "ds"
    shutil.copytree(path, moved)
    Dataset.load(moved).set_points(101, [17], [[1.0, 2.0, 2]])  # a journalled, unsaved edit
    runner = CliRunner()
    res = runner.invoke(
        cli, ["export", str(moved), "--format", "yolo", "--out", str(tmp_path / "x")]
    )
    assert res.exit_code != 0  # the media is not where the copy says
    res = runner.invoke(cli, ["relink", str(moved), "--media", str(tmp_path / "nowhere")])
    assert res.exit_code == 2 and "--media" in res.output
    res = runner.invoke(cli, ["relink", str(moved), "--media", str(tmp_path / "project" / "media")])
    assert res.exit_code == 0, res.output
    assert "4 media files found" in res.output
    back = Dataset.load(moved)
    assert back.media_root == "../../project/media"
    assert back.keypoints[1, 17, :2].tolist() == [1.0, 2.0] and back.pending_edits() == 0
    back.require_media()


def test_relink_refuses_when_files_are_missing_and_changes_nothing(tmp_path):
    path = _dataset(tmp_path)
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "img0.jpg").write_bytes(b"x")
    before = (path / DATASET_FILE).read_bytes()
    res = CliRunner().invoke(cli, ["relink", str(path), "--media", str(partial)])
    assert res.exit_code == 2
    assert "3 of 4 are missing" in res.output and str(path / DATASET_FILE) in res.output
    assert (path / DATASET_FILE).read_bytes() == before


def test_relink_searches_next_to_the_dataset(tmp_path):
    path = _dataset(tmp_path)
    moved = tmp_path / "new" / "ds"
    shutil.copytree(path, moved)
    shutil.copytree(tmp_path / "project" / "media", moved / "media")
    ds = Dataset.load(moved)
    with pytest.raises(MediaError):
        ds.require_media()
    res = CliRunner().invoke(cli, ["relink", str(moved), "--dry-run"])
    assert res.exit_code == 0 and "would relink" in res.output
    assert Dataset.load(moved).media_root == "../media"  # dry run: unchanged
    assert CliRunner().invoke(cli, ["relink", str(moved)]).exit_code == 0
    assert Dataset.load(moved).media_root == "media"


def test_relink_repairs_a_dataset_whose_media_root_is_refused(tmp_path):
    path = _dataset(tmp_path)
    doc = orjson.loads((path / DATASET_FILE).read_bytes())
    doc["media_root"] = "/etc"
    (path / DATASET_FILE).write_bytes(orjson.dumps(doc))
    res = CliRunner().invoke(cli, ["info", str(path)])
    assert res.exit_code == 2 and "toolkit relink" in res.output
    res = CliRunner().invoke(cli, ["relink", str(path), "--media", "/etc"])
    assert res.exit_code == 2 and "system folder" in res.output
    res = CliRunner().invoke(
        cli, ["relink", str(path), "--media", str(tmp_path / "project" / "media")]
    )
    assert res.exit_code == 0, res.output
    assert Dataset.load(path).media_root == "../media"
