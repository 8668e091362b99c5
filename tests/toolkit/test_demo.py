"""``toolkit demo``: the whole loop end to end at a tiny size, and its plumbing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from toolkit.cli import main
from toolkit.demo import plan
from toolkit.queue import ReviewQueue


def test_demo_runs_end_to_end(tmp_path, samples_root, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(
        main,
        ["demo", "--out", "d", "--folds", "2", "--epochs", "1", "--no-vae", "--no-video", "-q"],
    )
    assert r.exit_code == 0, r.output
    out = r.output
    # every step printed as the command a user would type, in order
    cmds = [ln[2:] for ln in out.splitlines() if ln.startswith("$ ")]
    assert [c.split()[:2] for c in cmds] == [
        ["toolkit", "import"],
        ["toolkit", "correct"],
        ["toolkit", "validate"],
        ["trainer", "fit"],
        ["trainer", "export"],
        ["trainer", "score"],
    ]
    assert "--folds 2 --group subject" in cmds[3]
    # the summary and the exact viewer command
    assert "stance accuracy (graph, 2-fold by subject):" in out
    assert "correction fixed" in out and "frames wait for review" in out
    assert "viewer d/dataset --queue d/queue.json" in out
    d = tmp_path / "d"
    for f in (
        "dataset/dataset.json",
        "qa/report.html",
        "run/model.onnx",
        "run/metrics.json",
        "queue.json",
        "dataset/corrections.csv",
        "dataset/validation.json",
    ):
        assert (d / f).is_file(), f
    q = ReviewQueue.load(d / "queue.json")
    assert len(q) > 0 and q.dataset_path().resolve() == (d / "dataset").resolve()
    doc = json.loads((d / "demo.json").read_text())
    assert doc["status"] == "done" and 0 <= doc["accuracy_mean"] <= 1
    assert doc["queue"]["pending"] == len(q) and sum(doc["corrections"].values()) > 0
    ds = json.loads((d / "dataset" / "dataset.json").read_text())
    assert all("predictions" in a for a in ds["annotations"])
    # an existing --out is refused without --overwrite
    r = CliRunner().invoke(main, ["demo", "--out", "d"])
    assert r.exit_code == 2 and "already exists" in r.output


def test_demo_refuses_to_delete_a_folder_that_is_not_a_demo(tmp_path):
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "thesis.tex").write_text("x")
    r = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "precious"), "--overwrite"])
    assert r.exit_code == 2 and "not a demo folder" in r.output
    assert (tmp_path / "precious" / "thesis.tex").exists()


def test_plan_includes_the_video_as_a_second_dataset(samples_root, tmp_path):
    steps = plan(tmp_path / "d", samples_root)
    names = [s.name for s in steps]
    assert names == [
        "import",
        "correct",
        "validate",
        "fit",
        "export",
        "score",
        "import video",
        "correct video",
        "score video",
    ]
    fit = steps[3]
    assert fit.program == "trainer" and "--folds" in fit.args
    assert fit.args[fit.args.index("--folds") + 1] == "5"
    assert fit.argv()[:3] == [sys.executable, "-m", "trainer.cli"]
    vid = steps[6].args
    assert "--video" in vid and vid[vid.index("--video") + 1].endswith(".mp4")
    full = plan(tmp_path / "d", samples_root, full=True, video=False)
    assert len(full) == 6 and full[3].args[full[3].args.index("--model") + 1] == "geopose"


def test_toolkit_demo_does_not_import_trainer_or_viewer():
    code = (
        "import sys, toolkit.demo, toolkit.commands.demo_cmd; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('trainer', 'viewer')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert r.returncode == 0, r.stdout + r.stderr
