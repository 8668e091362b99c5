"""The review queue: frames worth a person's attention, ranked, de-duplicated, spread in time.

A queue file (``schemas/review_queue.schema.json``) lists items, each naming a frame (an image
``file_name``, or ``video`` + ``frame_index``), a ``reason`` (:data:`REASONS`), a ``score``
(higher first), reason-specific ``details`` and a ``done`` flag the reviewer sets::

    from toolkit.queue import QueueItem, ReviewQueue
    items = [QueueItem("low_confidence", 0.9, video="clip.mp4", frame_index=40), ...]
    q = ReviewQueue.build(items, window=15, dataset="ds")   # dedupe, spread in time, rank
    q.save("ds/queue.json")                                 # atomic
    q = ReviewQueue.load("ds/queue.json")
    q.mark_done(0)                                          # sets done and saves atomically

This module is the only reader and writer of queue files. A reviewer walking a queue (the viewer's
``--queue``) reads it with :meth:`QueueDocument.read` instead: leniently (items that are not
objects are skipped, unknown fields and reasons kept) and writing back only ``done``.

Building a queue does three things, in this order:

1. **De-duplicate** by frame: several items for one frame become one, the highest-scoring; the
   others are kept in its ``also`` list.
2. **Spread out in time**: within one video, greedy non-maximum suppression over
   ``frame_index``: taking items by descending score, an item within ``window`` frames of one
   already kept is dropped, and the kept one counts it in ``suppressed``. So the queue shows one
   frame per moment instead of 50 neighbouring frames of it.
3. **Rank**: by score (optionally weighted per reason), ties broken by reason and frame so the
   order is reproducible; ``rank`` 1 is the first to look at.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from toolkit.errors import InputError
from toolkit.locate import frame_fields

REASONS: tuple[str, ...] = ("label_disagreement", "low_confidence", "stick_geometry", "validation")
QUEUE_VERSION = 1


@dataclass
class QueueItem:
    """One frame to review.

    Attributes:
        reason: One of :data:`REASONS`.
        score: Priority, higher first (finite).
        file_name: The image's ``file_name`` in the dataset (for a video frame, the virtual
            ``<stem>/<frame:06d>.jpg``).
        video: The video's ``file_name`` (or stem) for a video frame.
        frame_index: 0-based frame in ``video``.
        image_id: The dataset image id, when known.
        ann_id: The person concerned, when one is.
        details: Reason-specific evidence (JSON-able).
        also: Other reasons merged into this item (``{reason, score, details}``).
        suppressed: Nearby lower-scoring items of the same video this one stands for.
        done: Set by the reviewer.
        rank: 1-based position after :meth:`ReviewQueue.build`.
    """

    reason: str
    score: float
    file_name: str | None = None
    video: str | None = None
    frame_index: int | None = None
    image_id: int | None = None
    ann_id: int | None = None
    details: dict = field(default_factory=dict)
    also: list[dict] = field(default_factory=list)
    suppressed: int = 0
    done: bool = False
    rank: int | None = None

    def __post_init__(self) -> None:
        if self.reason not in REASONS:
            raise ValueError(
                f"Expected 'reason' to be one of {list(REASONS)}, but got {self.reason!r}."
            )
        self.score = float(self.score)
        if not math.isfinite(self.score):
            raise ValueError(f"Expected 'score' to be a finite number, but got {self.score!r}.")
        if self.file_name is None and (self.video is None or self.frame_index is None):
            raise ValueError(
                "Expected a 'file_name', or 'video' and 'frame_index', to name the "
                "frame, but got neither."
            )
        if self.frame_index is not None:
            self.frame_index = int(self.frame_index)

    @property
    def frame_key(self) -> tuple:
        """What identifies the frame: ``("v", video, frame_index)`` or ``("f", file_name)``."""
        if self.video is not None and self.frame_index is not None:
            return ("v", self.video, self.frame_index)
        return ("f", self.file_name)

    def to_dict(self) -> dict:
        """The item as stored in the queue file (absent optional fields left out)."""
        d: dict[str, Any] = {}
        if self.rank is not None:
            d["rank"] = self.rank
        for k in ("file_name", "video", "frame_index", "image_id"):
            v = getattr(self, k)
            if v is not None:
                d[k] = v
        if self.ann_id is not None:
            d["ann_id"] = self.ann_id
        d.update(reason=self.reason, score=self.score, details=self.details)
        if self.also:
            d["also"] = self.also
        if self.suppressed:
            d["suppressed"] = self.suppressed
        d["done"] = self.done
        return d

    @classmethod
    def from_dict(cls, d: dict) -> QueueItem:
        """An item from its stored form (see :meth:`to_dict`)."""
        return cls(
            reason=d["reason"],
            score=d["score"],
            file_name=d.get("file_name"),
            video=d.get("video"),
            frame_index=d.get("frame_index"),
            image_id=d.get("image_id"),
            ann_id=d.get("ann_id"),
            details=dict(d.get("details") or {}),
            also=list(d.get("also") or []),
            suppressed=int(d.get("suppressed", 0)),
            done=bool(d.get("done", False)),
            rank=d.get("rank"),
        )


# ---------------------------------------------------------------------------- the three steps
def dedupe(items: Iterable[QueueItem]) -> list[QueueItem]:
    """One item per frame: the highest-scoring, the others listed in its ``also``.

    A frame is done only when every merged item was done.
    """
    best: dict[tuple, QueueItem] = {}
    merged: dict[tuple, list[QueueItem]] = {}
    for it in items:
        key = it.frame_key
        merged.setdefault(key, []).append(it)
        if key not in best or it.score > best[key].score:
            best[key] = it
    out = []
    for key, group in merged.items():
        top = best[key]
        if len(group) == 1:
            out.append(top)
            continue
        also = list(top.also)
        for it in sorted(group, key=lambda x: -x.score):
            if it is not top:
                also.append({"reason": it.reason, "score": it.score, "details": it.details})
                also.extend(it.also)
        out.append(
            QueueItem(
                top.reason,
                top.score,
                top.file_name,
                top.video,
                top.frame_index,
                top.image_id,
                top.ann_id,
                dict(top.details),
                also,
                sum(it.suppressed for it in group),
                all(it.done for it in group),
            )
        )
    return out


def spread_in_time(items: Sequence[QueueItem], window: int) -> list[QueueItem]:
    """Greedy non-maximum suppression over ``frame_index`` within each video.

    Taking items by descending score, one within ``window`` frames of an item already kept (same
    video) is dropped and counted in the kept item's ``suppressed``. Items without a video are
    all kept. ``window = 0`` keeps everything.
    """
    if window <= 0:
        return list(items)
    order = sorted(range(len(items)), key=lambda i: (-items[i].score, _tiebreak(items[i])))
    kept_frames: dict[str, list[int]] = {}  # video -> sorted kept frame indices
    kept_at: dict[tuple[str, int], QueueItem] = {}
    out: list[QueueItem] = []
    for i in order:
        it = items[i]
        if it.video is None or it.frame_index is None:
            out.append(it)
            continue
        frames = kept_frames.setdefault(it.video, [])
        pos = bisect.bisect_left(frames, it.frame_index)
        near = [
            frames[j]
            for j in (pos - 1, pos)
            if 0 <= j < len(frames) and abs(frames[j] - it.frame_index) <= window
        ]
        if near:
            keeper = kept_at[(it.video, min(near, key=lambda f: abs(f - it.frame_index)))]
            keeper.suppressed += 1 + it.suppressed
            continue
        frames.insert(pos, it.frame_index)
        kept_at[(it.video, it.frame_index)] = it
        out.append(it)
    return out


def rank(items: Iterable[QueueItem], weights: dict[str, float] | None = None) -> list[QueueItem]:
    """Sort by (weighted) score, highest first, and number them from 1."""
    w = weights or {}
    out = sorted(items, key=lambda it: (-it.score * w.get(it.reason, 1.0), _tiebreak(it)))
    for i, it in enumerate(out, start=1):
        it.rank = i
    return out


def _tiebreak(it: QueueItem) -> tuple:
    key = it.frame_key
    return (REASONS.index(it.reason), key[0], str(key[1]), key[2] if len(key) > 2 else -1)


# ---------------------------------------------------------------------------- the queue
@dataclass
class ReviewQueue:
    """A ranked list of :class:`QueueItem` backed by a JSON file.

    Attributes:
        items: In rank order.
        dataset: The dataset directory the items refer to.
        window: The suppression window used by :meth:`build` (frames).
        meta: Producer's notes (model, thresholds, counts).
        created: ISO 8601 UTC time of building.
        path: The file this was loaded from or saved to.
    """

    items: list[QueueItem] = field(default_factory=list)
    dataset: str | None = None
    window: int = 0
    meta: dict = field(default_factory=dict)
    created: str = ""
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[QueueItem]:
        return iter(self.items)

    def __getitem__(self, i: int) -> QueueItem:
        return self.items[i]

    def __repr__(self) -> str:
        counts = self.counts()
        where = f", path='{self.path}'" if self.path else ""
        return f"ReviewQueue(n={len(self)}, pending={len(self.pending())}, {counts}{where})"

    @classmethod
    def build(
        cls,
        items: Iterable[QueueItem],
        *,
        window: int = 15,
        weights: dict[str, float] | None = None,
        limit: int | None = None,
        dataset: str | Path | None = None,
        meta: dict | None = None,
        previous: ReviewQueue | None = None,
    ) -> ReviewQueue:
        """De-duplicate by frame, spread out in time, rank (see the module docstring).

        Args:
            items: Candidate items from any producer.
            window: Frames within this distance in one video are suppressed (0: none).
            weights: Per-reason multipliers for ranking (default 1).
            limit: Keep only the first ``limit`` items.
            dataset: Dataset directory recorded in the file.
            meta: Producer notes.
            previous: An earlier queue whose ``done`` flags carry over (same frame and reason).
        """
        fresh = [replace(it, details=dict(it.details), also=list(it.also)) for it in items]
        kept = rank(spread_in_time(dedupe(fresh), window), weights)
        if limit is not None:
            kept = kept[:limit]
        if previous is not None:
            done = {(it.frame_key, it.reason) for it in previous.items if it.done}
            for it in kept:
                if (it.frame_key, it.reason) in done:
                    it.done = True
        return cls(
            items=kept,
            dataset=None if dataset is None else str(dataset),
            window=int(window),
            meta=dict(meta or {}),
            created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )

    def pending(self) -> list[QueueItem]:
        """Items not yet done, in rank order."""
        return [it for it in self.items if not it.done]

    def counts(self) -> dict[str, int]:
        """Number of items per reason."""
        out = dict.fromkeys(REASONS, 0)
        for it in self.items:
            out[it.reason] += 1
        return {k: v for k, v in out.items() if v}

    def to_frame(self) -> Any:
        """The items as a pandas DataFrame (one row per item)."""
        import pandas as pd

        cols = (
            "rank",
            "reason",
            "score",
            "file_name",
            "video",
            "frame_index",
            "image_id",
            "ann_id",
            "suppressed",
            "done",
        )
        return pd.DataFrame({c: [getattr(it, c) for it in self.items] for c in cols})

    def to_dict(self) -> dict:
        """The queue file's document (``schemas/review_queue.schema.json``)."""
        doc: dict[str, Any] = {
            "version": QUEUE_VERSION,
            "dataset": self.dataset,
            "created": self.created or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "window": self.window,
            "meta": self.meta,
            "items": [it.to_dict() for it in self.items],
        }
        return doc

    def save(self, path: str | Path | None = None) -> Path:
        """Write the queue atomically (validated against the schema first)."""
        from toolkit.schema import validate

        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("Expected a 'path' to save the queue to, but it has none.")
        doc = self.to_dict()
        validate(doc, "review_queue", target)
        _write_document(target, doc)
        self.path = target
        return target

    @classmethod
    def load(cls, path: str | Path) -> ReviewQueue:
        """Read and validate a queue file.

        Raises:
            FileNotFoundError: No such file.
            InputError: Not JSON, or it breaks the schema (the message names the field).
        """
        from toolkit.schema import validate

        path = Path(path)
        doc = _read_document(path, "QUEUE")
        validate(doc, "review_queue", path)
        return cls(
            items=[QueueItem.from_dict(d) for d in doc["items"]],
            dataset=doc.get("dataset"),
            window=int(doc.get("window", 0)),
            meta=dict(doc.get("meta") or {}),
            created=doc.get("created", ""),
            path=path,
        )

    def mark_done(self, index: int, done: bool = True, save: bool = True) -> None:
        """Set item ``index``'s ``done`` flag and (by default) save the file atomically."""
        self.items[index].done = bool(done)
        if save and self.path is not None:
            self.save()

    def dataset_path(self) -> Path | None:
        """The dataset directory, resolved against the queue file's folder when relative."""
        if self.dataset is None:
            return None
        p = Path(self.dataset)
        if not p.is_absolute() and self.path is not None:
            p = self.path.parent / p
        return p


