"""Benchmark of the angle-feature baselines (the users' current approach) on real and synthetic data.

Real data: ``../shared/realdata/turoarnis/arnis_poses_coordinates.csv`` (real Arnis practitioners,
12 strike/block classes, MediaPipe's 33 *world* landmarks). The file stores most samples twice:
rows are deduplicated BEFORE any split (otherwise a sample's copy in the training fold inflates the
score). It has no subject ids, so the only possible split is stratified 5-fold over samples; frames
of the same person fall in both training and test folds, so every number here is optimistic
compared with a subject-independent split. The CSV is read in place, never copied (license
unknown); the section is skipped when the folder is absent.

Models per fold (same folds for all): majority class; random forest and gradient boosting on the
raw 99 world-coordinate columns (the straightforward reference: what the data set's README
scores); random forest on the raw ``x, y`` of the COCO-17 subset; and ``angles-rf`` /
``angles-gbm`` on :func:`trainer.features.angle_features` of the COCO-17 subset (no stick, so the
stick and weapon-side features are NaN).

Synthetic data: ``samples/arnis`` imported with the YOLO reader (12 stances, 8 subjects),
subject-grouped StratifiedGroupKFold(5): angle baselines on the keypoints as imported (stick
errors included), after ``toolkit.correct`` (when present), and on the clean truth.

Run: ``python -m benchmarks.run realdata`` or ``python -m benchmarks.bench_realdata [--quick]``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REALDATA_CSV = ROOT.parent / "shared" / "realdata" / "turoarnis" / "arnis_poses_coordinates.csv"
SAMPLES = ROOT / "samples" / "arnis"


# ---------------------------------------------------------------------- helpers
def _majority(y_train: np.ndarray, n_test: int, n_classes: int) -> np.ndarray:
    proba = np.zeros((n_test, n_classes))
    proba[:, np.bincount(y_train, minlength=n_classes).argmax()] = 1.0
    return proba


def _evaluate(models: dict, y: np.ndarray, folds: list, n_classes: int, seed: int) -> dict:
    """Accuracy and macro-F1 per fold for each ``name -> (kind, X)`` on the same folds."""
    from sklearn.metrics import f1_score

    from trainer.baselines import fit_predict_baseline

    out = {}
    for name, (kind, X) in models.items():
        t0 = time.perf_counter()
        accs, f1s = [], []
        for tr, te in folds:
            if kind == "majority":
                proba = _majority(y[tr], len(te), n_classes)
            else:
                proba = fit_predict_baseline(kind, X[tr], y[tr], X[te], seed, n_classes)
            pred = proba.argmax(1)
            accs.append(float((pred == y[te]).mean()))
            f1s.append(float(f1_score(y[te], pred, average="macro", labels=np.arange(n_classes))))
        out[name] = {
            "model": kind,
            "n_features": None if X is None else int(X.shape[1]),
            "fold_accuracy": [round(a, 4) for a in accs],
            "accuracy_mean": round(float(np.mean(accs)), 4),
            "accuracy_std": round(float(np.std(accs, ddof=1)), 4),
            "macro_f1_mean": round(float(np.mean(f1s)), 4),
            "seconds": round(time.perf_counter() - t0, 1),
        }
    return out


def _paired(a: list[float], b: list[float]) -> dict:
    d = np.asarray(a) - np.asarray(b)
    return {
        "mean_diff": round(float(d.mean()), 4),
        "std_diff": round(float(d.std(ddof=1)), 4),
        "folds_better": int((d > 0).sum()),
        "n_folds": len(d),
    }


def _row(name: str, r: dict, ref: float | None) -> str:
    ratio = "" if not ref else f"{r['accuracy_mean'] / ref:.2f}x"
    return (
        f"  {name:24} {r['accuracy_mean']:.3f} ± {r['accuracy_std']:.3f}   "
        f"macro-F1 {r['macro_f1_mean']:.3f}   {ratio:>6}  ({r['seconds']:.0f} s)"
    )


# ---------------------------------------------------------------------- real data
def realdata(quick: bool = False, path: Path = REALDATA_CSV) -> dict:
    """The turoarnis measurement (deduplicated, stratified 5-fold)."""
    import pandas as pd
    from sklearn.model_selection import StratifiedKFold

    from trainer.features import MEDIAPIPE_TO_COCO, angle_features, mediapipe33_to_coco17

    if not path.is_file():
        return {"skipped": f"{path} is absent"}
    df = pd.read_csv(path)
    coord_cols = [f"{a}_{i}" for i in range(33) for a in "xyz"]
    n_rows = len(df)
    mult = df.groupby(list(df.columns), sort=False).size().value_counts().sort_index()
    dedup = df.drop_duplicates().reset_index(drop=True)
    conflicting = int(dedup.duplicated(subset=coord_cols).sum())  # same pose, different label
    classes, y = np.unique(dedup["class"].to_numpy(str), return_inverse=True)
    n_classes = len(classes)

    raw = dedup[coord_cols].to_numpy(np.float64)
    lm = raw.reshape(-1, 33, 3)
    kp = mediapipe33_to_coco17(lm)
    X_ang, names = angle_features(kp)
    raw17 = lm[:, list(MEDIAPIPE_TO_COCO), :2].reshape(len(lm), -1)

    models = {
        "majority": ("majority", None),
        "rf raw-99 (reference)": ("angles-rf", raw),
        "gbm raw-99": ("angles-gbm", raw),
        "rf raw COCO-17 x,y": ("angles-rf", raw17),
        "angles-rf": ("angles-rf", X_ang),
        "angles-gbm": ("angles-gbm", X_ang),
    }
    seeds = [0] if quick else [0, 1, 2]
    per_seed = []
    for seed in seeds:
        skf = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
        folds = list(skf.split(raw, y))
        per_seed.append(_evaluate(models, y, folds, n_classes, seed))
    # Pool the folds of every repetition: mean ± std over all (5 x repeats) folds.
    results = {}
    for name in models:
        accs = [a for r in per_seed for a in r[name]["fold_accuracy"]]
        results[name] = {
            **per_seed[0][name],
            "fold_accuracy": accs,
            "accuracy_mean": round(float(np.mean(accs)), 4),
            "accuracy_std": round(float(np.std(accs, ddof=1)), 4),
            "macro_f1_mean": round(float(np.mean([r[name]["macro_f1_mean"] for r in per_seed])), 4),
            "seconds": round(sum(r[name]["seconds"] for r in per_seed), 1),
            "per_repeat_mean": [r[name]["accuracy_mean"] for r in per_seed],
        }
    ref = results["rf raw-99 (reference)"]
    return {
        "file": str(path.relative_to(ROOT.parent))
        if path.is_relative_to(ROOT.parent)
        else str(path),
        "rows": n_rows,
        "distinct_rows": len(dedup),
        "duplicates_removed": n_rows - len(dedup),
        "copies_per_sample": {int(k): int(v) for k, v in mult.items()},
        "same_pose_different_label": conflicting,
        "classes": [str(c) for c in classes],
        "class_counts": np.bincount(y, minlength=n_classes).tolist(),
        "split": (
            "StratifiedKFold(5, shuffle) over deduplicated samples, repeated with seeds "
            f"{seeds}: the only split possible (no subject ids), so optimistic"
        ),
        "n_angle_features": len(names),
        "n_angle_features_all_nan": int(np.isnan(X_ang).all(0).sum()),
        "models": results,
        "angles_rf_vs_reference": _paired(
            results["angles-rf"]["fold_accuracy"], ref["fold_accuracy"]
        ),
        "angles_gbm_vs_gbm_raw": _paired(
            results["angles-gbm"]["fold_accuracy"], results["gbm raw-99"]["fold_accuracy"]
        ),
    }


# ---------------------------------------------------------------------- samples
def _read_samples(root: Path):
    try:
        from toolkit import io

        return io.read(root / "data.yaml", format="yolo", labels=root / "labels.csv").dataset
    except (ModuleNotFoundError, ValueError):
        from toolkit.io.yolo import read_yolo

        return read_yolo(root / "data.yaml", labels=root / "labels.csv").dataset


def samples(quick: bool = False, root: Path = SAMPLES) -> dict:
    """Angle baselines on the synthetic samples, subject-grouped 5-fold."""
    from sklearn.model_selection import StratifiedGroupKFold

    from toolkit.geometry import weapon_side
    from trainer.features import RIGHT, UNKNOWN, angle_features

    if not (root / "data.yaml").is_file() or not (root / "labels.csv").is_file():
        return {"skipped": f"{root} has no data.yaml/labels.csv yet"}
    try:
        ds = _read_samples(root)
    except (ImportError, FileNotFoundError, ValueError) as exc:  # ValueError: InputError too
        return {"skipped": f"samples could not be imported: {type(exc).__name__}: {exc}"}
    table = ds.frame_table()
    stance = table["stance"].astype(str).to_numpy()
    subject = table["subject"].astype(str).to_numpy()
    classes, y = np.unique(stance, return_inverse=True)
    variants = {"raw (as imported)": ds.keypoints}
    notes = []
    try:
        from toolkit.correct import correct

        variants["corrected (toolkit.correct)"] = correct(ds).keypoints
    except Exception as exc:  # the correction issue may not have landed
        notes.append(f"corrected keypoints unavailable: {type(exc).__name__}: {exc}")
    side_agreement = None
    try:
        from toolkit.synth import load_truth, truth_keypoints

        truth_kp, _ = truth_keypoints(ds, root)
        variants["clean truth"] = truth_kp
        truth = load_truth(root).set_index("file_name")
        hand = truth.loc[table["file_name"].astype(str), "handedness"].to_numpy()
        side = weapon_side(ds.keypoints)
        known = side != UNKNOWN
        side_agreement = {
            "known": int(known.sum()),
            "n": len(side),
            "agree": int(((side == RIGHT) == (hand == "right"))[known].sum()),
        }
    except Exception as exc:
        notes.append(f"truth unavailable: {type(exc).__name__}: {exc}")

    seeds = [0] if quick else [0, 1, 2]
    out = {}
    for vname, kp in variants.items():
        X, _ = angle_features(kp)
        models = {"majority": ("majority", None), "angles-rf": ("angles-rf", X)}
        models["angles-gbm"] = ("angles-gbm", X)
        pooled: dict[str, list] = {m: [] for m in models}
        f1: dict[str, list] = {m: [] for m in models}
        secs: dict[str, float] = dict.fromkeys(models, 0.0)
        for seed in seeds:
            sgkf = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=seed)
            folds = list(sgkf.split(X, y, groups=subject))
            for tr, te in folds:
                assert not set(subject[tr]) & set(subject[te])
            r = _evaluate(models, y, folds, len(classes), seed)
            for m in models:
                pooled[m] += r[m]["fold_accuracy"]
                f1[m].append(r[m]["macro_f1_mean"])
                secs[m] += r[m]["seconds"]
        out[vname] = {
            m: {
                "fold_accuracy": pooled[m],
                "accuracy_mean": round(float(np.mean(pooled[m])), 4),
                "accuracy_std": round(float(np.std(pooled[m], ddof=1)), 4),
                "macro_f1_mean": round(float(np.mean(f1[m])), 4),
                "seconds": round(secs[m], 1),
            }
            for m in models
        }
    return {
        "root": str(root.relative_to(ROOT)) if root.is_relative_to(ROOT) else str(root),
        "n_frames": len(y),
        "n_subjects": len(set(subject)),
        "classes": [str(c) for c in classes],
        "split": f"StratifiedGroupKFold(5, shuffle) on subject, seeds {seeds}",
        "weapon_side_vs_truth_handedness": side_agreement,
        "variants": out,
        "notes": notes,
    }


# ---------------------------------------------------------------------- speed
def feature_speed(n: int) -> dict:
    """Frames per second of :func:`angle_features` (vectorised) on ``n`` random poses."""
    from trainer.features import angle_features

    rng = np.random.default_rng(0)
    kp = rng.uniform(0, 640, (n, 19, 3))
    kp[..., 2] = 2
    kp[rng.random((n, 19)) < 0.05, :2] = np.nan
    t0 = time.perf_counter()
    angle_features(kp)
    dt = time.perf_counter() - t0
    return {"n": n, "seconds": round(dt, 3), "frames_per_s": int(n / dt)}


# ---------------------------------------------------------------------- main
def main(quick: bool = False) -> dict:
    """Run the benchmark; prints tables and returns a JSON-able dict."""
    real = realdata(quick)
    print("realdata: angle baselines vs raw coordinates (turoarnis, real practitioners)")
    if "skipped" in real:
        print(f"  skipped: {real['skipped']}")
    else:
        print(
            f"  {real['rows']} rows -> {real['distinct_rows']} distinct after deduplication "
            f"({real['duplicates_removed']} duplicate rows removed; copies per sample "
            f"{real['copies_per_sample']}); {len(real['classes'])} classes"
        )
        print(f"  split: {real['split']}")
        ref = real["models"]["rf raw-99 (reference)"]["accuracy_mean"]
        print(f"  {'model':24} accuracy mean ± std (over folds)      ratio to reference")
        for name, r in real["models"].items():
            print(_row(name, r, ref))
        p = real["angles_rf_vs_reference"]
        print(
            f"  angles-rf - rf raw-99: {p['mean_diff']:+.3f} ± {p['std_diff']:.3f} per fold, "
            f"better in {p['folds_better']}/{p['n_folds']} folds"
        )
    syn = samples(quick)
    print("samples: angle baselines on the synthetic set (subject-independent)")
    if "skipped" in syn:
        print(f"  skipped: {syn['skipped']}")
    else:
        print(f"  {syn['n_frames']} frames, {syn['n_subjects']} subjects; split: {syn['split']}")
        for vname, res in syn["variants"].items():
            ref = res["majority"]["accuracy_mean"]
            for name, r in res.items():
                print(_row(f"{name} [{vname}]"[:48], r, ref))
        sa = syn["weapon_side_vs_truth_handedness"]
        if sa:
            print(
                f"  weapon side (wrist nearest the grip) vs truth handedness: {sa['agree']}/"
                f"{sa['known']} agree ({sa['n'] - sa['known']} unknown)"
            )
        for note in syn["notes"]:
            print(f"  note: {note}")
    spd = feature_speed(20_000 if quick else 200_000)
    print(f"angle_features speed: {spd['frames_per_s']:,} frames/s ({spd['n']:,} frames)")
    return {"quick": quick, "realdata": real, "samples": syn, "feature_speed": spd}


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
