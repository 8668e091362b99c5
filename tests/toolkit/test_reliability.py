"""Nothing lost, nothing escapes: concurrent saves, torn journals, kills, files, media roots.

The long versions run with ``make stress`` (``benchmarks/stress.py``); here the same code runs
at a small size.
"""

from __future__ import annotations

import importlib.util
import os
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import orjson
import pytest
from click.testing import CliRunner

from toolkit import dataset as D
from toolkit import layout
from toolkit.cli import main as cli
from toolkit.dataset import DATASET_FILE, JOURNAL_FILE, Dataset, read_journal
from toolkit.errors import InputError, MediaError, SaveConflictError
from toolkit.fileio import atomic_write_bytes, staged_dir

ROOT = Path(__file__).resolve().parents[2]


def _stress():
    spec = importlib.util.spec_from_file_location("arnis_stress", ROOT / "benchmarks/stress.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _small(tmp_path: Path, n: int = 4) -> Path:
    kp = np.full((n, 19, 3), 2.0)
    kp[..., :2] = np.arange(n * 38, dtype=float).reshape(n, 19, 2)
    images = [{"id": i + 1, "file_name": f"a{i}.jpg", "width": 64, "height": 64} for i in range(n)]
    anns = [{"id": 10 + i, "image_id": i + 1} for i in range(n)]
    Dataset.from_records(images, anns, kp, media_root=".").save(tmp_path / "ds")
    return tmp_path / "ds"


# ---------------------------------------------------------------------- concurrent saves
def test_the_measured_race_loses_nothing(tmp_path):
    """Both handles journal an edit, one saves (emptying the journal), then the other saves."""
    path = _small(tmp_path)
    a, b = Dataset.load(path), Dataset.load(path)
    a.set_points(10, [17], [[1.0, 2.0, 2]])
    b.set_points(11, [18], [[3.0, 4.0, 2]])
    b.keypoints[2, 0, :2] = [5.0, 6.0]  # b's unjournalled (bulk) change
    b.save()
    a.keypoints[3, 0, :2] = [7.0, 8.0]  # a's bulk change, made after b saved
    a.save()  # before: silently wrote a's stale copy over b's save
    back = Dataset.load(path)
    assert back.keypoints[0, 17, :2].tolist() == [1.0, 2.0]
    assert back.keypoints[1, 18, :2].tolist() == [3.0, 4.0]
    assert back.keypoints[2, 0, :2].tolist() == [5.0, 6.0]
    assert back.keypoints[3, 0, :2].tolist() == [7.0, 8.0]
    assert back.pending_edits() == 0
    # a holds the merged state now, and saving again changes nothing
    np.testing.assert_array_equal(a.keypoints, back.keypoints)


def test_journalled_edit_of_another_program_wins_over_a_bulk_change(tmp_path):
    path = _small(tmp_path)
    machine, human = Dataset.load(path), Dataset.load(path)
    machine.keypoints[0, layout.GRIP, :2] = [50.0, 50.0]  # e.g. toolkit correct, in memory
    machine.source[0, layout.GRIP] = layout.CORRECTED
    human.set_points(10, [layout.GRIP], [[9.0, 9.0, 2]], source="human")  # acknowledged
    human.save()
    with pytest.warns(UserWarning, match="1 values changed here were also changed"):
        machine.save()
    back = Dataset.load(path)
    assert back.keypoints[0, layout.GRIP, :2].tolist() == [9.0, 9.0]
    assert back.source[0, layout.GRIP] == layout.HUMAN


def test_structural_change_during_another_save_is_a_clear_conflict(tmp_path):
    path = _small(tmp_path)
    a, b = Dataset.load(path), Dataset.load(path)
    b.set_image_field(1, "stance", "x", journal=False)
    b.save()
    a.annotations = a.annotations.iloc[:-1].reset_index(drop=True)
    a.keypoints, a.keypoints_raw = a.keypoints[:-1], a.keypoints_raw[:-1]
    a.scores, a.source, a.bboxes = a.scores[:-1], a.source[:-1], a.bboxes[:-1]
    with pytest.raises(SaveConflictError, match="cannot be merged") as exc:
        a.save()
    assert isinstance(exc.value, RuntimeError) and isinstance(exc.value, InputError)
    assert Dataset.load(path).images.loc[0, "stance"] == "x"


def test_crash_between_save_and_journal_reset_applies_nothing_twice(tmp_path, monkeypatch):
    path = _small(tmp_path)
    a = Dataset.load(path)
    a.set_points(10, [0], [[1.0, 1.0, 2]])  # journalled
    b = Dataset.load(path)  # sees a's edit
    b.keypoints[0, 0, :2] = [5.0, 5.0]  # then a bulk change of the same point
    real = D.reset_journal

    def crash(_path):
        raise OSError("killed before the journal was reset")

    monkeypatch.setattr(D, "reset_journal", crash)
    with pytest.raises(OSError):
        b.save()
    monkeypatch.setattr(D, "reset_journal", real)
    assert read_journal(path / JOURNAL_FILE).entries  # the folded edit is still there
    back = Dataset.load(path)
    assert back.keypoints[0, 0, :2].tolist() == [5.0, 5.0]  # not re-applied over the save
    assert back.pending_edits() == 0
    a.set_points(11, [1], [[2.0, 2.0, 2]])  # appends after the folded entries
    assert Dataset.load(path).keypoints[1, 1, :2].tolist() == [2.0, 2.0]


def test_two_processes_editing_at_once_lose_nothing(tmp_path):
    res = _stress().two_writers(2.0, tmp_path, n=60)
    assert res["failures"] == 0, res.get("errors")
    assert res["unloadable"] == 0
    assert res["edits"] > 10 and res["saves"] >= 2
    assert res["lost"] == 0


def test_sigkill_at_random_moments_loses_nothing(tmp_path):
    res = _stress().kill_runs(3, tmp_path, n=60)
    assert res["runs"] == 3 and res["failures"] == 0
    assert res["acknowledged"] > 0
    assert res["lost"] == 0 and res["unloadable"] == 0
    assert res["stale_temp_files"] == 0


# ---------------------------------------------------------------------- toolkit label
_LABEL_KILLED = """
import os, signal, sys
sys.path.insert(0, {root!r})
import toolkit.dataset as D
from toolkit.dataset import Dataset
from toolkit.labels import label_dataset

D.BATCH_EDITS = 7  # several journal records, one fsync

def killed(self, *args, **kwargs):  # every edit is journalled: label is about to fold
    print("ack", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

if {when!r} == "fold":
    Dataset.save = killed
label_dataset({path!r}, {csv!r})
print("done", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("when", ["fold", "after"])
def test_a_killed_label_run_loses_nothing_acknowledged(tmp_path, when):
    n = 40
    path = _small(tmp_path, n)
    csv = tmp_path / "labels.csv"
    csv.write_text("file,stance,subject\n" + "".join(f"a{i}.jpg,cat_low,s{i}\n" for i in range(n)))
    script = _LABEL_KILLED.format(root=str(ROOT), when=when, path=str(path), csv=str(csv))
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == -9, proc.stderr
    assert ("ack" if when == "fold" else "done") in proc.stdout
    back = Dataset.load(path)
    assert back.images["stance"].tolist() == ["cat_low"] * n
    assert back.images["subject"].tolist() == [f"s{i}" for i in range(n)]
    assert back.pending_edits() == (2 * n if when == "fold" else 0)
    back.save()  # folds what the killed run journalled
    assert Dataset.load(path).images["stance"].tolist() == ["cat_low"] * n


# ---------------------------------------------------------------------- the journal
def test_journal_lines_check_themselves(tmp_path):
    path = _small(tmp_path)
    ds = Dataset.load(path)
    ds.set_points(10, [17], [[1.5, 2.5, 2]])
    lines = (path / JOURNAL_FILE).read_bytes().splitlines()
    entry = orjson.loads(lines[-1])
    assert set(entry) == {"c", "n", "e"} and entry["e"]["op"] == "set_points"
    # a flipped digit inside the edit is caught by the checksum, not applied
    (path / JOURNAL_FILE).write_bytes(b"\n".join(lines[:-1] + [lines[-1].replace(b"1.5", b"7.5")]))
    with pytest.warns(UserWarning, match="torn"):
        back = Dataset.load(path)
    assert back.keypoints[0, 17, 0] != 7.5


def test_torn_tail_does_not_swallow_the_next_edit(tmp_path):
    path = _small(tmp_path)
    ds = Dataset.load(path)
    ds.set_points(10, [17], [[1.0, 1.0, 2]])
    with open(path / JOURNAL_FILE, "ab") as fh:
        fh.write(b'{"c":"0badf00d","n":120,"e":{"op":"set_po')  # power cut mid-append
    with pytest.warns(UserWarning, match="torn"):
        ds.set_points(11, [18], [[2.0, 2.0, 2]])  # cuts the torn tail, then appends
    for _ in range(3):
        ds.set_points(12, [0], [[3.0, 3.0, 2]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing torn is left
        back = Dataset.load(path)
    assert back.keypoints[0, 17, :2].tolist() == [1.0, 1.0]
    assert back.keypoints[1, 18, :2].tolist() == [2.0, 2.0]
    assert back.keypoints[2, 0, :2].tolist() == [3.0, 3.0]


def test_old_journals_without_checksums_still_load(tmp_path):
    path = _small(tmp_path)
    old = [
        {"op": "set_points", "ann": 10, "idx": [17], "xyv": [[1.0, 2.0, 2]], "source": "human"},
        {"op": "set_image", "image": 2, "field": "stance", "value": "back_low"},
    ]
    data = b"".join(orjson.dumps({**op, "t": 1.0}) + b"\n" for op in old)
    # what the old code left after a torn line: the next append glued onto the fragment
    data += b'{"op": "set_points", "ann": 10, "idx": [18], "xy' + orjson.dumps(
        {"op": "set_points", "ann": 11, "idx": [0], "xyv": [[9.0, 9.0, 2]], "source": "human"}
    )
    (path / JOURNAL_FILE).write_bytes(data + b"\n")
    with pytest.warns(UserWarning, match="torn fragment"):
        back = Dataset.load(path)
    assert back.keypoints[0, 17, :2].tolist() == [1.0, 2.0]
    assert back.images.loc[1, "stance"] == "back_low"
    assert back.keypoints[1, 0, :2].tolist() == [9.0, 9.0]
    assert back.source[0, 18] == layout.IMPORTED
    back.save()
    assert Dataset.load(path).pending_edits() == 0


def test_edits_naming_ids_the_dataset_lacks_are_skipped_with_a_warning(tmp_path):
    path = _small(tmp_path)
    ds = Dataset.load(path)
    ds.set_points(10, [17], [[1.0, 2.0, 2]])
    with open(path / JOURNAL_FILE, "ab") as fh:
        fh.write(
            D.encode_entry(
                {"op": "set_points", "ann": 999, "idx": [1], "xyv": [[1, 1, 2]], "source": "human"}
            )
        )
    with pytest.warns(UserWarning, match="1 journalled edits name"):
        back = Dataset.load(path)
    assert back.keypoints[0, 17, :2].tolist() == [1.0, 2.0]


def test_bad_edits_are_refused_before_they_are_journalled(tmp_path):
    ds = Dataset.load(_small(tmp_path))
    with pytest.raises(ValueError, match="visibility"):
        ds.set_points(10, [1], [[1.0, 1.0, 0.5]])
    with pytest.raises(ValueError, match="coordinates"):
        ds.set_points(10, [1], [[1e300, 1.0, 2]])
    with pytest.raises(KeyError):
        ds.set_points(999, [1], [[1.0, 1.0, 2]])
    assert ds.pending_edits() == 0


# ---------------------------------------------------------------------- files
def test_files_honour_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        path = _small(tmp_path)
        Dataset.load(path).set_points(10, [1], [[1.0, 1.0, 2]])
        with staged_dir(tmp_path / "staged") as stage:
            atomic_write_bytes(stage / "x.json", b"{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((path / DATASET_FILE).stat().st_mode) == 0o640
    assert stat.S_IMODE((path / JOURNAL_FILE).stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "staged").stat().st_mode) == 0o750
    assert stat.S_IMODE((tmp_path / "staged" / "x.json").stat().st_mode) == 0o640
    # a replaced file keeps its own mode
    os.chmod(path / DATASET_FILE, 0o664)
    Dataset.load(path).save()
    assert stat.S_IMODE((path / DATASET_FILE).stat().st_mode) == 0o664


def test_stale_temp_files_of_killed_saves_are_removed(tmp_path):
    path = _small(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = path / f".{DATASET_FILE}.{dead.pid}.abc123.tmp"
    mine = path / f".{DATASET_FILE}.{os.getpid()}.xyz789.tmp"  # a live writer's: kept
    stale.write_bytes(b"half")
    mine.write_bytes(b"half")
    stage = tmp_path / f".out.{dead.pid}.q1w2e3.partial"
    stage.mkdir()
    Dataset.load(path).save()
    with staged_dir(tmp_path / "out"):
        pass
    assert not stale.exists() and mine.exists() and not stage.exists()


# ---------------------------------------------------------------------- media roots
def _hand_edit(path: Path, **fields) -> None:
    doc = orjson.loads((path / DATASET_FILE).read_bytes())
    doc.update(fields)
    (path / DATASET_FILE).write_bytes(orjson.dumps(doc))


@pytest.mark.parametrize("root", ["/", "/etc", "../../../../../../../../etc", "~", "~/.ssh"])
def test_media_root_outside_the_allowed_roots_is_refused(tmp_path, root, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home" / ".ssh").mkdir(parents=True)
    root = root.replace("~", str(tmp_path / "home"))
    path = _small(tmp_path)
    _hand_edit(path, media_root=root)
    with pytest.raises(MediaError, match="media_root") as exc:
        Dataset.load(path)
    assert exc.value.path == path / DATASET_FILE and "toolkit relink" in str(exc.value)
    res = CliRunner().invoke(
        cli, ["export", str(path), "--format", "yolo", "--out", str(tmp_path / "exp")]
    )
    assert res.exit_code == 2 and str(path / DATASET_FILE) in res.output
    assert not (tmp_path / "exp").exists()
    monkeypatch.setenv(D.ALLOW_ANY_MEDIA_ENV, "1")  # the explicit opt-out
    Dataset.load(path)


def test_a_symlinked_media_root_is_resolved_before_the_check(tmp_path):
    path = _small(tmp_path)
    (tmp_path / "innocent").symlink_to("/etc")
    _hand_edit(path, media_root=str(tmp_path / "innocent"))
    with pytest.raises(MediaError, match="/etc"):
        Dataset.load(path)


def test_media_inside_the_dataset_or_a_chosen_folder_is_fine(tmp_path):
    path = _small(tmp_path)
    for root in (".", "media", str(tmp_path / "elsewhere"), "../elsewhere"):
        _hand_edit(path, media_root=root)
        assert Dataset.load(path).media_root == root


def test_missing_media_names_the_relink_command(tmp_path):
    path = _small(tmp_path, n=2)
    ds = Dataset.load(path)
    with pytest.raises(MediaError, match=r"toolkit relink .* --media DIR") as exc:
        ds.require_media("export")
    assert "2 of 2" in str(exc.value) and exc.value.path == path / DATASET_FILE
    for i in range(2):
        (path / f"a{i}.jpg").write_bytes(b"x")
    ds.require_media()
    (path / "a1.jpg").unlink()
    (path / "a1.jpg").symlink_to("/etc/hostname")  # inside by name, outside for real
    assert ds.missing_media() == [path / "a1.jpg"]


def test_first_save_refuses_what_load_would_refuse(tmp_path):
    kp = np.full((1, 19, 3), 2.0)
    images = [{"id": 1, "file_name": "a.jpg", "width": 8, "height": 8, "x": {"deep": [[[]]]}}]
    ds = Dataset.from_records(images, [{"id": 1, "image_id": 1}], kp, media_root="/")
    with pytest.raises(InputError, match="would not load.*media_root"):
        ds.save(tmp_path / "ds")
    ok = Dataset.from_records(images, [{"id": 1, "image_id": 1}], kp)
    ok.images.at[0, "frame_index"] = -1
    with pytest.raises(InputError, match=r"would not load.*frame_index"):
        ok.save(tmp_path / "ds2")
