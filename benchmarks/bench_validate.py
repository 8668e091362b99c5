"""Benchmark of ``toolkit validate``: recall of the injected stick errors, false flags, speed.

Accuracy: a sample set generated with :func:`toolkit.synth.generate` (images and videos, stick
errors injected at known rates, clean truth beside them) is validated; a frame counts as flagged
when it has a ``stick.*`` or ``temporal.*`` finding of severity warning or error. Reported: recall
per error kind and overall, and the false-flag rate on clean frames (foreshortened ones
separately), with and without image evidence.

Speed: the rule checks (no VAE, no images; the synthetic set has no video) on 1M synthetic
annotations, beside a straightforward per-annotation Python implementation of the same per-frame
checks (structure, anatomy and stick) in the same process. The reference is handed the data-set
statistics that the vectorised run estimated (bone-ratio limits, typical symmetric bone lengths,
stick length per subject, per-stance angle centre and threshold), so it times only the
per-annotation checks, while the vectorised time also includes estimating those statistics,
the data-set-level checks and the summary. Its findings are compared with the vectorised ones on
the rows it ran (``agreement``: matching (row, code) findings / all of either).

Run: ``python -m benchmarks.run validate`` or ``python -m benchmarks.bench_validate [--quick]``.
"""

from __future__ import annotations

import math
import sys
import time
from collections import Counter

import numpy as np

from benchmarks.bench_correct import (
    ERROR_GROUPS,
    _first_per_key,
    load_samples,
    sample_set,
    synthetic_dataset,
)

COCO_BONES = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip


def accuracy(ds, kinds: np.ndarray, fs: np.ndarray, use_images: bool) -> dict:
    """Recall per error kind and false-flag rate on clean frames."""
    from toolkit import validate as V

    t0 = time.perf_counter()
    rep = V.validate(ds, use_vae=False, use_images=use_images)
    secs = time.perf_counter() - t0
    flagged = V.flagged_rows(rep.findings, len(ds))
    is_video = ds.frame_table()["video_id"].notna().to_numpy()
    corrupted = np.isin(kinds, ERROR_GROUPS)
    clean = kinds == "none"
    out = {
        "seconds": round(secs, 2),
        "n_corrupted": int(corrupted.sum()),
        "n_clean": int(clean.sum()),
        "recall": round(float(flagged[corrupted].mean()), 3),
        "recall_images": round(float(flagged[corrupted & ~is_video].mean()), 3),
        "recall_video": round(float(flagged[corrupted & is_video].mean()), 3)
        if (corrupted & is_video).any()
        else None,
        "false_flag_rate": round(float(flagged[clean].mean()), 4),
        "false_flag_rate_foreshortened": round(float(flagged[clean & fs].mean()), 4)
        if (clean & fs).any()
        else None,
        "false_flag_rate_video": round(float(flagged[clean & is_video].mean()), 4)
        if (clean & is_video).any()
        else None,
        "recall_by_kind": {
            k: round(float(flagged[kinds == k].mean()), 3)
            for k in ERROR_GROUPS
            if (kinds == k).any()
        },
    }
    return out


