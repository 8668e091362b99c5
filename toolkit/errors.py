"""Errors that name the file (and line) where bad input entered."""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """Bad user input: names the file and, where known, the line.

    The CLI turns it into exit code 2 with the message.

    Attributes:
        path: The offending file, if known.
        line: 1-based line number, if known.
        reason: What was wrong ("Expected ... but got ...").
    """

    def __init__(self, reason: str, path: str | Path | None = None, line: int | None = None):
        self.path = None if path is None else Path(path)
        self.line = line
        self.reason = reason
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{reason}")


class SaveConflictError(InputError, RuntimeError):
    """A save that cannot be merged with what another program saved meanwhile.

    Raised by :meth:`toolkit.dataset.Dataset.save` only when the two versions cannot be folded
    together (e.g. one of them added or removed annotations). Every journalled edit is still in
    ``journal.jsonl``: reload the dataset and redo the unjournalled (bulk) change. It is an
    :class:`InputError` (the CLI prints it and exits 2) and a ``RuntimeError`` (what callers
    caught before saves merged).
    """


class UnknownIdError(InputError, KeyError):
    """An id (annotation, image, video) the dataset does not have.

    An :class:`InputError` (the CLI prints it and exits 2: the id came from the user's input)
    and a ``KeyError`` (what library callers catch for a missing id).
    """

    __str__ = BaseException.__str__  # KeyError's own would print the message's repr


class MediaError(InputError):
    """Media files (images, videos) that are missing or outside the dataset's allowed roots."""


def expected(what: str, expected_: str, actual: object) -> str:
    """The one message shape: "Expected '<what>' to be <expected>, but got <actual>."."""
    return f"Expected '{what}' to be {expected_}, but got {actual!r}."
