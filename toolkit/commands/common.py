"""Shared CLI plumbing of the three commands (toolkit, viewer, trainer).

Library errors become clear messages and exit code 2 (:func:`cli_errors`), and
:class:`LazyGroup` imports a subcommand's module only when it is used.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable
from typing import Any

import click

from toolkit.errors import InputError

#: What the CLI reports as bad input (exit 2): the suite's own input errors (``InputError`` and
#: its kinds: ``SaveConflictError``, ``MediaError``, ``UnknownIdError`` ...), a path that is
#: missing, already there or the wrong kind, and ``ValueError`` (argument checks). Anything
#: else (``KeyError``, ``TypeError`` ...) is a bug: it propagates with its traceback (exit 1).
BAD_INPUT: tuple[type[Exception], ...] = (
    InputError,
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    ValueError,
)


class UsageError(click.ClickException):
    """Bad input or usage: exit code 2 (findings over a threshold use 1)."""

    exit_code = 2


def cli_errors(
    example: str | Callable[[dict, Exception], str | None] | None = None,
) -> Callable:
    """Decorate a Click command so bad input prints as one clear message with exit code 2.

    Only :data:`BAD_INPUT` errors are turned into a message; any other exception is a bug and
    keeps its traceback (exit 1).

    Args:
        example: A valid invocation shown after the error, to teach the right form; or a
            function of the command's arguments and the error that picks the example that fits
            (None: no example, e.g. when the message itself says what to do).
    """

    def deco(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except BAD_INPUT as exc:
                msg = str(exc)
                shown = example(kwargs, exc) if callable(example) else example
                if shown:
                    msg += f"\n  Example: {shown}"
                raise UsageError(msg) from None

        return wrapper

    return deco


def pick_example(examples: list[str], kwargs: dict, exc: Exception, default: str) -> str:
    """The example that fits the error: one using the option the message names, else the default.

    Args:
        examples: Candidate invocations (a command's ``--help`` examples).
        kwargs: The command's arguments.
        exc: The error.
        default: The example when no option is named.
    """
    import re

    text = str(exc)
    for opt in re.findall(r"(--[a-z][a-z-]+)", text):
        if f"{opt} " in default + " ":
            return default
        hit = next((e for e in examples if f"{opt} " in e + " "), None)
        if hit:
            return hit
    return default


def echo_err(msg: str) -> None:
    """Print to stderr (keeps stdout clean for machine-readable output)."""
    click.echo(msg, err=True)


def is_tty() -> bool:
    """Whether stderr is a terminal (progress bars only there)."""
    return sys.stderr.isatty()


class LazyGroup(click.Group):
    """A Click group whose subcommands are imported on first use."""

    def __init__(self, *args, lazy: dict[str, str], **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        """The eager and the lazy command names, sorted."""
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command ``cmd_name``, importing its module on first use."""
        if cmd_name in self.lazy:
            module, attr = self.lazy[cmd_name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, cmd_name)
