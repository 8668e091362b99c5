"""Classifier benchmark family: every model on the same folds, each dataset reported separately.

Datasets (each its own table; nothing is pooled):

1. ``samples``: the committed samples (``samples/arnis``, imported with their labels), 5-fold
   subject-grouped.
2. ``generated``: a larger set from the generator (``toolkit.synth.generate``, another seed),
   5-fold subject-grouped.
3. ``randomised``: the generator's domain-randomised mode (``generate(..., randomise=True)``),
   5-fold subject-grouped; skipped with a note when the generator has no such mode.
4. ``few_subjects``: on the generated set, train on 3, 4 and 6 subjects and test on the others
   (several random draws of the training subjects per regime); ``few_subjects_randomised``: the
   same regimes on the domain-randomised set.
5. ``turoarnis``: the real Arnis landmarks in ``../shared/realdata/turoarnis`` (MediaPipe world
   landmarks mapped to COCO-17, no stick; exact duplicate rows removed first). The file has no
   subject ids, so its folds are stratified by class only (an optimistic estimate: frames of the
   same person and clip may sit on both sides).
6. ``real_angles_csv``: the ``trainer fit --angles-csv`` path on real data: an angle-feature CSV
   written from the turoarnis landmarks with two text columns (``Camera_Angle``, ``Frame_ID``, as
   users' CSVs have them), read by :func:`trainer.baselines.prepare_angles_csv`.
7. ``video``: the video parts of the samples (4 clips, one subject each). Leave one clip out:
   ``geopose`` is trained on the still images of the other subjects, then per frame of the
   held-out clip we compare its per-frame prediction, the EMA smoothing of ``trainer score``
   (alpha 0.5) and the temporal model of :mod:`trainer.temporal` (a 9-frame window over the
   per-frame embeddings, trained on the other three clips).
8. ``visual``: ``geopose+yolo`` (the pretrained yolo11n-pose visual stream) on the committed
   samples, on the same folds as ``samples``: compared with that table's ``geopose`` row, the
   ablation that decides the default.

Targets (issue 10) on every synthetic set: ``geopose`` >= the best baseline + 3 points and >=
``angles-rf`` + 10 points, and no fold more than 10 points below its own mean. The printed
verdicts say which hold; the numbers are whatever this run measured.

Run: ``python -m benchmarks.run classifier`` or ``python -m benchmarks.bench_classifier
[--quick] [--only samples,generated,...] [--epochs N] [--members N] [--per-class N] [--draws N]
[--out results.json]`` (``--only`` lets several processes share the family).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples" / "arnis"
TUROARNIS = ROOT.parent / "shared" / "realdata" / "turoarnis" / "arnis_poses_coordinates.csv"
BASELINES = ("coords-mlp", "coords-rf", "angles-rf", "angles-gbm")
MODELS = ("geopose", *BASELINES)
DATASETS = (
    "samples",
    "generated",
    "randomised",
    "few_subjects",
    "few_subjects_randomised",
    "turoarnis",
    "real_angles_csv",
    "video",
    "visual",
)


def _env() -> None:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "0")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(ROOT / ".cache" / "ultralytics"))
    os.environ.setdefault("MPLBACKEND", "Agg")


def _import(src: Path):
    """A sample set (``data.yaml`` + ``labels.csv`` + ``taxonomy.json``) as a dataset."""
    import toolkit.io.yolo  # noqa: F401  (registers the format)
    from toolkit import io

    return io.read(src / "data.yaml", labels=src / "labels.csv").dataset


def _generate(out: Path, per_class: int, subjects: int, seed: int, randomise: bool) -> Path | None:
    """Write a generated sample set (no videos); None when ``randomise`` is not supported."""
    import inspect

    from toolkit import synth

    kw = {"per_class": per_class, "subjects": subjects, "videos": 0, "seed": seed}
    if randomise:
        if "randomise" not in inspect.signature(synth.generate).parameters:
            return None
        kw["randomise"] = True
    synth.generate(out, **kw)
    return out


def _target_check(models: dict) -> dict:
    """Issue 10's targets for ``geopose`` against the baselines of one table."""
    g = models.get("geopose")
    bases = {k: v for k, v in models.items() if k in BASELINES}
    if g is None or not bases:
        return {}
    best_name = max(bases, key=lambda k: bases[k]["accuracy_mean"])
    best = bases[best_name]["accuracy_mean"]
    rf = bases.get("angles-rf", {}).get("accuracy_mean", float("nan"))
    gap = g["accuracy_mean"] - min(g["fold_accuracy"])
    return {
        "best_baseline": best_name,
        "vs_best_baseline_points": 100 * (g["accuracy_mean"] - best),
        "vs_angles_rf_points": 100 * (g["accuracy_mean"] - rf),
        "worst_fold_gap_points": 100 * gap,
        "beats_best_baseline_by_3": bool(g["accuracy_mean"] >= best + 0.03),
        "beats_angles_rf_by_10": bool(g["accuracy_mean"] >= rf + 0.10),
        "no_fold_10_below_mean": bool(gap <= 0.10),
    }