def reference_validate(
    kp: np.ndarray,
    image_ids: list,
    file_names: list,
    width: float,
    height: float,
    bone_upper: np.ndarray,
    symmetry_typical: dict,
    subjects: list,
    subject_length: dict,
    stances: list,
    stance_limits: dict,
    grip_tol: float = 0.3,
    long_tol: float = 0.12,
) -> list[tuple]:
    """The same per-frame checks, one annotation at a time in plain Python.

    Statistics are passed in: ``bone_upper`` (E,) limits of bone length / torso,
    ``symmetry_typical[name]`` (typical bone / torso), ``subject_length[subject]`` (torso
    sizes), ``stance_limits[stance] = (centre, threshold)`` (degrees).

    Returns:
        ``(row, code)`` findings.
    """
    out = []
    seen_files: set = set()
    seen_pose: dict = {}
    for i in range(len(kp)):
        p = kp[i]
        pts = [(float(x), float(y), float(v)) for x, y, v in p]
        ok = [v > 0 and math.isfinite(x) and math.isfinite(y) for x, y, v in pts]

        def dist(a, b, pts=pts):
            return math.hypot(pts[a][0] - pts[b][0], pts[a][1] - pts[b][1])

        # structure
        n_body = sum(v > 0 and math.isfinite(x) for x, _, v in pts[:17])
        if n_body < 5:
            out.append((i, "structure.few_keypoints"))
        if any(v not in (0.0, 1.0, 2.0) for _, _, v in pts):
            out.append((i, "structure.visibility"))
        if any(x < -2 or y < -2 or x > width + 2 or y > height + 2 for x, y, _ in pts):
            out.append((i, "structure.out_of_image"))
        if 5 <= n_body < 17:
            out.append((i, "structure.missing_points"))
        if file_names[i] in seen_files:
            out.append((i, "structure.duplicate_image"))
        seen_files.add(file_names[i])
        key = tuple(round(c, 1) if c == c else -1.0 for x, y, _ in pts for c in (x, y))
        first = seen_pose.setdefault(key, image_ids[i])
        if n_body >= 5 and first != image_ids[i]:
            out.append((i, "structure.duplicate_pose"))
        # anatomy
        sides = [
            dist(5, 11) if ok[5] and ok[11] else None,
            dist(6, 12) if ok[6] and ok[12] else None,
        ]
        sides = [d for d in sides if d is not None]
        if not sides:
            continue
        s = sum(sides) / len(sides)
        for j, (a, b) in enumerate(COCO_BONES):
            if ok[a] and ok[b] and dist(a, b) / s > bone_upper[j]:
                out.append((i, "anatomy.bone_length"))
                break
        for name, (la, lb), (ra, rb) in SYMMETRIC:
            if ok[la] and ok[lb] and ok[ra] and ok[rb]:
                lft, rgt = dist(la, lb), dist(ra, rb)
                short = min(lft, rgt)
                r = max(lft, rgt) / short if short > 0 else math.inf
                if r > 2.5 and max(lft, rgt) / s > 1.4 * symmetry_typical[name]:
                    out.append((i, "anatomy.symmetry"))
        for a, b, c in ((5, 7, 9), (6, 8, 10), (11, 13, 15), (12, 14, 16)):
            if ok[a] and ok[b] and ok[c]:
                ux, uy = pts[a][0] - pts[b][0], pts[a][1] - pts[b][1]
                vx, vy = pts[c][0] - pts[b][0], pts[c][1] - pts[b][1]
                if (ux or uy) and (vx or vy):
                    ang = abs(math.degrees(math.atan2(ux * vy - uy * vx, ux * vx + uy * vy)))
                    if ang < 12:
                        out.append((i, "anatomy.joint_angle"))
        if ok[5] and ok[6] and ok[11] and ok[12]:
            shx, shy = pts[5][0] - pts[6][0], pts[5][1] - pts[6][1]
            hpx, hpy = pts[11][0] - pts[12][0], pts[11][1] - pts[12][1]
            n_sh, n_hp = math.hypot(shx, shy), math.hypot(hpx, hpy)
            if n_sh > 0.3 * s and n_hp > 0.2 * s and (shx * hpx + shy * hpy) / (n_sh * n_hp) < -0.5:
                out.append((i, "anatomy.lr_swap"))
        for (le, re_), (lw, rw) in (((7, 8), (9, 10)), ((13, 14), (15, 16))):
            if ok[le] and ok[re_] and ok[lw] and ok[rw]:
                crossed = dist(lw, re_) + dist(rw, le)
                straight = dist(lw, le) + dist(rw, re_)
                if crossed > 0 and straight / crossed > 2.5 and dist(le, re_) > 0.3 * s:
                    out.append((i, "anatomy.lr_swap"))
        # stick
        if not ok[17] or not ok[18]:
            if ok[17] or ok[18]:
                out.append((i, "stick.tip_missing" if ok[17] else "stick.grip_missing"))
            else:
                out.append((i, "stick.missing"))
            continue
        dg = min(dist(17, 9), dist(17, 10)) / s
        dt = min(dist(18, 9), dist(18, 10)) / s
        if dt < grip_tol and dg > grip_tol and dt < 0.5 * dg:
            out.append((i, "stick.swap"))
            continue
        w = 9 if dist(17, 9) <= dist(17, 10) else 10
        far = dist(17, w) / s > grip_tol
        if far:
            out.append((i, "stick.grip_far"))
        ratio = dist(17, 18) / s / subject_length[subjects[i]]
        if ratio > 1 + long_tol:
            out.append((i, "stick.too_long"))
            continue
        if far:
            continue
        fx, fy = pts[w][0] - pts[w - 2][0], pts[w][1] - pts[w - 2][1]
        sx, sy = pts[18][0] - pts[17][0], pts[18][1] - pts[17][1]
        rel = math.degrees(math.atan2(fx * sy - fy * sx, fx * sx + fy * sy))
        centre, limit = stance_limits[stances[i]]
        dev = abs((centre - rel + 180) % 360 - 180)
        if ratio >= 0.45 and dev > limit:
            out.append((i, "stick.forearm_angle"))
    return out


SYMMETRIC = (
    ("upper_arm", (5, 7), (6, 8)),
    ("forearm", (7, 9), (8, 10)),
    ("thigh", (11, 13), (12, 14)),
    ("shin", (13, 15), (14, 16)),
)


