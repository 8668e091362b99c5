"""Shared CLI plumbing: turn library errors into clear messages and exit code 2."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click

from toolkit.errors import InputError


class UsageError(click.ClickException):
    """Bad input or usage: exit code 2 (findings over a threshold use 1)."""

    exit_code = 2


def cli_errors(example: str | None = None) -> Callable:
    """Decorate a Click command so our errors print as one clear message with exit code 2.

    Args:
        example: A valid invocation shown after the error, to teach the right form.
    """

    def deco(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except (InputError, FileNotFoundError, FileExistsError, ValueError, KeyError) as exc:
                msg = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
                if example:
                    msg += f"\n  Example: {example}"
                raise UsageError(msg) from None

        return wrapper

    return deco


def echo_err(msg: str) -> None:
    """Print to stderr (keeps stdout clean for machine-readable output)."""
    click.echo(msg, err=True)


def is_tty() -> bool:
    return sys.stderr.isatty()