def _evaluate(prep, models, cfg, out: Path, folds=None, n_folds: int = 5) -> dict:
    """Every model on the same folds; the table and per-model numbers."""
    from trainer.runs import run_ablation

    t0 = time.perf_counter()
    res, table = run_ablation(
        prep, list(models), cfg, out, n_folds=n_folds, overwrite=True, folds=folds
    )
    doc = {
        "n_frames": len(prep),
        "n_groups": int(len(np.unique(prep.groups))),
        "group_by": prep.group_by,
        "seconds": time.perf_counter() - t0,
        "table": table,
        "folds": [f["test_groups"] for f in res[0]["folds"]],
        "models": {},
    }
    for r in res:
        doc["models"][r["label"]] = {
            "accuracy_mean": r["accuracy_mean"],
            "accuracy_std": r["accuracy_std"],
            "accuracy_worst": r["accuracy_worst"],
            "fold_accuracy": [f["accuracy"] for f in r["folds"]],
            "macro_f1_mean": r["macro_f1_mean"],
            "ece_mean": r.get("ece_mean"),
            "ece_uncalibrated_mean": r.get("ece_uncalibrated_mean"),
            "seconds_per_fold_mean": r["seconds_per_fold_mean"],
        }
    doc["targets"] = _target_check(doc["models"])
    return doc


def few_subject_folds(prep, n_train: int, draws: int, seed: int = 0) -> list:
    """Folds that train on ``n_train`` subjects and test on all the others.

    Each of ``draws`` folds draws its training subjects at random (without repeating a draw).
    """
    from trainer.cv import Fold

    groups = np.asarray(prep.groups).astype(str)
    subjects = np.unique(groups)
    if n_train >= len(subjects):
        raise ValueError(
            f"Expected fewer training subjects than the {len(subjects)} there are, got {n_train}."
        )
    rng = np.random.default_rng(seed)
    seen: set[tuple[str, ...]] = set()
    folds = []
    tries = 0
    while len(folds) < draws and tries < 100 * draws:
        tries += 1
        pick = tuple(sorted(rng.choice(subjects, n_train, replace=False).tolist()))
        if pick in seen:
            continue
        seen.add(pick)
        is_train = np.isin(groups, pick)
        test = np.flatnonzero(~is_train)
        folds.append(
            Fold(
                len(folds),
                np.flatnonzero(is_train),
                test,
                tuple(str(g) for g in np.unique(groups[test])),
            )
        )
    return folds


def _few_subjects(prep, models, cfg, draws: int, tmp: Path) -> dict:
    """Every model trained on 3, 4 and 6 subjects (``draws`` draws each), tested on the rest."""
    regimes = {}
    for k in (3, 4, 6):
        folds = few_subject_folds(prep, k, draws, seed=k)
        regimes[f"train_{k}_subjects"] = _evaluate(
            prep, models, cfg, Path(f"{tmp}_few{k}"), folds=folds
        )
    return regimes


