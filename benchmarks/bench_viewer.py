"""Benchmark of the napari viewer on long videos: open time, frame-step latency, memory.

An mp4 of N frames (30 fps, sizes below) is generated with OpenCV, with a dataset of
N frame entries (one person each, a moving pose, 1 % of the frames with a validate finding).
Each measurement runs in a fresh child process under a display (``xvfb-run`` when there is no
``$DISPLAY``), so memory figures are per process:

* **open**: ``viewer.app.open_dataset`` (load ``dataset.json``, index frames, open the video,
  add the layers and the dock, draw the first flagged frame), napari's one-time layer
  initialisation excluded (it is measured and reported on its own as ``napari_init_s``);
* **step**: one frame forward (``dims.set_current_step``) until the canvas is painted
  (``processEvents``), while scrubbing 300 consecutive frames; ``back``: then 150 frames
  backward, one at a time; ``jump``: random frames (seeks);
  ``model``: the same steps without painting (napari slicing + our layer updates only);
* **memory**: the process's peak RSS after scrubbing.

Reference: the straightforward viewer, which decodes the whole video into one array and gives
it to napari (what "open a video in napari" usually means).

Sizes: 160x120 (1,000 and 10,000 frames), 1280x720 (300 and 600), 1920x1080 (150 and 300), the
frames a blurred-noise texture panning sideways (decoding costs like footage, not like a flat
colour).

Run: ``python -m benchmarks.run viewer`` or ``python -m benchmarks.bench_viewer [--quick]
[1280x720 ...] [--repeat=N]`` (only the named sizes; N alternating runs of each pair, medians).
Targets: step p95 <= the reference's p95 + 5 ms in the same run, jump p95 <= 60 ms at 720p,
memory flat in the video length, open < 3 s.
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
def make_video_dataset(root: Path, n: int, width: int = W, height: int = H) -> Path:
    """Write ``root/clip.mp4`` (``n`` frames of ``width x height``) and ``root/ds``.

    The frames are a blurred-noise texture panning sideways with a moving box on it (footage-like
    decoding cost, unlike a flat colour); one annotation per frame, a pose that sways.
    """
    import cv2
    import orjson

    from toolkit import layout
    from toolkit.dataset import Dataset

    root.mkdir(parents=True, exist_ok=True)
    video = root / "clip.mp4"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (width, height))
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    texture = cv2.GaussianBlur(texture, (0, 0), max(1.0, width / 400))
    sx, sy = width / W, height / H
    for i in range(n):
        frame = np.roll(texture, 2 * i, axis=1)
        x0 = int((10 + i % 100) * sx)
        cv2.rectangle(frame, (x0, int(20 * sy)), (x0 + int(30 * sx), int(80 * sy)), (200,) * 3, -1)
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
    xy = xy * [sx, sy]
    kp = np.concatenate([xy, np.full((n, layout.NUM_KEYPOINTS, 1), 2.0)], axis=2)
    images = [
        {
            "id": i + 1,
            "file_name": f"clip/{i:06d}.jpg",
            "width": width,
            "height": height,
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
                "width": width,
                "height": height,
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
        from viewer.launch import open_dataset

        app = open_dataset(viewer, ds_path, autosave_s=0)
        n = app.session.n_frames
        start = app.frame
    else:  # reference: decode everything, hand napari one big array
        from toolkit.dataset import Dataset
        from toolkit.media.video import VideoReader

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
    seq, back, model, jump = [], [], [], []
    prof = None
    if os.environ.get("BENCH_VIEWER_PROFILE"):
        import cProfile

        prof = cProfile.Profile()
        prof.enable()

    cpu: dict[int, list] = {}

    def step(t: int, out: list, paint: bool = True) -> None:
        a, c = time.perf_counter(), time.process_time()
        viewer.dims.set_current_step(0, int(t))
        if paint:
            QApplication.processEvents()
        out.append(time.perf_counter() - a)
        cpu.setdefault(id(out), []).append(time.process_time() - c)

    last = min(s0 + steps, n - 1)
    for t in range(s0 + 1, last + 1):  # scrub forward
        step(t, seq)
    for t in range(last - 1, max(last - 1 - steps // 2, -1), -1):  # then back
        step(t, back)
    for t in rng.integers(0, n, size=max(steps // 3, 10)):  # random jumps (seeks)
        step(int(t), jump)
    QApplication.processEvents()
    for t in range(s0 + 1, last + 1):
        step(t, model, paint=False)
    QApplication.processEvents()
    if prof is not None:
        prof.disable()
        prof.dump_stats(os.environ["BENCH_VIEWER_PROFILE"] + f".{variant}")
    out = {
        "variant": variant,
        "frames": n,
        "size": f"{viewer.layers['frames'].data.shape[2]}x{viewer.layers['frames'].data.shape[1]}",
        "viewer_start_s": round(t1 - t0, 3),
        "napari_init_s": round(t2 - t1, 3),
        "open_s": round(t3 - t2, 3),
        "step": _pct(seq[5:]),
        "back": _pct(back[2:]),
        "jump": _pct(jump),
        "model": _pct(model[5:]),
        # CPU seconds of this process per step (all its threads: the decoder and Mesa's
        # software rasteriser included): what a step costs, whatever else the machine runs.
        "step_cpu": _pct(cpu[id(seq)][5:]),
        "jump_cpu": _pct(cpu[id(jump)]),
        "rss_open_mb": round(_rss_mb(), 1),
        "rss_before_open_mb": round(rss_before, 1),
        "peak_rss_mb": round(_peak_mb(), 1),
    }
    if variant == "ours":
        out["frame_cache"] = {**app.frames.stats, "mb": round(app.frames.cache.nbytes / 2**20, 1)}
        # What each video decoder measured (CPU ms of a seek, of a frame read in order) and the
        # longest forward jump it now reads through instead of seeking.
        out["decoders"] = {
            f"{vid}/{role}": {
                **{
                    f"{k}_ms": None if v is None else round(v * 1000, 2)
                    for k, v in reader.costs.items()
                },
                "grab_limit": reader.grab_limit,
            }
            for (vid, role), reader in app.frames._readers.items()
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


def _median_row(rows: list[dict]) -> dict:
    """One row with the median of each timing / memory figure over repeated runs."""
    out = dict(rows[0])
    for key in ("step", "back", "jump", "model", "step_cpu", "jump_cpu"):
        out[key] = {k: round(float(np.median([r[key][k] for r in rows])), 2) for k in rows[0][key]}
    for key in ("open_s", "peak_rss_mb"):
        out[key] = round(float(np.median([r[key] for r in rows])), 2)
    return out


# ---------------------------------------------------------------------- main
#: ``(width, height, (short, long) video lengths)`` per case; the long one shows memory growth.
CASES = ((160, 120, (1_000, 10_000)), (1280, 720, (300, 600)), (1920, 1080, (150, 300)))
QUICK_CASES = ((160, 120, (300, 600)), (1280, 720, (150, 300)))


def main(quick: bool = False, cases=None, repeats: int = 1) -> dict:
    """Run the benchmark; prints a table and returns a JSON-able dict.

    Args:
        quick: Small sizes (a smoke test).
        cases: ``(width, height, (n_short, n_long))`` tuples instead of :data:`CASES`.
        repeats: Runs of each (ours, reference) pair, alternating; the summary takes the median
            of each figure over them (a busy machine makes single runs noisy).
    """
    cases = cases or (QUICK_CASES if quick else CASES)
    steps = 60 if quick else 300
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_viewer_") as tmp:
        for w, h, lengths in cases:
            for n in lengths:
                t = time.perf_counter()
                ds_path = make_video_dataset(Path(tmp) / f"v{w}x{h}_{n}", n, w, h)
                gen_s = time.perf_counter() - t
                for rep in range(repeats):
                    for variant in ("ours", "reference"):
                        r = _run_child(ds_path, variant, min(steps, n - 2))
                        r["generate_s"] = round(gen_s, 2)
                        r["repeat"] = rep
                        rows.append(r)
                shutil.rmtree(ds_path.parent, ignore_errors=True)
    load = os.getloadavg()
    print(
        "viewer: mp4 (mp4v), one person per frame; step/back = one frame forward/backward until "
        "painted, jump = a random frame (Xvfb, software OpenGL); reference = whole video decoded "
        f"into one array, same run. Load average {load[0]:.2f}, {os.cpu_count()} CPUs."
    )
    print(
        f"{'size':>9} {'frames':>6} {'variant':10} {'open s':>6} {'step med':>8} "
        f"{'step p95':>8} {'back p95':>8} {'jump p95':>8} {'model p95':>9} "
        f"{'cpu/step':>8} {'cpu/jump':>8} {'peak RSS MB':>11}"
    )
    for r in rows:
        print(
            f"{r['size']:>9} {r['frames']:>6} {r['variant']:10} {r['open_s']:>6.2f} "
            f"{r['step']['median_ms']:>8.1f} {r['step']['p95_ms']:>8.1f} "
            f"{r['back']['p95_ms']:>8.1f} {r['jump']['p95_ms']:>8.1f} "
            f"{r['model']['p95_ms']:>9.1f} {r['step_cpu']['median_ms']:>8.1f} "
            f"{r['jump_cpu']['median_ms']:>8.1f} {r['peak_rss_mb']:>11.0f}"
        )
    summary = {}
    for w, h, (lo, hi) in cases:
        size = f"{w}x{h}"
        pick = {
            (v, n): _median_row(
                [r for r in rows if (r["size"], r["variant"], r["frames"]) == (size, v, n)]
            )
            for v in ("ours", "reference")
            for n in (lo, hi)
        }
        ours, ref = pick[("ours", hi)], pick[("reference", hi)]
        s = {
            "step_p95_ms": ours["step"]["p95_ms"],
            "step_p95_ms_reference": ref["step"]["p95_ms"],
            "step_p95_over_reference_ms": round(ours["step"]["p95_ms"] - ref["step"]["p95_ms"], 1),
            "back_p95_ms": ours["back"]["p95_ms"],
            "jump_p95_ms": ours["jump"]["p95_ms"],
            "jump_p95_ms_reference": ref["jump"]["p95_ms"],
            "step_cpu_median_ms": ours["step_cpu"]["median_ms"],
            "step_cpu_median_ms_reference": ref["step_cpu"]["median_ms"],
            "jump_cpu_median_ms": ours["jump_cpu"]["median_ms"],
            "jump_cpu_median_ms_reference": ref["jump_cpu"]["median_ms"],
            "open_s": ours["open_s"],
            "memory_growth_mb_ours": round(
                ours["peak_rss_mb"] - pick[("ours", lo)]["peak_rss_mb"], 1
            ),
            "memory_growth_mb_reference": round(
                ref["peak_rss_mb"] - pick[("reference", lo)]["peak_rss_mb"], 1
            ),
        }
        summary[size] = s
        print(
            f"{size}, {hi} frames: step p95 {s['step_p95_ms']} ms (reference "
            f"{s['step_p95_ms_reference']} ms, {s['step_p95_over_reference_ms']:+} ms), back p95 "
            f"{s['back_p95_ms']} ms, jump p95 {s['jump_p95_ms']} ms (reference "
            f"{s['jump_p95_ms_reference']} ms); CPU per step {s['step_cpu_median_ms']} ms "
            f"(reference {s['step_cpu_median_ms_reference']}), per jump "
            f"{s['jump_cpu_median_ms']} ms (reference {s['jump_cpu_median_ms_reference']}); "
            f"peak RSS growth {lo}->{hi} frames: ours "
            f"{s['memory_growth_mb_ours']} MB, reference {s['memory_growth_mb_reference']} MB"
        )
    return {
        "cases": [list(c[:2]) + [list(c[2])] for c in cases],
        "steps": steps,
        "repeats": repeats,
        "load_average": [round(x, 2) for x in load],
        "rows": rows,
        "summary": summary,
        "targets": {
            "step_p95_over_reference_ms": 5.0,
            "jump_p95_ms_720p": 60.0,
            "open_s": 3.0,
        },
    }


if __name__ == "__main__":
    if "--child" in sys.argv:
        i = sys.argv.index("--child")
        res = child(Path(sys.argv[i + 1]), sys.argv[i + 2], int(sys.argv[i + 3]))
        print("RESULT " + json.dumps(res), flush=True)
    else:
        sizes = [a for a in sys.argv[1:] if "x" in a and a[0].isdigit()]
        chosen = [c for c in CASES if f"{c[0]}x{c[1]}" in sizes] or None
        rep = [int(a.split("=")[1]) for a in sys.argv if a.startswith("--repeat=")]
        main(quick="--quick" in sys.argv, cases=chosen, repeats=rep[0] if rep else 1)
