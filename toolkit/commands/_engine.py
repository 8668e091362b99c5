"""The ``--engine``, ``--workers`` and ``--address`` options (detect, score, fit, ablate)."""

from __future__ import annotations

from collections.abc import Callable

import click

ENGINE_HELP = (
    "Where the independent tasks run: 'local' (this process, one after another; the default) "
    "or 'ray' (a Ray cluster: a private local one unless --address is given; needs "
    "pip install 'arnis-suite[distributed]'). Results are identical."
)


def engine_options(fn: Callable) -> Callable:
    """Add ``--engine``, ``--workers`` and ``--address`` (see :mod:`toolkit.engine`)."""
    opts = [
        click.option(
            "--engine",
            type=click.Choice(["local", "ray"]),
            default="local",
            show_default=True,
            help=ENGINE_HELP,
        ),
        click.option(
            "--workers",
            type=click.IntRange(1),
            default=None,
            help="With --engine ray: CPUs of the local Ray it starts (default: all cores), or "
            "with --address the most tasks in flight. The local engine runs one task at a time.",
        ),
        click.option(
            "--address",
            default=None,
            metavar="ADDR",
            help="With --engine ray: join this running cluster (e.g. ray://head:10001, "
            "head:6379 or auto) instead of starting a local Ray. See docs/cluster.md.",
        ),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn
