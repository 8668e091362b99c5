"""Fine-tune an ultralytics YOLO pose model with 19 keypoints (body + stick) on a dataset.

This is how users fix the root cause of drifting stick points: train the detector on the
cleaned labels. The dataset is exported to YOLO format (:func:`toolkit.io.write`, format
``yolo``: ``data.yaml`` with ``kpt_shape [19, 3]`` and ``flip_idx``), then ultralytics trains
offline (:mod:`toolkit.ultra` prepares it: no download, no auto-install, a local font). The start
is a given ``.pt`` (a 17-keypoint person model such as ``yolo11n-pose.pt`` transfers every layer
but the keypoint head, which the dataset's ``kpt_shape`` resizes) or a model yaml
(``yolo11n-pose.yaml``, ultralytics' bundled config, built from scratch).

The run folder::

    RUN/
      config.yaml      everything needed to reproduce (dataset, start weights, epochs, imgsz ...)
      best.pt          the trained model (`toolkit detect SRC --weights RUN/best.pt`)
      metrics.csv      ultralytics' per-epoch results (losses, pose mAP)
      metrics.json     final ultralytics metrics + the evaluate summary + timings
      evaluate.json    `toolkit evaluate` of best.pt's predictions against the dataset's labels
      train/           ultralytics' own save dir (weights/best.pt, last.pt, args.yaml, plots)

The folder is built beside ``RUN`` and renamed into place only when training and evaluation
complete; an existing ``RUN`` is refused unless ``overwrite``.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from toolkit import layout

DEFAULT_MODEL = "yolo11n-pose.yaml"


@dataclass
class DetectorConfig:
    """What ``trainer detector`` trains with (written to ``RUN/config.yaml``).

    Attributes:
        dataset: The dataset directory.
        weights: Start ``.pt`` or model ``.yaml`` (default: ultralytics' ``yolo11n-pose.yaml``).
        epochs: Training epochs.
        imgsz: Training and evaluation image size.
        device: ``auto`` (GPU when present), ``cpu``, ``cuda`` or a GPU index.
        batch: Images per batch.
        workers: Data-loader workers (0 keeps everything in this process).
        seed: Random seed.
        patience: Early-stopping patience in epochs.
        plots: Let ultralytics draw its plots.
    """

    dataset: str
    weights: str | None = None
    epochs: int = 50
    imgsz: int = 640
    device: str = "auto"
    batch: int = 16
    workers: int = 0
    seed: int = 0
    patience: int = 50
    plots: bool = True


def train_detector(
    dataset: str | Path,
    out: str | Path,
    *,
    weights: str | Path | None = None,
    epochs: int = 50,
    imgsz: int = 640,
    device: str = "auto",
    batch: int = 16,
    workers: int = 0,
    seed: int = 0,
    patience: int = 50,
    plots: bool = True,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Fine-tune a 19-keypoint YOLO pose model on ``dataset`` and write the run folder ``out``.

    Returns:
        The ``metrics.json`` content (``ultralytics`` final metrics, ``evaluate`` summary,
        ``seconds``, ``best``).

    Raises:
        FileExistsError: ``out`` exists and not ``overwrite``.
        FileNotFoundError: The dataset or the start weights are missing.
        ValueError: The dataset has no labelled people.
    """
    import yaml

    from toolkit import io as tio
    from toolkit import ultra
    from toolkit.dataset import Dataset
    from toolkit.fileio import atomic_write_text, staged_dir

    out = Path(out).absolute()
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; choose another --out or pass --overwrite.")
    ds = Dataset.load(dataset)
    labelled = (ds.keypoints[..., 2] > 0).any(1)
    if not labelled.any():
        raise ValueError(
            f"Expected a dataset with labelled people to train on, but {dataset} has none."
        )
    if not (ds.keypoints[:, layout.GRIP :, 2] > 0).any():
        warnings.warn(
            "The dataset has no stick points: the model learns to predict none.", stacklevel=2
        )
    cfg = DetectorConfig(
        dataset=str(Path(dataset).absolute()),
        weights=str(weights) if weights else None,
        epochs=epochs,
        imgsz=imgsz,
        device=device,
        batch=batch,
        workers=workers,
        seed=seed,
        patience=patience,
        plots=plots,
    )
    start = weights or DEFAULT_MODEL
    model = ultra.yolo(start)  # local .pt / bundled yaml only; raises with a hint otherwise
    dev = ultra.auto_device(device)
    if dev != "cpu":
        ultra.disable_amp_download_check()
    t0 = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="arnis-yolo-") as tmp,
        staged_dir(out, overwrite=overwrite) as stage,
    ):
        data_dir = tio.write(ds, "yolo", Path(tmp) / "yolo")
        data_yaml = _checked_yaml(Path(data_dir))
        model.train(
            data=str(data_yaml),
            epochs=epochs,
            imgsz=imgsz,
            device=dev,
            batch=batch,
            workers=workers,
            seed=seed,
            patience=patience,
            plots=plots,
            project=str(stage),
            name="train",
            exist_ok=True,
            verbose=progress,
            pretrained=True,
            val=True,
        )
        train_dir = stage / "train"
        best = train_dir / "weights" / "best.pt"
        if not best.exists():
            best = train_dir / "weights" / "last.pt"
        shutil.copy2(best, stage / "best.pt")
        results_csv = train_dir / "results.csv"
        final = {}
        if results_csv.exists():
            shutil.copy2(results_csv, stage / "metrics.csv")
            final = _last_row(results_csv)
        t_train = time.perf_counter() - t0
        rep = _evaluate_run(ds, stage / "best.pt", imgsz, dev, progress)
        import orjson

        (stage / "evaluate.json").write_bytes(orjson.dumps(rep, option=orjson.OPT_INDENT_2))
        metrics = {
            "ultralytics": final,
            "evaluate": {
                "oks": rep["oks"],
                "overall": rep["overall"],
                "keypoints": rep["keypoints"],
            },
            "seconds": {"train": round(t_train, 2), "total": round(time.perf_counter() - t0, 2)},
            "best": "best.pt",
            "device": dev,
        }
        (stage / "metrics.json").write_bytes(orjson.dumps(metrics, option=orjson.OPT_INDENT_2))
        atomic_write_text(
            stage / "config.yaml",
            yaml.safe_dump(
                {**asdict(cfg), "start": str(start), "device_used": dev, "versions": _versions()},
                sort_keys=False,
            ),
        )
    return metrics