def turoarnis_prepared(path: Path = TUROARNIS):
    """The real landmarks as a :class:`trainer.data.Prepared` (body only, deduplicated)."""
    import pandas as pd

    from toolkit.taxonomy import Taxonomy
    from trainer.data import Prepared, confidence
    from trainer.features import mediapipe33_to_coco17

    df = pd.read_csv(path)
    n_raw = len(df)
    df = df.drop_duplicates().reset_index(drop=True)
    cols = [f"{a}_{i}" for i in range(33) for a in ("x", "y", "z")]
    lm = df[cols].to_numpy(np.float64).reshape(-1, 33, 3)
    kp = mediapipe33_to_coco17(lm)
    names = [str(c) for c in df["class"].tolist()]
    classes = sorted(set(names))
    tax = Taxonomy(classes=classes)
    y = np.array([classes.index(c) for c in names], np.int64)
    n = len(y)
    prep = Prepared(
        taxonomy=tax,
        keypoints=kp,
        conf=confidence(kp, None),
        y=y,
        family=np.full(n, -1, np.int64),
        chamber=np.full(n, -1, np.int64),
        groups=np.array([str(i) for i in range(n)], dtype=object),
        ann_id=np.arange(n),
        image_id=np.arange(n),
        file_name=np.full(n, "", dtype=object),
        rows=np.arange(n),
        group_by="none",
        notes=[f"{n_raw} rows, {n_raw - n} exact duplicates removed, {n} kept; no subject ids"],
    )
    return prep, n_raw


def real_angles_csv(tmp: Path, models, seed: int) -> dict:
    """``trainer fit --angles-csv`` on an angle CSV computed from the real landmarks."""
    import pandas as pd

    from trainer.baselines import prepare_angles_csv
    from trainer.features import angle_features

    prep, _ = turoarnis_prepared()
    X, names = angle_features(prep.keypoints)
    df = pd.DataFrame(X, columns=names)
    # Text columns as users' CSVs have them; the reader must leave them out with a note.
    df.insert(0, "Camera_Angle", np.where(np.arange(len(df)) % 2, "front", "side"))
    df.insert(1, "Frame_ID", [f"f_{i:05d}" for i in range(len(df))])
    df["stance"] = np.array(prep.taxonomy.classes, dtype=object)[prep.y]
    csv = tmp / "turoarnis_angles.csv"
    df.to_csv(csv, index=False)
    cprep = prepare_angles_csv(csv, "stance", None, group="none")
    from trainer.train import TrainConfig

    doc = _evaluate(
        cprep,
        [m for m in models if m.startswith("angles-")],
        TrainConfig(seed=seed),
        tmp / "abl_csv",
    )
    doc["notes"] = list(cprep.notes)
    return doc


def _concat(preps: list):
    """One :class:`trainer.data.Prepared` from several with the same taxonomy."""
    from dataclasses import fields

    from trainer.data import Prepared

    base = preps[0]
    kw = {}
    vid_offset = 0
    videos = []
    for p in preps:
        v = np.asarray(p.video)
        videos.append(np.where(v >= 0, v + vid_offset, -1))
        vid_offset += int(v.max()) + 1 if len(v) else 0
    for f in fields(Prepared):
        vals = [getattr(p, f.name) for p in preps]
        if f.name == "taxonomy":
            kw[f.name] = base.taxonomy
        elif f.name in ("group_by",):
            kw[f.name] = base.group_by
        elif f.name == "notes":
            kw[f.name] = [n for p in preps for n in p.notes]
        elif f.name == "video":
            kw[f.name] = np.concatenate(videos)
        elif any(v is None for v in vals):
            kw[f.name] = None
        else:
            kw[f.name] = np.concatenate(vals)
    return Prepared(**kw)


