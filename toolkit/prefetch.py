"""Run an iterator in a background thread, ahead of its consumer, through a bounded queue.

``toolkit detect`` decodes video in one thread while the model runs in another: decoding
(FFmpeg, OpenCV) and inference (OpenVINO, onnxruntime, torch) release the GIL, so the two overlap
on two cores. :func:`prefetch` keeps the items in order, holds at most ``size`` of them (a video
is never decoded far ahead of the model), re-raises the producer's exception in the consumer
(with its traceback) and always joins the thread: when the consumer finishes, stops early,
raises, or is interrupted (``KeyboardInterrupt``), the producer is told to stop and is waited for.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_END = object()
#: Seconds between checks of the stop flag while the producer waits on a full queue.
_POLL = 0.05


class _Failure:
    """The producer's exception, carried through the queue to the consumer."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException):
        self.exc = exc


def prefetch(items: Iterable[T], size: int = 4, name: str = "prefetch") -> Iterator[T]:
    """Yield ``items`` in order while a background thread produces the next ones.

    Args:
        items: Any iterable; it is iterated in the background thread only.
        size: At most this many produced items wait for the consumer (at least 1).
        name: The thread's name (shown in tracebacks and debuggers).

    Yields:
        The items of ``items``, in order.

    Raises:
        BaseException: Whatever iterating ``items`` raised, re-raised in the consumer after the
            items produced before it.
    """
    q: queue.Queue[Any] = queue.Queue(maxsize=max(1, int(size)))
    stop = threading.Event()

    def put(obj: Any) -> bool:
        """Put ``obj`` unless the consumer has stopped; False when it has."""
        while not stop.is_set():
            try:
                q.put(obj, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        it = iter(items)
        try:
            for item in it:
                if not put(item):
                    return
            put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, re-raised there
            put(_Failure(exc))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()  # a generator's `with` blocks (an open video) exit in this thread

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            obj = q.get()
            if obj is _END:
                return
            if isinstance(obj, _Failure):
                raise obj.exc
            yield obj
    finally:
        stop.set()
        _drain(q)
        thread.join()


def _drain(q: queue.Queue[Any]) -> None:
    """Empty ``q`` so a producer blocked on a full queue sees the stop flag."""
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return
