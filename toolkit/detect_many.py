"""``toolkit detect`` over many sources: one task per video or folder, on any engine.

Each source is one :class:`toolkit.engine.Task` that runs :func:`toolkit.detect.detect` and
returns the dataset (nothing is written by the task); the driver writes, as each task finishes:

* ``merge=False``: one dataset per source, ``OUT/<source name>/`` (the video's or image's stem,
  or the folder's name), each built in a staging folder and renamed into place
  (:func:`toolkit.fileio.staged_dir`), exactly the bytes ``toolkit detect SOURCE --out
  OUT/<name>`` writes;
* ``merge=True``: one dataset ``OUT`` holding every source, in the order given: image, video and
  annotation ids are renumbered after the previous sources', file names are made relative to the
  sources' common folder (the dataset's ``media_root``), and ``meta["detect"]["sources"]`` keeps
  each source's detection report. Video frames keep their virtual ``<stem>/<frame>.jpg`` names,
  so two videos with the same stem cannot be merged (say so, and suggest per-source datasets).

The results arrive in source order whatever the engine, so ``--engine ray`` writes the same
bytes as ``--engine local`` (apart from the journal id ``dataset.json`` carries).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from toolkit.dataset import Dataset
from toolkit.engine import Engine, LocalEngine, Task
from toolkit.errors import InputError


def source_name(source: str | Path) -> str:
    """The per-source dataset name: a file's stem, or a folder's name."""
    p = Path(source).absolute()
    return p.stem if p.is_file() else p.name


#: The loaded model of this process (a worker runs many sources with the same model).
_LOADED: dict[str, Any] = {}


def detect_task(source: str, weights: str, stick_weights: str | None, options: Any) -> Dataset:
    """One source's dataset, not written (what a task runs; see :func:`toolkit.detect.detect`).

    The model is loaded (compiled) once per process and reused for the process's next sources
    with the same weights and options: on a cluster, a worker runs many videos.
    """
    from toolkit.detect import Detector, detect

    key = repr((str(weights), str(stick_weights), options))
    if key not in _LOADED:
        _LOADED.clear()  # one model per process at a time
        _LOADED[key] = Detector(weights, stick_weights, options)
    return detect(
        source,
        weights,
        None,
        stick_weights=stick_weights,
        options=options,
        progress=False,
        detector=_LOADED[key],
    )


def _check_sources(sources: Sequence[str | Path]) -> list[Path]:
    """Absolute, existing, distinct sources."""
    out: list[Path] = []
    seen: dict[Path, str] = {}
    for s in sources:
        p = Path(s)
        if not p.exists():
            raise FileNotFoundError(
                f"Expected 'SOURCE' to be a video, an image or a folder of images, "
                f"but {p} does not exist."
            )
        key = p.resolve()
        if key in seen:
            raise ValueError(
                f"Expected each SOURCE once, but {s} and {seen[key]} are the same path."
            )
        seen[key] = str(s)
        out.append(p.absolute())
    return out


def plan_outputs(sources: Sequence[Path], out: Path, merge: bool, overwrite: bool) -> list[Path]:
    """The dataset folder(s) to write, checked before any work starts.

    One source (or ``merge``): ``out`` itself; several: ``out/<source name>`` each.

    Raises:
        ValueError: Two sources would get the same dataset name.
        FileExistsError: A target exists and ``overwrite`` is false.
    """
    # One source: OUT is its dataset, as `toolkit detect SOURCE` writes it.
    single = merge or len(sources) == 1
    targets = [out] if single else [out / source_name(s) for s in sources]
    if not merge:
        first: dict[str, Path] = {}
        for s, t in zip(sources, targets, strict=True):
            if t.name in first:
                raise ValueError(
                    f"Expected sources with distinct names (each gets OUT/<name>), but "
                    f"{first[t.name]} and {s} are both {t.name!r}; rename one, or pass --merge."
                )
            first[t.name] = s
    for t in targets:
        if t.exists() and not overwrite:
            raise FileExistsError(f"{t} already exists; choose another --out or pass --overwrite.")
    return targets


def save_dataset(ds: Dataset, out: Path, overwrite: bool) -> Dataset:
    """Write ``ds`` to ``out`` as :func:`toolkit.detect.detect` does (media_root relative)."""
    from toolkit.fileio import staged_dir

    out = Path(out).absolute()
    root = Path(ds.media_root)
    try:
        ds.media_root = os.path.relpath(root, out)
    except ValueError:  # another drive (Windows)
        ds.media_root = str(root)
    with staged_dir(out, overwrite=overwrite) as stage:
        ds.save(stage)
    ds.path = out
    ds._stamp = None
    return ds


def _shift(values: pd.Series, offset: int) -> pd.Series:
    """Ids shifted by ``offset`` (missing values stay missing)."""
    return values + offset


def merge_datasets(parts: Sequence[Dataset], names: Sequence[str]) -> Dataset:
    """One dataset holding every part, ids renumbered, file names under a common folder.

    Args:
        parts: Datasets as :func:`detect_task` returns them (absolute ``media_root``).
        names: The sources' names (for messages and ``meta``).

    Returns:
        The merged dataset (absolute ``media_root``: the parts' common folder).

    Raises:
        ValueError: Two videos with the same stem, or two frames with the same file name.
    """
    roots = [Path(p.media_root) for p in parts]
    common = Path(os.path.commonpath([str(r) for r in roots]))
    images, anns, videos = [], [], []
    img_off = ann_off = vid_off = 0
    stems: dict[str, str] = {}
    for ds, root, name in zip(parts, roots, names, strict=True):
        prefix = os.path.relpath(root, common)
        prefix = "" if prefix == "." else Path(prefix).as_posix() + "/"
        im = ds.images.copy()
        frame = im["video_id"].notna().to_numpy()
        im["file_name"] = [
            fn if is_frame else prefix + fn
            for fn, is_frame in zip(im["file_name"], frame, strict=True)
        ]
        im["id"] = _shift(im["id"], img_off)
        im["video_id"] = _shift(im["video_id"], vid_off)
        an = ds.annotations.copy()
        an["id"] = _shift(an["id"], ann_off)
        an["image_id"] = _shift(an["image_id"], img_off)
        for v in ds.videos:
            stem = Path(v["file_name"]).stem
            if stem in stems:
                raise ValueError(
                    f"Expected videos with distinct names to merge (frames are named "
                    f"<stem>/<frame>.jpg), but {stems[stem]} and {name} both have a video "
                    f"{stem!r}; rename one, or leave out --merge (one dataset per source)."
                )
            stems[stem] = name
            videos.append({**v, "id": int(v["id"]) + vid_off, "file_name": prefix + v["file_name"]})
        images.append(im)
        anns.append(an)
        img_off = int(im["id"].max()) if len(im) else img_off
        ann_off = int(an["id"].max()) if len(an) else ann_off
        vid_off = max([vid_off, *(int(v["id"]) for v in videos)])
    table = pd.concat(images, ignore_index=True)
    dup = table["file_name"][table["file_name"].duplicated()]
    if len(dup):
        raise ValueError(
            f"Expected distinct frame names in a merged dataset, but {dup.iloc[0]!r} occurs "
            "twice; leave out --merge (one dataset per source)."
        )
    return Dataset(
        images=table,
        annotations=pd.concat(anns, ignore_index=True),
        keypoints=np.concatenate([p.keypoints for p in parts]),
        keypoints_raw=np.concatenate([p.keypoints_raw for p in parts]),
        scores=np.concatenate([p.scores for p in parts]),
        source=np.concatenate([p.source for p in parts]),
        bboxes=np.concatenate([p.bboxes for p in parts]),
        videos=videos,
        media_root=str(common),
        meta={"detect": _merged_report(parts, names)},
    )


def _merged_report(parts: Sequence[Dataset], names: Sequence[str]) -> dict:
    """``meta["detect"]`` of a merged dataset: totals plus each source's own report."""
    reports = [p.meta["detect"] for p in parts]
    first = reports[0]
    shared = {
        k: first[k]
        for k in ("weights", "runtime", "stick_weights", "imgsz", "every", "conf")
        if k in first
    }
    return {
        **shared,
        "n_frames": sum(r["n_frames"] for r in reports),
        "n_people": sum(r["n_people"] for r in reports),
        "n_wrist_guess": sum(r["n_wrist_guess"] for r in reports),
        "notes": [
            f"{n}: {note}" for n, r in zip(names, reports, strict=True) for note in r["notes"]
        ],
        "sources": [{"name": n, **r} for n, r in zip(names, reports, strict=True)],
    }


def _export_once(opts: Any, weights: str, stick_weights: str | None) -> None:
    """Export the model(s) for their runtime here, once, before the tasks load them."""
    try:
        from toolkit import runtime
    except ImportError:  # a toolkit without exported runtimes: every task runs the .pt
        return
    from toolkit import ultra

    gpu = ultra.auto_device(opts.device) != "cpu"
    for path in (weights, stick_weights):
        if path is not None:
            runtime.model_for(path, getattr(opts, "runtime", "auto"), gpu=gpu)


def _frames(source: Path, every: int) -> int:
    """Frames a source will give (progress weight); 1 when it cannot be told cheaply."""
    from toolkit.detect import open_source

    try:
        return max(1, len(open_source(source, every)))
    except (InputError, ValueError, OSError):
        return 1


def detect_many(
    sources: Sequence[str | Path],
    weights: str | Path,
    out: str | Path,
    *,
    stick_weights: str | Path | None = None,
    options: Any = None,
    merge: bool = False,
    overwrite: bool = False,
    engine: Engine | None = None,
    threads: int | None = None,
    progress: bool = False,
    echo: Callable[[str], None] | None = None,
) -> list[Dataset]:
    """Detect poses in several sources as independent tasks and write their dataset(s).

    Args:
        sources: Videos, images or folders of images.
        weights: The pose model (resolved once, in the driver).
        out: The folder of per-source datasets, or (``merge``) the one dataset.
        stick_weights: Optional 2-keypoint stick model.
        options: :class:`toolkit.detect.DetectOptions`.
        merge: Write one dataset with every source instead of one per source.
        overwrite: Replace existing targets.
        engine: Where the tasks run (default: this process, one after another).
        threads: torch (and OpenVINO/onnxruntime, unless ``options.threads`` is set) threads
            per task (default: this machine's cores divided by the engine's workers).
        progress: One bar over all frames on stderr.
        echo: Called with one line per finished source.

    Returns:
        The written datasets (one, with ``merge``).
    """
    from toolkit import ultra
    from toolkit.detect import DetectOptions

    opts = options or DetectOptions()
    srcs = _check_sources(sources)
    out = Path(out).absolute()
    targets = plan_outputs(srcs, out, merge, overwrite)
    w = str(ultra.resolve_weights(weights, "--weights"))
    sw = str(ultra.resolve_weights(stick_weights, "--stick-weights")) if stick_weights else None
    engine = engine or LocalEngine()
    if threads is None:
        threads = max(1, (os.cpu_count() or 1) // max(1, engine.workers or os.cpu_count() or 1))
    _export_once(opts, w, sw)
    if getattr(opts, "threads", None) == 0:  # the runtime's threads: each task's share
        opts = replace(opts, threads=threads)
    names = [source_name(s) for s in srcs]
    tasks = [
        Task(
            detect_task,
            (str(s), w, sw, replace(opts)),
            seed=i,
            threads=threads,
            weight=_frames(s, opts.every),
            label=names[i],
        )
        for i, s in enumerate(srcs)
    ]
    written: dict[int, Dataset] = {}

    def finished(i: int, ds: Dataset) -> None:
        info = ds.meta["detect"]
        if not merge:
            written[i] = save_dataset(ds, targets[i], overwrite)
        if echo:
            where = "" if merge else f" -> {targets[i]}"
            echo(f"{names[i]}: {info['n_frames']} frames, {info['n_people']} people{where}")

    parts = engine.run(tasks, desc="detect", unit="frame", progress=progress, on_result=finished)
    if merge:
        return [save_dataset(merge_datasets(parts, names), out, overwrite)]
    return [written[i] for i in range(len(parts))]