def speed(n: int) -> dict:
    """Annotations/s of the vectorised rule checks vs the per-annotation reference."""
    from toolkit import validate as V

    ds, kp = synthetic_dataset(n, seed=1)
    t0 = time.perf_counter()
    rep = V.validate(ds, use_vae=False, use_images=False)
    t_vec = time.perf_counter() - t0
    m = min(n, 100_000)
    # The statistics the vectorised run estimated (computed outside the timings).
    from toolkit import correct
    from toolkit import geometry as geo

    o = V.ValidateOptions()
    scale = geo.body_scale(kp)
    ratio = geo.bone_lengths(kp) / scale[:, None]
    med = np.nanmedian(ratio, 0)
    mad = np.nanmedian(np.abs(ratio - med), 0) * 1.4826
    upper = med + o.bone_mads * np.maximum(mad, 0.05 * med)
    typical = {}
    for name, (la, lb), (ra, rb) in SYMMETRIC:
        d = [
            geo.distance(geo.point(kp, a), geo.point(kp, b)) / scale
            for a, b in ((la, lb), (ra, rb))
        ]
        typical[name] = float(np.nanmedian(np.r_[d[0], d[1]]))
    group, stance = correct.group_keys(ds)
    co = correct.CorrectOptions(
        grip_tolerance=o.grip_tolerance, too_long_tolerance=o.too_long_tolerance
    )
    st = correct.stick_stats(kp, group, stance, co)
    limit = np.maximum(o.angle_sigmas * st.stance_spread, o.angle_min_deg)
    centres, limits = _first_per_key(stance, st.stance_angle), _first_per_key(stance, limit)
    stance_limits = {k: (centres[k], limits[k]) for k in centres}
    lengths = _first_per_key(group, st.subject_length)
    names = ds.images["file_name"].tolist()[:m]
    args = (ds.images["id"].to_numpy()[:m].tolist(), names, 400, 640, upper, typical)
    args2 = (group[:m].tolist(), lengths, stance[:m].tolist(), stance_limits, o.grip_tolerance)
    t0 = time.perf_counter()
    ref = reference_validate(kp[:m], *args, *args2, o.too_long_tolerance)
    t_ref = (time.perf_counter() - t0) * n / m
    f = rep.findings
    f = f[(f["row"] >= 0) & (f["row"] < m)]
    ours = Counter(zip(f["row"].astype(int).tolist(), f["code"].tolist(), strict=True))
    theirs = Counter(ref)
    both = sum((ours & theirs).values())
    return {
        "n": n,
        "vectorised_s": round(t_vec, 3),
        "reference_s": round(t_ref, 3),
        "reference_measured_on": m,
        "vectorised_ann_per_s": round(n / t_vec),
        "reference_ann_per_s": round(n / t_ref),
        "ratio": round(t_ref / t_vec, 1),
        "findings_vectorised": int(len(rep.findings)),
        "findings_reference_scaled": int(len(ref) * n / m),
        "agreement": round(both / max(sum((ours | theirs).values()), 1), 5),
    }


def main(quick: bool = False) -> dict:
    """Run the benchmark; prints a table and returns a JSON-able dict."""
    per_class = 3 if quick else 10
    n_speed = 100_000 if quick else 1_000_000
    root = sample_set(per_class)
    ds, _clean, kinds, fs = load_samples(root)
    acc = {
        "with_images": accuracy(ds, kinds, fs, True),
        "no_images": accuracy(ds, kinds, fs, False),
    }
    spd = speed(n_speed)
    print(f"validate: {len(ds)} annotations (synth per_class={per_class}, 4 videos)")
    print(
        f"{'config':12} {'recall':>7} {'img':>6} {'video':>6} {'false flags':>12} "
        f"{'(foreshort.)':>12} {'(video)':>8}  per kind"
    )
    for name, a in acc.items():
        kinds_s = " ".join(f"{k}={v:.2f}" for k, v in a["recall_by_kind"].items())
        print(
            f"{name:12} {a['recall']:7.3f} {a['recall_images']:6.3f} "
            f"{a['recall_video'] or 0:6.3f} {a['false_flag_rate']:12.2%} "
            f"{a['false_flag_rate_foreshortened'] or 0:12.2%} "
            f"{a['false_flag_rate_video'] or 0:8.2%}  {kinds_s}"
        )
    print(
        f"speed (rule checks, {spd['n']:,} annotations): vectorised "
        f"{spd['vectorised_ann_per_s']:,}/s, per-annotation Python "
        f"{spd['reference_ann_per_s']:,}/s, ratio {spd['ratio']}x"
    )
    return {"per_class": per_class, "accuracy": acc, "speed": spd}


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
