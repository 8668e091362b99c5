"""The review list shown in the dock: a queue file (``--queue``) or the flagged frames.

A queue file (``schemas/review_queue.schema.json``, written by ``trainer score``) is read and
written by :class:`toolkit.queue.QueueDocument`, the one home of queue files: leniently (items
that name no frame of the dataset are listed as "not in dataset" instead of failing, unknown
fields are kept), and marking an item done rewrites the whole document atomically with only
``done`` changed. This module only maps the items onto the viewer's frames.

Without a queue file the list is built from the validate findings (one item per flagged frame);
"done" is then stored on the image as the journalled field ``review_done``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from toolkit.locate import Locator
from toolkit.queue import QueueDocument
from viewer.findings import Findings, describe

#: Review-list filters besides one per item code.
FILTER_ALL = "all"
FILTER_OPEN = "not done"
FILTER_PROPOSAL = "with a proposed fix"


@dataclass
class ReviewItem:
    """One entry of the review list.

    Attributes:
        frame: The viewer frame it names, or None when the dataset has no such frame.
        reason: Why it is listed.
        score: Priority (higher first), NaN when unknown.
        done: Whether the reviewer marked it done.
        record: The raw item dict from the queue file (None for findings-based items).
        code: What kind of item it is (a finding code or the queue's reason), for the filter.
    """

    frame: int | None
    reason: str
    score: float
    done: bool
    record: dict | None = None
    code: str = ""

    def __post_init__(self) -> None:
        if not self.code:
            self.code = self.reason.split(" ", 1)[0] if self.reason else "review"

    def label(self, name: str) -> str:
        """The list entry: reason, score and where (``name`` of the frame)."""
        score = "" if self.score != self.score else f" ({self.score:.2f})"
        where = name if self.frame is not None else f"{name} - not in dataset"
        return f"{self.reason}{score}: {where}"


@dataclass
class ReviewList:
    """Items to walk, and how "done" is persisted.

    Attributes:
        items: The entries, in file order (a queue is already ranked).
        queue: The queue file (its records are the items' ``record``), or None for a
            findings-based list.
        persist_done: For findings-based lists, ``(frame, done) -> None`` (journalled edit).
    """

    items: list[ReviewItem]
    queue: QueueDocument | None = None
    persist_done: Callable[[int, bool], None] | None = field(default=None, repr=False)

    @classmethod
    def from_queue(cls, path: str | Path, lookup: Locator) -> ReviewList:
        """Read a queue file (``{"items": [...]}`` or a bare list of items).

        Raises:
            FileNotFoundError: No such file.
            InputError: Not JSON, or no list of items in it.
        """
        queue = QueueDocument.read(path, "--queue")
        items = []
        for rec in queue.records:
            score = rec.get("score")
            items.append(
                ReviewItem(
                    frame=lookup.frame_of(rec),
                    reason=str(rec.get("reason", "review")),
                    score=float(score) if isinstance(score, int | float) else float("nan"),
                    done=bool(rec.get("done", False)),
                    record=rec,
                )
            )
        return cls(items, queue)

    @classmethod
    def from_findings(
        cls,
        findings: Findings,
        done: Callable[[int], bool],
        persist_done: Callable[[int, bool], None],
    ) -> ReviewList:
        """One item per flagged frame, reason = its first flagging finding."""
        items = []
        for t in sorted(findings.by_frame):
            if not findings.flagged[t]:
                continue
            recs = [r for r in findings.by_frame[t] if r.get("severity") in ("error", "warning")]
            items.append(
                ReviewItem(
                    t,
                    describe(recs[0]) if recs else "finding",
                    float("nan"),
                    done(t),
                    code=str(recs[0].get("code", "finding")) if recs else "finding",
                )
            )
        return cls(items, None, persist_done)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def path(self) -> Path | None:
        """The queue file, or None for a findings-based list."""
        return None if self.queue is None else self.queue.path

    def set_done(self, i: int, done: bool = True) -> None:
        """Mark item ``i`` done (or not) and persist it before returning."""
        item = self.items[i]
        item.done = bool(done)
        if self.queue is not None:
            self.queue.set_done(i, item.done)
        elif self.persist_done is not None and item.frame is not None:
            self.persist_done(item.frame, item.done)

    def filters(self) -> list[str]:
        """The filter names for this list.

        :data:`FILTER_ALL`, :data:`FILTER_OPEN`, :data:`FILTER_PROPOSAL`, then one per item code
        (sorted).
        """
        codes = sorted({it.code for it in self.items})
        return [FILTER_ALL, FILTER_OPEN, FILTER_PROPOSAL, *codes]

    def matching(self, name: str, session=None) -> list[int]:
        """Indices of the items a filter shows.

        Args:
            name: A name from :meth:`filters` (an unknown name shows nothing).
            session: The :class:`viewer.session.EditSession`, needed by
                :data:`FILTER_PROPOSAL` (frames with something to accept).
        """
        if name == FILTER_ALL:
            return list(range(len(self.items)))
        if name == FILTER_OPEN:
            return [i for i, it in enumerate(self.items) if not it.done]
        if name == FILTER_PROPOSAL:
            if session is None:
                return []
            pending = session.pending_frames()
            return [
                i
                for i, it in enumerate(self.items)
                if it.frame is not None and bool(pending[it.frame])
            ]
        return [i for i, it in enumerate(self.items) if it.code == name]

    def items_at(self, frame: int) -> list[int]:
        """Indices of the items naming ``frame``."""
        return [i for i, it in enumerate(self.items) if it.frame == frame]
