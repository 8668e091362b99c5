"""``toolkit import``/``export``/``info`` through Click: output, exit codes, nothing left behind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from toolkit.cli import main


def run(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(main, [str(a) for a in args])
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, res.output


def leftovers(parent: Path, name: str) -> list[str]:
    """Anything an aborted command left beside ``name`` (the target or a staging dir)."""
    return sorted(p.name for p in parent.iterdir() if name in p.name)


@pytest.fixture
def coco_dir(realdata, tmp_path) -> Path:
    dst = tmp_path / "coco"
    shutil.copytree(realdata / "mmpose" / "coco", dst)
    return dst


def test_help_lists_examples():
    code, out = run("import", "--help")
    assert code == 0 and "--images-from" in out and "Examples:" in out
    assert "toolkit import results.json --format coco --images-from gt.json" in out
    code, out = run("export", "--help")
    assert code == 0 and "--keypoints" in out and "toolkit export ds --format yolo" in out
    code, out = run("info", "--help")
    assert code == 0 and "--json" in out


def test_import_info_export_coco(coco_dir, tmp_path):
    ds = tmp_path / "ds"
    code, out = run("import", coco_dir / "test_coco.json", "--out", ds)
    assert code == 0, out
    assert "images: 4" in out and "annotations: 14" in out and "skipped: 0" in out
    assert "import_report.json" in out
    report = json.loads((ds / "import_report.json").read_text())
    assert report["format"] == "coco" and report["n_annotations"] == 14

    code, out = run("info", ds)
    assert code == 0
    assert "annotations: 14" in out and "stick_grip" in out and "pending journal edits" in out
    code, out = run("info", ds, "--json")
    summary = json.loads(out)
    assert summary["n_annotations"] == 14
    assert summary["missing_points"]["stick_tip"] == 14
    assert summary["provenance"]["all"]["imported"] == 14 * 19
    assert summary["pending_edits"] == 0

    code, out = run(
        "export", ds, "--format", "coco", "--keypoints", "17", "--out", tmp_path / "back.json"
    )
    assert code == 0, out
    original = json.loads((coco_dir / "test_coco.json").read_text())
    assert json.loads((tmp_path / "back.json").read_text()) == original
    code, out = run("export", ds, "--format", "coco", "--out", tmp_path / "back.json")
    assert code == 2 and "--overwrite" in out
    code, out = run(
        "export", ds, "--format", "coco", "--out", tmp_path / "back.json", "--overwrite"
    )
    assert code == 0
    assert len(json.loads((tmp_path / "back.json").read_text())["categories"][0]["keypoints"]) == 19


def test_info_counts_pending_edits_and_stances(coco_dir, tmp_path):
    from toolkit.dataset import Dataset

    run("import", coco_dir / "test_coco.json", "--out", tmp_path / "ds")
    ds = Dataset.load(tmp_path / "ds")
    ds.set_image_field(785, "stance", "forward_high")
    ds.set_points(int(ds.annotations["id"].iloc[0]), [17, 18], [[1, 2, 2], [3, 4, 2]])
    code, out = run("info", tmp_path / "ds", "--json")
    s = json.loads(out)
    assert s["pending_edits"] == 2
    assert s["stances"]["forward_high"] == 1 and s["provenance"]["stick"]["human"] == 2


def _results(coco_dir: Path, tmp_path: Path) -> Path:
    gt = json.loads((coco_dir / "test_coco.json").read_text())
    res = [
        {"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 0.5}
        for a in gt["annotations"]
    ]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(res))
    return path


def test_import_results_file(coco_dir, tmp_path):
    res = _results(coco_dir, tmp_path)
    code, out = run(
        "import",
        res,
        "--format",
        "coco",
        "--images-from",
        coco_dir / "test_coco.json",
        "--out",
        tmp_path / "pred",
    )
    assert code == 0, out and "annotations: 14" in out
    s = json.loads(run("info", tmp_path / "pred", "--json")[1])
    prov = s["provenance"]["all"]
    # What the model gave is 'predicted'; the stick (absent from a 17-point model) and points
    # it did not give stay 'imported'.
    assert prov["predicted"] + prov["imported"] == 14 * 19
    assert s["provenance"]["stick"]["imported"] == 14 * 2
    assert prov["predicted"] > 14 * 10


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _mutated(coco_dir: Path, fn) -> Path:
    path = coco_dir / "test_coco.json"
    doc = json.loads(path.read_text())
    fn(doc)
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    return path


def _with_nan(coco_dir: Path) -> Path:
    path = _mutated(coco_dir, lambda d: None)
    path.write_text(path.read_text().replace('"keypoints": [\n', '"keypoints": [NaN,', 1))
    return path


BAD = {
    "missing source": (lambda c, t: t / "nope.json", [], "does not exist"),
    "empty file": (lambda c, t: _write(t / "e.json", b""), ["--format", "coco"], "empty"),
    "not UTF-8": (
        lambda c, t: _write(t / "u.json", b'{"images": "\xff"}'),
        ["--format", "coco"],
        "UTF-8",
    ),
    "not JSON": (
        lambda c, t: _write(t / "j.json", b'{"images": [1,'),
        ["--format", "coco"],
        "valid JSON",
    ),
    "NaN": (lambda c, t: _with_nan(c), [], "NaN"),
    "wrong keypoint count": (
        lambda c, t: _mutated(c, lambda d: d["annotations"][2]["keypoints"].extend([1, 2, 2])),
        [],
        "annotations[2].keypoints",
    ),
    "duplicate image id": (
        lambda c, t: _mutated(c, lambda d: d["images"][1].__setitem__("id", d["images"][0]["id"])),
        [],
        "images[1].id",
    ),
    "escaping file name": (
        lambda c, t: _mutated(
            c, lambda d: d["images"][0].__setitem__("file_name", "../../etc/x.jpg")
        ),
        [],
        "images[0].file_name",
    ),
    "missing field": (
        lambda c, t: _mutated(c, lambda d: d["annotations"][0].pop("image_id")),
        [],
        "annotations[0].image_id",
    ),
    "results without images": (lambda c, t: _results(c, t), ["--format", "coco"], "--images-from"),
    "option of another format": (
        lambda c, t: c / "test_coco.json",
        ["--video", "x.mp4"],
        "--video: not used by the coco format",
    ),
    "bad regex": (
        lambda c, t: c / "test_coco.json",
        ["--subject-regex", "(unclosed"],
        "regular expression",
    ),
    "unknown format": (lambda c, t: _write(t / "x.txt", b"hello"), [], "could not recognise"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_exits_2_and_writes_nothing(coco_dir, tmp_path, case):
    make, extra, match = BAD[case]
    src = make(coco_dir, tmp_path)
    out_parent = tmp_path / "outs"
    out_parent.mkdir()
    code, out = run("import", src, "--out", out_parent / "ds", *extra)
    assert code == 2, out
    assert match in out, out
    assert "Example: toolkit import" in out
    assert leftovers(out_parent, "ds") == []


def test_existing_out_is_refused_and_kept(coco_dir, tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, msg = run("import", coco_dir / "test_coco.json", "--out", out)
    assert code == 2 and "already exists" in msg
    assert (out / "keep.txt").read_text() == "mine"
    code, msg = run("import", coco_dir / "test_coco.json", "--out", out, "--overwrite")
    assert code == 0 and (out / "dataset.json").exists() and not (out / "keep.txt").exists()


def test_failed_overwrite_keeps_the_old_dataset(coco_dir, tmp_path):
    out = tmp_path / "ds"
    assert run("import", coco_dir / "test_coco.json", "--out", out)[0] == 0
    before = (out / "dataset.json").read_bytes()
    bad = _mutated(coco_dir, lambda d: d["annotations"][0]["keypoints"].pop())
    code, _ = run("import", bad, "--out", out, "--overwrite")
    assert code == 2 and (out / "dataset.json").read_bytes() == before
    assert leftovers(tmp_path, ".ds") == []


def test_skip_bad_imports_the_rest(coco_dir, tmp_path):
    bad = _mutated(coco_dir, lambda d: d["annotations"][0]["keypoints"].pop())
    code, out = run("import", bad, "--out", tmp_path / "ds", "--skip-bad")
    assert code == 0 and "skipped: 1" in out
    report = json.loads((tmp_path / "ds" / "import_report.json").read_text())
    assert (
        report["skipped"][0]["line"]
        and "annotations[0].keypoints" in (report["skipped"][0]["reason"])
    )


def test_export_and_info_errors(tmp_path):
    code, out = run("export", tmp_path / "none", "--format", "coco", "--out", tmp_path / "x")
    assert code == 2 and "dataset.json" in out
    code, out = run("info", tmp_path / "none")
    assert code == 2 and "Example: toolkit info" in out
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "dataset.json").write_text('{"version": 1}')
    code, out = run("info", tmp_path / "broken")
    assert code == 2 and "categories" in out


# ---------------------------------------------------------------------- YOLO through the CLI
def test_yolo_import_export_round_trip(samples_root, tmp_path):
    pytest.importorskip("toolkit.io.yolo")
    code, out = run(
        "import",
        samples_root / "data.yaml",
        "--out",
        tmp_path / "ds",
        "--subject-regex",
        r"^(s\d+)_",
    )
    assert code == 0, out
    assert "stances: 12" in out and "subjects: 8" in out
    code, out = run("export", tmp_path / "ds", "--format", "yolo", "--out", tmp_path / "y")
    assert code == 0, out
    assert (tmp_path / "y" / "data.yaml").exists()
    code, out = run("import", tmp_path / "y" / "data.yaml", "--out", tmp_path / "ds2")
    assert code == 0, out
    a = json.loads(run("info", tmp_path / "ds", "--json")[1])
    b = json.loads(run("info", tmp_path / "ds2", "--json")[1])
    assert a["n_annotations"] == b["n_annotations"] and a["stances"] == b["stances"]
    code, out = run(
        "export",
        tmp_path / "ds",
        "--format",
        "yolo",
        "--keypoints",
        "17",
        "--out",
        tmp_path / "y17",
    )
    assert code == 2 and "--keypoints 17" in out


def test_yolo_bad_label_exits_2(samples_root, tmp_path):
    pytest.importorskip("toolkit.io.yolo")
    src = tmp_path / "y"
    shutil.copytree(samples_root, src, ignore=shutil.ignore_patterns("videos"))
    label = next((src / "labels").rglob("*.txt"))
    label.write_text("0 0.5 0.5 0.2 nan\n")
    code, out = run("import", src / "data.yaml", "--out", tmp_path / "ds")
    assert code == 2 and label.name in out
    assert leftovers(tmp_path, "ds") == []
    code, out = run(
        "import",
        src / "data.yaml",
        "--out",
        tmp_path / "ds",
        "--skip-bad",
        "--images-from",
        "x.json",
    )
    assert code == 2 and "--images-from: not used by the yolo format" in out


# ---------------------------------------------------------------------- messages (issue 12)
@pytest.mark.parametrize(
    "command", ["import", "export", "info", "label", "samples", "detect", "evaluate", "demo"]
)
def test_every_command_help_has_examples(command):
    code, out = run(command, "--help")
    assert code == 0 and "Examples:" in out
    examples = out.split("Examples:")[1]
    assert f"toolkit {command}" in examples


def test_error_example_fits_the_format(coco_dir, tmp_path):
    # A COCO problem shows a COCO example, not the data.yaml one.
    bad = _mutated(coco_dir, lambda d: d["annotations"][0]["keypoints"].pop())
    code, out = run("import", bad, "--out", tmp_path / "ds")
    assert code == 2 and "Example: toolkit import person_keypoints_val2017.json" in out
    # An option error shows an example that uses that option.
    code, out = run(
        "import", coco_dir / "test_coco.json", "--out", tmp_path / "ds", "--subject-regex", "("
    )
    assert code == 2 and "Example: toolkit import" in out
    assert "--subject-regex" in out.split("Example:")[1]
    code, out = run("export", tmp_path / "none", "--format", "yolo", "--out", tmp_path / "y")
    assert code == 2 and "Example: toolkit export ds --format yolo" in out


def test_export_notes_are_not_raw_python_warnings(samples_root, tmp_path):
    from toolkit.dataset import Dataset

    assert run("import", samples_root / "data.yaml", "--out", tmp_path / "ds")[0] == 0
    ds = Dataset.load(tmp_path / "ds")
    ds.set_points(int(ds.annotations["id"].iloc[0]), [0], [[-40.0, 5.0, 2]])  # off the image
    ds.save()
    res = CliRunner().invoke(
        main, ["export", str(tmp_path / "ds"), "--format", "yolo", "--out", str(tmp_path / "y")]
    )
    assert res.exit_code == 0, res.output
    assert "note: YOLO export: 1 keypoints outside their image were clipped" in res.output
    assert "UserWarning" not in res.output and ".py:" not in res.output


def test_export_of_an_empty_dataset(tmp_path):
    import numpy as np

    from toolkit.dataset import Dataset

    Dataset.from_records([], [], np.zeros((0, 19, 3))).save(tmp_path / "empty")
    code, out = run("export", tmp_path / "empty", "--format", "yolo", "--out", tmp_path / "y")
    assert code == 2 and "at least one image" in out and "reshape" not in out
    assert not (tmp_path / "y").exists()


def test_yolo_note_worded_like_coco(coco_dir, realdata, tmp_path):
    code, coco_out = run("import", coco_dir / "test_coco.json", "--out", tmp_path / "a")
    code, yolo_out = run(
        "import", realdata / "ultralytics-hub" / "coco8-pose" / "coco8-pose.yaml", "--out",
        tmp_path / "b",
    )  # fmt: skip
    assert code == 0
    for out in (coco_out, yolo_out):
        assert "annotations have 17 keypoints: the stick (stick_grip, stick_tip) is marked" in out
        assert "(give it in the labels CSV or with --subject-regex RE)" in out


def test_yaml_syntax_error_through_the_cli(tmp_path):
    bad = _write(tmp_path / "data.yaml", b"train: images\nnames: [person\nkpt_shape: [19, 3]\n")
    code, out = run("import", bad, "--out", tmp_path / "ds")
    assert code == 2 and f"{bad}:" in out and "Expected valid YAML" in out
    assert "could not recognise" not in out
    assert "Example: toolkit import samples/arnis/data.yaml" in out


# ---------------------------------------------------------------------- issue 14
def test_yolo_labels_csv_with_a_bare_carriage_return_exits_2_with_file_and_line(
    samples_root, tmp_path
):
    labels = tmp_path / "stances.csv"
    labels.write_bytes(b"file,stance\nforward_high/s01_000.jpg,forward_high\na.jpg,for\rward\n")
    code, out = run(
        "import", samples_root / "data.yaml", "--out", tmp_path / "ds", "--labels", labels
    )
    assert code == 2, out
    assert f"{labels}:3:" in out and "cannot be parsed" in out
    assert leftovers(tmp_path, "ds") == []


def test_format_choices_come_from_the_registry(monkeypatch):
    from toolkit import io

    formats = io.formats()
    fake = io.Format(name="fake", detect=lambda p: False, read=lambda p: None)
    monkeypatch.setitem(io._REGISTRY, "fake", fake)
    code, out = run("import", "--help")
    assert code == 0 and "fake" in out  # readable choices: every registered format
    code, out = run("export", "--help")
    assert code == 0 and "fake" not in out  # no writer: not an export choice
    assert io.format_names("write") == sorted(n for n, f in formats.items() if f.write)
    assert set(io.format_names("read")) == {n for n, f in formats.items() if f.read} | {"fake"}
    code, out = run("export", "ds", "--format", "fake", "--out", "x")
    assert code == 2 and "'fake' is not one of" in out


def test_a_bug_is_not_reported_as_bad_input(tmp_path, monkeypatch):
    """A KeyError from a bug keeps its traceback (exit 1); bad input stays exit 2."""
    import toolkit.info

    def broken(path):
        return {}["missing"]

    monkeypatch.setattr(toolkit.info, "info", broken)
    res = CliRunner().invoke(main, ["info", str(tmp_path)])
    assert res.exit_code == 1 and isinstance(res.exception, KeyError)
    assert "Example:" not in res.output
    monkeypatch.undo()
    code, out = run("info", tmp_path / "nope")
    assert code == 2 and "Example: toolkit info" in out
