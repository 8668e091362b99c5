"""Benchmark of the napari viewer on long videos: open time, frame-step latency, memory.

A small-resolution mp4 of N frames (160x120, 30 fps) is generated with OpenCV, with a dataset of
N frame entries (one person each, a moving pose, 1 % of the frames with a validate finding).
Each measurement runs in a fresh child process under a display (``xvfb-run`` when there is no
``$DISPLAY``), so memory figures are per process:

* **open**: ``viewer.app.open_dataset`` (load ``dataset.json``, index frames, open the video,
  add the layers and the dock, draw the first flagged frame), napari's one-time layer
  initialisation excluded (it is measured and reported on its own as ``napari_init_s``);
* **step**: one frame forward (``dims.set_current_step``) until the canvas is painted
  (``processEvents``), while scrubbing 300 consecutive frames; ``jump``: random frames (seeks);
  ``model``: the same steps without painting (napari slicing + our layer updates only);
* **memory**: the process's peak RSS after scrubbing.

Reference: the straightforward viewer, which decodes the whole video into one array and gives
it to napari (what "open a video in napari" usually means).

Run: ``python -m benchmarks.run viewer`` or ``python -m benchmarks.bench_viewer [--quick]``.
Targets: open < 3 s, p95 step < 50 ms, memory flat in the video length.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
W, H, FPS = 160, 120, 30.0


# ---------------------------------------------------------------------- data
def make_video_dataset(root: Path, n: int) -> Path:
    """Write ``root/clip.mp4`` (``n`` frames) and ``root/ds`` (one annotation per frame)."""
    import cv2
    import orjson

    from toolkit import layout
    from toolkit.dataset import Dataset

    root.mkdir(parents=True, exist_ok=True)
    video = root / "clip.mp4"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (W, H))
    frame = np.zeros((H, W, 3), np.uint8)
    for i in range(n):
        frame[:] = (40 + i % 150, 60, 90)
        cv2.rectangle(frame, (10 + i % 100, 20), (40 + i % 100, 80), (200, 200, 200), -1)
        vw.write(frame)
    vw.release()
    t = np.arange(n)
    base = np.array(
        [
            [80, 20],
            [78, 18],
            [82, 18],
            [76, 19],
            [84, 19],
            [70, 35],
            [90, 35],
            [66, 50],
            [94, 50],
            [64, 64],
            [96, 62],
            [74, 68],
            [86, 68],
            [72, 88],
            [88, 88],
            [70, 108],
            [90, 108],
            [98, 60],
            [120, 25],
        ],
        float,
    )
    xy = base[None] + np.stack([3 * np.sin(t / 20), np.zeros(n)], 1)[:, None]
    kp = np.concatenate([xy, np.full((n, layout.NUM_KEYPOINTS, 1), 2.0)], axis=2)
    images = [
        {
            "id": i + 1,
            "file_name": f"clip/{i:06d}.jpg",
            "width": W,
            "height": H,
            "video_id": 1,
            "frame_index": i,
            "stance": "forward_high",
            "subject": "s01",
        }
        for i in range(n)
    ]
    anns = [{"id": i + 1, "image_id": i + 1} for i in range(n)]
    ds = Dataset.from_records(
        images,
        anns,
        kp,
        scores=np.full((n, 19), 0.8),
        media_root=str(root),
        videos=[
            {
                "id": 1,
                "file_name": "clip.mp4",
                "fps": FPS,
                "frame_count": n,
                "width": W,
                "height": H,
            }
        ],
    )
    out = root / "ds"
    ds.save(out)
    flagged = np.arange(0, n, 100)
    findings = [
        {
            "code": "stick.length",
            "severity": "warning",
            "ann_id": int(i + 1),
            "image_id": int(i + 1),
            "video": "clip",
            "frame_index": int(i),
            "keypoints": ["stick_tip"],
            "value": 0.3,
            "threshold": 0.5,
        }
        for i in flagged
    ]
    (out / "validation.json").write_bytes(orjson.dumps({"version": 1, "findings": findings}))
    return out


# ---------------------------------------------------------------------- child process
def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _pct(a: list[float]) -> dict:
    a = np.asarray(a) * 1000
    return {
        "median_ms": round(float(np.median(a)), 2),
        "p95_ms": round(float(np.percentile(a, 95)), 2),
        "max_ms": round(float(a.max()), 2),
    }


def child(ds_path: Path, variant: str, steps: int) -> dict:
    """One measurement in this process (needs a display)."""
    t0 = time.perf_counter()
    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=True)
    viewer.window.resize(1200, 800)
    QApplication.processEvents()
    t1 = time.perf_counter()
    # napari's one-time initialisation on its first layer (unit registry, shaders): not ours.
    dummy = viewer.add_image(np.zeros((2, 8, 8), np.uint8))
    QApplication.processEvents()
    viewer.layers.remove(dummy)
    QApplication.processEvents()
    t2 = time.perf_counter()
    rss_before = _rss_mb()
    if variant == "ours":
        from viewer.app import open_dataset

        app = open_dataset(viewer, ds_path, autosave_s=0)
        n = app.session.n_frames
        start = app.frame
    else:  # reference: decode everything, hand napari one big array
        from toolkit.dataset import Dataset
        from toolkit.io.video import VideoReader

        ds = Dataset.load(ds_path)
        with VideoReader(ds.video_path(1), cache_size=1) as vr:
            stack = np.empty((len(vr), vr.height, vr.width, 3), np.uint8)
            for i in range(len(vr)):
                stack[i] = vr[i]
        viewer.add_image(stack, rgb=True, name="frames")
        n = len(stack)
        start = 0
        viewer.dims.set_current_step(0, 0)
    QApplication.processEvents()
    t3 = time.perf_counter()
    rng = np.random.default_rng(0)
    s0 = int(min(start, max(n - steps - 1, 0)))
    seq, model, jump = [], [], []
    for t in range(s0 + 1, min(s0 + 1 + steps, n)):
        a = time.perf_counter()
        viewer.dims.set_current_step(0, t)
        QApplication.processEvents()
        seq.append(time.perf_counter() - a)
    for t in rng.integers(0, n, size=max(steps // 3, 10)):
        a = time.perf_counter()
        viewer.dims.set_current_step(0, int(t))
        QApplication.processEvents()
        jump.append(time.perf_counter() - a)
    QApplication.processEvents()
    for t in range(s0 + 1, min(s0 + 1 + steps, n)):
        a = time.perf_counter()
        viewer.dims.set_current_step(0, t)
        model.append(time.perf_counter() - a)
    QApplication.processEvents()
    out = {
        "variant": variant,
        "frames": n,
        "viewer_start_s": round(t1 - t0, 3),
        "napari_init_s": round(t2 - t1, 3),
        "open_s": round(t3 - t2, 3),
        "step": _pct(seq[5:]),
        "jump": _pct(jump),
        "model": _pct(model[5:]),
        "rss_open_mb": round(_rss_mb(), 1),
        "rss_before_open_mb": round(rss_before, 1),
        "peak_rss_mb": round(_peak_mb(), 1),
    }
    viewer.close()
    return out


def _run_child(ds_path: Path, variant: str, steps: int) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.bench_viewer",
        "--child",
        str(ds_path),
        variant,
        str(steps),
    ]
    if not os.environ.get("DISPLAY") and shutil.which("xvfb-run"):
        cmd = ["xvfb-run", "-a", "-s", "-screen 0 1280x1024x24", *cmd]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"benchmark child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


# ---------------------------------------------------------------------- main
def main(quick: bool = False) -> dict:
    """Run the benchmark; prints a table and returns a JSON-able dict."""
    lengths = (1_000, 3_000) if quick else (1_000, 10_000)
    steps = 100 if quick else 300
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_viewer_") as tmp:
        for n in lengths:
            t = time.perf_counter()
            ds_path = make_video_dataset(Path(tmp) / f"v{n}", n)
            gen_s = time.perf_counter() - t
            for variant in ("ours", "reference"):
                r = _run_child(ds_path, variant, steps)
                r["generate_s"] = round(gen_s, 2)
                rows.append(r)
    print(
        f"viewer: {W}x{H} mp4, one person per frame; step = one frame forward until painted "
        "(Xvfb, software OpenGL); reference = whole video decoded into one array"
    )
    print(
        f"{'frames':>7} {'variant':10} {'open s':>7} {'step med':>9} {'step p95':>9} "
        f"{'jump p95':>9} {'model p95':>9} {'peak RSS MB':>11}"
    )
    for r in rows:
        print(
            f"{r['frames']:>7} {r['variant']:10} {r['open_s']:>7.2f} "
            f"{r['step']['median_ms']:>9.1f} {r['step']['p95_ms']:>9.1f} "
            f"{r['jump']['p95_ms']:>9.1f} {r['model']['p95_ms']:>9.1f} "
            f"{r['peak_rss_mb']:>11.0f}"
        )
    ours = {r["frames"]: r for r in rows if r["variant"] == "ours"}
    ref = {r["frames"]: r for r in rows if r["variant"] == "reference"}
    lo, hi = lengths
    summary = {
        "open_s_longest": ours[hi]["open_s"],
        "open_ratio_reference_over_ours": round(ref[hi]["open_s"] / ours[hi]["open_s"], 1),
        "step_p95_ms_longest": ours[hi]["step"]["p95_ms"],
        "memory_growth_mb_ours": round(ours[hi]["peak_rss_mb"] - ours[lo]["peak_rss_mb"], 1),
        "memory_growth_mb_reference": round(ref[hi]["peak_rss_mb"] - ref[lo]["peak_rss_mb"], 1),
        "targets": {"open_s": 3.0, "step_p95_ms": 50.0},
    }
    print(
        f"{hi} frames: open {summary['open_s_longest']} s (reference "
        f"{summary['open_ratio_reference_over_ours']}x slower), step p95 "
        f"{summary['step_p95_ms_longest']} ms; peak RSS growth {lo}->{hi} frames: ours "
        f"{summary['memory_growth_mb_ours']} MB, reference "
        f"{summary['memory_growth_mb_reference']} MB"
    )
    return {"lengths": list(lengths), "steps": steps, "rows": rows, "summary": summary}


if __name__ == "__main__":
    if "--child" in sys.argv:
        i = sys.argv.index("--child")
        res = child(Path(sys.argv[i + 1]), sys.argv[i + 2], int(sys.argv[i + 3]))
        print("RESULT " + json.dumps(res), flush=True)
    else:
        main(quick="--quick" in sys.argv)
