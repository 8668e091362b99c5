"""Closing the loop: label-error discovery, active learning, and scoring throughput.

``python -m benchmarks.bench_loop [--quick]`` (or ``python -m benchmarks.run loop``).

(a) **Label-error discovery.** A generated sample set (``toolkit.synth``), imported and corrected;
    5 % of the stance labels flipped to a random other stance; ``trainer fit`` (5 folds grouped by
    subject) + ``trainer score``. Precision of the top-k ``label_disagreement`` queue items
    (k = number of flipped labels) at naming a flipped frame, with the out-of-fold probabilities
    of (i) the neural run being scored (graph model) and (ii) an ``angles-rf`` run on the same
    data (``trainer score --oof``). Reference: the same k frames drawn at random (expected
    precision = 5 %).
(b) **Active learning.** Two subjects held out as a fixed test set; of the other frames 20 % start
    labelled; each round adds 5 % of the pool chosen by the queue's "worth labelling" order
    (``trainer.score.labelling_priority`` on the model's probabilities, ranked by
    ``toolkit.queue.ReviewQueue.build``) or at random; test accuracy after each round, mean over
    seeds. Model: ``angles-rf`` (a fresh random forest per round; the neural graph model is too
    slow to retrain 2 x 7 rounds x seeds on 2 CPU cores).
(c) **Throughput** of ``trainer score``'s onnxruntime inference (batched, 256) vs a
    straightforward per-frame loop (batch 1, the same featurisation per frame) on the same
    frames, and the end-to-end ``score_dataset`` rate (load, infer, smooth, store, queue).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

#: (selection, ranking) of the label check: the default, margin ranking, and the literal rule.
VARIANTS = (("prune", "self_confidence"), ("prune", "margin"), ("rule", "margin"))


def _sample_dataset(tmp: Path, per_class: int, seed: int = 1):
    from toolkit import synth
    from toolkit.correct import CorrectOptions
    from toolkit.correct import run as correct_run
    from toolkit.io import import_dataset

    root = synth.generate(tmp / "samples", per_class=per_class, subjects=8, videos=0, seed=seed)
    import_dataset(root / "data.yaml", tmp / "ds", labels=root / "labels.csv")
    correct_run(tmp / "ds", CorrectOptions())
    return root


def _flip(ds_dir: Path, frac: float, seed: int) -> np.ndarray:
    from toolkit.dataset import Dataset

    ds = Dataset.load(ds_dir)
    rng = np.random.default_rng(seed)
    st = ds.images["stance"].to_numpy(dtype=object).copy()
    classes = sorted(set(st))
    k = int(round(frac * len(st)))
    rows = rng.choice(len(st), k, replace=False)
    for r in rows:
        st[r] = rng.choice([c for c in classes if c != st[r]])
    ds.images["stance"] = st
    ds.save()
    return np.sort(ds.images["file_name"].to_numpy(dtype=object)[rows])


def label_errors(tmp: Path, per_class: int, epochs: int) -> dict:
    """(a): flip 5 %, fit, score, precision@k of the label_disagreement items."""
    from toolkit.dataset import Dataset
    from toolkit.taxonomy import Taxonomy
    from trainer.data import prepare
    from trainer.runs import run_experiment
    from trainer.score import ScoreOptions, score_dataset
    from trainer.train import TrainConfig

    root = _sample_dataset(tmp, per_class)
    flipped = set(_flip(tmp / "ds", 0.05, seed=0))
    ds = Dataset.load(tmp / "ds")
    prep = prepare(ds, Taxonomy.load(root / "taxonomy.json"))
    t0 = time.perf_counter()
    graph = run_experiment(
        prep,
        # The default schedule (fixed, a calibrated 3-member seed ensemble per fold): the
        # queue ranks by the calibrated out-of-fold probabilities.
        TrainConfig(model="graph", epochs=epochs, lr=3e-3),
        tmp / "run_graph",
        n_folds=5,
    )
    t_graph = time.perf_counter() - t0
    rf = run_experiment(prep, TrainConfig(model="angles-rf"), tmp / "run_rf", n_folds=5)
    k = len(flipped)
    out = {
        "n_frames": len(prep),
        "k_flipped": k,
        "graph_epochs": epochs,
        "graph_fit_seconds": round(t_graph, 1),
        "graph_oof_accuracy": round(graph.metrics["accuracy_mean"], 3),
        "graph_members": graph.metrics["folds"][0].get("members", 1),
        "graph_oof_ece": round(graph.metrics["pooled"]["ece"], 3),
        "graph_oof_ece_uncalibrated": round(graph.metrics.get("ece_uncalibrated_mean", np.nan), 3),
        "rf_oof_accuracy": round(rf.metrics["accuracy_mean"], 3),
    }
    sources = (
        ("graph_oof", [tmp / "run_graph"]),
        ("angles_rf_oof", [tmp / "run_rf"]),
        ("graph+rf_oof", [tmp / "run_graph", tmp / "run_rf"]),
    )
    for name, oof in sources:
        for method, rank_by in VARIANTS:
            res = score_dataset(
                tmp / "ds",
                [tmp / "run_graph"],
                tmp / f"q_{name}.json",
                options=ScoreOptions(cl_method=method, cl_rank_by=rank_by),
                oof=oof,
            )
            ld = sorted(
                (it for it in res.queue if it.reason == "label_disagreement"),
                key=lambda it: it.rank,
            )
            hits = sum(it.file_name in flipped for it in ld[:k])
            flagged = {it.file_name for it in ld}
            out[f"{name}_{method}_{rank_by}"] = {
                "precision_at_k": round(hits / k, 3),
                "hits": hits,
                "label_items": len(ld),
                "recall_all_items": round(len(flagged & flipped) / k, 3),
            }
    out["random_precision"] = round(k / len(prep), 3)
    return out


def active_learning(tmp: Path, per_class: int, seeds: int, rounds: int) -> dict:
    """(b): queue order vs random, angles-rf, fixed subject-grouped test set."""
    from toolkit.dataset import Dataset
    from toolkit.queue import ReviewQueue, items_for_rows
    from trainer.baselines import make_baseline
    from trainer.data import prepare
    from trainer.features import angle_features
    from trainer.score import labelling_priority, uncertainty

    root = tmp / "al"
    root.mkdir()
    _sample_dataset(root, per_class, seed=2)
    ds = Dataset.load(root / "ds")
    prep = prepare(ds)
    X, _ = angle_features(prep.keypoints)
    y = prep.y
    subjects = np.asarray(prep.groups)
    test = np.isin(subjects, ["s07", "s08"])  # s07 left-handed: both handednesses tested
    pool = np.flatnonzero(~test)
    step = int(round(0.05 * len(pool)))
    curves = {"queue": [], "random": []}
    labelled_counts = []

    def fit_eval(idx):
        m = make_baseline("angles-rf", seed=0)
        m.fit(X[idx], y[idx])
        acc = float((m.predict(X[test]) == y[test]).mean())
        return m, acc

    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        start = rng.choice(pool, int(round(0.2 * len(pool))), replace=False)
        for strategy in ("queue", "random"):
            lab = set(start.tolist())
            accs = []
            for r in range(rounds + 1):
                idx = np.array(sorted(lab))
                model, acc = fit_eval(idx)
                accs.append(acc)
                if seed == 0 and strategy == "queue":
                    labelled_counts.append(len(idx))
                if r == rounds:
                    break
                cand = np.array([i for i in pool if i not in lab])
                if strategy == "random":
                    pick = rng.choice(cand, min(step, len(cand)), replace=False)
                else:
                    proba = np.zeros((len(cand), len(prep.taxonomy.classes)))
                    proba[:, model.classes_] = model.predict_proba(X[cand])
                    margin, ent = uncertainty(proba)
                    sc = labelling_priority(
                        margin, ent, np.full(len(cand), np.nan), np.zeros(len(cand), bool)
                    )
                    items = items_for_rows(ds, prep.rows[cand], "low_confidence", sc)
                    q = ReviewQueue.build(items, window=15, limit=step)
                    row_to_i = {int(r_): i for r_, i in zip(prep.rows[cand], cand, strict=True)}
                    ann_rows = {
                        int(a): int(r_) for r_, a in zip(prep.rows, prep.ann_id, strict=True)
                    }
                    pick = np.array([row_to_i[ann_rows[it.ann_id]] for it in q])
                lab |= set(pick.tolist())
            curves[strategy].append(accs)
    res = {
        "n_pool": int(len(pool)),
        "n_test": int(test.sum()),
        "step": step,
        "seeds": seeds,
        "labelled": labelled_counts,
        "model": "angles-rf",
    }
    for k, v in curves.items():
        a = np.array(v)
        res[k] = {"mean": np.round(a.mean(0), 4).tolist(), "std": np.round(a.std(0), 4).tolist()}
    q, r = np.array(res["queue"]["mean"]), np.array(res["random"]["mean"])
    res["queue_minus_random_mean_over_rounds"] = round(float((q - r)[1:].mean()), 4)
    return res


def throughput(tmp: Path, n_frames: int) -> dict:
    """(c): batched onnxruntime scoring vs a per-frame loop on the same frames."""
    from toolkit.dataset import Dataset
    from trainer.score import OnnxScorer, predict_all, resolve_models, score_dataset

    paths, _ = resolve_models([tmp / "run_graph"])
    src = Dataset.load(tmp / "ds")
    reps = int(np.ceil(n_frames / len(src)))
    rows = np.tile(np.arange(len(src)), reps)[:n_frames]
    scorer = OnnxScorer(paths, threads=2)
    predict_all(src, scorer, batch=256, rows=rows[:512])  # warm-up
    t0 = time.perf_counter()
    a = predict_all(src, scorer, batch=256, rows=rows)
    t_batch = time.perf_counter() - t0
    n_ref = min(len(rows), 2000)
    t0 = time.perf_counter()
    b = predict_all(src, scorer, batch=1, rows=rows[:n_ref])
    t_one = time.perf_counter() - t0
    diff = float(np.abs(a["stance_prob"][:, :n_ref] - b["stance_prob"]).max())
    t0 = time.perf_counter()
    res = score_dataset(tmp / "ds", paths, tmp / "q_speed.json")
    t_all = time.perf_counter() - t0
    fb, f1 = len(rows) / t_batch, n_ref / t_one
    return {
        "model": scorer.variant,
        "frames": int(len(rows)),
        "batched_frames_per_s": round(fb, 1),
        "per_frame_frames_per_s": round(f1, 1),
        "ratio": round(fb / f1, 1),
        "max_abs_diff": diff,
        "score_dataset_frames": len(res.probs),
        "score_dataset_frames_per_s": round(len(res.probs) / t_all, 1),
    }


def main(quick: bool = False) -> dict:
    """Run the benchmark; prints a table and returns a JSON-able dict."""
    per_class = 3 if quick else 6
    epochs = 10 if quick else 30
    with tempfile.TemporaryDirectory(prefix="bench_loop_") as d:
        tmp = Path(d)
        t0 = time.perf_counter()
        le = label_errors(tmp, per_class, epochs)
        al = active_learning(
            tmp, per_class=per_class, seeds=2 if quick else 5, rounds=4 if quick else 6
        )
        tp = throughput(tmp, 2000 if quick else 20000)
        seconds = time.perf_counter() - t0
    print(
        f"(a) label-error discovery: {le['n_frames']} frames (synth per_class={per_class}), "
        f"{le['k_flipped']} labels flipped (5 %); fit 5 folds by subject"
    )
    print(
        f"    {'label check from (selection, ranking)':40} {'OOF acc':>8} {'precision@k':>12} "
        f"{'hits':>5} "
        f"{'recall(all)':>11}"
    )
    for name, acc in (
        ("graph_oof", le["graph_oof_accuracy"]),
        ("angles_rf_oof", le["rf_oof_accuracy"]),
        ("graph+rf_oof", float("nan")),
    ):
        for method, rank_by in VARIANTS:
            r = le[f"{name}_{method}_{rank_by}"]
            label = f"{name} ({method}, {rank_by})"
            print(
                f"    {label:40} {acc:>8.3f} {r['precision_at_k']:>12.3f} "
                f"{r['hits']:>5} {r['recall_all_items']:>11.3f}"
            )
    print(f"    {'random k frames':40} {'':>8} {le['random_precision']:>12.3f}  (reference)")
    print(
        f"(b) active learning ({al['model']}, pool {al['n_pool']}, test {al['n_test']} "
        f"frames of s07+s08, +{al['step']} per round, {al['seeds']} seeds)"
    )
    print("    labelled " + " ".join(f"{n:>6}" for n in al["labelled"]))
    for k in ("queue", "random"):
        print(f"    {k:8} " + " ".join(f"{v:>6.3f}" for v in al[k]["mean"]))
    print(
        f"    queue - random (mean over rounds 1..): "
        f"{al['queue_minus_random_mean_over_rounds']:+.3f}"
    )
    print(
        f"(c) throughput ({tp['model']} ONNX, {tp['frames']} frames): batched "
        f"{tp['batched_frames_per_s']:,.0f}/s vs per-frame {tp['per_frame_frames_per_s']:,.0f}/s"
        f", ratio {tp['ratio']}x (max abs diff {tp['max_abs_diff']:.1e}); score_dataset end to "
        f"end {tp['score_dataset_frames_per_s']:,.0f} frames/s on {tp['score_dataset_frames']}"
    )
    print(f"total {seconds:.0f} s")
    return {
        "quick": quick,
        "label_errors": le,
        "active_learning": al,
        "throughput": tp,
        "seconds": round(seconds, 1),
    }


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
