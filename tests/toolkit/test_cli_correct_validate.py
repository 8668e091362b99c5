"""``toolkit correct`` and ``toolkit validate`` through the CLI: files, exit codes, dry runs."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from toolkit import layout
from toolkit.cli import main
from toolkit.dataset import Dataset
from toolkit.schema import validate as schema_validate

_spec = importlib.util.spec_from_file_location(
    "_correct_helpers", Path(__file__).with_name("test_correct.py")
)
H = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(H)


def tree_hash(d: Path) -> dict[str, str]:
    return {
        str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def dataset(tmp_path) -> tuple[Path, np.ndarray, np.ndarray]:
    """A saved dataset with 3 too-long sticks, 2 swaps and 1 off grip; returns dir, clean, bad."""
    kp0, stance, short = H.make_poses(120, seed=21)
    kp = kp0.copy()
    ok = np.flatnonzero(~short)
    long_rows, swap_rows, grip_rows = ok[:3], ok[3:5], ok[5:6]
    g = kp[long_rows, layout.GRIP, :2]
    kp[long_rows, layout.TIP, :2] = g + 1.8 * (kp0[long_rows, layout.TIP, :2] - g)
    for r in swap_rows:
        kp[r, [layout.GRIP, layout.TIP]] = kp[r, [layout.TIP, layout.GRIP]]
    kp[grip_rows, layout.GRIP, :2] += (55, 40)
    d = tmp_path / "ds"
    H.make_dataset(kp, stance).save(d)
    return d, kp0, np.r_[long_rows, swap_rows, grip_rows]


def test_correct_dry_run_writes_nothing(dataset):
    d, _, bad = dataset
    before = tree_hash(d)
    res = invoke("correct", str(d), "--dry-run", "--no-images")
    assert res.exit_code == 0, res.output
    assert "would change" in res.output and "dry run: nothing written" in res.output
    assert "too_long" in res.output and "swap" in res.output
    assert tree_hash(d) == before


def test_correct_saves_with_provenance_log_and_revert(dataset):
    d, clean, bad = dataset
    raw = Dataset.load(d).keypoints_raw.copy()
    res = invoke("correct", str(d), "--no-images")
    assert res.exit_code == 0, res.output
    ds = Dataset.load(d)
    changed_rows = np.flatnonzero((ds.source[:, 17:] == layout.CORRECTED).any(1))
    # Without images only the impossible geometry is decisive (the too-long sticks, the grip
    # far off a confident wrist); the swaps are proposed for review.
    longs, grips = bad[:3], bad[5:]
    bad = np.r_[longs, grips]
    assert set(changed_rows) == set(bad)
    assert "proposed, not changed" in res.output
    assert np.array_equal(ds.keypoints_raw, raw, equal_nan=True)
    err = np.hypot(*(ds.keypoints[longs, layout.TIP, :2] - clean[longs, layout.TIP, :2]).T)
    assert err.max() < 0.12 * 140
    g_err = np.hypot(*(ds.keypoints[grips, layout.GRIP, :2] - clean[grips, layout.GRIP, :2]).T)
    assert g_err.max() < 0.1 * 140
    log = pd.read_csv(d / "corrections.csv")
    assert {"before_x", "before_y", "after_x", "after_y", "reason", "keypoint", "ann_id"} <= set(
        log.columns
    )
    assert set(log["ann_id"]) == set(ds.annotations["id"].to_numpy()[bad])
    # a person fixes one point; revert must keep it and restore the rest
    aid = int(ds.annotations["id"][bad[0]])
    ds.set_points(aid, [layout.TIP], [[11.0, 12.0, 2]], "human")
    ds.save()
    res = invoke("correct", str(d), "--revert")
    assert res.exit_code == 0, res.output
    ds = Dataset.load(d)
    assert ds.keypoints[bad[0], layout.TIP].tolist() == [11.0, 12.0, 2]
    rest = np.setdiff1d(np.arange(len(ds)), bad[:1])
    assert np.array_equal(ds.keypoints[rest], raw[rest], equal_nan=True)
    assert not (ds.source == layout.CORRECTED).any()
    assert len(pd.read_csv(d / "corrections.csv")) > len(log)  # appended, not replaced


def test_correct_forearm_ratio_method(dataset):
    d, _, _ = dataset
    res = invoke(
        "correct",
        str(d),
        "--method",
        "forearm-ratio",
        "--alpha",
        "2.7",
        "--max-deviation",
        "45",
        "--show",
        "0",
    )
    assert res.exit_code == 0, res.output
    assert "forearm_ratio" in res.output
    ds = Dataset.load(d)
    assert (ds.source[:, layout.TIP] == layout.CORRECTED).all()


def test_validate_exit_codes_follow_fail_on(dataset, tmp_path):
    d, _, _ = dataset
    assert invoke("validate", str(d), "--no-vae", "--no-images").exit_code == 1
    assert (
        invoke("validate", str(d), "--no-vae", "--no-images", "--fail-on", "never").exit_code == 0
    )
    invoke("correct", str(d), "--no-images")
    res = invoke("validate", str(d), "--no-vae", "--no-images")
    assert res.exit_code == 1, res.output  # the swaps wait for a person
    assert "stick.swap" in res.output and "stick.too_long" not in res.output
    doc = json.loads((d / "validation.json").read_text())
    swaps = [f for f in doc["findings"] if f["code"] == "stick.swap"]
    assert len(swaps) == 2 and all(f["proposal"]["method"] == "swap" for f in swaps)


def test_validate_json_to_stdout_and_report_folder(dataset, tmp_path):
    d, _, _ = dataset
    res = CliRunner().invoke(
        main,
        ["validate", str(d), "--format", "json", "--no-vae", "--no-images", "--fail-on", "never"],
        catch_exceptions=False,
    )
    assert res.exit_code == 0
    doc = json.loads(res.stdout)
    schema_validate(doc, "validation_report")
    assert doc["summary"]["by_code"]["stick.too_long"] == 3
    assert (d / "validation.json").exists()  # stored for the viewer
    schema_validate(json.loads((d / "validation.json").read_text()), "validation_report")
    qa = tmp_path / "qa"
    res = invoke("validate", str(d), "--report", str(qa), "--no-vae", "--no-images")
    assert res.exit_code == 1
    assert sorted(p.name for p in qa.iterdir()) == [
        "findings.csv",
        "report.html",
        "report.json",
        "report.txt",
    ]
    qa2 = tmp_path / "qa2"
    invoke("validate", str(d), "--report", str(qa2), "--format", "html", "--no-vae", "--no-images")
    assert [p.name for p in qa2.iterdir()] == ["report.html"]


def test_validate_no_store_and_bad_input(dataset, tmp_path):
    d, _, _ = dataset
    (d / "validation.json").unlink(missing_ok=True)
    invoke("validate", str(d), "--no-vae", "--no-images", "--no-store")
    assert not (d / "validation.json").exists()
    res = CliRunner().invoke(main, ["validate", str(tmp_path / "nope")])
    assert res.exit_code == 2
    assert "dataset.json" in res.output and "Example" in res.output
    res = CliRunner().invoke(main, ["correct", str(tmp_path / "nope")])
    assert res.exit_code == 2


def test_missing_media_is_exit_2_naming_relink(dataset):
    """A moved dataset: the commands that read pixels stop with exit 2 and say how to relink
    (or how to run without the images).
    """
    d, _, _ = dataset
    for args in (("validate", "--no-vae"), ("correct",), ("export", "--format", "yolo", "--out",
                                                          str(d.parent / "y"))):  # fmt: skip
        res = CliRunner().invoke(main, [args[0], str(d), *args[1:]])
        assert res.exit_code == 2, res.output
        assert "toolkit relink" in res.output, res.output
    assert not (d.parent / "y").exists()
