"""Where independent tasks run: in this process (``local``) or on a Ray cluster (``ray``).

``toolkit detect`` (one task per source), ``trainer score`` (one per dataset) and ``trainer
fit`` / ``trainer ablate`` (one per model and fold) describe their work as :class:`Task` objects
and hand them to an engine; the engine runs them and gives the results back **in task order**,
so whatever the driver builds from them does not depend on which task finished first.

* ``local`` (the default, nothing extra to install): the tasks run one after another in this
  process. ``--workers`` does not change that: on one machine, parallel tasks need a process
  per task, and Ray already is that (``--engine ray`` without ``--address`` starts a local Ray
  with ``--workers`` CPUs), so the local engine stays the plain, dependency-free reference.
* ``ray`` (``pip install 'arnis-suite[distributed]'``): each task is a Ray task using one CPU.
  Without ``address`` a private local Ray is started (``num_cpus=workers``, no dashboard, bound
  to 127.0.0.1, no usage reporting) and shut down afterwards; with ``address`` the engine joins
  an existing cluster and keeps at most ``workers`` tasks in flight (all, when not given). A task
  whose worker process dies (killed, out of memory, node lost) is run again, up to
  ``max_retries`` times; an exception raised *by* the task is not retried: it stops the job
  and is raised in the driver as itself (an ``InputError`` still exits 2 with its message).

Identical results on both engines: :func:`run_task` (what every engine calls) seeds Python,
NumPy and torch with the task's own seed and sets torch's thread count to the task's
``threads`` before the task runs (and restores both afterwards), so a task computes the same
numbers whichever process runs it and whatever ran there before. Tasks write nothing
themselves that a retry could leave half-written: they return their results, and the driver
writes them (atomically, :mod:`toolkit.fileio`) as they arrive.

Progress: one tqdm bar on the driver, advanced by each task's ``weight`` (frames, folds ...) as
tasks finish (``ray.wait``), so the bar aggregates every worker.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

ENGINES = ("local", "ray")
#: The optional extra that installs Ray.
RAY_EXTRA = "arnis-suite[distributed]"
#: Environment variables a task sees as the driver had them (offline model loading etc.).
FORWARDED_ENV = ("YOLO_OFFLINE", "YOLO_AUTOINSTALL", "YOLO_CONFIG_DIR", "MPLBACKEND")
FORWARDED_PREFIXES = ("TOOLKIT_", "ARNIS_")


class EngineError(ValueError):
    """The engine cannot be used as asked (Ray missing, a bad address or worker count)."""


@dataclass
class Task:
    """One independent piece of work.

    Attributes:
        fn: A module-level function (it is pickled by reference to run on a Ray worker).
        args: Positional arguments (objects from :meth:`LocalEngine.put` /
            :meth:`RayEngine.put` are passed through the object store once).
        kwargs: Keyword arguments.
        seed: Seed for Python's ``random``, NumPy's global generator and torch, set before
            ``fn`` runs.
        threads: torch intra-op threads while ``fn`` runs.
        weight: Progress units the task accounts for (frames, folds ...).
        label: A short name for messages.
    """

    fn: Callable[..., Any]
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    seed: int = 0
    threads: int = 1
    weight: int = 1
    label: str = ""


def forwarded_env() -> dict[str, str]:
    """The driver's environment variables that tasks must see (see :data:`FORWARDED_ENV`)."""
    return {
        k: v
        for k, v in os.environ.items()
        if k in FORWARDED_ENV or k.startswith(FORWARDED_PREFIXES)
    }


def run_task(
    fn: Callable[..., Any],
    seed: int,
    threads: int,
    env: dict[str, str] | None,
    *args: Any,
    **kwargs: Any,
) -> Any:
    """Run ``fn(*args, **kwargs)`` seeded and with a fixed torch thread count.

    Both engines call this, so a task's numbers do not depend on the process that runs it.
    Variables in ``env`` that the process lacks are set first (a Ray worker on another node
    gets the driver's offline settings). torch's thread count is restored afterwards; the
    global random generators are left seeded (nothing may rely on their earlier state).

    Args:
        fn: The task function.
        seed: Seed for ``random``, ``numpy.random`` and ``torch``.
        threads: torch intra-op threads (other runtimes take theirs from the task's own
            options).
        env: Environment variables to set where absent.
        *args: Positional arguments of ``fn``.
        **kwargs: Keyword arguments of ``fn``.

    Returns:
        What ``fn`` returns.
    """
    import numpy as np

    for k, v in (env or {}).items():
        os.environ.setdefault(k, v)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    import torch  # a dependency: imported first, so its threads are set before the task runs

    torch.manual_seed(seed)
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, int(threads)))
    try:
        return fn(*args, **kwargs)
    finally:
        torch.set_num_threads(previous)


