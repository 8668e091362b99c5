"""``trainer fit``/``ablate``/``score`` on the Ray engine give the local engine's results."""

from __future__ import annotations

import json
import shutil

import numpy as np
import orjson
import pandas as pd
import pytest
from click.testing import CliRunner

from trainer.cli import main

# One Ray instance at a time in a test process: every Ray test runs in this xdist group.
pytestmark = pytest.mark.xdist_group("ray")

FAST = ["--epochs", "2", "--batch-size", "8", "-q"]
#: Wall-clock fields: the only ones allowed to differ between two runs.
TIMING = ("seconds", "seconds_total", "seconds_per_fold_mean")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def without_timing(doc):
    if isinstance(doc, dict):
        return {k: without_timing(v) for k, v in doc.items() if k not in TIMING}
    if isinstance(doc, list):
        return [without_timing(v) for v in doc]
    return doc


def same_run(a, b) -> None:
    """Two run folders hold the same metrics, split, out-of-fold probabilities and folds."""
    ma = json.loads((a / "metrics.json").read_text())
    mb = json.loads((b / "metrics.json").read_text())
    assert without_timing(ma) == without_timing(mb)
    for name in ("folds.csv", "oof_probabilities.csv", "confusion_matrix.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    for fold in sorted((a / "folds").iterdir()):
        np.testing.assert_array_equal(
            np.load(fold / "proba.npy"), np.load(b / "folds" / fold.name / "proba.npy")
        )


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray (2 CPUs) for the module; the engines join it instead of starting one."""
    ray = pytest.importorskip("ray")
    import logging
    import os

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level=logging.ERROR,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
    )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def ds_dir(tmp_path_factory, toy_dataset):
    root = tmp_path_factory.mktemp("engine")
    ds = toy_dataset(root, n_subjects=3, per_class=2, image_size=64)
    ds.save(root / "ds")
    return root / "ds"


def test_fit_on_ray_matches_local(ds_dir, tmp_path, ray_instance):
    common = ["fit", ds_dir, "--model", "graph", "--folds", "3", "--seed", "3", *FAST]
    local = run(*common, "--out", tmp_path / "local")
    assert local.exit_code == 0, local.output
    remote = run(*common, "--out", tmp_path / "ray", "--engine", "ray", "--workers", "2")
    assert remote.exit_code == 0, remote.output
    same_run(tmp_path / "local", tmp_path / "ray")
    assert not list(tmp_path.glob(".*.partial"))


def test_ablate_on_ray_matches_local(ds_dir, tmp_path, ray_instance):
    common = ["ablate", ds_dir, "--models", "graph,angles-rf,coords-mlp", "--folds", "3", *FAST]
    local = run(*common, "--out", tmp_path / "local")
    assert local.exit_code == 0, local.output
    remote = run(*common, "--out", tmp_path / "ray", "--engine", "ray")
    assert remote.exit_code == 0, remote.output
    for model in ("graph", "angles-rf", "coords-mlp"):
        same_run(tmp_path / "local" / model, tmp_path / "ray" / model)
    a = pd.read_csv(tmp_path / "local" / "ablation.csv").drop(columns="seconds_per_fold_mean")
    b = pd.read_csv(tmp_path / "ray" / "ablation.csv").drop(columns="seconds_per_fold_mean")
    pd.testing.assert_frame_equal(a, b)
    assert a["label"].tolist() == ["graph", "angles-rf", "coords-mlp"]  # the order asked for


def test_score_two_datasets_on_ray_matches_local(ds_dir, tmp_path, ray_instance):
    fit = run("fit", ds_dir, "--model", "graph", "--folds", "2", *FAST, "--out", tmp_path / "run")
    assert fit.exit_code == 0, fit.output
    for engine in ("local", "ray"):
        for name in ("day1", "day2"):
            shutil.copytree(ds_dir, tmp_path / engine / name)
    res = {}
    for engine in ("local", "ray"):
        root = tmp_path / engine
        res[engine] = run(
            "score",
            root / "day1",
            root / "day2",
            "--model",
            tmp_path / "run",
            "--out",
            root / "queues",
            "--engine",
            engine,
        )
        assert res[engine].exit_code == 0, res[engine].output
    assert "2 datasets" in res["ray"].output
    for name in ("day1", "day2"):
        docs = []
        for engine in ("local", "ray"):
            doc = orjson.loads((tmp_path / engine / name / "dataset.json").read_bytes())
            doc.pop("journal", None)
            docs.append(doc)
        assert docs[0] == docs[1]
        assert all(a.get("predictions") for a in docs[0]["annotations"])
        queues = [
            orjson.loads((tmp_path / e / "queues" / f"{name}.json").read_bytes())
            for e in ("local", "ray")
        ]
        for q in queues:
            q.pop("created", None)
        assert queues[0] == queues[1]
