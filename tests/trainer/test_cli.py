"""The ``trainer`` command line: exit codes, messages, refusals."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from trainer.cli import main

FAST = ["--epochs", "1", "--batch-size", "8", "-q"]


@pytest.fixture(scope="module")
def ds_dir(tmp_path_factory, toy_dataset):
    root = tmp_path_factory.mktemp("cli")
    ds = toy_dataset(root, n_subjects=3, per_class=2, image_size=64)
    ds.save(root / "ds")
    return root / "ds"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_every_command_help_has_examples():
    for name in ("fit", "ablate", "export", "score", "detector"):
        res = run(name, "--help")
        assert res.exit_code == 0 and "Examples:" in res.output, name
        assert f"trainer {name}" in res.output or name == "detector"


def test_help_lists_commands_lazily():
    res = run("--help")
    assert res.exit_code == 0
    for name in ("fit", "ablate", "export"):
        assert name in res.output
    import importlib.util

    for name in ("score", "detector"):
        present = importlib.util.find_spec(f"trainer.commands.{name}_cmd") is not None
        assert (f"  {name} " in res.output) == present


def test_fit_export_and_refusals(ds_dir, tmp_path):
    out = tmp_path / "run"
    res = run("fit", ds_dir, "--out", out, "--model", "graph", "--folds", "3", *FAST)
    assert res.exit_code == 0, res.output
    assert "accuracy" in res.output and "s01" in res.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "graph" and len(metrics["folds"]) == 3
    res = run("fit", ds_dir, "--out", out, "--model", "graph", "--folds", "3", *FAST)
    assert res.exit_code == 2 and "already exists" in res.output and "--overwrite" in res.output
    res = run("export", out, "--out", tmp_path / "m.onnx", "--ensemble")
    assert res.exit_code == 0, res.output
    assert "parity" in res.output and (tmp_path / "m.onnx").exists()
    res = run("export", tmp_path, "--out", tmp_path / "x.onnx")
    assert res.exit_code == 2 and "metrics.json" in res.output


def test_bad_taxonomy_and_unknown_labels_exit_2(ds_dir, tmp_path):
    bad = tmp_path / "tax.json"
    bad.write_text(json.dumps({"stances": [{"name": "open_high", "family": 3}]}))
    res = run("fit", ds_dir, "--out", tmp_path / "r1", "--taxonomy", bad, *FAST)
    assert res.exit_code == 2 and "taxonomy" in res.output and "Example:" in res.output
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"stances": [{"name": "open_high"}, {"name": "closed_low"}]}))
    res = run("fit", ds_dir, "--out", tmp_path / "r2", "--taxonomy", other, *FAST)
    assert res.exit_code == 2 and "open_low" in res.output
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()


def test_group_column_required_unless_none(tmp_path, toy_dataset):
    ds = toy_dataset(tmp_path, n_subjects=2, per_class=2, image_size=64)
    ds.images["subject"] = None
    ds.save(tmp_path / "ds")
    res = run("fit", tmp_path / "ds", "--out", tmp_path / "r", "--model", "graph", *FAST)
    assert res.exit_code == 2 and "--group none" in res.output
    res = run(
        "fit",
        tmp_path / "ds",
        "--out",
        tmp_path / "r",
        "--model",
        "graph",
        "--group",
        "none",
        "--folds",
        "2",
        *FAST,
    )
    assert res.exit_code == 0, res.output
    assert "OPTIMISTIC" in res.output


def test_angles_csv_and_ablate(ds_dir, tmp_path):
    pytest.importorskip("trainer.baselines")
    csv = tmp_path / "angles.csv"
    rows = ["Camera_Angle,knee,Frame_ID,elbow,stance,subject"]
    for s in range(4):
        for k in range(6):
            rows.append(
                f"{'front' if k % 3 else 'side'},{100 + 30 * (k % 2) + s},f_{k:03d},"
                f"{40 + 50 * (k % 2)},{'ab'[k % 2]},s{s}"
            )
    csv.write_text("\n".join(rows) + "\n")
    res = run(
        "fit",
        "--angles-csv",
        csv,
        "--label-column",
        "stance",
        "--group-column",
        "subject",
        "--folds",
        "2",
        "--out",
        tmp_path / "rf",
        "-q",
    )
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "rf" / "metrics.json").read_text())["model"] == "angles-rf"
    # the text columns users' CSVs have are left out with a note naming them; a flat taxonomy
    # (no taxonomy file) has no family/chamber columns in the table, so no nan there
    assert "ignored: Camera_Angle, Frame_ID" in res.output
    assert "nan" not in res.output and "family" not in res.output
    assert "np.str_" not in res.output
    res = run(
        "fit",
        "--angles-csv",
        csv,
        "--group-column",
        "subject",
        "--feature-columns",
        "knee",
        "--folds",
        "2",
        "--out",
        tmp_path / "rf_knee",
        "-q",
    )
    assert res.exit_code == 0, res.output and "ignored" not in res.output
    cfg = (tmp_path / "rf_knee" / "config.yaml").read_text()
    assert "1 feature columns" in cfg
    nogroup = tmp_path / "nogroup.csv"
    nogroup.write_text("\n".join(r.rsplit(",", 1)[0] for r in rows) + "\n")
    res = run("fit", "--angles-csv", nogroup, "--out", tmp_path / "rf2", "-q")
    assert res.exit_code == 2 and "--group-column" in res.output
    res = run(
        "fit",
        "--angles-csv",
        csv,
        "--group-column",
        "subject",
        "--model",
        "graph",
        "--out",
        tmp_path / "rf3",
        "-q",
    )
    assert res.exit_code == 2 and "angles-rf" in res.output
    res = run(
        "ablate",
        ds_dir,
        "--out",
        tmp_path / "abl",
        "--models",
        "graph,angles-rf,coords-mlp",
        "--folds",
        "3",
        *FAST,
    )
    assert res.exit_code == 0, res.output
    assert "angles-rf" in res.output and "graph" in res.output and "coords-mlp" in res.output
    assert "worst" in res.output and "Δ vs best baseline" in res.output
    assert (tmp_path / "abl" / "graph" / "metrics.json").exists()
    assert (tmp_path / "abl" / "ablation.csv").exists()
    res = run("ablate", ds_dir, "--out", tmp_path / "abl2", "--models", "resnet")
    assert res.exit_code == 2


def test_engine_options_on_every_scaling_command(ds_dir, tmp_path, monkeypatch):
    for name in ("fit", "ablate", "score"):
        res = run(name, "--help")
        assert all(o in res.output for o in ("--engine", "--workers", "--address")), name
    res = run("fit", ds_dir, "--out", tmp_path / "r", "--address", "head:6379", *FAST)
    assert res.exit_code == 2 and "--engine ray" in res.output
    monkeypatch.setitem(__import__("sys").modules, "ray", None)  # as if Ray were not installed
    res = run("ablate", ds_dir, "--out", tmp_path / "a", "--engine", "ray", *FAST)
    assert res.exit_code == 2 and "arnis-suite[distributed]" in res.output
    assert not (tmp_path / "r").exists()