@dataclass
class QueueDocument:
    """A queue file as written, for a reviewer who walks it and marks items done.

    Unlike :meth:`ReviewQueue.load` it does not validate: a hand-edited or newer file still
    opens. The document is ``{"items": [...], ...}`` or a bare list of items; entries that are
    not objects are skipped; every field is kept, and :meth:`set_done` rewrites the file
    atomically with only ``done`` changed.

    Attributes:
        path: The file.
        doc: The parsed document (written back as it is, but for ``done``).
        records: The item objects, in file order (the same dicts as in ``doc``).
    """

    path: Path
    doc: Any
    records: list[dict]

    @classmethod
    def read(cls, path: str | Path, what: str = "--queue") -> QueueDocument:
        """Read a queue file leniently.

        Args:
            path: The file.
            what: How the user named it, for messages (an option or argument name).

        Raises:
            FileNotFoundError: No such file.
            InputError: Not JSON, or no list of items in it.
        """
        path = Path(path)
        doc = _read_document(path, what)
        raw = doc.get("items") if isinstance(doc, dict) else doc
        if not isinstance(raw, list):
            raise InputError(
                f"Expected 'items' to be a list of frames to review, but got {type(raw).__name__}.",
                path,
            )
        return cls(path, doc, [rec for rec in raw if isinstance(rec, dict)])

    def __len__(self) -> int:
        return len(self.records)

    def set_done(self, index: int, done: bool = True) -> None:
        """Set record ``index``'s ``done`` and rewrite the file atomically before returning."""
        self.records[index]["done"] = bool(done)
        _write_document(self.path, self.doc)


