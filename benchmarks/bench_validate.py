"""Benchmark of ``toolkit validate``: recall of the injected stick errors, false flags, speed.

Accuracy: a sample set generated with :func:`toolkit.synth.generate` (images and videos, stick
errors injected at known rates, clean truth beside them) is validated; a frame counts as flagged
when it has a ``stick.*`` or ``temporal.*`` finding of severity warning or error. Reported: recall
per error kind and overall, and the false-flag rate on clean frames (foreshortened ones
separately), with and without image evidence.

Speed and the family of datasets (randomised, real photos, detector output) are measured by
``benchmarks/bench_stick.py``.

Run: ``python -m benchmarks.run validate`` or ``python -m benchmarks.bench_validate [--quick]``;
``python -m benchmarks.bench_validate --speed [N]`` runs only the speed comparison (``correct``
and the ``validate`` rule checks beside the per-annotation reference, on N = 1,000,000 synthetic
annotations by default).
"""

from __future__ import annotations

import sys
import time

import numpy as np

from benchmarks.bench_correct import (
    ERROR_GROUPS,
    cli,
    load_samples,
    sample_set,
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


def main(quick: bool = False) -> dict:
    """Run the benchmark; prints a table and returns a JSON-able dict."""
    per_class = 3 if quick else 10
    root = sample_set(per_class)
    ds, _clean, kinds, fs = load_samples(root)
    acc = {
        "with_images": accuracy(ds, kinds, fs, True),
        "no_images": accuracy(ds, kinds, fs, False),
    }
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
        "speed: see `python -m benchmarks.run stick` (one run, beside a per-annotation reference)"
    )
    return {"per_class": per_class, "accuracy": acc}


if __name__ == "__main__":
    cli(sys.argv[1:], "python -m benchmarks.bench_validate", __doc__, main)