def _bar(total: int, desc: str, unit: str, progress: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not progress, leave=False)


class LocalEngine:
    """Runs tasks one after another in this process (the default engine).

    Attributes:
        kind: ``"local"``.
        workers: Always 1 (see the module docstring).
    """

    kind = "local"
    workers = 1

    def __repr__(self) -> str:
        return "LocalEngine()"

    def put(self, obj: Any) -> Any:
        """Share an object with every task (here: the object itself)."""
        return obj

    def run(
        self,
        tasks: Sequence[Task],
        *,
        desc: str = "tasks",
        unit: str = "task",
        progress: bool = False,
        on_result: Callable[[int, Any], None] | None = None,
    ) -> list[Any]:
        """Run every task and return their results in task order.

        Args:
            tasks: The tasks.
            desc: Progress bar label.
            unit: Progress bar unit (of the tasks' ``weight``).
            progress: Show the bar on stderr.
            on_result: Called in the driver as ``on_result(index, result)`` when a task is done.

        Returns:
            One result per task, in the order of ``tasks``.
        """
        env = forwarded_env()
        out = []
        with _bar(sum(t.weight for t in tasks), desc, unit, progress) as bar:
            for i, t in enumerate(tasks):
                res = run_task(t.fn, t.seed, t.threads, env, *t.args, **t.kwargs)
                if on_result is not None:
                    on_result(i, res)
                out.append(res)
                bar.update(t.weight)
        return out

    def close(self) -> None:
        """Nothing to release."""


def require_ray() -> Any:
    """Import Ray, or explain which extra installs it.

    Raises:
        EngineError: Ray is not installed.
    """
    try:
        import ray
    except ImportError:
        raise EngineError(
            f"Expected Ray for '--engine ray', but it is not installed; install the extra: "
            f"pip install '{RAY_EXTRA}' (or leave --engine local)."
        ) from None
    return ray


