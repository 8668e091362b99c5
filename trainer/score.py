"""``trainer score``: re-score a dataset with exported ONNX model(s) and build the review queue.

Pipeline (every step vectorised over all annotations; the only Python loops are over batches,
videos/tracks and ensemble members):

1. **Models.** One ONNX file, several (an ensemble run separately), or a run folder: its
   ``model.onnx`` (exported by :func:`trainer.export.export_run` when absent) or, with
   ``ensemble=True``, one ONNX file per fold (``RUN/onnx/fold_<k>.onnx``, exported when absent)
   so the members' disagreement can be measured. An ``--ensemble`` graph (one file averaging the
   folds inside) gives the mean only: its disagreement is reported as null.
2. **Inputs** exactly as the export documents them (``metadata_props``): :func:`trainer.data.
   featurise` on the current keypoints and :func:`trainer.data.confidence` for ``nodes`` and
   ``edge_attr``; :func:`trainer.data.read_crops` (float 0..1, NCHW) for ``crop``. onnxruntime,
   batched, with a progress bar.
3. **Time** (video frames only; per video and ``track_id``): frames whose mean keypoint
   confidence (over the 19 points, a missing point counting 0) is below ``min_kpt_conf`` are
   *gated*: they are not used and hold the last valid (smoothed) prediction for up to ``hold``
   frames; later gated frames keep the raw prediction, flagged ``gated``. Valid frames are
   smoothed by an exponential moving average ``s_t = a p_t + (1 - a) s_{t-1}`` that restarts
   after a gap longer than ``hold`` frames. Each ensemble member is smoothed on its own.
4. **Predictions** are stored in each annotation's ``predictions`` field (labels untouched):
   ``{model, variant, stance, confidence, probs{class: p}, margin, entropy, disagreement,
   smoothed, held, gated}`` plus ``family``/``chamber`` (hierarchical models) and ``geometry``
   (aux head), then ``Dataset.save()`` (atomic).
5. **Queue** (:mod:`toolkit.queue`), ranked by calibrated scores: the exported graph divides
   each member's stance logits by its fitted temperature and the run's out-of-fold probabilities
   are the calibrated ones (:mod:`trainer.train`). ``label_disagreement`` by confident learning
   on the run's out-of-fold probabilities for frames that were in training (the model's own probabilities for
   the other labelled frames); ``low_confidence`` (margin below ``low_margin``, unlabelled frames
   first); ``stick_geometry`` (geometry head vs the annotated stick beyond a tolerance);
   ``validation`` (``DATASET/validation.json`` findings). De-duplicated, spread in time, ranked.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from toolkit.errors import InputError, expected
from toolkit.locate import Locator

#: Ranking multipliers per reason (the queue sorts by score x weight).
#: Scores are 0..1 within each reason (label_disagreement 0.5 + 0.5 x margin; low_confidence +1
#: for unlabelled frames), so likely label errors come first, then stick problems and validation
#: findings, then frames worth labelling.
DEFAULT_WEIGHTS: dict[str, float] = {
    "label_disagreement": 4.0,
    "stick_geometry": 2.0,
    "validation": 2.0,
    "low_confidence": 1.0,
}
SEVERITY_SCORE = {"error": 1.0, "warning": 0.6, "info": 0.25}


@dataclass
class ScoreOptions:
    """Settings of :func:`score_dataset` (defaults are what ``trainer score`` uses).

    Attributes:
        ema_alpha: EMA weight of the newest frame (1 = no smoothing).
        min_kpt_conf: Gate: video frames with a lower mean keypoint confidence are skipped.
        hold: Frames a gated frame may hold the last valid prediction for.
        batch: onnxruntime batch size.
        top: Keep only the first ``top`` queue items (None: all).
        window: Queue suppression window in frames (spread in time).
        low_margin: ``low_confidence`` when the top-2 margin is below this.
        geometry_tol: Tolerances of the stick-geometry check: grip offset and stick length in
            torso units, angle in degrees (beyond the data set's median residual).
        threads: onnxruntime intra-op threads.
        weights: Ranking multiplier per reason.
        save: Store the predictions in the dataset.
        cl_method: Confident-learning selection, ``"prune"`` or ``"rule"`` (see
            :func:`confident_learning`).
        cl_rank_by: Its ranking, ``"self_confidence"`` or ``"margin"``.
    """

    ema_alpha: float = 0.5
    min_kpt_conf: float = 0.3
    hold: int = 5
    batch: int = 256
    top: int | None = None
    window: int = 15
    low_margin: float = 0.25
    geometry_tol: tuple[float, float, float] = (0.35, 0.4, 30.0)
    threads: int = 2
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    save: bool = True
    cl_method: str = "prune"
    cl_rank_by: str = "self_confidence"

    def check(self) -> None:
        """Refuse settings out of range.

        Raises:
            ValueError: A setting out of its range (the message names the option).
        """
        if not 0 < self.ema_alpha <= 1:
            raise ValueError(expected("--ema-alpha", "in (0, 1]", self.ema_alpha))
        if not 0 <= self.min_kpt_conf <= 1:
            raise ValueError(expected("--min-kpt-conf", "in [0, 1]", self.min_kpt_conf))
        if self.hold < 0:
            raise ValueError(expected("--hold", ">= 0", self.hold))
        if self.batch < 1:
            raise ValueError(expected("--batch", ">= 1", self.batch))


@dataclass
class ScoreResult:
    """What :func:`score_dataset` computed.

    Attributes:
        classes: Stance names (probability column order).
        probs: ``(N, C)`` final (ensemble-mean, smoothed) probabilities, dataset row order.
        member_probs: ``(M, N, C)`` per ensemble member (after smoothing).
        raw_probs: ``(N, C)`` ensemble mean before smoothing.
        margin, entropy: ``(N,)`` top-2 margin and entropy / log(C) of :attr:`probs`.
        disagreement: ``(N,)`` share of members whose top class differs from the mean's (NaN
            with one member).
        kpt_conf: ``(N,)`` mean keypoint confidence (the gate's input).
        held, gated, smoothed: ``(N,)`` bool flags of the temporal step.
        geometry: ``(N, 4)`` geometry head output (member mean) or None.
        queue: The review queue.
        models: ONNX files used.
        oof_source: Where out-of-fold probabilities came from (or None).
        seconds: ``{"inference": s, "total": s}``.
    """

    classes: list[str]
    probs: np.ndarray
    member_probs: np.ndarray
    raw_probs: np.ndarray
    margin: np.ndarray
    entropy: np.ndarray
    disagreement: np.ndarray
    kpt_conf: np.ndarray
    held: np.ndarray
    gated: np.ndarray
    smoothed: np.ndarray
    geometry: np.ndarray | None
    queue: object
    models: list[Path]
    oof_source: str | None
    seconds: dict

    def __repr__(self) -> str:
        return (
            f"ScoreResult(n={len(self.probs)}, classes={len(self.classes)}, "
            f"models={len(self.models)}, queue={self.queue!r})"
        )


# ---------------------------------------------------------------------- models
def resolve_models(
    models: list[str | Path], ensemble: bool = False, echo: Callable[[str], None] | None = None
) -> tuple[list[Path], Path | None]:
    """ONNX files to run, and the run folder they came from (for out-of-fold probabilities).

    Args:
        models: ``.onnx`` files, or one run folder.
        ensemble: With a run folder: one ONNX per fold (exported into ``RUN/onnx/`` if absent).
        echo: Progress notes.

    Raises:
        FileNotFoundError: A missing file, or a run folder without exportable models.
    """
    paths = [Path(m) for m in models]
    if not paths:
        raise ValueError("Expected '--model' (a model.onnx or a run folder), but got none.")
    dirs = [p for p in paths if p.is_dir()]
    if dirs:
        if len(paths) > 1:
            raise ValueError(
                expected(
                    "--model", "one run folder, or one or more .onnx files", [str(p) for p in paths]
                )
            )
        run = dirs[0]
        from trainer.export import _fold_dirs, export_run

        if ensemble:
            out = []
            for d in _fold_dirs(run):
                k = int(d.name[5:])
                target = run / "onnx" / f"fold_{k}.onnx"
                if not target.exists():
                    if echo:
                        echo(f"exporting fold {k} of {run} -> {target}")
                    export_run(run, target, fold=k)
                out.append(target)
            if not out:
                export_run(run, run / "onnx" / "none.onnx")  # raises the explanatory error
            return out, run
        target = run / "model.onnx"
        if not target.exists():
            if echo:
                echo(f"exporting {run} -> {target}")
            export_run(run, target)
        return [target], run
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(
                f"Expected '--model' to be an .onnx file or a run folder, but {p} does not exist."
            )
    if ensemble and len(paths) == 1:
        raise ValueError(
            "Expected '--ensemble' with a run folder (or several .onnx files), but "
            "got one .onnx file."
        )
    return paths, None


class OnnxScorer:
    """One or more exported models behind one ``predict`` (members must share their classes).

    Attributes:
        paths: The ONNX files.
        meta: Their ``metadata_props`` (first member).
        classes: Stance names.
        inputs, outputs: Graph input and output names (first member).
        ensemble_graph: The file averages several folds inside (no per-member outputs).
    """

    def __init__(self, paths: list[Path], threads: int = 2):
        from trainer.export import ort_session, read_metadata

        self.paths = list(paths)
        self.sessions = [ort_session(p, threads=threads) for p in self.paths]
        metas = [read_metadata(p) for p in self.paths]
        for p, m in zip(self.paths, metas, strict=True):
            if "class_names" not in m:
                raise InputError(
                    "Expected an ONNX file written by `trainer export` (metadata with "
                    "class_names), but it has none.",
                    p,
                )
        self.meta = metas[0]
        self.classes = json.loads(self.meta["class_names"])
        for p, m in zip(self.paths[1:], metas[1:], strict=True):
            if json.loads(m["class_names"]) != self.classes:
                raise InputError(
                    expected(
                        "class_names of every ensemble member", str(self.classes), m["class_names"]
                    ),
                    p,
                )
        self.inputs = [i.name for i in self.sessions[0].get_inputs()]
        self.outputs = [o.name for o in self.sessions[0].get_outputs()]
        self.ensemble_graph = any(json.loads(m.get("ensemble", "false")) for m in metas)
        self.variant = self.meta.get("model", "?")

    def __repr__(self) -> str:
        return (
            f"OnnxScorer(members={len(self.paths)}, variant={self.variant!r}, "
            f"inputs={self.inputs}, outputs={self.outputs})"
        )

    @property
    def needs_crops(self) -> bool:
        """Whether the graph takes grip crops."""
        return "crop" in self.inputs

    def feed(
        self,
        ds,
        rows: np.ndarray,
        kp: np.ndarray,
        conf: np.ndarray,
        groups: np.ndarray | None = None,
    ) -> dict:
        """The input arrays for annotation ``rows`` (see :mod:`trainer.data`).

        Args:
            ds: The dataset (crops are read from its media).
            rows: Annotation rows.
            kp: ``(n, 19, 3)`` their keypoints.
            conf: ``(n, 19)`` their keypoint confidences.
            groups: The rows' subjects: they give the weapon hand of frames without a grip.

        Returns:
            ``{input name: array}`` for the graph's inputs.
        """
        from trainer.data import featurise, read_crops

        nodes, edges = featurise(kp, conf, groups=groups)
        feed = {"nodes": nodes, "edge_attr": edges}
        if self.needs_crops:
            crops = read_crops(ds, rows, kp, groups=groups)
            feed["crop"] = np.ascontiguousarray(crops.transpose(0, 3, 1, 2), np.float32) / 255.0
        return {k: v for k, v in feed.items() if k in self.inputs}

    def run(self, feed: dict) -> list[dict[str, np.ndarray]]:
        """Every member's outputs for one batch."""
        return [dict(zip(self.outputs, s.run(None, feed), strict=True)) for s in self.sessions]


def predict_all(
    ds, scorer: OnnxScorer, batch: int = 256, progress: bool = False, rows: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Run every member over the annotations ``rows`` (default all), batched.

    Rows are processed in (video, frame) order so crops read each video sequentially.

    Returns:
        ``{output name: (M, n, ...)}`` in ``rows`` order.
    """
    from tqdm.auto import tqdm

    from trainer.data import confidence

    rows = np.arange(len(ds)) if rows is None else np.asarray(rows, np.int64)
    table = ds.frame_table().iloc[rows]
    vid = table["video_id"].to_numpy(dtype=float, na_value=np.nan)
    fidx = table["frame_index"].to_numpy(dtype=float, na_value=np.nan)
    order = np.lexsort((fidx, np.nan_to_num(vid, nan=-1.0)))
    kp_all = ds.keypoints[rows]
    conf_all = confidence(kp_all, ds.scores[rows])
    subj = table["subject"].to_numpy(dtype=object)
    subj = np.where(pd.isna(pd.Series(subj, dtype=object)).to_numpy(), None, subj)
    out: dict[str, np.ndarray] = {}
    with tqdm(
        total=len(rows), desc="scoring", unit="frame", disable=not progress, leave=False
    ) as bar:
        for s in range(0, len(rows), batch):
            sel = order[s : s + batch]
            feed = scorer.feed(ds, rows[sel], kp_all[sel], conf_all[sel], subj[sel])
            res = scorer.run(feed)
            for name in scorer.outputs:
                arr = np.stack([r[name] for r in res])
                if name not in out:
                    out[name] = np.zeros((len(res), len(rows), *arr.shape[2:]), np.float32)
                out[name][:, sel] = arr
            bar.update(len(sel))
    return out


# ---------------------------------------------------------------------- time
def smooth_sequences(
    values: np.ndarray,
    group: np.ndarray,
    frame: np.ndarray,
    valid: np.ndarray,
    alpha: float,
    hold: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """EMA over valid frames per sequence, holding the last valid value over gated frames.

    Args:
        values: Per-row values (probabilities; any trailing shape).
        group: ``(N,)`` sequence key per row (video and track); negative = not a sequence.
        frame: ``(N,)`` frame index.
        valid: ``(N,)`` rows that pass the gate.
        alpha: Weight of the newest frame.
        hold: A gated row takes the last valid smoothed value when it is at most ``hold``
            frames later; the EMA restarts after a gap of more than ``hold`` frames.

    Shapes:
        values: ``(N, ...)``. Returns ``out`` (same shape), ``held (N,)``, ``gated (N,)``: gated =
        in a sequence, not valid and not held (``out`` keeps the input value there).
    """
    from scipy.signal import lfilter

    values = np.asarray(values, np.float64)
    shape = values.shape
    flat = values.reshape(len(values), -1)
    out = flat.copy()
    held = np.zeros(len(flat), bool)
    gated = np.zeros(len(flat), bool)
    group = np.asarray(group)
    frame = np.asarray(frame, np.float64)
    seq = group >= 0
    for g in np.unique(group[seq]):
        pos = np.flatnonzero(group == g)
        pos = pos[np.argsort(frame[pos], kind="stable")]
        if len(np.unique(frame[pos])) < len(pos):
            continue  # several persons per frame without track ids: not one sequence
        ok = valid[pos]
        vpos = pos[ok]
        if len(vpos):
            f = frame[vpos]
            starts = np.flatnonzero(np.r_[True, np.diff(f) > hold + 1])
            ends = np.r_[starts[1:], len(vpos)]
            for a, b in zip(starts, ends, strict=True):
                x = flat[vpos[a:b]]
                y, _ = lfilter([alpha], [1.0, alpha - 1.0], x, axis=0, zi=(1 - alpha) * x[:1])
                out[vpos[a:b]] = y
        # last valid row at or before each position (sorted order)
        idx = np.where(ok, np.arange(len(pos)), -1)
        last = np.maximum.accumulate(idx)
        bad = ~ok
        has = last >= 0
        gap = np.where(has, frame[pos] - frame[pos[np.maximum(last, 0)]], np.inf)
        h = bad & has & (gap <= hold)
        out[pos[h]] = out[pos[last[h]]]
        held[pos[h]] = True
        gated[pos[bad & ~h]] = True
    return out.reshape(shape), held, gated


def sequence_keys(ds) -> tuple[np.ndarray, np.ndarray]:
    """Per annotation: a sequence id (video x track; -1 for images) and the frame index."""
    table = ds.frame_table()
    vid = table["video_id"].to_numpy(dtype=float, na_value=np.nan)
    fidx = table["frame_index"].to_numpy(dtype=float, na_value=np.nan)
    track = table["track_id"].to_numpy(dtype=float, na_value=np.nan)
    is_seq = np.isfinite(vid) & np.isfinite(fidx)
    key = pd.Series(
        list(zip(np.nan_to_num(vid, nan=-1), np.nan_to_num(track, nan=-1), strict=True))
    )
    codes = pd.factorize(key)[0]
    return np.where(is_seq, codes, -1), np.nan_to_num(fidx, nan=0.0)


# ---------------------------------------------------------------------- uncertainty
def uncertainty(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top-2 margin and normalised entropy (0..1) per row.

    Shapes:
        probs: ``(N, C)``. Returns two ``(N,)`` arrays.
    """
    p = np.clip(np.asarray(probs, np.float64), 0, 1)
    c = p.shape[1]
    top2 = -np.sort(-p, axis=1)[:, :2] if c > 1 else np.c_[p[:, :1], np.zeros((len(p), 1))]
    margin = top2[:, 0] - top2[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(p > 0, p * np.log(p), 0.0).sum(1) / (math.log(c) if c > 1 else 1.0)
    return margin, ent


def labelling_priority(
    margin: np.ndarray, entropy: np.ndarray, disagree: np.ndarray, labelled: np.ndarray
) -> np.ndarray:
    """The ``low_confidence`` score: how much a frame is worth labelling next.

    ``(1 - margin + entropy [+ disagreement]) / 2 [or 3]`` in 0..1 (disagreement counts when an
    ensemble measured it), plus 1 for unlabelled frames so they come first.

    Shapes:
        All ``(N,)``; returns ``(N,)``.
    """
    dis = np.asarray(disagree, np.float64)
    has = np.isfinite(dis)
    unc = (1 - np.asarray(margin) + np.asarray(entropy) + np.where(has, dis, 0)) / np.where(
        has, 3.0, 2.0
    )
    return np.clip(unc, 0, 1) + ~np.asarray(labelled, bool)


def disagreement(member_probs: np.ndarray) -> np.ndarray:
    """Share of ensemble members whose top class differs from the mean's (NaN for one member).

    Shapes:
        member_probs: ``(M, N, C)``. Returns ``(N,)``.
    """
    m = member_probs.shape[0]
    if m < 2:
        return np.full(member_probs.shape[1], np.nan)
    top = member_probs.mean(0).argmax(1)
    return (member_probs.argmax(2) != top[None]).mean(0)


def confident_learning(
    probs: np.ndarray,
    labels: np.ndarray,
    thresholds: np.ndarray | None = None,
    method: str = "prune",
    rank_by: str = "self_confidence",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Likely label errors, as confident learning (Northcutt et al., 2021) finds them.

    Per class ``j`` the threshold ``t_j`` is the mean probability of ``j`` over the rows labelled
    ``j`` (its average self-confidence). The *rule*: a row labelled ``y`` is a confident error
    when ``p_y < t_y`` and another class ``j`` has ``p_j >= t_j``.

    * ``method="rule"`` flags exactly those rows.
    * ``method="prune"`` (default; cleanlab's ``prune_by_class``) uses the rule only to *count*
      the errors of each labelled class ``y``, then flags that many rows labelled ``y`` that
      rank worst (among rows whose label is not the top class). A flipped label whose true
      class is not quite above its threshold is still found, which matters with the soft
      probabilities of a small model.

    Ranking and score (``rank_by``): ``"self_confidence"`` (default; cleanlab's label-quality
    score) ``1 - p_y``, or ``"margin"`` ``max_{j != y} p_j - p_y``. Self-confidence separates a
    flipped label (``p_y`` of a random wrong class, near 0) from the model's own confusions
    between two similar stances (``p_y`` the runner-up) better: on generated samples it put
    7 points more flipped labels in the top k. The suggested class is the most probable other
    class (with ``"rule"``: the most probable one above its threshold).

    Args:
        probs: Probabilities (out-of-fold for training rows).
        labels: Class index per row, ``-1`` for unlabelled (ignored).
        thresholds: Precomputed ``t`` (default: from these rows).
        method: ``"prune"`` or ``"rule"``.
        rank_by: ``"self_confidence"`` or ``"margin"``.

    Shapes:
        probs: ``(N, C)``; labels: ``(N,)``. Returns ``flag (N,)``, ``score (N,)``,
        ``suggested (N,)`` (-1 when not flagged) and ``thresholds (C,)``.
    """
    if method not in ("prune", "rule"):
        raise ValueError(expected("method", "'prune' or 'rule'", method))
    if rank_by not in ("self_confidence", "margin"):
        raise ValueError(expected("rank_by", "'self_confidence' or 'margin'", rank_by))
    p = np.asarray(probs, np.float64)
    y = np.asarray(labels, np.int64)
    n, c = p.shape
    lab = (y >= 0) & np.isfinite(p).all(1)
    if thresholds is None:
        sums = np.zeros(c)
        cnt = np.zeros(c)
        np.add.at(sums, y[lab], p[lab, y[lab]])
        np.add.at(cnt, y[lab], 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            thresholds = np.where(cnt > 0, sums / np.maximum(cnt, 1), np.inf)
    t = np.asarray(thresholds, np.float64)
    rows = np.arange(n)
    yy = np.where(lab, y, 0)
    p = np.nan_to_num(p)
    p_y = p[rows, yy]
    above = p >= t[None]
    above[rows, yy] = False
    rule = lab & (p_y < t[yy]) & above.any(1)
    other = p.copy()
    other[rows, yy] = -np.inf
    best = other.argmax(1)
    margin = other[rows, best] - p_y
    if method == "rule":
        sug = np.where(above, p, -np.inf).argmax(1)
        ok = rule
        badness = p[rows, sug] - p_y if rank_by == "margin" else 1 - p_y
        return ok, np.where(ok, badness, 0.0), np.where(ok, sug, -1), t
    badness = margin if rank_by == "margin" else 1 - p_y
    ok = np.zeros(n, bool)
    counts = np.bincount(yy[rule], minlength=c)
    for k in np.flatnonzero(counts):  # a loop over classes, not rows
        cand = np.flatnonzero(lab & (yy == k) & (margin > 0))
        take = cand[np.argsort(-badness[cand], kind="stable")[: counts[k]]]
        ok[take] = True
    return ok, np.where(ok, badness, 0.0), np.where(ok, best, -1), t


def read_oof(source: str | Path, ds, classes: list[str]) -> tuple[np.ndarray, str]:
    """Out-of-fold probabilities aligned to the dataset rows (NaN rows where absent).

    Args:
        source: A run folder or its ``oof_probabilities.csv``.
        ds: The dataset (rows matched on ``ann_id``).
        classes: The scoring model's class order.

    Returns:
        ``(N, C)`` probabilities (NaN where the frame was not in training or its label changed
        since) and the file read.
    """
    path = Path(source)
    if path.is_dir():
        path = path / "oof_probabilities.csv"
    if not path.is_file():
        raise FileNotFoundError(
            f"Expected out-of-fold probabilities (oof_probabilities.csv of a "
            f"`trainer fit` run), but {path} does not exist."
        )
    df = pd.read_csv(path)
    cols = [f"p_{c}" for c in classes]
    missing = [c for c in cols if c not in df.columns]
    if missing or "ann_id" not in df.columns:
        raise InputError(
            expected("columns", f"ann_id, label and {cols}", list(df.columns)[:8]), path
        )
    out = np.full((len(ds), len(classes)), np.nan)
    pos = Locator.build(ds).ann_rows(df["ann_id"].to_numpy())
    stance = ds.frame_table()["stance"].to_numpy(dtype=object)
    keep = pos >= 0
    same = np.zeros(len(df), bool)
    same[keep] = np.asarray(stance[pos[keep]] == df["label"].to_numpy(dtype=object)[keep], bool)
    keep &= same
    out[pos[keep]] = df.loc[keep, cols].to_numpy(np.float64)
    return out, str(path)


# ---------------------------------------------------------------------- geometry
def geometry_deviation(
    pred: np.ndarray, kp: np.ndarray, tol: tuple[float, float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """How far the predicted stick geometry is from the annotated stick, in tolerances.

    Per frame and quantity (grip offset from the weapon wrist, stick length, stick-forearm
    angle) the absolute residual minus the data set's median residual, divided by the
    tolerance or by 3 robust standard deviations (1.4826 MAD) of the residual, whichever is
    larger (so a loosely trained geometry head flags only outliers); the frame's deviation is
    the largest. > 1 means beyond tolerance.

    Shapes:
        pred: ``(N, 4)`` geometry head output; kp: ``(N, 19, 3)``. Returns ``deviation (N,)``
        (NaN where the annotated stick is incomplete) and ``parts (N, 3)``.
    """
    from trainer.data import geometry_targets

    tgt, mask = geometry_targets(kp)
    tgt = np.where(mask, tgt, np.nan).astype(np.float64)
    pred = np.asarray(pred, np.float64)
    grip = np.hypot(pred[:, 0] - tgt[:, 0], pred[:, 1] - tgt[:, 1])
    length = np.abs(pred[:, 2] - tgt[:, 2])
    d = (pred[:, 3] - tgt[:, 3]) * np.pi
    ang = np.degrees(np.abs((d + np.pi) % (2 * np.pi) - np.pi))
    parts = np.stack([grip, length, ang], 1)
    with np.errstate(invalid="ignore"):
        med = np.nanmedian(parts, 0) if np.isfinite(parts).any() else np.zeros(3)
        mad = (
            np.nanmedian(np.abs(parts - med[None]), 0) if np.isfinite(parts).any() else np.zeros(3)
        )
    med = np.nan_to_num(med)
    scale = np.maximum(np.asarray(tol, np.float64), 3 * 1.4826 * np.nan_to_num(mad))
    dev = (parts - med[None]) / scale[None]
    with np.errstate(invalid="ignore"):
        worst = np.where(np.isfinite(dev).all(1), dev.max(1), np.nan)
    return worst, parts


# ---------------------------------------------------------------------- queue
def validation_items(ds, dataset_dir: Path) -> tuple[list, str | None]:
    """Queue items from ``DATASET/validation.json`` (findings that name an annotation/image).

    The findings are read by :func:`toolkit.report.read_findings_file` (the one reader).
    """
    from toolkit.queue import items_for_rows
    from toolkit.report import read_findings_file

    findings, path = read_findings_file(dataset_dir)
    if path is None:
        return [], None
    rows, scores, details = [], [], []
    lookup = Locator.build(ds)
    for f in findings:
        r = lookup.ann_row_of(f)  # by ann_id, else the first person of the frame it names
        if r is None:
            continue
        sev = f.get("severity", "info")
        rows.append(r)
        scores.append(SEVERITY_SCORE.get(sev, 0.25))
        details.append(
            {
                "code": f.get("code"),
                "severity": sev,
                "message": f.get("message"),
                "keypoints": f.get("keypoints", []),
                "value": f.get("value"),
                "threshold": f.get("threshold"),
            }
        )
    if not rows:
        return [], str(path)
    return items_for_rows(ds, np.array(rows), "validation", np.array(scores), details), str(path)


def _r(x: float, nd: int = 4) -> float | None:
    x = float(x)
    return round(x, nd) if math.isfinite(x) else None


def build_items(
    ds,
    res: ScoreResult,
    labels: np.ndarray,
    oof: np.ndarray | None,
    opts: ScoreOptions,
    dataset_dir: Path | None,
) -> tuple[list, dict]:
    """Candidate queue items for every reason, and notes for the queue's ``meta``."""
    from toolkit.queue import items_for_rows

    classes = np.array(res.classes, dtype=object)
    items: list = []
    notes: dict = {}
    n = len(labels)
    # (1) label disagreement: out-of-fold probabilities where available, else the model's.
    use_oof = np.zeros(n, bool) if oof is None else np.isfinite(oof).all(1) & (labels >= 0)
    flag = np.zeros(n, bool)
    score = np.zeros(n)
    sug = np.full(n, -1)
    thr = {}
    for src, mask, p in (("oof", use_oof, oof), ("model", (labels >= 0) & ~use_oof, res.probs)):
        if p is None or not mask.any():
            continue
        f, s, g, t = confident_learning(
            np.where(mask[:, None], np.nan_to_num(p), 0.0),
            np.where(mask, labels, -1),
            method=opts.cl_method,
            rank_by=opts.cl_rank_by,
        )
        flag |= f & mask
        score = np.where(f & mask, s, score)
        sug = np.where(f & mask, g, sug)
        thr[src] = {c: _r(v) for c, v in zip(res.classes, t, strict=True)}
    rows = np.flatnonzero(flag)
    if len(rows):
        p_src = np.where(use_oof[:, None], np.nan_to_num(oof) if oof is not None else 0, res.probs)
        det = [
            {
                "label": classes[labels[r]],
                "suggested": classes[sug[r]],
                "p_label": _r(p_src[r, labels[r]]),
                "p_suggested": _r(p_src[r, sug[r]]),
                "margin": _r(p_src[r, sug[r]] - p_src[r, labels[r]]),
                "source": "oof" if use_oof[r] else "model",
                "predicted": classes[res.probs[r].argmax()],
            }
            for r in rows
        ]
        # 0.5..1: above every other reason's unweighted range, so a likely label error keeps
        # its reason when the same frame is also uncertain (de-duplication keeps the top score)
        items += items_for_rows(ds, rows, "label_disagreement", 0.5 + 0.5 * score[rows], det)
    notes["label_disagreement"] = {
        "flagged": int(len(rows)),
        "method": opts.cl_method,
        "rank_by": opts.cl_rank_by,
        "thresholds": thr,
        "oof_rows": int(use_oof.sum()),
    }
    # (2) low confidence: low margin; unlabelled frames first (+1).
    usable = ~res.gated
    low = usable & (res.margin < opts.low_margin)
    sc = labelling_priority(res.margin, res.entropy, res.disagreement, labels >= 0)
    rows = np.flatnonzero(low)
    if len(rows):
        det = [
            {
                "predicted": classes[res.probs[r].argmax()],
                "margin": _r(res.margin[r]),
                "entropy": _r(res.entropy[r]),
                "disagreement": _r(res.disagreement[r]),
                "labelled": bool(labels[r] >= 0),
                "label": classes[labels[r]] if labels[r] >= 0 else None,
            }
            for r in rows
        ]
        items += items_for_rows(ds, rows, "low_confidence", sc[rows], det)
    notes["low_confidence"] = {"flagged": int(len(rows)), "low_margin": opts.low_margin}
    # (3) stick geometry.
    if res.geometry is not None:
        dev, parts = geometry_deviation(res.geometry, ds.keypoints, opts.geometry_tol)
        rows = np.flatnonzero(np.nan_to_num(dev, nan=-1) > 1)
        if len(rows):
            det = [
                {
                    "grip_offset": _r(parts[r, 0], 3),
                    "stick_length": _r(parts[r, 1], 3),
                    "angle_deg": _r(parts[r, 2], 1),
                    "deviation": _r(dev[r], 3),
                    "predicted_geometry": [_r(v, 3) for v in res.geometry[r]],
                }
                for r in rows
            ]
            # 0..1: how far beyond the tolerance (1 - 1/deviation)
            items += items_for_rows(ds, rows, "stick_geometry", 1 - 1 / dev[rows], det)
        notes["stick_geometry"] = {
            "flagged": int(len(rows)),
            "tolerance": {
                "grip_offset": opts.geometry_tol[0],
                "stick_length": opts.geometry_tol[1],
                "angle_deg": opts.geometry_tol[2],
            },
        }
    # (4) validation findings.
    if dataset_dir is not None:
        v_items, v_path = validation_items(ds, dataset_dir)
        items += v_items
        notes["validation"] = {"findings": len(v_items), "file": v_path}
    return items, notes


def _store_predictions(
    ds,
    res: ScoreResult,
    extra: dict[str, np.ndarray],
    model_name: str,
    family: list[str] | None,
    chamber: list[str] | None,
) -> None:
    classes = res.classes
    probs = np.round(res.probs, 4)
    top = res.probs.argmax(1)
    conf = res.probs.max(1)
    fam_p, cha_p = extra.get("family_prob"), extra.get("chamber_prob")
    geo = res.geometry
    recs = []
    for i in range(len(probs)):
        rec = {
            "model": model_name,
            "stance": classes[top[i]],
            "confidence": _r(conf[i]),
            "probs": dict(zip(classes, probs[i].tolist(), strict=True)),
            "margin": _r(res.margin[i]),
            "entropy": _r(res.entropy[i]),
            "disagreement": _r(res.disagreement[i]),
            "smoothed": bool(res.smoothed[i]),
            "held": bool(res.held[i]),
            "gated": bool(res.gated[i]),
        }
        if fam_p is not None and family:
            rec["family"] = family[int(fam_p[i].argmax())]
        if cha_p is not None and chamber:
            rec["chamber"] = chamber[int(cha_p[i].argmax())]
        if geo is not None:
            rec["geometry"] = [_r(v, 4) for v in geo[i]]
        recs.append(rec)
    ds.annotations["predictions"] = pd.Series(recs, index=ds.annotations.index, dtype=object)


def _labels(ds, classes: list[str], echo: Callable[[str], None] | None) -> np.ndarray:
    """Each row's stance as an index into the model's ``classes`` (-1: unlabelled/unknown)."""
    stance = ds.frame_table()["stance"].to_numpy(dtype=object)
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index.get(s, -1) if isinstance(s, str) else -1 for s in stance])
    unknown = sorted({s for s in stance if isinstance(s, str) and s and s not in index})
    if unknown and echo:
        echo(f"note: labels not among the model's classes are treated as unlabelled: {unknown[:5]}")
    return labels


def _oof_probabilities(
    oof: str | Path | list[str | Path] | None, run: Path | None, scorer: OnnxScorer, ds
) -> tuple[np.ndarray | None, str | None]:
    """Out-of-fold probabilities for the label check, and where they came from.

    The given sources (several: averaged over the rows any of them covers), else the model's
    run folder's, else the run named in the ONNX metadata; None when there are none.
    """
    sources = [oof] if isinstance(oof, str | Path) else list(oof or [])
    if not sources:
        if run is not None and (run / "oof_probabilities.csv").exists():
            sources = [run]
        else:
            meta_run = scorer.meta.get("run")
            if meta_run and (Path(meta_run) / "oof_probabilities.csv").exists():
                sources = [meta_run]
    if not sources:
        return None, None
    read = [read_oof(src, ds, scorer.classes) for src in sources]
    stack = np.stack([p for p, _ in read])
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        oof_p = np.nanmean(stack, 0)
    return oof_p, ", ".join(f for _, f in read)


def _model_taxonomy(scorer: OnnxScorer) -> tuple[list[str] | None, list[str] | None]:
    """The families and chambers of the model's taxonomy (None when it has none)."""
    tax = None
    if scorer.meta.get("taxonomy"):
        try:
            tax = json.loads(scorer.meta["taxonomy"])
        except json.JSONDecodeError:
            tax = None
    family = tax.get("families") if isinstance(tax, dict) else None
    chamber = tax.get("chambers") if isinstance(tax, dict) else None
    return family, chamber


def _write_queue(
    items: list, out: str | Path | None, dataset: Path, opts: ScoreOptions, meta: dict
):
    """Build the review queue (done flags of an existing ``out`` carry over) and save it."""
    from toolkit.queue import ReviewQueue

    previous = None
    if out is not None:
        out = Path(out)
        if out.exists():
            try:
                previous = ReviewQueue.load(out)
            except (InputError, ValueError):
                previous = None
        rel = os.path.relpath(dataset.resolve(), out.resolve().parent)
    else:
        rel = str(dataset)
    # Reasons are scaled here (not through build's weights): de-duplication keeps the item with
    # the highest raw score, so the scaling must already be in it.
    for it in items:
        it.score = it.score * opts.weights.get(it.reason, 1.0)
    queue = ReviewQueue.build(
        items, window=opts.window, limit=opts.top, dataset=rel, meta=meta, previous=previous
    )
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        queue.save(out)
    return queue


def score_dataset(
    dataset: str | Path,
    models: list[str | Path],
    out: str | Path | None,
    *,
    options: ScoreOptions | None = None,
    ensemble: bool = False,
    oof: str | Path | list[str | Path] | None = None,
    progress: bool = False,
    echo: Callable[[str], None] | None = None,
) -> ScoreResult:
    """Score every annotation of a dataset, store the predictions and write the review queue.

    Args:
        dataset: The dataset directory.
        models: ``.onnx`` file(s) or one run folder (see :func:`resolve_models`).
        out: The queue file (None: do not write one). Done flags of an existing queue there
            carry over.
        options: Settings.
        ensemble: With a run folder, run each fold model separately.
        oof: Out-of-fold probabilities (run folder or CSV, or several: averaged); default the
            run's, when known.
        progress: tqdm bars on stderr.
        echo: One-line notes.

    Raises:
        FileNotFoundError, InputError, ValueError: Bad inputs (CLI exit 2).
    """
    from toolkit.dataset import Dataset
    from trainer.data import confidence

    opts = options or ScoreOptions()
    opts.check()
    t0 = time.perf_counter()
    dataset = Path(dataset)
    ds = Dataset.load(dataset)
    if len(ds) == 0:
        raise InputError(
            "Expected annotations to score, but the dataset has none.", dataset / "dataset.json"
        )
    paths, run = resolve_models(models, ensemble, echo)
    scorer = OnnxScorer(paths, threads=opts.threads)
    if echo:
        echo(
            f"scoring {len(ds)} annotations with {len(paths)} model(s) ({scorer.variant}, "
            f"inputs {scorer.inputs})"
        )
    t1 = time.perf_counter()
    outs = predict_all(ds, scorer, batch=opts.batch, progress=progress)
    t_inf = time.perf_counter() - t1
    member = outs["stance_prob"].astype(np.float64)  # (M, N, C)
    raw_mean = member.mean(0)
    kconf = confidence(ds.keypoints, ds.scores).mean(1)
    group, frame = sequence_keys(ds)
    valid = kconf >= opts.min_kpt_conf
    m, n, c = member.shape
    stacked = member.transpose(1, 0, 2).reshape(n, m * c)
    sm, held, gated = smooth_sequences(stacked, group, frame, valid, opts.ema_alpha, opts.hold)
    member_s = sm.reshape(n, m, c).transpose(1, 0, 2)
    probs = member_s.mean(0)
    probs /= np.clip(probs.sum(1, keepdims=True), 1e-12, None)
    margin, ent = uncertainty(probs)
    dis = disagreement(member_s)
    geo = outs["geometry"].mean(0).astype(np.float64) if "geometry" in outs else None
    extra = {k: outs[k].mean(0) for k in ("family_prob", "chamber_prob") if k in outs}
    res = ScoreResult(
        classes=scorer.classes,
        probs=probs,
        member_probs=member_s,
        raw_probs=raw_mean,
        margin=margin,
        entropy=ent,
        disagreement=dis,
        kpt_conf=kconf,
        held=held,
        gated=gated,
        smoothed=(group >= 0) & valid,
        geometry=geo,
        queue=None,
        models=paths,
        oof_source=None,
        seconds={},
    )
    labels = _labels(ds, scorer.classes, echo)
    oof_p, res.oof_source = _oof_probabilities(oof, run, scorer, ds)
    family, chamber = _model_taxonomy(scorer)
    name = str(paths[0]) if len(paths) == 1 else f"ensemble of {len(paths)}: {paths[0].parent}"
    _store_predictions(ds, res, extra, name, family, chamber)
    if opts.save:
        ds.save()
    items, notes = build_items(ds, res, labels, oof_p, opts, dataset)
    meta = {
        "producer": "trainer score",
        "models": [str(p) for p in paths],
        "variant": scorer.variant,
        "members": len(paths),
        "ensemble_graph": scorer.ensemble_graph,
        "oof": res.oof_source,
        "ema_alpha": opts.ema_alpha,
        "min_kpt_conf": opts.min_kpt_conf,
        "hold": opts.hold,
        "weights": opts.weights,
        "candidates": notes,
        "n_annotations": int(n),
        "held": int(held.sum()),
        "gated": int(gated.sum()),
    }
    res.queue = _write_queue(items, out, dataset, opts, meta)
    res.seconds = {
        "inference": t_inf,
        "total": time.perf_counter() - t0,
        "frames_per_second": n / t_inf if t_inf > 0 else float("nan"),
    }
    return res


# ---------------------------------------------------------------------- many datasets
def score_task(
    dataset: str,
    models: list[str],
    out: str | None,
    options: ScoreOptions,
    ensemble: bool,
    oof: list[str],
) -> ScoreResult:
    """One dataset scored (what an engine task runs; see :func:`score_dataset`).

    The task's writes are the dataset's own atomic save and the queue's atomic write, both
    the same on a second attempt, so a retried task leaves nothing half-written.
    """
    return score_dataset(
        dataset, models, out, options=options, ensemble=ensemble, oof=oof, progress=False
    )


def queue_paths(datasets: list[Path], out: Path) -> list[Path]:
    """Queue file per dataset: ``out`` itself for one, ``out/<dataset name>.json`` for several.

    Raises:
        ValueError: Two datasets with the same folder name.
    """
    if len(datasets) == 1:
        return [out]
    first: dict[str, Path] = {}
    for d in datasets:
        name = d.absolute().name
        if name in first:
            raise ValueError(
                f"Expected datasets with distinct folder names (each queue is OUT/<name>.json), "
                f"but {first[name]} and {d} are both {name!r}."
            )
        first[name] = d
    return [out / f"{d.absolute().name}.json" for d in datasets]


def score_many(
    datasets: list[str | Path],
    models: list[str | Path],
    out: str | Path,
    *,
    options: ScoreOptions | None = None,
    ensemble: bool = False,
    oof: list[str | Path] | None = None,
    engine=None,
    progress: bool = False,
    echo: Callable[[str], None] | None = None,
) -> list[ScoreResult]:
    """Score several datasets with the same model(s), one task per dataset.

    The models are resolved (and exported when a run folder has no ONNX file yet) once, here,
    before any task starts, so parallel tasks never export the same file.

    Args:
        datasets: Dataset directories.
        models: As for :func:`score_dataset`.
        out: The queue file (one dataset) or the folder of queues (``<name>.json`` each).
        options: Settings.
        ensemble: With a run folder, run each fold model separately.
        oof: Out-of-fold probabilities (default: the run's).
        engine: A :mod:`toolkit.engine` engine (default: this process, one after another).
        progress: One bar over all annotations on stderr.
        echo: One-line notes.

    Returns:
        One :class:`ScoreResult` per dataset, in order.
    """
    from toolkit.engine import LocalEngine, Task

    opts = options or ScoreOptions()
    opts.check()
    dirs = [Path(d) for d in datasets]
    for d in dirs:
        if not (d / "dataset.json").is_file():
            raise FileNotFoundError(
                f"Expected a dataset folder with dataset.json, but {d / 'dataset.json'} "
                "does not exist."
            )
    outs = queue_paths(dirs, Path(out))
    resolve_models(models, ensemble, echo)  # export once, before the tasks read the files
    engine = engine or LocalEngine()
    tasks = [
        Task(
            score_task,
            (str(d), [str(m) for m in models], str(q), opts, ensemble, [str(o) for o in oof or []]),
            seed=i,
            threads=1,
            weight=_annotation_count(d),
            label=d.name,
        )
        for i, (d, q) in enumerate(zip(dirs, outs, strict=True))
    ]

    def finished(i: int, res: ScoreResult) -> None:
        if echo:
            echo(f"{dirs[i]}: {len(res.probs)} annotations, queue {len(res.queue)} -> {outs[i]}")

    return engine.run(tasks, desc="scoring", unit="frame", progress=progress, on_result=finished)


def _annotation_count(dataset: Path) -> int:
    """Annotations in a dataset (progress weight), read cheaply; 1 when unknown."""
    from toolkit.fileio import read_json

    doc = read_json(dataset / "dataset.json")
    anns = doc.get("annotations") if isinstance(doc, dict) else None
    return max(1, len(anns)) if isinstance(anns, list) else 1