def video_part(cfg, tmp: Path) -> dict:
    """Per-frame vs EMA smoothing vs the temporal model on the samples' video clips."""
    import torch

    import toolkit.io.yolo  # noqa: F401
    from toolkit import io
    from trainer.cv import Fold, classification_metrics
    from trainer.data import featurise, prepare
    from trainer.models import build_model
    from trainer.runs import _load_state
    from trainer.score import smooth_sequences
    from trainer.temporal import fit_temporal, frame_embeddings, predict_temporal, sequence_windows
    from trainer.train import train_fold

    stills = prepare(_import(SAMPLES))
    vdir = SAMPLES / "videos"
    preps = [stills]
    for mp4 in sorted(vdir.glob("*.mp4")):
        stem = mp4.stem
        r = io.read(
            vdir / f"{stem}_labels", video=mp4, labels=vdir / f"{stem}_stances.csv", format="yolo"
        )
        preps.append(prepare(r.dataset, stills.taxonomy))
    prep = _concat(preps)
    is_vid = prep.video >= 0
    nodes, edges = featurise(prep.keypoints, prep.conf, groups=prep.subject)
    n_cls = len(prep.taxonomy.classes)
    clips = np.unique(prep.video[is_vid])
    rows_out = []
    acc = {"per_frame": [], "ema": [], "temporal": []}
    t0 = time.perf_counter()
    for v in clips:
        test = np.flatnonzero(prep.video == v)
        subj = prep.subject[test[0]]
        train = np.flatnonzero(~is_vid & (prep.subject != subj))
        vids = np.flatnonzero(is_vid)
        fold = Fold(int(v), train, vids, (str(subj),))
        fo = train_fold(prep, fold, cfg)
        models = [_load_state(build_model(fo.model_config), s) for s in (fo.members or [fo.state])]
        emb = frame_embeddings(models, {"nodes": nodes[vids], "edge_attr": edges[vids]})
        proba = fo.proba
        seq, frame = prep.video[vids], prep.frame[vids]
        ema, _, _ = smooth_sequences(proba, seq, frame, np.ones(len(vids), bool), 0.5, 5)
        win = sequence_windows(emb, seq, frame, 9)
        tr = seq != v
        te = seq == v
        torch.manual_seed(0)
        head = fit_temporal(win[tr], prep.y[vids][tr], n_cls, seed=cfg.seed)
        tp = predict_temporal(head, win[te])
        y = prep.y[vids][te]
        res = {
            "clip": int(v),
            "subject": str(subj),
            "n_frames": int(te.sum()),
            "per_frame": float(np.mean(proba[te].argmax(1) == y)),
            "ema": float(np.mean(ema[te].argmax(1) == y)),
            "temporal": float(np.mean(tp.argmax(1) == y)),
            "temporal_macro_f1": classification_metrics(y, tp.argmax(1), n_cls)["macro_f1"],
        }
        for k in acc:
            acc[k].append(res[k])
        rows_out.append(res)
    return {
        "n_clips": int(len(clips)),
        "n_video_frames": int(is_vid.sum()),
        "n_still_frames": int((~is_vid).sum()),
        "seconds": time.perf_counter() - t0,
        "clips": rows_out,
        "mean": {k: float(np.mean(v)) for k, v in acc.items()},
    }


def visual_part(cfg, tmp: Path) -> dict:
    """``geopose`` with and without the pretrained yolo visual stream, same folds."""
    from toolkit.io import read  # noqa: F401
    from trainer.data import prepare
    from trainer.visual import attach_visual_features

    ds = _import(SAMPLES)
    prep = prepare(ds)
    secs = attach_visual_features(prep, ds)
    # Same folds as ``samples`` (same data, seed and fold count): compare with its geopose row.
    doc = _evaluate(prep, ["geopose+yolo"], cfg, tmp / "abl_visual")
    doc["feature_seconds"] = secs
    doc["feature_ms_per_frame"] = 1e3 * secs / max(1, len(prep))
    return doc