def _read_document(path: Path, what: str) -> Any:
    """The parsed queue file: the one place queue files are read."""
    if not path.is_file():
        raise FileNotFoundError(
            f"Expected '{what}' to be a review queue file, but {path} does not exist (write one "
            "with `trainer score`)."
        )
    try:
        return orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise InputError(f"Expected a JSON review queue, but parsing failed: {exc}", path) from None


def _write_document(path: Path, doc: Any) -> None:
    """Write a queue document atomically: the one place queue files are written."""
    from toolkit.fileio import atomic_write_bytes

    atomic_write_bytes(
        path, orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    )


def items_for_rows(
    ds: Any,
    rows: np.ndarray,
    reason: str,
    scores: np.ndarray,
    details: Sequence[dict] | None = None,
    per: str = "annotation",
) -> list[QueueItem]:
    """Items naming dataset frames: ``rows`` index annotations (or images with ``per="image"``).

    Fills ``file_name``, ``image_id``, ``ann_id`` and, for video frames, ``video`` (the video's
    ``file_name``) and ``frame_index``.
    """
    rows = np.asarray(rows, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64).reshape(len(rows))
    return [
        QueueItem(
            reason,
            scores[i],
            **fields,
            details=dict(details[i]) if details is not None else {},
        )
        for i, fields in enumerate(frame_fields(ds, rows, per))
    ]
