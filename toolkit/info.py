"""What is in a dataset: counts, missing points, provenance, pending edits (``toolkit info``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from toolkit import layout
from toolkit.dataset import Dataset


def summarize(ds: Dataset) -> dict[str, Any]:
    """A JSON-able summary of ``ds``.

    Returns:
        ``n_images``, ``n_annotations``, ``n_videos``, ``n_video_frames``, ``media_root``;
        ``stances``/``subjects``/``videos``: annotations (persons) per label, with ``null``
        for unlabelled; ``images_per_stance``; ``missing_points`` per keypoint name (and
        ``missing_stick``: persons with no grip or no tip); ``provenance`` (point counts per
        source, over all points and over the stick points); ``scores`` (points with a
        confidence); ``pending_edits`` (journalled, not yet saved); ``import`` (the import
        record, if any).
    """
    ft = ds.frame_table()
    images = ds.images
    n = len(ds)

    def counts(series: pd.Series) -> dict[str, int]:
        vc = series.astype(object).where(series.notna(), "(none)").value_counts()
        return {str(k): int(v) for k, v in sorted(vc.items(), key=lambda kv: str(kv[0]))}

    video_names = {v["id"]: v.get("file_name", str(v["id"])) for v in ds.videos}
    per_video = {}
    if ds.videos:
        vid = images["video_id"]
        for vid_id, name in video_names.items():
            frames = int((vid == vid_id).sum())
            persons = int((ft["video_id"] == vid_id).sum()) if n else 0
            per_video[str(name)] = {"frames": frames, "annotations": persons}
    missing = (ds.keypoints[..., 2] <= 0) | ~np.isfinite(ds.keypoints[..., :2]).all(-1)
    miss = missing.sum(0) if n else np.zeros(layout.NUM_KEYPOINTS, int)
    src_all = (
        np.bincount(ds.source.ravel(), minlength=len(layout.SOURCES))
        if n
        else np.zeros(len(layout.SOURCES), int)
    )
    stick = ds.source[:, [layout.GRIP, layout.TIP]].ravel()
    src_stick = np.bincount(stick, minlength=len(layout.SOURCES)) if n else src_all * 0
    return {
        "path": str(ds.path) if ds.path else None,
        "n_images": int(len(images)),
        "n_annotations": int(n),
        "n_videos": len(ds.videos),
        "n_video_frames": int(images["video_id"].notna().sum()),
        "media_root": ds.media_root,
        "stances": counts(ft["stance"]) if n else {},
        "images_per_stance": counts(images["stance"]) if len(images) else {},
        "subjects": counts(ft["subject"]) if n else {},
        "videos": per_video,
        "missing_points": {name: int(miss[i]) for i, name in enumerate(layout.KEYPOINT_NAMES)},
        "missing_stick": int((missing[:, layout.GRIP] | missing[:, layout.TIP]).sum()) if n else 0,
        "provenance": {
            "all": {s: int(src_all[i]) for i, s in enumerate(layout.SOURCES)},
            "stick": {s: int(src_stick[i]) for i, s in enumerate(layout.SOURCES)},
        },
        "points_with_score": int(np.isfinite(ds.scores).sum()),
        "pending_edits": ds.pending_edits(),
        "import": ds.meta.get("import"),
    }


def format_summary(s: dict[str, Any]) -> str:
    """The summary as a short human-readable text."""
    lines = [
        f"dataset: {s['path'] or '(in memory)'}",
        f"images: {s['n_images']} ({s['n_video_frames']} video frames)   "
        f"annotations: {s['n_annotations']}   videos: {s['n_videos']}",
        f"media root: {s['media_root']}",
    ]

    def block(title: str, d: dict[str, Any]) -> None:
        if not d:
            return
        lines.append(f"{title}:")
        width = max(len(k) for k in d)
        for k, v in d.items():
            lines.append(f"  {k:<{width}}  {v}")

    block("annotations per stance", s["stances"])
    block("annotations per subject", s["subjects"])
    block(
        "videos (frames, annotations)",
        {
            k: f"{v['frames']} frames, {v['annotations']} annotations"
            for k, v in s["videos"].items()
        },
    )
    n = max(s["n_annotations"], 1)
    block(
        "missing points (of each keypoint)",
        {k: f"{v} ({100 * v / n:.1f}%)" for k, v in s["missing_points"].items() if v},
    )
    lines.append(f"persons without a full stick (grip or tip missing): {s['missing_stick']}")
    lines.append(
        "provenance (points): " + ", ".join(f"{k} {v}" for k, v in s["provenance"]["all"].items())
    )
    lines.append(
        "provenance (stick points): "
        + ", ".join(f"{k} {v}" for k, v in s["provenance"]["stick"].items())
    )
    lines.append(f"points with a confidence score: {s['points_with_score']}")
    lines.append(f"pending journal edits (not yet saved): {s['pending_edits']}")
    imp = s.get("import")
    if imp:
        lines.append(
            f"imported from: {imp.get('source')} ({imp.get('format')}), "
            f"{imp.get('n_skipped', 0)} skipped"
        )
    return "\n".join(lines)


def info(path: str) -> dict[str, Any]:
    """Load the dataset at ``path`` (replaying its journal) and summarise it."""
    return summarize(Dataset.load(path))
