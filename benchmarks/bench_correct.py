"""Benchmark of ``toolkit correct``: tip error against the samples' ground truth, and speed.

Accuracy: a sample set is generated with :func:`toolkit.synth.generate` (images and videos with
injected stick errors and their clean truth), imported with the YOLO reader, and corrected with
the default ``rigid`` method and with ``forearm-ratio``. Reported per group of frames (frames that
carried a stick error, per kind, and clean frames, foreshortened ones separately): the median and
90th-percentile tip error in pixels before and after.

Speed and the family of datasets (randomised, real photos, detector output) are measured by
``benchmarks/bench_stick.py``; this module keeps the committed-renderer accuracy table of each
method (``rigid``, ``rigid --no-images``, ``forearm-ratio``) and the shared loaders.

Run: ``python -m benchmarks.run correct`` or ``python -m benchmarks.bench_correct [--quick]``;
``python -m benchmarks.bench_correct --speed [N]`` runs only the speed comparison (``correct``
and the ``validate`` rule checks beside the per-annotation reference, on N = 1,000,000 synthetic
annotations by default).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from toolkit import layout

ERROR_GROUPS = ("too_short", "too_long", "wrong_angle", "grip_off", "swap", "tip_missing")


# ---------------------------------------------------------------------- sample data
def _read_yolo(src: Path, **opts):
    """The YOLO importer through the registry, or directly when the registry is incomplete."""
    try:
        from toolkit import io

        return io.read(src, format="yolo", **opts)
    except ModuleNotFoundError:
        from toolkit.io.yolo import read_yolo

        return read_yolo(src, **opts)


def merge(parts: list) -> object:
    """Concatenate datasets read from different roots into one (media root ``/``-absolute)."""
    from toolkit.dataset import Dataset

    images, anns, kps, scores, videos = [], [], [], [], []
    next_img, next_ann, next_vid = 1, 1, 1
    for ds in parts:
        root = ds.media_path().absolute()
        vid_map = {}
        for v in ds.videos:
            vid_map[v["id"]] = next_vid
            videos.append({**v, "id": next_vid, "file_name": str(root / v["file_name"])[1:]})
            next_vid += 1
        img_map = {}
        for rec in ds.images.to_dict("records"):
            new = {k: rec[k] for k in ("file_name", "width", "height", "stance", "subject")}
            new = {k: (None if pd.isna(v) else v) for k, v in new.items()}
            new["width"], new["height"] = int(rec["width"]), int(rec["height"])
            if not pd.isna(rec["video_id"]):
                new["video_id"] = vid_map[int(rec["video_id"])]
                new["frame_index"] = int(rec["frame_index"])
            else:
                new["file_name"] = str(root / rec["file_name"])[1:]
            new["id"] = next_img
            img_map[int(rec["id"])] = next_img
            next_img += 1
            images.append(new)
        for img_id in ds.annotations["image_id"].to_numpy():
            anns.append({"id": next_ann, "image_id": img_map[int(img_id)]})
            next_ann += 1
        kps.append(ds.keypoints)
        scores.append(ds.scores)
    return Dataset.from_records(
        images,
        anns,
        np.concatenate(kps),
        scores=np.concatenate(scores),
        videos=videos,
        media_root="/",
    )


def load_samples(root: Path) -> tuple:
    """Import a generated sample set (images + every video) with its truth.

    Returns:
        ``(dataset, clean (N, 19, 3), error_kind (N,), foreshortened (N,) bool)``.
    """
    from toolkit import synth

    parts, cleans, kinds = [], [], []
    res = _read_yolo(root / "data.yaml", labels=root / "labels.csv")
    c, k = synth.truth_keypoints(res.dataset, root)
    parts.append(res.dataset)
    cleans.append(c)
    kinds.append(k)
    for mp4 in sorted((root / "videos").glob("*.mp4")):
        lab = root / "videos" / f"{mp4.stem}_labels"
        if not lab.is_dir():
            continue
        res = _read_yolo(lab, video=mp4, labels=root / "videos" / f"{mp4.stem}_stances.csv")
        c, k = synth.truth_keypoints(res.dataset, root)
        parts.append(res.dataset)
        cleans.append(c)
        kinds.append(k)
    ds = merge(parts)
    truth = synth.load_truth(root)
    fs_map = dict(
        zip(truth["file_name"].astype(str), truth["foreshortened"].astype(bool), strict=False)
    )
    names = [p.images["file_name"].astype(str).tolist() for p in parts]
    fs = np.array([fs_map.get(n, False) for part in names for n in part], bool)
    return ds, np.concatenate(cleans), np.concatenate(kinds).astype(object), fs


# ---------------------------------------------------------------------- accuracy
def tip_error(kp: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """``(N,)`` tip distance in pixels (NaN where either tip is missing)."""
    d = kp[:, layout.TIP, :2] - clean[:, layout.TIP, :2]
    ok = (kp[:, layout.TIP, 2] > 0) & (clean[:, layout.TIP, 2] > 0)
    return np.where(ok, np.hypot(d[:, 0], d[:, 1]), np.nan)


def _stats(e: np.ndarray) -> dict:
    f = e[np.isfinite(e)]
    return {
        "n": int(len(e)),
        "n_scored": int(len(f)),
        "median": round(float(np.median(f)), 2) if len(f) else None,
        "p90": round(float(np.percentile(f, 90)), 2) if len(f) else None,
    }


def accuracy(ds, clean: np.ndarray, kinds: np.ndarray, fs: np.ndarray) -> dict:
    """Tip error before/after for each method and frame group."""
    from toolkit import correct

    is_video = ds.frame_table()["video_id"].notna().to_numpy()
    groups = {
        "corrupted": kinds != "none",
        "clean": kinds == "none",
        "clean_foreshortened": (kinds == "none") & fs,
        "clean_images": (kinds == "none") & ~is_video,
        "clean_video": (kinds == "none") & is_video,
        "corrupted_images": (kinds != "none") & ~is_video,
        "corrupted_video": (kinds != "none") & is_video,
        **{k: kinds == k for k in ERROR_GROUPS},
    }
    # Frames with no detection have no label to correct.
    valid = kinds != "no_detection"
    before = tip_error(ds.keypoints, clean)
    out: dict = {"n_annotations": int(valid.sum()), "methods": {}}
    configs = {
        "rigid": {"method": "rigid"},
        "rigid --no-images": {"method": "rigid", "use_images": False},
        "forearm-ratio": {"method": "forearm-ratio"},
    }
    for method, kw in configs.items():
        t0 = time.perf_counter()
        res = correct.correct(ds, **kw)
        secs = time.perf_counter() - t0
        after = tip_error(res.keypoints, clean)
        rows = {}
        for name, m in groups.items():
            m = m & valid
            b, a = _stats(before[m]), _stats(after[m])
            # A missing tip counts only after a fill: report how many got one.
            rows[name] = {"before": b, "after": a}
            if b["median"] and a["median"] is not None:
                rows[name]["median_reduction"] = round(1 - a["median"] / b["median"], 3)
        out["methods"][method] = {
            "groups": rows,
            "seconds": round(secs, 3),
            "changed": res.n_changed,
        }
    return out


# ---------------------------------------------------------------------- speed
def synthetic_poses(n: int, seed: int = 0) -> np.ndarray:
    """``(n, 19, 3)`` plausible standing poses holding a stick, 10% with a too-long stick."""
    from toolkit.synth import stick_figures

    kp, _, _ = stick_figures(n, seed, n_stances=1, center=(200.0, 240.0), stance_angles=(20.0,))
    rng = np.random.default_rng(seed + 1)
    kp[..., :2] += rng.normal(0, 0.7, (n, 19, 2))
    # 10% of frames get a stick error so every branch runs.
    bad = rng.random(n) < 0.1
    v = kp[bad, layout.TIP, :2] - kp[bad, layout.GRIP, :2]
    kp[bad, layout.TIP, :2] = kp[bad, layout.GRIP, :2] + 1.7 * v
    return kp


def synthetic_dataset(n: int, seed: int = 0) -> tuple:
    """A dataset of ``n`` synthetic annotations (8 subjects, 12 stances) and its keypoints."""
    from toolkit.dataset import Dataset

    kp = synthetic_poses(n, seed=seed)
    ids = np.arange(1, n + 1)
    images = [
        {"id": int(i), "file_name": f"f/{i}.jpg", "width": 400, "height": 640,
         "subject": f"s{i % 8}", "stance": f"st{i % 12}"}
        for i in ids
    ]  # fmt: skip
    anns = [{"id": int(i), "image_id": int(i)} for i in ids]
    return Dataset.from_records(images, anns, kp, bboxes=np.zeros((n, 4))), kp


_SAMPLE_SETS: dict[tuple, Path] = {}


def sample_set(per_class: int, videos: int = 4, seed: int = 0) -> Path:
    """Generate a sample set in a temporary directory (cached for the process, so the correct
    and validate benchmarks share one).
    """
    from toolkit import synth

    key = (per_class, videos, seed)
    if key not in _SAMPLE_SETS or not (_SAMPLE_SETS[key] / "truth.csv").exists():
        root = Path(tempfile.mkdtemp(prefix="bench_arnis_")) / "arnis"
        synth.generate(root, per_class=per_class, videos=videos, seed=seed)
        _SAMPLE_SETS[key] = root
    return _SAMPLE_SETS[key]


def main(quick: bool = False) -> dict:
    """Run the benchmark; prints a table and returns a JSON-able dict."""
    per_class = 3 if quick else 10
    root = sample_set(per_class)
    ds, clean, kinds, fs = load_samples(root)
    acc = accuracy(ds, clean, kinds, fs)
    print(f"correct: {acc['n_annotations']} annotations (synth per_class={per_class}, 4 videos)")
    print(
        f"{'method':14} {'frames':22} {'n':>5} {'med before':>10} {'med after':>10} "
        f"{'p90 before':>10} {'p90 after':>10} {'med cut':>8}"
    )
    for method, r in acc["methods"].items():
        for name, g in r["groups"].items():
            b, a = g["before"], g["after"]
            cut = g.get("median_reduction")
            print(
                f"{method:14} {name:22} {b['n']:5d} {_f(b['median']):>10} "
                f"{_f(a['median']):>10} {_f(b['p90']):>10} {_f(a['p90']):>10} "
                f"{'' if cut is None else f'{cut:.0%}':>8}"
            )
    print(
        "speed: see `python -m benchmarks.run stick` (one run, beside a per-annotation reference)"
    )
    return {"per_class": per_class, "accuracy": acc}


def _f(x) -> str:
    return "-" if x is None else f"{x:.1f}"


def speed_main(n: int) -> dict:
    """Annotations/s of ``correct`` and the ``validate`` rule checks on ``n`` synthetic
    annotations, beside the per-annotation Python reference, in one run
    (:func:`benchmarks.bench_stick.speed`: geometry only, no images or time axis).
    """
    from benchmarks.bench_stick import speed

    sp = speed(n)
    print(
        f"speed ({sp['n']:,} annotations, {sp['timing']}): correct {sp['correct_ann_per_s']:,}/s "
        f"({sp['correct_s']} s), validate {sp['validate_ann_per_s']:,}/s ({sp['validate_s']} s), "
        f"per-annotation reference {sp['reference_ann_per_s']:,}/s (measured on "
        f"{sp['reference_measured_on']:,}); agreement with the reference: flags "
        f"{sp['agreement_flags']}, fixes {sp['agreement_fixes']}"
    )
    return sp


def cli(argv: list[str], prog: str, doc: str, main) -> None:
    """``[--quick] [--speed [N]]``: ``main(quick=...)``, or only :func:`speed_main`."""
    import argparse

    ap = argparse.ArgumentParser(prog=prog, description=doc.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a small sample set")
    ap.add_argument(
        "--speed", type=int, metavar="N", nargs="?", const=1_000_000, default=None,
        help="only the speed run on N synthetic annotations (default 1,000,000)",
    )  # fmt: skip
    args = ap.parse_args(argv)
    if args.speed is not None:
        speed_main(args.speed)
    else:
        main(quick=args.quick)


if __name__ == "__main__":
    cli(sys.argv[1:], "python -m benchmarks.bench_correct", __doc__, main)