def _checked_yaml(data_dir: Path) -> Path:
    """The export's ``data.yaml``, with an absolute ``path`` and the 19-point layout checked."""
    import yaml

    data_yaml = data_dir if data_dir.suffix in (".yaml", ".yml") else data_dir / "data.yaml"
    doc = yaml.safe_load(data_yaml.read_text("utf-8"))
    if list(doc.get("kpt_shape") or []) != [layout.NUM_KEYPOINTS, 3]:
        raise ValueError(
            f"Expected the YOLO export to have kpt_shape [19, 3], but "
            f"{data_yaml} has {doc.get('kpt_shape')}."
        )
    doc["path"] = str(data_yaml.parent.absolute())
    doc.setdefault("flip_idx", list(layout.FLIP_IDX))
    data_yaml.write_text(yaml.safe_dump(doc, sort_keys=False), "utf-8")
    return data_yaml


def _last_row(csv_path: Path) -> dict[str, float]:
    import pandas as pd

    df = pd.read_csv(csv_path)
    df.columns = [c.strip() for c in df.columns]
    if df.empty:
        return {}
    row = df.iloc[-1]
    return {
        k: (float(v) if np.isfinite(v) else None)
        for k, v in row.items()
        if isinstance(v, (int, float, np.number))
    }


def _evaluate_run(ds: Any, best: Path, imgsz: int, device: str, progress: bool) -> dict:
    """Predict every frame of ``ds`` with ``best`` and compare against its labels."""
    from toolkit.detect import DetectOptions, detect_dataset
    from toolkit.evaluate import evaluate

    pred = detect_dataset(
        ds, best, options=DetectOptions(imgsz=imgsz, device=device, track=False), progress=progress
    )
    return evaluate(ds, pred, keypoints="all")


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for pkg in ("ultralytics", "torch", "arnis-suite"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "unknown"
    return out