def main(
    quick: bool = False,
    only: tuple[str, ...] | None = None,
    *,
    epochs: int | None = None,
    members: int | None = None,
    per_class: int | None = None,
    draws: int | None = None,
) -> dict:
    """Run the family, print one table per dataset and return the numbers.

    Args:
        quick: Small sizes (a smoke run; its numbers are not the benchmark's).
        only: Datasets to run (default :data:`DATASETS`).
        epochs: ``geopose`` epochs (default: the trainer's default, 100; quick 10).
        members: Seed-ensemble members (default: the trainer's default).
        per_class: Images per subject and stance of the generated sets (default 5; quick 2).
        draws: Random draws of the training subjects per few-subject regime (default 2).
    """
    _env()
    import torch

    from trainer.data import prepare
    from trainer.train import TrainConfig

    torch.set_num_threads(1)
    only = tuple(only or DATASETS)
    cfg = TrainConfig(seed=0)
    cfg = replace(
        cfg,
        epochs=epochs or (10 if quick else cfg.epochs),
        members=members or cfg.members,
    )
    models = MODELS
    per_class = per_class or (2 if quick else 5)
    draws = draws or 2
    out: dict = {
        "quick": quick,
        "config": {
            "epochs": cfg.epochs,
            "members": cfg.members,
            "stop": cfg.stop,
            "lr": cfg.lr,
            "per_class": per_class,
            "draws": draws,
        },
        "load_average": os.getloadavg()[0],
        "datasets": {},
        "notes": [],
    }
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        gen_prep = None
        if "samples" in only:
            prep = prepare(_import(SAMPLES))
            out["datasets"]["samples"] = _evaluate(prep, models, cfg, tmp / "abl_samples")
        if "generated" in only or "few_subjects" in only:
            src = _generate(tmp / "gen", per_class, 8, seed=11, randomise=False)
            gen_prep = prepare(_import(src))
        if "generated" in only:
            out["datasets"]["generated"] = _evaluate(gen_prep, models, cfg, tmp / "abl_gen")
        rnd_prep = None
        if "randomised" in only or "few_subjects_randomised" in only:
            src = _generate(tmp / "rnd", per_class, 8, seed=12, randomise=True)
            if src is None:
                note = (
                    "randomised: skipped, toolkit.synth.generate has no randomise mode in this "
                    "checkout"
                )
                out["notes"].append(note)
                out["datasets"]["randomised"] = {"skipped": note}
            else:
                rnd_prep = prepare(_import(src))
        if "randomised" in only and rnd_prep is not None:
            out["datasets"]["randomised"] = _evaluate(rnd_prep, models, cfg, tmp / "abl_rnd")
        if "few_subjects" in only:
            out["datasets"]["few_subjects"] = _few_subjects(gen_prep, models, cfg, draws, tmp / "g")
        if "few_subjects_randomised" in only and rnd_prep is not None:
            out["datasets"]["few_subjects_randomised"] = _few_subjects(
                rnd_prep, models, cfg, draws, tmp / "r"
            )
        if "turoarnis" in only or "real_angles_csv" in only:
            if not TUROARNIS.is_file():
                note = f"real data: skipped, {TUROARNIS} is not present"
                out["notes"].append(note)
            else:
                if "turoarnis" in only:
                    prep, n_raw = turoarnis_prepared()
                    doc = _evaluate(prep, models, cfg, tmp / "abl_turo")
                    doc["notes"] = list(prep.notes)
                    out["datasets"]["turoarnis"] = doc
                if "real_angles_csv" in only:
                    out["datasets"]["real_angles_csv"] = real_angles_csv(tmp, models, cfg.seed)
        if "visual" in only:
            out["datasets"]["visual"] = visual_part(cfg, tmp)
        if "video" in only:
            out["video"] = video_part(cfg, tmp)
    _print(out)
    return out


