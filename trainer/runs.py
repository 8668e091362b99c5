"""The run folder: cross-validation driver, results on disk, terminal summary.

::

    RUN/
      config.yaml              everything needed to reproduce the run
      metrics.json             model, folds [{fold, accuracy, macro_f1, kappa, ...}], means/stds
      metrics.csv              one row per fold, then mean and std
      folds.csv                ann_id, group, fold (the exact split)
      oof_probabilities.csv    ann_id, image_id, file_name, fold, label, predicted, p_<class>...
      confusion_matrix.csv/.png
      training_curves.png      loss and validation accuracy per fold (neural models)
      folds/fold_<k>/          model.pt (torch.load(..., weights_only=True)), result.json,
                               proba.npy, history.csv

A run is built in ``.RUN.partial`` beside ``RUN`` and renamed into place when complete, so a
crash never leaves a half-written ``RUN``; ``--resume`` continues a partial (or finished) run
fold by fold. An existing ``RUN`` is refused unless ``--overwrite`` or ``--resume``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from toolkit.fileio import atomic_write_text, replace_dir
from trainer.cv import Fold, classification_metrics, confusion, make_folds
from trainer.data import Prepared
from trainer.train import CropCache, FoldOutput, TrainConfig, train_fold

METRIC_KEYS = ("accuracy", "macro_f1", "kappa", "family_accuracy", "chamber_accuracy", "ece")


def expected_calibration_error(y: np.ndarray, proba: np.ndarray, bins: int = 15) -> float:
    """ECE: the mean |accuracy - confidence| over equal-width confidence bins, weighted by size.

    Shapes:
        y: ``(n,)`` class indices; proba: ``(n, C)``. Returns a float in 0..1 (NaN when empty).
    """
    proba = np.asarray(proba, np.float64)
    if not len(proba):
        return float("nan")
    conf = proba.max(1)
    hit = proba.argmax(1) == np.asarray(y)
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    cnt = np.bincount(idx, minlength=bins)
    acc = np.bincount(idx, weights=hit, minlength=bins)
    cf = np.bincount(idx, weights=conf, minlength=bins)
    ok = cnt > 0
    return float(np.sum(np.abs(acc[ok] - cf[ok])) / len(proba))


def split_model_name(name: str) -> tuple[str, str | None]:
    """``"geopose+yolo"`` -> ``("geopose", "yolo")``; a plain name -> ``(name, None)``."""
    model, _, visual = name.partition("+")
    return model, (visual or None)


@dataclass
class RunResult:
    """A finished cross-validation run.

    Attributes:
        path: The run folder.
        metrics: The ``metrics.json`` document.
        oof: ``(N, C)`` out-of-fold probabilities (row order of the :class:`Prepared`).
        outputs: Per-fold outputs of folds trained in this call (resumed folds are absent).
    """

    path: Path
    metrics: dict
    oof: np.ndarray
    outputs: list[FoldOutput]

    def __repr__(self) -> str:
        m = self.metrics
        return (
            f"RunResult({m['model']!r}, accuracy={m['accuracy_mean']:.3f}"
            f"±{m['accuracy_std']:.3f}, folds={len(m['folds'])}, path='{self.path}')"
        )


def partial_dir(out: Path) -> Path:
    """The folder a run is built in before it is renamed to ``out``."""
    return out.parent / f".{out.name}.partial"


def _work_dir(out: Path, overwrite: bool, resume: bool) -> Path:
    """Where to build the run (the partial dir, or ``out`` itself when resuming a finished run)."""
    part = partial_dir(out)
    if resume:
        if out.exists():
            return out
        part.mkdir(parents=True, exist_ok=True)
        return part
    if out.exists() and not overwrite:
        raise FileExistsError(
            f"{out} already exists; pass --overwrite to replace it, --resume to continue it, or "
            "choose another --out."
        )
    shutil.rmtree(part, ignore_errors=True)
    part.mkdir(parents=True)
    return part


def _finalise(work: Path, out: Path) -> None:
    if work != out:
        replace_dir(work, out)


def folds_table(prep: Prepared, folds: list[Fold]) -> pd.DataFrame:
    """``ann_id, group, fold`` per row: the exact split (``folds.csv``)."""
    fold_of = np.full(len(prep), -1)
    for f in folds:
        fold_of[f.test] = f.index
    return pd.DataFrame({"ann_id": prep.ann_id, "group": prep.groups, "fold": fold_of})


@dataclass
class _RunPlan:
    """A run folder being built: what is kept from before and which folds still need training.

    Attributes:
        prep: The labelled data.
        cfg: The model's training settings.
        out: The final run folder.
        work: Where it is built (the partial folder, or ``out`` when resuming a finished run).
        folds: Every outer fold.
        cache: Shared crop-feature cache (mobilenet models) or None.
        rows: ``fold index -> result.json`` of finished folds.
        probas: ``fold index -> (n_test, C)`` out-of-fold probabilities of finished folds.
        outputs: Fold outputs trained in this call (fold order once complete).
        pending: Folds to train.
        label: The model's name in messages (``trainer ablate`` names several).
        t0: Start time (``perf_counter``).
    """

    prep: Prepared
    cfg: TrainConfig
    out: Path
    work: Path
    folds: list[Fold]
    cache: CropCache | None
    rows: dict
    probas: dict
    outputs: list
    pending: list[Fold]
    label: str
    t0: float


def _check_resumed_split(folds_csv: Path, table: pd.DataFrame) -> None:
    """Refuse ``--resume`` on a folder whose saved split differs from this one."""
    old = pd.read_csv(folds_csv)
    if (
        len(old) != len(table)
        or not np.array_equal(old["ann_id"].to_numpy(), table["ann_id"])
        or not np.array_equal(old["fold"].to_numpy(), table["fold"].to_numpy())
    ):
        raise ValueError(
            f"Expected --resume to continue the same split, but {folds_csv} "
            "differs (other data, --folds, --group or --seed); start a new run "
            "or pass --overwrite."
        )


def _plan_run(
    prep: Prepared,
    cfg: TrainConfig,
    out: str | Path,
    *,
    n_folds: int,
    overwrite: bool,
    resume: bool,
    progress: bool,
    folds: list[Fold] | None,
    cache: CropCache | None,
    extra_config: dict | None,
    echo,
) -> _RunPlan:
    """Prepare the run folder (split, config) and list the folds still to train."""
    out = Path(out)
    t0 = time.perf_counter()
    work = _work_dir(out, overwrite, resume)
    if folds is None:
        folds = make_folds(prep.y, prep.groups, n_folds, seed=cfg.seed)
    table = folds_table(prep, folds)
    folds_csv = work / "folds.csv"
    if resume and folds_csv.exists():
        _check_resumed_split(folds_csv, table)
    atomic_write_text(folds_csv, table.to_csv(index=False))
    _write_config(work, prep, cfg, n_folds=len(folds), extra=extra_config)
    if cfg.visual_source == "mobilenet" and cache is None:
        cache = CropCache(prep, cfg, progress=progress)
    if cfg.visual_source == "yolo" and prep.visual is None:
        raise ValueError(
            "Expected pretrained visual features for --visual yolo: prepare the data with "
            "trainer.visual.attach_visual_features (trainer fit does it)."
        )
    plan = _RunPlan(prep, cfg, out, work, folds, cache, {}, {}, [], [], cfg.model, t0)
    for fold in folds:
        fdir = work / "folds" / f"fold_{fold.index}"
        if resume and (fdir / "result.json").exists():
            plan.rows[fold.index] = json.loads((fdir / "result.json").read_text("utf-8"))
            plan.probas[fold.index] = np.load(fdir / "proba.npy")
            if echo:
                echo(f"fold {fold.index + 1}/{len(folds)}: kept from the previous run")
        else:
            plan.pending.append(fold)
    return plan


def fold_task(
    prep: Prepared, fold: Fold, cfg: TrainConfig, cache: CropCache | None, progress: bool
) -> FoldOutput:
    """Train one outer fold (what an engine task runs; see :func:`trainer.train.train_fold`)."""
    return train_fold(prep, fold, cfg, cache, progress=progress)


def _record_fold(plan: _RunPlan, fo: FoldOutput, echo, prefix: str = "") -> None:
    """Write a trained fold (driver side) and note it."""
    fold = fo.fold
    res = _save_fold(plan.work / "folds" / f"fold_{fold.index}", plan.prep, fo, plan.cfg)
    plan.rows[fold.index] = res
    plan.probas[fold.index] = fo.proba
    plan.outputs.append(fo)
    if echo:
        echo(
            f"{prefix}fold {fold.index + 1}/{len(plan.folds)}: accuracy {res['accuracy']:.3f} "
            f"({res['n_test']} frames, test groups {', '.join(res['test_groups'])}, "
            f"{res['seconds']:.1f} s)"
        )


def _fold_tasks(plan: _RunPlan, engine, shared_prep, progress: bool) -> list:
    """One engine task per pending fold (seeded like the fold's own training)."""
    from toolkit.engine import Task

    if plan.cache is not None and plan.cfg.cache_features and engine.kind != "local":
        plan.cache.compute(plan.cfg.device)  # once here, not once per remote task
    cache = plan.cache if plan.cfg.visual_source == "mobilenet" else None
    shared_cache = engine.put(cache) if (cache is not None and engine.kind != "local") else cache
    inner = progress and engine.kind == "local"
    return [
        Task(
            fold_task,
            (shared_prep, fold, plan.cfg, shared_cache, inner),
            seed=plan.cfg.seed * 1000 + fold.index,
            threads=max(1, plan.cfg.threads),
            label=f"{plan.label} fold {fold.index}",
        )
        for fold in plan.pending
    ]


def _finish_run(plan: _RunPlan) -> RunResult:
    """Summarise every fold (in fold order), write the results and move the run into place."""
    prep, folds, work = plan.prep, plan.folds, plan.work
    oof = np.full((len(prep), len(prep.taxonomy.classes)), np.nan)
    histories = {}
    for fold in folds:
        hist = work / "folds" / f"fold_{fold.index}" / "history.csv"
        if hist.exists():
            histories[fold.index] = pd.read_csv(hist)
        oof[fold.test] = plan.probas[fold.index]
    rows = [plan.rows[f.index] for f in folds]
    metrics = _summarise(prep, plan.cfg, rows, oof, folds)
    metrics["seconds_total"] = time.perf_counter() - plan.t0
    if plan.cache is not None:
        metrics["crop_feature_seconds"] = plan.cache.seconds
        metrics["visual_weights"] = plan.cache.weights_from
    _write_results(work, prep, metrics, oof, folds, histories)
    _finalise(work, plan.out)
    outputs = sorted(plan.outputs, key=lambda fo: fo.fold.index)
    return RunResult(plan.out, metrics, oof, outputs)


def _run_plans(plans: list[_RunPlan], engine, progress: bool, echo, prefixed: bool) -> None:
    """Train every pending fold of every plan as independent tasks on ``engine``."""
    from toolkit.engine import LocalEngine

    engine = engine or LocalEngine()
    shared: dict[int, object] = {}
    tasks, owner = [], []
    for plan in plans:
        key = id(plan.prep)
        if key not in shared:
            shared[key] = engine.put(plan.prep)
        new = _fold_tasks(plan, engine, shared[key], progress)
        tasks += new
        owner += [plan] * len(new)
    if not tasks:
        return

    def done(i: int, fo: FoldOutput) -> None:
        plan = owner[i]
        _record_fold(plan, fo, echo, f"{plan.label}: " if prefixed else "")

    engine.run(
        tasks,
        desc="folds",
        unit="fold",
        progress=progress and engine.kind != "local",
        on_result=done,
    )


def run_experiment(
    prep: Prepared,
    cfg: TrainConfig,
    out: str | Path,
    *,
    n_folds: int = 5,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = False,
    folds: list[Fold] | None = None,
    cache: CropCache | None = None,
    extra_config: dict | None = None,
    echo=None,
    engine=None,
) -> RunResult:
    """Cross-validate one model and write its run folder.

    Each pending fold is one task on ``engine`` (default: this process, fold after fold); the
    driver writes every fold's files as its task finishes, so the run folder is the same
    whichever engine trained the folds.

    Args:
        prep: The labelled data.
        cfg: Training settings (``cfg.model`` picks the model).
        out: The run folder.
        n_folds: Outer folds (ignored when ``folds`` is given).
        overwrite: Replace an existing run folder.
        resume: Continue an existing or partial run (finished folds are kept).
        progress: tqdm bars on stderr.
        folds: Precomputed folds (``trainer ablate`` shares one split across models).
        cache: Shared crop-feature cache (visual models).
        extra_config: More fields for ``config.yaml`` (dataset path, command line ...).
        echo: ``echo(str)`` for one-line progress notes (default: nothing).
        engine: A :mod:`toolkit.engine` engine (default: the local one).

    Raises:
        FileExistsError: ``out`` exists and neither ``overwrite`` nor ``resume``.
    """
    plan = _plan_run(
        prep,
        cfg,
        out,
        n_folds=n_folds,
        overwrite=overwrite,
        resume=resume,
        progress=progress,
        folds=folds,
        cache=cache,
        extra_config=extra_config,
        echo=echo,
    )
    _run_plans([plan], engine, progress, echo, prefixed=False)
    return _finish_run(plan)


def _save_fold(fdir: Path, prep: Prepared, fo: FoldOutput, cfg: TrainConfig) -> dict:
    import torch

    fdir.mkdir(parents=True, exist_ok=True)
    tax = prep.taxonomy
    m = classification_metrics(
        prep.y[fo.fold.test],
        fo.proba.argmax(1),
        len(tax.classes),
        tax.family_of if tax.hierarchical else None,
        tax.chamber_of if tax.hierarchical else None,
    )
    y_test = prep.y[fo.fold.test]
    m["ece"] = expected_calibration_error(y_test, fo.proba)
    res = {
        "fold": fo.fold.index,
        **m,
        "ece_uncalibrated": (
            expected_calibration_error(y_test, fo.proba_raw)
            if fo.proba_raw is not None
            else m["ece"]
        ),
        "temperatures": list(fo.temperatures),
        "members": len(fo.members) if fo.members else 0,
        "n_test": len(fo.fold.test),
        "test_groups": list(fo.fold.test_groups),
        "n_fit": fo.n_fit,
        "n_val": fo.n_val,
        "best_val_loss": fo.best_val_loss,
        "seconds": fo.seconds,
        "epochs_run": len(fo.history),
    }
    np.save(fdir / "proba.npy", fo.proba)
    if fo.history:
        atomic_write_text(fdir / "history.csv", pd.DataFrame(fo.history).to_csv(index=False))
    if fo.state is not None:
        ckpt = {
            "format": "arnis-geopose/1",
            "model_config": fo.model_config,
            "state_dict": fo.state,
            "classes": list(tax.classes),
            "taxonomy": json.dumps(tax.to_dict()),
            "fold": fo.fold.index,
            "best_val_loss": fo.best_val_loss,
            "train_config": json.dumps(_plain(cfg)),
            "members": fo.members[1:],  # the first member is state_dict
        }
        tmp = fdir / ".model.pt.tmp"
        torch.save(ckpt, tmp)
        os.replace(tmp, fdir / "model.pt")
    # result.json last: its presence marks the fold as finished for --resume.
    atomic_write_text(fdir / "result.json", json.dumps(res, indent=1, default=_json_default))
    return res


def load_checkpoint(path: str | Path):
    """Rebuild a fold's model from ``model.pt`` (loaded with ``weights_only=True``).

    Returns:
        ``(model, checkpoint dict)``; the model is in eval mode on the CPU.
    """
    import torch

    from trainer.models import build_model

    ckpt = torch.load(Path(path), map_location="cpu", weights_only=True)
    return _load_state(build_model(ckpt["model_config"]), ckpt["state_dict"]), ckpt


def _load_state(model, state: dict):
    """Load a state dict; checkpoints from before calibration lack ``temperature`` (= 1)."""
    import torch

    state = dict(state)
    state.setdefault("temperature", torch.tensor(1.0))
    model.load_state_dict(state)
    return model.eval()


def load_members(path: str | Path):
    """Every ensemble member of a fold's ``model.pt`` (one model for older checkpoints).

    Returns:
        ``(models, checkpoint dict)``; models in eval mode on the CPU, calibrated temperatures
        in their ``temperature`` buffers.
    """
    import torch

    from trainer.models import build_model

    ckpt = torch.load(Path(path), map_location="cpu", weights_only=True)
    states = [ckpt["state_dict"], *ckpt.get("members", [])]
    return [_load_state(build_model(ckpt["model_config"]), s) for s in states], ckpt


def _summarise(
    prep: Prepared, cfg: TrainConfig, rows: list[dict], oof: np.ndarray, folds: list[Fold]
) -> dict:
    tax = prep.taxonomy
    doc: dict = {
        "model": cfg.model,
        "n": len(prep),
        "classes": list(tax.classes),
        "group_by": prep.group_by,
        "n_folds": len(folds),
        "folds": [
            {
                k: r[k]
                for k in (
                    "fold",
                    *METRIC_KEYS,
                    "n_test",
                    "test_groups",
                    "n_fit",
                    "n_val",
                    "seconds",
                    "epochs_run",
                )
                if k in r
            }
            | {k: r[k] for k in ("ece_uncalibrated", "temperatures", "members") if k in r}
            for r in rows
        ],
    }
    for k in METRIC_KEYS:
        v = np.array([r.get(k, np.nan) for r in rows], float)
        doc[f"{k}_mean"] = float(np.mean(v)) if np.isfinite(v).any() else float("nan")
        doc[f"{k}_std"] = float(np.std(v, ddof=1)) if len(v) > 1 and np.isfinite(v).all() else 0.0
    ok = np.isfinite(oof).all(1)
    pooled = classification_metrics(
        prep.y[ok],
        oof[ok].argmax(1),
        len(tax.classes),
        tax.family_of if tax.hierarchical else None,
        tax.chamber_of if tax.hierarchical else None,
    )
    pooled["ece"] = expected_calibration_error(prep.y[ok], oof[ok])
    doc["pooled"] = pooled
    acc = np.array([r["accuracy"] for r in rows], float)
    doc["accuracy_worst"] = float(acc.min()) if len(acc) else float("nan")
    doc["worst_fold"] = int(rows[int(np.argmin(acc))]["fold"]) if len(acc) else -1
    doc["accuracy_worst_gap"] = float(acc.mean() - acc.min()) if len(acc) else float("nan")
    unc = [r.get("ece_uncalibrated") for r in rows if r.get("ece_uncalibrated") is not None]
    if unc:
        doc["ece_uncalibrated_mean"] = float(np.mean(unc))
    doc["seconds_per_fold_mean"] = float(np.mean([r["seconds"] for r in rows]))
    return doc


def _write_results(
    work: Path, prep: Prepared, metrics: dict, oof: np.ndarray, folds: list[Fold], histories: dict
) -> None:
    classes = prep.taxonomy.classes
    atomic_write_text(work / "metrics.json", json.dumps(metrics, indent=1, default=_json_default))
    rows = [
        {
            "fold": r["fold"],
            **{k: r.get(k, float("nan")) for k in METRIC_KEYS},
            "n_test": r["n_test"],
            "test_groups": " ".join(r["test_groups"]),
        }
        for r in metrics["folds"]
    ]
    rows.append({"fold": "mean", **{k: metrics[f"{k}_mean"] for k in METRIC_KEYS}})
    rows.append({"fold": "std", **{k: metrics[f"{k}_std"] for k in METRIC_KEYS}})
    atomic_write_text(work / "metrics.csv", pd.DataFrame(rows).to_csv(index=False))
    fold_of = folds_table(prep, folds)["fold"].to_numpy()
    ok = np.isfinite(oof).all(1)
    pred = np.where(ok, np.nan_to_num(oof).argmax(1), -1)
    df = pd.DataFrame(
        {
            "ann_id": prep.ann_id,
            "image_id": prep.image_id,
            "file_name": prep.file_name,
            "fold": fold_of,
            "label": np.array(classes, dtype=object)[prep.y],
            "predicted": np.where(ok, np.array(classes, dtype=object)[np.maximum(pred, 0)], ""),
        }
    )
    probs = pd.DataFrame(np.round(oof, 6), columns=[f"p_{c}" for c in classes])
    atomic_write_text(
        work / "oof_probabilities.csv", pd.concat([df, probs], axis=1).to_csv(index=False)
    )
    cm = confusion(prep.y[ok], pred[ok], len(classes))
    atomic_write_text(
        work / "confusion_matrix.csv",
        pd.DataFrame(cm, index=classes, columns=classes).rename_axis("true \\ predicted").to_csv(),
    )
    _plot_confusion(work / "confusion_matrix.png", cm, classes, metrics)
    if histories:
        _plot_curves(work / "training_curves.png", histories, metrics["model"])


def _plot_confusion(path: Path, cm: np.ndarray, classes: list[str], metrics: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(classes)
    fig, ax = plt.subplots(figsize=(max(4, 0.55 * n + 2), max(3.5, 0.5 * n + 1.5)), dpi=100)
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(n), classes, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(n), classes, fontsize=7)
    for i in range(n):
        for j in range(n):
            if cm[i, j]:
                ax.text(
                    j,
                    i,
                    str(cm[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if cm[i, j] > cm.max() / 2 else "black",
                )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(
        f"{metrics['model']}: out-of-fold, accuracy {metrics['accuracy_mean']:.3f}"
        f" ± {metrics['accuracy_std']:.3f}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _plot_curves(path: Path, histories: dict, model: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5), dpi=100)
    for k, h in sorted(histories.items()):
        (line,) = a1.plot(h["epoch"], h["train_loss"], lw=1, label=f"fold {k} train")
        a1.plot(h["epoch"], h["val_loss"], lw=1, ls="--", color=line.get_color())
        a2.plot(h["epoch"], h["val_accuracy"], lw=1, label=f"fold {k}")
    a1.set_xlabel("epoch")
    a1.set_ylabel("loss (solid train, dashed validation)")
    a2.set_xlabel("epoch")
    a2.set_ylabel("validation accuracy")
    a2.legend(fontsize=7)
    fig.suptitle(f"{model}: training curves", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _write_config(
    work: Path, prep: Prepared, cfg: TrainConfig, n_folds: int, extra: dict | None
) -> None:
    import yaml

    import trainer

    doc = {
        "trainer_version": getattr(trainer, "__version__", "0"),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **(extra or {}),
        "model": cfg.model,
        "folds": n_folds,
        "group": prep.group_by,
        "n_frames": len(prep),
        "n_groups": int(len(np.unique(prep.groups))),
        "classes": list(prep.taxonomy.classes),
        "taxonomy": prep.taxonomy.to_dict(),
        "train": _plain(cfg),
        "notes": list(prep.notes),
        "versions": _versions(),
    }
    atomic_write_text(work / "config.yaml", yaml.safe_dump(doc, sort_keys=False))


def _plain(cfg: TrainConfig) -> dict:
    return json.loads(json.dumps(cfg.to_dict(), default=_json_default))


def _versions() -> dict:
    import importlib.metadata as md

    out = {"python": sys.version.split()[0]}
    for name in ("torch", "torchvision", "torch-geometric", "scikit-learn", "numpy"):
        with contextlib.suppress(md.PackageNotFoundError):
            out[name] = md.version(name)
    return out


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


# ---------------------------------------------------------------------- terminal output
def summary_table(results: list[dict], baseline: str | None = "angles-rf") -> str:
    """A plain-text table: one row per model with mean ± std over folds and the worst fold.

    Family/chamber columns appear only when some model has them (a flat taxonomy, e.g. an
    angle CSV without one, has none). ``Δ`` columns: accuracy points relative to ``baseline``
    and to the best of the baselines in ``results`` (:data:`trainer.baselines.BASELINES`).

    Args:
        results: ``metrics.json`` documents.
        baseline: Model whose accuracy the first ``Δ`` column is relative to (if present).
    """
    from trainer.baselines import BASELINES as _BASE  # noqa: N811

    base = next((r for r in results if r["model"] == baseline), None)
    bases = [r for r in results if r["model"] in _BASE]
    best = max(bases, key=lambda r: r["accuracy_mean"]) if bases else None
    hier = any(np.isfinite(r.get("family_accuracy_mean", float("nan"))) for r in results)
    width = max([11, *(len(r.get("label", r["model"])) for r in results)])
    head = (
        f"{'model':<{width}} {'accuracy':>15} {'worst':>6} {'macro-F1':>15} {'kappa':>15}"
        + (f" {'family':>7} {'chamber':>7}" if hier else "")
        + f" {'ECE':>6} {'s/fold':>7}"
        + (f" {'Δ vs ' + baseline:>13}" if base else "")
        + (f" {'Δ vs best baseline':>19}" if best else "")
    )
    lines = [head, "-" * len(head)]
    for r in results:

        def ms(k, r=r):
            return f"{r[k + '_mean']:.3f} ± {r[k + '_std']:.3f}"

        line = (
            f"{r.get('label', r['model']):<{width}} {ms('accuracy'):>15} "
            f"{r.get('accuracy_worst', float('nan')):>6.3f} {ms('macro_f1'):>15} {ms('kappa'):>15}"
        )
        if hier:
            fam = r.get("family_accuracy_mean", float("nan"))
            cha = r.get("chamber_accuracy_mean", float("nan"))
            line += f" {fam:>7.3f} {cha:>7.3f}"
        line += (
            f" {r.get('ece_mean', float('nan')):>6.3f}"
            f" {r.get('seconds_per_fold_mean', float('nan')):>7.1f}"
        )
        if base:
            line += f" {100 * (r['accuracy_mean'] - base['accuracy_mean']):>+12.1f}pt"
        if best:
            line += f" {100 * (r['accuracy_mean'] - best['accuracy_mean']):>+16.1f}pt"
            line += f" ({best.get('label', best['model'])})" if r is results[0] else ""
        lines.append(line)
    return "\n".join(lines)


def fold_table(metrics: dict) -> str:
    """Per-fold lines of one run."""
    lines = [f"{'fold':>4} {'accuracy':>9} {'macro-F1':>9} {'kappa':>7} {'n_test':>6}  test groups"]
    for f in metrics["folds"]:
        lines.append(
            f"{f['fold']:>4} {f['accuracy']:>9.3f} {f['macro_f1']:>9.3f} "
            f"{f['kappa']:>7.3f} {f['n_test']:>6}  {' '.join(f['test_groups'])}"
        )
    return "\n".join(lines)


def run_ablation(
    prep: Prepared,
    models: list[str],
    cfg: TrainConfig,
    out: str | Path,
    *,
    n_folds: int = 5,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = False,
    extra_config: dict | None = None,
    echo=None,
    folds: list[Fold] | None = None,
    engine=None,
) -> tuple[list[dict], str]:
    """Cross-validate several models on the same folds; ``out/<model>/`` is each one's run.

    Every (model, fold) pair is one independent task on ``engine`` (default: this process, one
    after another), so with ``--engine ray`` all models train at once.

    A model name may carry a visual stream: ``geopose+yolo`` is ``geopose`` with
    ``visual="yolo"`` (the plain name uses ``cfg.visual``).

    Args:
        prep: The labelled data (with ``prep.visual`` when a ``+yolo`` model is listed).
        models: Model names (:data:`trainer.train.MODELS`, optionally ``+<visual>``).
        cfg: Shared training settings.
        out: The ablation folder.
        n_folds: Outer folds (ignored when ``folds`` is given).
        overwrite: Replace existing run folders.
        resume: Continue existing or partial runs.
        progress: tqdm bars on stderr.
        extra_config: More fields for each ``config.yaml``.
        echo: ``echo(str)`` for one-line progress notes.
        folds: Precomputed folds (e.g. a few-subject regime).
        engine: A :mod:`toolkit.engine` engine (default: the local one).

    Returns:
        The ``metrics.json`` documents and the summary table (also written to
        ``out/ablation.csv`` and ``out/ablation.json``).
    """
    from dataclasses import replace

    out = Path(out)
    if out.exists() and not (overwrite or resume):
        raise FileExistsError(
            f"{out} already exists; pass --overwrite to replace it, --resume "
            "to continue it, or choose another --out."
        )
    out.mkdir(parents=True, exist_ok=True)
    if folds is None:
        folds = make_folds(prep.y, prep.groups, n_folds, seed=cfg.seed)
    cache = None
    plans = []
    for name in models:
        model, visual = split_model_name(name)
        mcfg = replace(cfg, model=model, visual=visual or cfg.visual)
        mcfg.check()
        if mcfg.visual_source == "mobilenet" and cache is None:
            cache = CropCache(prep, mcfg, progress=progress)
        if echo:
            echo(f"== {name}")
        plan = _plan_run(
            prep,
            mcfg,
            out / name,
            n_folds=n_folds,
            overwrite=overwrite,
            resume=resume,
            progress=progress,
            folds=folds,
            cache=cache if mcfg.visual_source == "mobilenet" else None,
            extra_config=extra_config,
            echo=echo,
        )
        plan.label = name
        plans.append(plan)
    _run_plans(plans, engine, progress, echo, prefixed=True)
    results = []
    for plan in plans:
        res = _finish_run(plan)
        res.metrics["label"] = plan.label
        results.append(res.metrics)
    table = summary_table(results)
    keep = (
        "label",
        "model",
        "accuracy_mean",
        "accuracy_std",
        "accuracy_worst",
        "macro_f1_mean",
        "macro_f1_std",
        "kappa_mean",
        "kappa_std",
        "family_accuracy_mean",
        "chamber_accuracy_mean",
        "ece_mean",
        "ece_uncalibrated_mean",
        "seconds_per_fold_mean",
    )
    atomic_write_text(
        out / "ablation.csv",
        pd.DataFrame([{k: r.get(k) for k in keep} for r in results]).to_csv(index=False),
    )
    atomic_write_text(
        out / "ablation.json",
        json.dumps(
            {
                "models": results,
                "folds": [{"fold": f.index, "test_groups": list(f.test_groups)} for f in folds],
            },
            indent=1,
            default=_json_default,
        ),
    )
    atomic_write_text(out / "ablation.txt", table + "\n")
    return results, table
