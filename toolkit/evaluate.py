"""Keypoint accuracy of one dataset against another (predictions vs labels, or two annotators).

Three views of the same comparison:

* **COCO OKS AP/AR** through pycocotools' ``COCOeval`` (``iouType="keypoints"``) with the
  per-keypoint sigmas of :data:`toolkit.layout.OKS_SIGMAS`: the 17 COCO ones, and 0.089 for both
  stick points (the grip sits somewhere inside the fist, so it is no better defined than an
  ankle; the tip is a thin far end that blurs with motion). When neither dataset has a stick
  point anywhere, the comparison uses the 17 body points only (``keypoints="auto"``), so a COCO-17
  pair evaluates exactly as COCO would.
* **Pixel error** per keypoint (median, mean) over people matched by OKS (greedy, highest first,
  at least ``min_oks``), counting only points the ground truth labels (``v > 0``).
* **PCK**: the fraction of labelled points predicted within ``alpha`` times a reference length
  (``pck_bbox``: the larger side of the ground-truth box; ``pck_torso``: the torso diagonal, left
  shoulder to right hip, where both are labelled). A point the prediction lacks counts as a miss.

Frames are matched by ``file_name``; video frames by video stem + ``frame_index`` (so two datasets
whose video ids differ still match); if exact names match nothing, by base name when unique.
Only frames present in both are evaluated (a detector run with ``--every 10`` is not punished
for the frames it skipped); the report counts the rest. The object scale in OKS is 0.53 times the
ground-truth box area (COCO's segment-to-box ratio, as ultralytics uses) when a box is known.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from toolkit import layout
from toolkit.dataset import Dataset, warnings_off

#: COCOeval ``stats`` names for keypoints, in order.
OKS_STATS = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
AREA_RATIO = 0.53


def frame_keys(ds: Dataset) -> np.ndarray:
    """``(n_images,)`` keys that identify a frame across datasets.

    Video frames: ``<video stem>/<frame_index:06d>.jpg``; images: their ``file_name``.
    """
    fn = ds.images["file_name"].to_numpy(dtype=object).copy()
    vid = ds.images["video_id"].to_numpy(dtype=object)
    fidx = ds.images["frame_index"].to_numpy(dtype=object)
    stems = {v["id"]: Path(v["file_name"]).stem for v in ds.videos}
    for i in np.flatnonzero(~pd.isna(ds.images["video_id"]).to_numpy()):
        if int(vid[i]) in stems and not pd.isna(fidx[i]):
            fn[i] = f"{stems[int(vid[i])]}/{int(fidx[i]):06d}.jpg"
    return fn


def match_frames(gt: Dataset, pred: Dataset) -> tuple[pd.DataFrame, str]:
    """Pairs of image rows ``(gt_row, pred_row)`` naming the same frame, and how they matched."""
    gk = pd.DataFrame({"key": frame_keys(gt), "gt_row": np.arange(len(gt.images))})
    pk = pd.DataFrame({"key": frame_keys(pred), "pred_row": np.arange(len(pred.images))})
    pairs = gk.merge(pk, on="key", how="inner")
    how = "file_name"
    if pairs.empty and len(gk) and len(pk):
        gk["key"] = [Path(k).name for k in gk["key"]]
        pk["key"] = [Path(k).name for k in pk["key"]]
        gk = gk.drop_duplicates("key", keep=False)
        pk = pk.drop_duplicates("key", keep=False)
        pairs = gk.merge(pk, on="key", how="inner")
        how = "basename"
    return pairs.drop_duplicates("gt_row").drop_duplicates("pred_row"), how


def _points(ds: Dataset, k: int) -> np.ndarray:
    kp = ds.keypoints[:, :k].copy()
    kp[kp[..., 2] <= 0, :2] = np.nan
    return kp


def _areas(ds: Dataset, kp: np.ndarray) -> np.ndarray:
    """Object scale for OKS: 0.53 x box area (box from the points when none is stored)."""
    bb = ds.bboxes.copy()
    bad = ~np.isfinite(bb).all(1) | (bb[:, 2] <= 0) | (bb[:, 3] <= 0)
    if bad.any():
        from toolkit.dataset import boxes_from_keypoints

        bb[bad] = boxes_from_keypoints(kp[bad])
    return np.nan_to_num(bb[:, 2] * bb[:, 3] * AREA_RATIO, nan=0.0), bb


def oks(
    gt_xy: np.ndarray, gt_vis: np.ndarray, pred_xy: np.ndarray, area: np.ndarray, sigmas: np.ndarray
) -> np.ndarray:
    """COCO object keypoint similarity for row-aligned pairs.

    Shapes:
        ``gt_xy``/``pred_xy``: ``(P, K, 2)`` (NaN prediction = missing, scores 0);
        ``gt_vis``: ``(P, K)`` bool; ``area``: ``(P,)``; returns ``(P,)`` (NaN when no gt point).
    """
    var = (2 * sigmas) ** 2
    d2 = ((pred_xy - gt_xy) ** 2).sum(-1)
    e = d2 / var / (area[:, None] + np.spacing(1)) / 2
    sim = np.where(np.isfinite(e), np.exp(-np.nan_to_num(e, nan=np.inf)), 0.0)
    n = gt_vis.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (sim * gt_vis).sum(1) / n, np.nan)


def _coco_stats(
    gt_kp: np.ndarray,
    gt_area: np.ndarray,
    gt_box: np.ndarray,
    gt_img: np.ndarray,
    pr_kp: np.ndarray,
    pr_score: np.ndarray,
    pr_img: np.ndarray,
    n_images: int,
    sigmas: np.ndarray,
    names: tuple[str, ...],
) -> dict[str, float | None]:
    """Pycocotools COCOeval over the matched frames (image ids are the pair indices)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def flat(kp: np.ndarray) -> np.ndarray:
        out = kp.copy()
        miss = ~np.isfinite(out[..., :2]).all(-1) | (out[..., 2] <= 0)
        out[miss] = 0.0
        return out.reshape(len(out), -1)

    gflat = flat(gt_kp)
    vis = (np.nan_to_num(gt_kp[..., 2]) > 0) & np.isfinite(gt_kp[..., :2]).all(-1)
    anns = [
        {
            "id": i + 1,
            "image_id": int(gt_img[i]),
            "category_id": 1,
            "keypoints": gflat[i].tolist(),
            "num_keypoints": int(vis[i].sum()),
            "area": float(gt_area[i]),
            "bbox": np.nan_to_num(gt_box[i]).tolist(),
            "iscrowd": 0,
        }
        for i in range(len(gflat))
    ]
    coco_gt = COCO()
    coco_gt.dataset = {
        "images": [{"id": i} for i in range(n_images)],
        "annotations": anns,
        "categories": [{"id": 1, "name": "person", "keypoints": list(names), "skeleton": []}],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt.createIndex()
    if not len(pr_kp) or not vis.any():
        return dict.fromkeys(OKS_STATS, 0.0 if vis.any() else None)
    pflat = flat(pr_kp)
    dets = [
        {
            "image_id": int(pr_img[i]),
            "category_id": 1,
            "keypoints": pflat[i].tolist(),
            "score": float(pr_score[i]),
        }
        for i in range(len(pflat))
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(dets)
        ev = COCOeval(coco_gt, coco_dt, iouType="keypoints")
        ev.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {
        name: (None if v < 0 else float(v)) for name, v in zip(OKS_STATS, ev.stats, strict=True)
    }


def evaluate(
    gt: Dataset | str | Path,
    pred: Dataset | str | Path,
    *,
    pck: float = 0.05,
    keypoints: str = "auto",
    min_oks: float = 0.1,
) -> dict[str, Any]:
    """Compare ``pred`` against ``gt`` (see the module docstring).

    Args:
        gt: Ground-truth dataset (or its directory).
        pred: Predicted (or second annotator's) dataset.
        pck: PCK threshold as a fraction of the reference length.
        keypoints: ``auto`` (19, or 17 when neither dataset has a stick point), ``all`` (19) or
            ``body`` (17).
        min_oks: People pair up for pixel error and PCK only at or above this OKS.

    Returns:
        A JSON-able report: ``frames``, ``people``, ``oks`` (AP/AR), ``per_keypoint`` and
        ``overall`` pixel errors and PCK.
    """
    gt_ds = gt if isinstance(gt, Dataset) else Dataset.load(gt)
    pr_ds = pred if isinstance(pred, Dataset) else Dataset.load(pred)
    if keypoints not in ("auto", "all", "body"):
        raise ValueError(f"Expected 'keypoints' to be auto, all or body, but got {keypoints!r}.")
    if not 0 < pck <= 1:
        raise ValueError(f"Expected '--pck' to be a fraction in (0, 1], but got {pck}.")
    has_stick = any((d.keypoints[:, layout.GRIP :, 2] > 0).any() for d in (gt_ds, pr_ds))
    k = (
        layout.NUM_BODY
        if keypoints == "body" or (keypoints == "auto" and not has_stick)
        else layout.NUM_KEYPOINTS
    )
    sigmas = layout.OKS_SIGMAS[:k]
    names = layout.KEYPOINT_NAMES[:k]

    pairs, how = match_frames(gt_ds, pr_ds)
    frame_of_gt_img = pd.Series(np.arange(len(pairs)), index=pairs["gt_row"].to_numpy())
    frame_of_pr_img = pd.Series(np.arange(len(pairs)), index=pairs["pred_row"].to_numpy())
    g_img_row = pd.Series(np.arange(len(gt_ds.images)), index=gt_ds.images["id"].to_numpy())
    p_img_row = pd.Series(np.arange(len(pr_ds.images)), index=pr_ds.images["id"].to_numpy())
    g_frame = frame_of_gt_img.reindex(
        g_img_row.reindex(gt_ds.annotations["image_id"].to_numpy()).to_numpy()
    ).to_numpy()
    p_frame = frame_of_pr_img.reindex(
        p_img_row.reindex(pr_ds.annotations["image_id"].to_numpy()).to_numpy()
    ).to_numpy()
    g_rows = np.flatnonzero(np.isfinite(g_frame))
    p_rows = np.flatnonzero(np.isfinite(p_frame))
    g_frame = g_frame[g_rows].astype(np.int64)
    p_frame = p_frame[p_rows].astype(np.int64)

    gkp = _points(gt_ds, k)[g_rows]
    pkp = _points(pr_ds, k)[p_rows]
    garea_all, gbox_all = _areas(gt_ds, _points(gt_ds, layout.NUM_KEYPOINTS))
    garea, gbox = garea_all[g_rows], gbox_all[g_rows]
    pscore = pr_ds.annotations["score"].to_numpy(dtype=np.float64)[p_rows]
    fallback = (
        np.nanmean(
            np.where(np.isfinite(pr_ds.scores[p_rows, :k]), pr_ds.scores[p_rows, :k], np.nan),
            axis=1,
        )
        if len(p_rows) and np.isfinite(pr_ds.scores[p_rows, :k]).any()
        else np.ones(len(p_rows))
    )
    pscore = np.where(np.isfinite(pscore), pscore, np.nan_to_num(fallback, nan=1.0))

    stats = _coco_stats(gkp, garea, gbox, g_frame, pkp, pscore, p_frame, len(pairs), sigmas, names)

    # ---- person matching (greedy by OKS within a frame) for pixel error and PCK
    gvis = np.isfinite(gkp[..., :2]).all(-1)
    cand = pd.DataFrame({"frame": g_frame, "g": np.arange(len(g_rows))}).merge(
        pd.DataFrame({"frame": p_frame, "p": np.arange(len(p_rows))}), on="frame"
    )
    gi = cand["g"].to_numpy()
    pi = cand["p"].to_numpy()
    sim = (
        oks(gkp[gi, :, :2], gvis[gi], pkp[pi, :, :2], garea[gi], sigmas)
        if len(cand)
        else np.zeros(0)
    )
    order = np.argsort(-np.nan_to_num(sim, nan=-1.0), kind="stable")
    used_g = np.zeros(len(g_rows), bool)
    used_p = np.zeros(len(p_rows), bool)
    mg, mp = [], []
    for j in order:
        if not sim[j] >= min_oks:
            break
        if not used_g[gi[j]] and not used_p[pi[j]]:
            used_g[gi[j]] = used_p[pi[j]] = True
            mg.append(gi[j])
            mp.append(pi[j])
    mg = np.asarray(mg, dtype=np.int64)
    mp = np.asarray(mp, dtype=np.int64)

    # every labelled gt point of a person with points counts; unmatched people are misses
    labelled = gvis.any(1)
    err = np.full(gvis.shape, np.nan)
    if len(mg):
        err[mg] = np.linalg.norm(pkp[mp, :, :2] - gkp[mg, :, :2], axis=-1)
    ref_bbox = np.maximum(gbox[:, 2], gbox[:, 3])
    with warnings_off():
        torso = (
            np.nanmean(
                np.stack(
                    [
                        np.linalg.norm(
                            gkp[:, layout.L_SHOULDER, :2] - gkp[:, layout.R_HIP, :2], axis=-1
                        ),
                        np.linalg.norm(
                            gkp[:, layout.R_SHOULDER, :2] - gkp[:, layout.L_HIP, :2], axis=-1
                        ),
                    ]
                ),
                axis=0,
            )
            if len(gkp)
            else np.zeros(0)
        )
    counted = gvis & labelled[:, None]
    hit_bbox = (err <= pck * ref_bbox[:, None]) & counted
    torso_ok = np.isfinite(torso)
    hit_torso = (err <= pck * torso[:, None]) & counted & torso_ok[:, None]
    per_kp = []
    for j in range(k):
        c = counted[:, j]
        e = err[c, j]
        e_ok = e[np.isfinite(e)]
        ct = c & torso_ok
        per_kp.append(
            {
                "name": names[j],
                "sigma": float(sigmas[j]),
                "n": int(c.sum()),
                "missed": int((~np.isfinite(e)).sum()),
                "median_px": float(np.median(e_ok)) if len(e_ok) else None,
                "mean_px": float(np.mean(e_ok)) if len(e_ok) else None,
                "pck_bbox": float(hit_bbox[c, j].mean()) if c.any() else None,
                "pck_torso": float(hit_torso[ct, j].mean()) if ct.any() else None,
            }
        )
    all_e = err[counted]
    all_ok = all_e[np.isfinite(all_e)]
    ct_all = counted & torso_ok[:, None]
    report = {
        "gt": str(gt_ds.path) if gt_ds.path else None,
        "pred": str(pr_ds.path) if pr_ds.path else None,
        "keypoints": k,
        "pck_alpha": pck,
        "min_oks": min_oks,
        "frames": {
            "gt": len(gt_ds.images),
            "pred": len(pr_ds.images),
            "matched": len(pairs),
            "matched_by": how,
        },
        "people": {
            "gt": int(labelled.sum()),
            "pred": int(len(p_rows)),
            "matched": int(len(mg)),
            "gt_unmatched": int((labelled & ~used_g).sum()),
            "pred_unmatched": int((~used_p).sum()),
        },
        "oks": stats,
        "per_keypoint": per_kp,
        "overall": {
            "n": int(counted.sum()),
            "missed": int((~np.isfinite(all_e)).sum()),
            "median_px": float(np.median(all_ok)) if len(all_ok) else None,
            "mean_px": float(np.mean(all_ok)) if len(all_ok) else None,
            "pck_bbox": float(hit_bbox[counted].mean()) if counted.any() else None,
            "pck_torso": float(hit_torso[ct_all].mean()) if ct_all.any() else None,
        },
    }
    return report


def format_report(rep: dict) -> str:
    """A human-readable table of :func:`evaluate`'s report."""

    def f(v: Any, spec: str = ".3f") -> str:
        return "-" if v is None else format(v, spec)

    o = rep["oks"]
    fr, pe = rep["frames"], rep["people"]
    lines = [
        f"frames: {fr['matched']} matched by {fr['matched_by']} (gt {fr['gt']}, pred {fr['pred']});"
        f" people: {pe['matched']} matched of {pe['gt']} labelled (pred {pe['pred']})",
        f"OKS ({rep['keypoints']} keypoints): AP {f(o['AP'])}  AP50 {f(o['AP50'])}  "
        f"AP75 {f(o['AP75'])}  AR {f(o['AR'])}",
        "",
        f"{'keypoint':<16}{'sigma':>7}{'n':>7}{'missed':>8}{'median px':>11}{'mean px':>10}"
        f"{'PCK bbox':>10}{'PCK torso':>11}",
    ]
    for r in [*rep["per_keypoint"], {"name": "all", "sigma": None, **rep["overall"]}]:
        lines.append(
            f"{r['name']:<16}{f(r['sigma']):>7}{r['n']:>7}{r['missed']:>8}"
            f"{f(r['median_px'], '.2f'):>11}{f(r['mean_px'], '.2f'):>10}"
            f"{f(r['pck_bbox']):>10}{f(r['pck_torso']):>11}"
        )
    lines.append(f"(PCK at {rep['pck_alpha']:g} of the gt box's larger side / the torso diagonal)")
    return "\n".join(lines)