class RayEngine:
    """Runs tasks as Ray tasks (one CPU each), retrying those whose worker died.

    Args:
        workers: CPUs of the local Ray it starts (default: this machine's), or, with
            ``address``, the most tasks in flight at once (default: no limit).
        address: A running cluster (``ray://host:10001``, ``host:6379`` or ``auto``); None
            starts a private local Ray.
        max_retries: Re-runs of a task whose worker process died.

    Attributes:
        kind: ``"ray"``.
        owned: This engine started Ray (and shuts it down in :meth:`close`).
    """

    kind = "ray"

    def __init__(
        self, workers: int | None = None, address: str | None = None, max_retries: int = 3
    ):
        ray = require_ray()
        self.ray = ray
        self.workers = workers
        self.address = address
        self.max_retries = int(max_retries)
        self.owned = False
        if not ray.is_initialized():
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            common = {
                "include_dashboard": False,
                "logging_level": logging.ERROR,
                "log_to_driver": False,
            }
            try:
                if address:
                    ray.init(address=address, **common)
                else:
                    ray.init(
                        num_cpus=workers or os.cpu_count() or 1,
                        _node_ip_address="127.0.0.1",
                        **common,
                    )
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise EngineError(
                    f"Expected '--address' to reach a running Ray cluster, but Ray said: {exc}"
                    if address
                    else f"Expected a local Ray to start, but Ray said: {exc}"
                ) from None
            self.owned = True
        self._remote = ray.remote(run_task).options(
            num_cpus=1, max_retries=self.max_retries, retry_exceptions=False
        )

    def __repr__(self) -> str:
        return (
            f"RayEngine(workers={self.workers}, address={self.address!r}, "
            f"max_retries={self.max_retries}, owned={self.owned})"
        )

    def put(self, obj: Any) -> Any:
        """Put an object in the object store once; pass the reference as a task argument."""
        return self.ray.put(obj)

    def run(
        self,
        tasks: Sequence[Task],
        *,
        desc: str = "tasks",
        unit: str = "task",
        progress: bool = False,
        on_result: Callable[[int, Any], None] | None = None,
    ) -> list[Any]:
        """Run every task on the cluster and return their results in task order.

        Args:
            tasks: The tasks.
            desc: Progress bar label.
            unit: Progress bar unit (of the tasks' ``weight``).
            progress: Show the bar on stderr (advanced as tasks finish, whichever worker).
            on_result: Called in the driver as ``on_result(index, result)`` when a task is
                done (in finishing order).

        Returns:
            One result per task, in the order of ``tasks``.

        Raises:
            Exception: The first exception a task raised (as itself; the other tasks are
                cancelled), or a ``RuntimeError`` when a task's worker died more than
                ``max_retries`` times.
        """
        ray = self.ray
        env = forwarded_env()
        limit = self.workers if (self.address and self.workers) else len(tasks)
        results: list[Any] = [None] * len(tasks)
        index: dict[Any, int] = {}
        queue = list(enumerate(tasks))
        queue.reverse()
        with _bar(sum(t.weight for t in tasks), desc, unit, progress) as bar:
            try:
                while queue or index:
                    while queue and len(index) < max(1, limit):
                        i, t = queue.pop()
                        ref = self._remote.remote(t.fn, t.seed, t.threads, env, *t.args, **t.kwargs)
                        index[ref] = i
                    done, _ = ray.wait(list(index), num_returns=1)
                    i = index.pop(done[0])
                    results[i] = self._get(done[0], tasks[i])
                    if on_result is not None:
                        on_result(i, results[i])
                    bar.update(tasks[i].weight)
            except BaseException:
                for ref in index:
                    with contextlib.suppress(Exception):
                        ray.cancel(ref, force=True)
                raise
        return results

    def _get(self, ref: Any, task: Task) -> Any:
        """A task's result; its own exception re-raised as itself."""
        ray = self.ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, BaseException):
                raise cause from None
            raise
        except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError) as exc:
            raise RuntimeError(
                f"Expected task {task.label or task.fn.__name__!r} to finish, but its worker "
                f"died {self.max_retries + 1} times: {exc}"
            ) from None

    def close(self) -> None:
        """Shut Ray down if this engine started it."""
        if self.owned:
            self.ray.shutdown()
            self.owned = False


Engine = LocalEngine | RayEngine


def check_engine_options(kind: str, workers: int | None, address: str | None) -> None:
    """Refuse option combinations that mean nothing, before any work starts.

    Raises:
        EngineError: An unknown engine, ``--address`` without ``--engine ray``, a worker
            count below 1, or ``--engine ray`` without Ray installed (names the extra).
    """
    if kind not in ENGINES:
        raise EngineError(f"Expected '--engine' to be one of {list(ENGINES)}, but got {kind!r}.")
    if address and kind != "ray":
        raise EngineError(
            f"Expected '--address' only with '--engine ray', but got --engine {kind}."
        )
    if workers is not None and workers < 1:
        raise EngineError(f"Expected '--workers' to be at least 1, but got {workers}.")
    if kind == "ray" and not ray_available():
        require_ray()


@contextlib.contextmanager
def open_engine(
    kind: str = "local",
    workers: int | None = None,
    address: str | None = None,
    *,
    max_retries: int = 3,
) -> Iterator[Engine]:
    """The engine to run tasks on, released when the block ends.

    Args:
        kind: ``"local"`` or ``"ray"``.
        workers: See :class:`RayEngine` (the local engine runs tasks one at a time).
        address: A Ray cluster to join (``--engine ray`` only).
        max_retries: Re-runs of a Ray task whose worker died.

    Yields:
        A :class:`LocalEngine` or a :class:`RayEngine`.

    Raises:
        EngineError: Bad options, or ``ray`` without Ray installed (names the extra).
    """
    check_engine_options(kind, workers, address)
    engine: Engine = LocalEngine() if kind == "local" else RayEngine(workers, address, max_retries)
    try:
        yield engine
    finally:
        engine.close()


def ray_available() -> bool:
    """Whether Ray is importable (without importing it)."""
    import importlib.util

    if "ray" in sys.modules:
        return sys.modules["ray"] is not None
    return importlib.util.find_spec("ray") is not None
