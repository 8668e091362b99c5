"""Trainer benchmark: accuracy of every model on the samples, training time, ONNX latency.

1. Subject-independent 5-fold CV on ``samples/arnis`` for every model on the same folds, on the
   raw sticks and on sticks corrected by ``toolkit.correct`` (when it is importable).
2. Training time of one GeoPose-Net fold with the frozen backbone's crop features cached vs
   recomputed every step (same epochs, no early stop).
3. onnxruntime (2 threads) vs torch eager (2 threads): latency at batch 1 (median, p95) and
   throughput at batch 64, for the exported single GeoPose-Net model, plus onnxruntime for the
   graph-only and visual-only variants (which stream the time goes to). Timings on 2 cores
   scale with the machine's load: read them beside the load average printed with them.

Run: ``python -m benchmarks.run trainer`` or ``python -m benchmarks.bench_trainer [--quick]``
(``--latency``: the inference part alone).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from trainer.commands.ablate_cmd import ALL_MODELS

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples" / "arnis"
MODELS = ALL_MODELS  # every model `trainer ablate` knows


def load_samples(corrected: bool):
    """The committed samples as a dataset with their taxonomy (corrected sticks optional)."""
    import toolkit.io.yolo  # noqa: F401  (registers the format)
    from toolkit import io

    ds = io.read(SAMPLES / "data.yaml", labels=SAMPLES / "labels.csv").dataset
    ds.taxonomy = json.loads((SAMPLES / "taxonomy.json").read_text("utf-8"))
    note = "raw"
    if corrected:
        from toolkit.correct import apply, correct

        n = apply(ds, correct(ds))
        note = f"corrected ({n} annotations changed)"
    return ds, note


def _accuracy(quick: bool, tmp: Path, sticks: tuple[str, ...] = ("raw", "corrected")) -> dict:
    from trainer.data import prepare
    from trainer.runs import run_ablation
    from trainer.train import TrainConfig

    try:
        import toolkit.correct  # noqa: F401

        variants = [s == "corrected" for s in sticks]
    except ImportError:
        variants = [False] if "raw" in sticks else []
    models = ("geopose", "graph", "angles-rf") if quick else MODELS
    cfg = TrainConfig(epochs=20 if quick else 100)
    out: dict = {"models": list(models), "runs": {}}
    for corrected in variants:
        ds, note = load_samples(corrected)
        prep = prepare(ds, crops=True)
        key = "corrected" if corrected else "raw"
        t0 = time.perf_counter()
        res, table = run_ablation(prep, list(models), cfg, tmp / f"abl_{key}", n_folds=5)
        out["runs"][key] = {
            "sticks": note,
            "seconds": time.perf_counter() - t0,
            "table": table,
            "models": {
                r["model"]: {
                    k: r[k]
                    for k in (
                        "accuracy_mean",
                        "accuracy_std",
                        "macro_f1_mean",
                        "kappa_mean",
                        "family_accuracy_mean",
                        "chamber_accuracy_mean",
                        "seconds_per_fold_mean",
                    )
                }
                for r in res
            },
            "folds": [f["test_groups"] for f in res[0]["folds"]],
        }
    return out


def _fold_time(quick: bool) -> dict:
    from trainer.cv import make_folds
    from trainer.data import prepare
    from trainer.train import CropCache, TrainConfig, train_fold

    ds, _ = load_samples(False)
    prep = prepare(ds, crops=True)
    fold = make_folds(prep.y, prep.groups, 5)[0]
    epochs = 3 if quick else 10
    res = {"epochs": epochs, "n_train": int(len(fold.train))}
    for cached in (True, False):
        cfg = TrainConfig(model="geopose", epochs=epochs, cache_features=cached, visual="mobilenet")
        cache = CropCache(prep, cfg)
        t0 = time.perf_counter()
        train_fold(prep, fold, cfg, cache)
        res["cached" if cached else "uncached"] = time.perf_counter() - t0
    cfg = TrainConfig(model="geopose", epochs=1, finetune_epochs=1, visual="mobilenet")
    out = train_fold(prep, fold, cfg, CropCache(prep, cfg))
    res["finetune_epoch_seconds"] = float(out.history[-1]["seconds"])
    res["frozen_epoch_seconds"] = float(out.history[0]["seconds"])
    return res


def _export_untrained(variant: str, path: Path, visual: str = "mobilenet", members: int = 1):
    """An untrained GeoPose-Net ``variant`` exported as ``trainer export`` does; its module."""
    import torch

    from trainer.export import OPSET, ExportModule, example_inputs
    from trainer.models import GeoPoseNet

    fam = np.repeat(np.arange(4), 3)
    ch = np.tile(np.arange(3), 4)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        models = [GeoPoseNet(12, variant, fam, ch, visual=visual).eval() for _ in range(members)]
        module = ExportModule(models).eval()
        dyn = {n: {0: "batch"} for n in module.input_names + module.output_names}
        torch.onnx.export(
            module,
            tuple(example_inputs(module, 2)),
            str(path),
            dynamo=False,
            input_names=module.input_names,
            output_names=module.output_names,
            dynamic_axes=dyn,
            opset_version=OPSET,
            do_constant_folding=True,
        )
    return module


def _timeit(fn, reps: int) -> np.ndarray:
    for _ in range(5):
        fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return np.array(ts)


def _summary(t1: np.ndarray, t64: np.ndarray) -> dict:
    return {
        "b1_median_ms": 1e3 * np.median(t1),
        "b1_p95_ms": 1e3 * np.percentile(t1, 95),
        "b64_ms": 1e3 * np.median(t64),
        "b64_fps": 64 / np.median(t64),
    }


def _latency(quick: bool, tmp: Path) -> dict:
    """Onnxruntime vs torch eager (2 threads) for the full model, and each stream alone.

    Onnxruntime runs as ``trainer.export.ort_session`` makes it (2 intra-op threads, 1 inter-op,
    every graph optimisation), with and without thread spinning.
    """
    import torch

    from trainer.export import example_inputs, ort_session

    reps1, reps64 = (50, 10) if quick else (300, 40)
    out = {}
    # The default model (graph stream + heads, no visual stream) and a 3-member seed ensemble.
    for key, members in (("default", 1), ("default_3_members", 3)):
        path = tmp / f"bench_{key}.onnx"
        module = _export_untrained("geopose", path, visual="none", members=members)
        sess = ort_session(path, threads=2)
        x1, x64 = example_inputs(module, 1), example_inputs(module, 64)
        feed1 = {n: t.numpy() for n, t in zip(module.input_names, x1, strict=True)}
        feed64 = {n: t.numpy() for n, t in zip(module.input_names, x64, strict=True)}
        t1 = _timeit(lambda s=sess, f=feed1: s.run(None, f), reps1)
        t64 = _timeit(lambda s=sess, f=feed64: s.run(None, f), reps64)
        out[f"onnxruntime_{key}"] = _summary(t1, t64)
        del sess
    for variant in ("geopose", "graph", "visual"):
        module = _export_untrained(variant, tmp / f"bench_{variant}.onnx")
        sess = ort_session(tmp / f"bench_{variant}.onnx", threads=2)
        x1, x64 = example_inputs(module, 1), example_inputs(module, 64)
        feed1 = {n: t.numpy() for n, t in zip(module.input_names, x1, strict=True)}
        feed64 = {n: t.numpy() for n, t in zip(module.input_names, x64, strict=True)}
        t1 = _timeit(lambda s=sess, f=feed1: s.run(None, f), reps1)
        t64 = _timeit(lambda s=sess, f=feed64: s.run(None, f), reps64)
        if variant != "geopose":
            out[f"onnxruntime_{variant}_only"] = _summary(t1, t64)
            continue
        out["onnxruntime"] = _summary(t1, t64)
        del sess  # one session (one thread pool) at a time
        sess = ort_session(tmp / f"bench_{variant}.onnx", threads=2, spinning=False)
        s1 = _timeit(lambda s=sess, f=feed1: s.run(None, f), reps1)
        s64 = _timeit(lambda s=sess, f=feed64: s.run(None, f), reps64)
        out["onnxruntime_no_spinning"] = _summary(s1, s64)
        del sess
        prev = torch.get_num_threads()
        torch.set_num_threads(2)
        try:
            with torch.no_grad():
                e1 = _timeit(lambda m=module, x=x1: m(*x), max(20, reps1 // 5))
                e64 = _timeit(lambda m=module, x=x64: m(*x), max(5, reps64 // 4))
        finally:
            torch.set_num_threads(prev)
        out["torch_eager"] = _summary(e1, e64)
    return out


def main(quick: bool = False) -> dict:
    """Run all three parts, print the tables and return the figures."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        lat = _latency(quick, tmp)
        ft = _fold_time(quick)
        acc = _accuracy(quick, tmp)
    print(f"machine load average at start: {load:.1f} (2 cores); timings scale with it\n")
    for run in acc["runs"].values():
        print(f"== accuracy, 5-fold subject-independent CV, {run['sticks']} sticks")
        print(run["table"])
        print()
    for key in acc["runs"]:
        m = acc["runs"][key]["models"]
        if "geopose" in m and "angles-rf" in m:
            gap = 100 * (m["geopose"]["accuracy_mean"] - m["angles-rf"]["accuracy_mean"])
            print(
                f"{key}: geopose {m['geopose']['accuracy_mean']:.3f} vs angles-rf "
                f"{m['angles-rf']['accuracy_mean']:.3f}: {gap:+.1f} points "
                f"(targets: >= 0.95 and >= +10 points)"
            )
    print(
        f"\n== training time, one geopose fold ({ft['n_train']} training frames, "
        f"{ft['epochs']} epochs, no early stop)"
    )
    print(f"{'':<26}{'seconds':>9}")
    print(f"{'cached crop features':<26}{ft['cached']:>9.1f}")
    print(
        f"{'backbone every step':<26}{ft['uncached']:>9.1f}   ratio "
        f"{ft['uncached'] / ft['cached']:.1f}x"
    )
    print(
        f"one frozen epoch {ft['frozen_epoch_seconds']:.1f} s, one fine-tuning epoch "
        f"{ft['finetune_epoch_seconds']:.1f} s"
    )
    _print_latency(lat)
    return {"load_average": load, "accuracy": acc, "fold_time": ft, "latency": lat, "quick": quick}


