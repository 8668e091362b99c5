"""``trainer score``: time smoothing and gating, confident learning, ONNX scoring and the queue."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from toolkit.dataset import Dataset
from toolkit.queue import ReviewQueue
from trainer.score import (
    ScoreOptions,
    confident_learning,
    disagreement,
    score_dataset,
    smooth_sequences,
    uncertainty,
)


# ---------------------------------------------------------------------- unit: time
def _ema(x: np.ndarray, a: float) -> np.ndarray:
    out = np.empty_like(x)
    out[0] = x[0]
    for t in range(1, len(x)):
        out[t] = a * x[t] + (1 - a) * out[t - 1]
    return out


def test_ema_and_gating_on_a_synthetic_video_sequence():
    rng = np.random.default_rng(0)
    n = 30
    p = rng.dirichlet(np.ones(3), n)  # one track, frames 0..29
    frame = np.arange(n, dtype=float)
    valid = np.ones(n, bool)
    valid[10:13] = False  # 3 gated frames: held (hold = 4)
    valid[20:27] = False  # 7 gated frames: 4 held, 3 beyond the hold
    group = np.zeros(n, int)
    out, held, gated = smooth_sequences(p, group, frame, valid, alpha=0.4, hold=4)
    # valid frames before the first gap: exactly the EMA recursion
    np.testing.assert_allclose(out[:10], _ema(p[:10], 0.4))
    # gap of 3 <= hold: the EMA continues over the valid frames as if the gap were absent
    seg = np.r_[0:10, 13:20]
    np.testing.assert_allclose(out[seg], _ema(p[seg], 0.4))
    # gated frames within the hold repeat the last valid smoothed prediction
    np.testing.assert_allclose(out[10:13], np.repeat(out[9:10], 3, 0))
    np.testing.assert_allclose(out[20:24], np.repeat(out[19:20], 4, 0))
    assert held.tolist() == [i in (10, 11, 12, 20, 21, 22, 23) for i in range(n)]
    # beyond the hold: gated, raw prediction kept
    assert gated.tolist() == [i in (24, 25, 26) for i in range(n)]
    np.testing.assert_allclose(out[24:27], p[24:27])
    # after a gap longer than the hold the EMA restarts at the raw value
    np.testing.assert_allclose(out[27:], _ema(p[27:], 0.4))
    # rows still sum to one
    np.testing.assert_allclose(out.sum(1), 1.0)


def test_smoothing_is_per_sequence_and_skips_images():
    p = np.array([[1.0, 0], [0, 1.0], [1.0, 0], [0, 1.0], [0.3, 0.7]])
    group = np.array([0, 1, 0, 1, -1])  # two interleaved tracks, one still image
    frame = np.array([0, 0, 1, 1, 0], float)
    out, held, gated = smooth_sequences(p, group, frame, np.ones(5, bool), 0.5, 2)
    np.testing.assert_allclose(out, p)  # each track is constant: nothing mixes
    assert not held.any() and not gated.any()
    # an image is never gated, whatever its keypoint confidence
    out, held, gated = smooth_sequences(p, group, frame, np.zeros(5, bool), 0.5, 0)
    assert not gated[4] and gated[:4].all()  # no valid frame in either track: nothing to hold


def test_alpha_one_means_no_smoothing():
    p = np.random.default_rng(1).dirichlet(np.ones(4), 12)
    out, _, _ = smooth_sequences(p, np.zeros(12, int), np.arange(12.0), np.ones(12, bool), 1.0, 3)
    np.testing.assert_allclose(out, p)


# ---------------------------------------------------------------------- unit: uncertainty
def test_margin_entropy_disagreement():
    p = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]])
    margin, ent = uncertainty(p)
    np.testing.assert_allclose(margin, [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(ent, [np.log(2) / np.log(3), 0, 1], atol=1e-12)
    members = np.array([[[0.9, 0.1]] * 2, [[0.8, 0.2], [0.2, 0.8]], [[0.7, 0.3], [0.1, 0.9]]])
    np.testing.assert_allclose(disagreement(members), [0, 1 / 3])  # mean says class 1
    assert np.isnan(disagreement(members[:1])).all()


def test_confident_learning_flags_the_flipped_labels():
    rng = np.random.default_rng(2)
    n, c = 300, 4
    truth = rng.integers(0, c, n)
    logits = rng.normal(0, 1, (n, c))
    logits[np.arange(n), truth] += 4  # a decent classifier, sure of most frames
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = truth.copy()
    flipped = rng.choice(n, 15, replace=False)
    labels[flipped] = (truth[flipped] + rng.integers(1, c, 15)) % c
    labels[:5] = -1  # unlabelled rows are ignored
    flag, score, sug, thr = confident_learning(p, labels)
    assert thr.shape == (c,) and (thr > 0.5).all()
    wrong = flipped[flipped >= 5]
    assert flag[wrong].mean() >= 0.8  # recall
    assert not flag[:5].any()
    top = np.argsort(-score)[: len(wrong)]
    assert len(set(top) & set(wrong)) >= 0.8 * len(wrong)  # precision of the top k
    found = wrong[flag[wrong]]
    np.testing.assert_array_equal(sug[found], truth[found])
    assert (score[flag] > 0).all() and (score[~flag] == 0).all()


# ---------------------------------------------------------------------- integration: ONNX
@pytest.fixture(scope="module")
def scored_setup(tmp_path_factory, toy_dataset):
    """A toy dataset with 3 flipped labels, a 1-epoch graph run (ONNX) and an angles-rf run."""
    pytest.importorskip("onnxruntime")
    from trainer.data import prepare
    from trainer.runs import run_experiment
    from trainer.train import TrainConfig

    root = tmp_path_factory.mktemp("score")
    ds = toy_dataset(root / "media", n_subjects=4, per_class=4, image_size=64, seed=3)
    stance = ds.images["stance"].to_numpy(dtype=object).copy()
    classes = ds.stances
    rng = np.random.default_rng(0)
    flipped = rng.choice(len(stance), 3, replace=False)
    for i in flipped:
        stance[i] = classes[(classes.index(stance[i]) + 2) % len(classes)]  # other chamber
    ds.images["stance"] = stance
    ds.save(root / "ds")
    ds = Dataset.load(root / "ds")
    prep = prepare(ds)
    cfg = TrainConfig(model="graph", epochs=1, batch_size=16, members=2)
    run_experiment(prep, cfg, root / "run", n_folds=2)
    run_experiment(prep, TrainConfig(model="angles-rf"), root / "rf", n_folds=4)
    flipped_files = set(ds.images["file_name"].to_numpy()[flipped])
    return root, flipped_files, stance


def test_score_writes_predictions_and_a_valid_queue(scored_setup):
    root, flipped, stance = scored_setup
    before = (root / "ds" / "dataset.json").read_bytes()
    res = score_dataset(
        root / "ds",
        [root / "run"],
        root / "queue.json",
        options=ScoreOptions(batch=7),
        oof=root / "rf",
    )
    assert (root / "run" / "model.onnx").exists()  # exported on demand
    q = ReviewQueue.load(root / "queue.json")  # validates against the schema
    assert len(q) > 0 and [it.rank for it in q] == list(range(1, len(q) + 1))
    assert q.dataset_path().resolve() == (root / "ds").resolve()
    assert set(q.counts()) <= {
        "label_disagreement",
        "low_confidence",
        "stick_geometry",
        "validation",
    }
    ds = Dataset.load(root / "ds")
    assert ds.images["stance"].tolist() == list(stance)  # labels untouched
    preds = ds.annotations["predictions"].tolist()
    assert all(isinstance(p, dict) for p in preds)
    p0 = preds[0]
    assert set(p0["probs"]) == set(ds.stances)
    assert p0["stance"] in ds.stances and 0 <= p0["margin"] <= 1 and 0 <= p0["entropy"] <= 1
    assert abs(sum(p0["probs"].values()) - 1) < 1e-2
    assert len(p0["geometry"]) == 4 and p0["disagreement"] is None
    np.testing.assert_allclose(res.probs.sum(1), 1, atol=1e-5)
    assert before != (root / "ds" / "dataset.json").read_bytes()
    # the flipped labels come first among the label-disagreement items
    ld = [it for it in q if it.reason == "label_disagreement"]
    top = {it.file_name for it in ld[: len(flipped)]}
    assert len(top & flipped) >= 2, (top, flipped)
    assert all(it.details["source"] == "oof" for it in ld)


def test_score_cli_with_an_ensemble_of_fold_models(scored_setup):
    from trainer.cli import main

    root, _, _ = scored_setup
    q = root / "q_ens.json"
    r = CliRunner().invoke(
        main,
        [
            "score",
            str(root / "ds"),
            "--model",
            str(root / "run"),
            "--ensemble",
            "--out",
            str(q),
            "--top",
            "10",
            "-q",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "review queue:" in r.output and f"viewer {root / 'ds'} --queue {q}" in r.output
    doc = json.loads(q.read_text())
    assert doc["meta"]["members"] == 2 and len(doc["items"]) <= 10
    assert sorted(p.name for p in (root / "run" / "onnx").glob("*.onnx")) == [
        "fold_0.onnx",
        "fold_1.onnx",
    ]
    ds = Dataset.load(root / "ds")
    d = [p["disagreement"] for p in ds.annotations["predictions"]]
    # share of the 2 fold models whose top class differs from their mean's (each fold model is
    # itself a calibrated seed ensemble)
    assert all(v in (0.0, 0.5, 1.0) for v in d) and len(d) == len(ds)
    # done flags carry over when the queue is rebuilt
    queue = ReviewQueue.load(q)
    queue.mark_done(0)
    key = (queue[0].frame_key, queue[0].reason)
    r = CliRunner().invoke(
        main,
        [
            "score",
            str(root / "ds"),
            "--model",
            str(root / "run" / "onnx" / "fold_0.onnx"),
            "--model",
            str(root / "run" / "onnx" / "fold_1.onnx"),
            "--out",
            str(q),
            "--top",
            "10",
            "-q",
            "--no-save",
        ],
    )
    assert r.exit_code == 0, r.output
    again = ReviewQueue.load(q)
    assert [it.done for it in again if (it.frame_key, it.reason) == key] == [True]


def test_score_cli_errors(tmp_path, scored_setup):
    from trainer.cli import main

    root, _, _ = scored_setup
    r = CliRunner().invoke(
        main,
        [
            "score",
            str(root / "ds"),
            "--model",
            str(tmp_path / "x.onnx"),
            "--out",
            str(tmp_path / "q.json"),
        ],
    )
    assert r.exit_code == 2 and "does not exist" in r.output
    r = CliRunner().invoke(
        main,
        [
            "score",
            str(root / "ds"),
            "--model",
            str(root / "run"),
            "--out",
            str(tmp_path / "q.json"),
            "--ema-alpha",
            "0",
        ],
    )
    assert r.exit_code == 2 and "--ema-alpha" in r.output


def test_validation_findings_become_queue_items(tmp_path, scored_setup):
    from trainer.score import validation_items

    root, _, _ = scored_setup
    shutil.copytree(root / "ds", tmp_path / "ds")
    ds = Dataset.load(tmp_path / "ds")
    assert validation_items(ds, tmp_path / "ds") == ([], None)
    ann, img = int(ds.annotations["id"].iat[2]), int(ds.images["id"].iat[5])
    findings = [
        {"code": "stick_too_long", "severity": "error", "ann_id": ann, "message": "long"},
        {"code": "blurry", "severity": "info", "image_id": img, "message": "blur"},
        {"code": "orphan", "severity": "warning", "ann_id": 10**6},  # names nothing here
    ]
    (tmp_path / "ds" / "validation.json").write_text(json.dumps({"findings": findings}))
    items, path = validation_items(ds, tmp_path / "ds")
    assert path is not None and Path(path).name == "validation.json"
    assert [(it.reason, it.details["code"]) for it in items] == [
        ("validation", "stick_too_long"),
        ("validation", "blurry"),
    ]
    assert [it.score for it in items] == [1.0, 0.25]  # error, info


def test_score_many_writes_one_queue_per_dataset(tmp_path, scored_setup):
    from trainer.score import queue_paths, score_many

    root, _, _ = scored_setup
    for name in ("day1", "day2"):
        shutil.copytree(root / "ds", tmp_path / name)
    res = score_many(
        [tmp_path / "day1", tmp_path / "day2"],
        [root / "run"],
        tmp_path / "queues",
        oof=[root / "rf"],
    )
    assert [len(r.probs) for r in res] == [len(Dataset.load(root / "ds"))] * 2
    for name in ("day1", "day2"):
        q = ReviewQueue.load(tmp_path / "queues" / f"{name}.json")
        assert q.dataset_path().resolve() == (tmp_path / name).resolve()
    # the same data and model give the same queue items, whichever dataset folder holds them
    a, b = (ReviewQueue.load(tmp_path / "queues" / f"{n}.json") for n in ("day1", "day2"))
    assert [(i.file_name, i.reason) for i in a] == [(i.file_name, i.reason) for i in b]
    with pytest.raises(ValueError, match="distinct folder names"):
        queue_paths([tmp_path / "day1", tmp_path / "x" / "day1"], tmp_path / "q")
