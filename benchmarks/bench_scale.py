"""Scale-out benchmark: ``--engine local`` vs Ray with 1 and 2 workers, same outputs.

1. ``toolkit detect`` over the 4 sample videos (``samples/arnis/videos``, 120 frames each at
   320x320; yolo11n-pose at imgsz 320 on :data:`RUNTIME`), one task per video: frames per
   second.
2. ``trainer ablate`` of 3 models (geopose, graph, coords-mlp) x 5 subject folds on the sample
   images: folds per second.

Each Ray run starts its own local Ray (``num_cpus`` = workers; the start-up, and for detect each
worker's first model load on a short warm-up, are timed apart and left out of the throughput) and runs one torch thread per task, so "1 worker" and "2 workers"
differ only in how many tasks run at once. The local engine runs with its defaults (detect: all
cores' threads for the one task at a time; training: ``--threads 1``). Outputs are compared:
every dataset's ``dataset.json`` (without its random journal id) and every run's metrics
(without wall-clock fields) and out-of-fold probabilities must be identical across engines.

Target (issue 13): 2 workers >= 1.6x the 1-worker throughput on a 2-core machine. The machine's
load average is printed and stored with the numbers: on a shared machine, rerun when it is quiet.

Run: ``python -m benchmarks.run scale`` or ``python -m benchmarks.bench_scale [--quick]``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples" / "arnis"
MODELS = ("geopose", "graph", "coords-mlp")
#: The detect runtime: this benchmark measures the engines, not the runtimes (bench_detect does),
#: on the runtime a user gets by default (OpenVINO when installed).
RUNTIME = "auto"
TIMING = ("seconds", "seconds_total", "seconds_per_fold_mean", "crop_feature_seconds")


def _engines() -> list[tuple[str, str, int | None]]:
    return [("local", "local", None), ("ray-1", "ray", 1), ("ray-2", "ray", 2)]


def _without_timing(doc):
    if isinstance(doc, dict):
        return {k: _without_timing(v) for k, v in doc.items() if k not in TIMING}
    if isinstance(doc, list):
        return [_without_timing(v) for v in doc]
    return doc


def _dataset_doc(path: Path) -> dict:
    doc = orjson.loads((path / "dataset.json").read_bytes())
    doc.pop("journal", None)
    return doc


def _detect(quick: bool, tmp: Path) -> dict:
    from toolkit.detect import DetectOptions
    from toolkit.detect_many import detect_many
    from toolkit.engine import open_engine

    videos = sorted((SAMPLES / "videos").glob("*.mp4"))[: 2 if quick else 4]
    opts = DetectOptions(imgsz=320, every=8 if quick else 1, runtime=RUNTIME)
    out: dict = {
        "videos": [v.name for v in videos],
        "imgsz": 320,
        "every": opts.every,
        "runtime": RUNTIME,
    }
    docs = {}
    for name, kind, workers in _engines():
        t0 = time.perf_counter()
        with open_engine(kind, workers) as eng:
            # Warm-up (untimed, reported apart): each worker imports the detector and loads the
            # model once, as it does once per job, so the rate below is the steady state a long
            # job (hours of footage) runs at.
            detect_many(
                videos[: workers or 1],
                "yolo11n-pose.pt",
                tmp / f"warm_{name}",
                options=replace(opts, every=60),
                engine=eng,
                threads=None if kind == "local" else 1,
            )
            started = time.perf_counter()
            written = detect_many(
                videos,
                "yolo11n-pose.pt",
                tmp / f"detect_{name}",
                options=opts,
                engine=eng,
                threads=None if kind == "local" else 1,
            )
            secs = time.perf_counter() - started
        frames = sum(d.meta["detect"]["n_frames"] for d in written)
        out[name] = {
            "frames": frames,
            "seconds": round(secs, 2),
            "engine_start_seconds": round(started - t0, 2),  # with the warm-up
            "fps": round(frames / secs, 2),
        }
        docs[name] = [_dataset_doc(d.path) for d in written]
    out["outputs_match"] = all(docs[n] == docs["local"] for n in docs)
    return out


def _ablate(quick: bool, tmp: Path) -> dict:
    from benchmarks.bench_trainer import load_samples
    from toolkit.engine import open_engine
    from trainer.data import prepare
    from trainer.runs import run_ablation
    from trainer.train import TrainConfig

    ds, _ = load_samples(corrected=False)
    prep = prepare(ds)
    models = list(MODELS[:2] if quick else MODELS)
    folds = 3 if quick else 5
    cfg = TrainConfig(epochs=3 if quick else 20)
    out: dict = {"models": models, "folds": folds, "epochs": cfg.epochs, "frames": len(prep)}
    runs = {}
    for name, kind, workers in _engines():
        t0 = time.perf_counter()
        with open_engine(kind, workers) as eng:
            started = time.perf_counter()
            results, _ = run_ablation(
                prep, models, cfg, tmp / f"ablate_{name}", n_folds=folds, engine=eng
            )
            secs = time.perf_counter() - started
        n = len(models) * folds
        out[name] = {
            "tasks": n,
            "seconds": round(secs, 2),
            "engine_start_seconds": round(started - t0, 2),
            "folds_per_second": round(n / secs, 4),
        }
        runs[name] = [
            (
                _without_timing(r),
                (tmp / f"ablate_{name}" / r["label"] / "oof_probabilities.csv").read_bytes(),
            )
            for r in results
        ]
    out["outputs_match"] = all(runs[n] == runs["local"] for n in runs)
    out["accuracy_mean"] = {r[0]["label"]: round(r[0]["accuracy_mean"], 4) for r in runs["local"]}
    return out


def _ratio(part: dict, key: str) -> dict:
    one, two, local = part["ray-1"][key], part["ray-2"][key], part["local"][key]
    return {"ray2_vs_ray1": round(two / one, 2), "ray2_vs_local": round(two / local, 2)}


def main(quick: bool = False) -> dict:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "0")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(ROOT / ".cache" / "ultralytics"))
    os.environ.setdefault("MPLBACKEND", "Agg")
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        detect = _detect(quick, tmp)
        ablate = _ablate(quick, tmp)
    detect["ratio"] = _ratio(detect, "fps")
    ablate["ratio"] = _ratio(ablate, "folds_per_second")
    result = {
        "cpus": os.cpu_count(),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "detect": detect,
        "ablate": ablate,
        "target_ratio": 1.6,
    }
    print(f"{'job':<8} {'engine':<7} {'throughput':>14} {'seconds':>8} {'start s':>8}")
    for job, key, unit in (
        ("detect", "fps", "frames/s"),
        ("ablate", "folds_per_second", "folds/s"),
    ):
        part = result[job]
        for name, _, _ in _engines():
            r = part[name]
            print(
                f"{job:<8} {name:<7} {r[key]:>8.3f} {unit:<8}{r['seconds']:>6.1f}"
                f"{r['engine_start_seconds']:>9.1f}"
            )
        print(
            f"{job:<8} ratio   2 vs 1 worker {part['ratio']['ray2_vs_ray1']:.2f}x, "
            f"2 workers vs local {part['ratio']['ray2_vs_local']:.2f}x, "
            f"outputs match: {part['outputs_match']}"
        )
    print(f"load average before {result['load_before']}, after {result['load_after']}")
    return result


if __name__ == "__main__":
    print(json.dumps(main(quick="--quick" in sys.argv), indent=1))