def _print_latency(lat: dict) -> None:
    o, e = lat["onnxruntime"], lat["torch_eager"]
    for key, what in (
        ("default", "default geopose (no visual stream)"),
        ("default_3_members", "default geopose, --members 3"),
    ):
        r = lat.get(f"onnxruntime_{key}")
        if r:
            print(
                f"\n{what}, onnxruntime 2 threads: batch 1 median {r['b1_median_ms']:.2f} ms "
                f"(p95 {r['b1_p95_ms']:.2f}), batch 64 {r['b64_ms']:.1f} ms "
                f"({r['b64_fps']:.0f} frames/s); target <= 1 ms/frame at batch 1"
            )
    print("\n== inference, GeoPose-Net with --visual mobilenet (128x128 crop), 2 threads")
    print(f"{'':<18}{'b1 median ms':>13}{'b1 p95 ms':>11}{'b64 ms':>9}{'b64 frames/s':>14}")
    rows = [("onnxruntime", o), ("  no spinning", lat["onnxruntime_no_spinning"])]
    rows += [("torch eager", e)]
    rows += [(f"  ort {k} only", lat[f"onnxruntime_{k}_only"]) for k in ("graph", "visual")]
    for name, r in rows:
        print(
            f"{name:<18}{r['b1_median_ms']:>13.2f}{r['b1_p95_ms']:>11.2f}{r['b64_ms']:>9.1f}"
            f"{r['b64_fps']:>14.0f}"
        )
    print(
        f"ratio (eager / ort): batch 1 {e['b1_median_ms'] / o['b1_median_ms']:.1f}x, "
        f"batch 64 {e['b64_ms'] / o['b64_ms']:.1f}x; targets <= 1 ms/frame at batch 1, "
        ">= 2500 frames/s at batch 64"
    )


if __name__ == "__main__":
    if "--accuracy" in sys.argv:  # one part alone: --accuracy raw|corrected OUT.json
        i = sys.argv.index("--accuracy")
        with tempfile.TemporaryDirectory() as d:
            r = _accuracy("--quick" in sys.argv, Path(d), (sys.argv[i + 1],))
        for run in r["runs"].values():
            print(run["sticks"])
            print(run["table"])
        Path(sys.argv[i + 2]).write_text(json.dumps(r, indent=1))
    elif "--latency" in sys.argv:  # the inference part alone
        print(f"machine load average at start: {os.getloadavg()[0]:.1f} (2 cores)")
        with tempfile.TemporaryDirectory() as d:
            _print_latency(_latency("--quick" in sys.argv, Path(d)))
    else:
        main(quick="--quick" in sys.argv)
