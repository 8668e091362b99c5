"""toolkit.prefetch: a bounded, ordered background producer that propagates errors and joins."""

from __future__ import annotations

import threading
import time

import pytest

from toolkit.prefetch import prefetch


def _threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


def test_items_arrive_in_order_and_the_thread_ends():
    assert list(prefetch(iter(range(100)), size=3, name="pf-order")) == list(range(100))
    assert _threads("pf-order") == []


def test_the_producer_stays_at_most_size_ahead():
    made: list[int] = []

    def gen():
        for i in range(50):
            made.append(i)
            yield i

    it = prefetch(gen(), size=2, name="pf-bound")
    assert next(it) == 0
    time.sleep(0.3)
    # one handed out, two waiting in the queue, one produced and blocked on the full queue
    assert len(made) <= 4
    it.close()
    assert _threads("pf-bound") == []


def test_a_producer_error_comes_after_the_items_before_it():
    def gen():
        yield from range(3)
        raise OSError("frame 3 is corrupt")

    got = []
    with pytest.raises(OSError, match="frame 3 is corrupt"):
        for x in prefetch(gen(), size=1, name="pf-error"):
            got.append(x)
    assert got == [0, 1, 2]
    assert _threads("pf-error") == []


def test_stopping_early_closes_the_source_and_joins():
    closed = threading.Event()

    def gen():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()  # a video reader's `with` block exits here

    for x in prefetch(gen(), size=2, name="pf-stop"):
        if x == 5:
            break
    # the for loop dropped the generator: CPython closes it at once
    assert closed.wait(2)
    assert _threads("pf-stop") == []


def test_an_interrupt_in_the_consumer_joins_the_thread():
    it = prefetch(iter(range(1000)), size=1, name="pf-interrupt")
    with pytest.raises(KeyboardInterrupt):
        for x in it:
            if x == 2:
                raise KeyboardInterrupt
    it.close()
    assert _threads("pf-interrupt") == []