def _print(out: dict) -> None:
    print(
        f"classifier benchmark ({'quick' if out['quick'] else 'full'}): geopose = "
        f"{out['config']['members']} members x {out['config']['epochs']} epochs "
        f"(stop {out['config']['stop']}); load average at start {out['load_average']:.1f}"
    )
    for note in out["notes"]:
        print(f"note: {note}")

    def one(name: str, doc: dict) -> None:
        if "skipped" in doc:
            print(f"\n== {name}: {doc['skipped']}")
            return
        print(
            f"\n== {name}: {doc['n_frames']} frames, {doc['n_groups']} groups by "
            f"{doc['group_by']}, {len(doc['folds'])} folds ({doc['seconds']:.0f} s)"
        )
        for n in doc.get("notes", []):
            print(f"note: {n}")
        print(doc["table"])
        for m, r in doc["models"].items():
            print(f"  {m:<11} folds: " + " ".join(f"{a:.3f}" for a in r["fold_accuracy"]))
        t = doc.get("targets")
        if t:
            print(
                f"  targets: geopose vs best baseline ({t['best_baseline']}) "
                f"{t['vs_best_baseline_points']:+.1f} pt (>= +3: "
                f"{'yes' if t['beats_best_baseline_by_3'] else 'NO'}), vs angles-rf "
                f"{t['vs_angles_rf_points']:+.1f} pt (>= +10: "
                f"{'yes' if t['beats_angles_rf_by_10'] else 'NO'}), worst fold "
                f"{t['worst_fold_gap_points']:.1f} pt below its mean (<= 10: "
                f"{'yes' if t['no_fold_10_below_mean'] else 'NO'})"
            )

    if "video" in out:
        v = out["video"]
        print(
            f"\n== video: {v['n_clips']} clips ({v['n_video_frames']} frames), leave one clip "
            f"out; per-frame model trained on {v['n_still_frames']} still images minus the "
            f"clip's subject ({v['seconds']:.0f} s)"
        )
        print(
            f"{'clip':>5} {'subject':>8} {'frames':>7} {'per-frame':>10} {'EMA 0.5':>8} "
            f"{'temporal':>9}"
        )
        for c in v["clips"]:
            print(
                f"{c['clip']:>5} {c['subject']:>8} {c['n_frames']:>7} {c['per_frame']:>10.3f} "
                f"{c['ema']:>8.3f} {c['temporal']:>9.3f}"
            )
        m = v["mean"]
        print(f"{'mean':>22} {m['per_frame']:>10.3f} {m['ema']:>8.3f} {m['temporal']:>9.3f}")
    vis = out["datasets"].get("visual", {}).get("models", {}).get("geopose+yolo")
    plain = out["datasets"].get("samples", {}).get("models", {}).get("geopose")
    if vis and plain:
        print(
            f"\n== visual stream on the samples (same folds): geopose {plain['accuracy_mean']:.3f}"
            f" vs geopose+yolo {vis['accuracy_mean']:.3f} "
            f"({100 * (vis['accuracy_mean'] - plain['accuracy_mean']):+.1f} points)"
        )
    for name, doc in out["datasets"].items():
        if name.startswith("few_subjects"):
            for regime, d in doc.items():
                one(f"{name}/{regime}", d)
        else:
            one(name, doc)


if __name__ == "__main__":
    args = sys.argv[1:]

    def _opt(name: str, cast=int):
        return cast(args[args.index(name) + 1]) if name in args else None

    sel = None
    if "--only" in args:
        sel = tuple(args[args.index("--only") + 1].split(","))
    result = main(
        quick="--quick" in args,
        only=sel,
        epochs=_opt("--epochs"),
        members=_opt("--members"),
        per_class=_opt("--per-class"),
        draws=_opt("--draws"),
    )
    if "--out" in args:
        Path(args[args.index("--out") + 1]).write_text(json.dumps(result, indent=1, default=str))
