"""JSON Schema validation of the files we read and write (schemas live in ``schemas/``)."""

from __future__ import annotations

import functools
import json
from importlib import resources
from pathlib import Path
from typing import Any

import fastjsonschema

from toolkit.errors import InputError


@functools.cache
def load_schema(name: str) -> dict:
    """A schema document from the ``schemas`` package, e.g. ``"dataset"``."""
    text = resources.files("schemas").joinpath(f"{name}.schema.json").read_text("utf-8")
    return json.loads(text)


def _resolve(uri: str) -> dict:
    return load_schema(uri.rsplit("/", 1)[-1].removesuffix(".schema.json"))


@functools.cache
def _validator(name: str):
    schema = load_schema(name)
    base = schema["$id"].rsplit("/", 1)[0]
    handlers = {"https": _resolve, "http": _resolve}
    # fastjsonschema resolves relative $refs against $id; map them back to our package files.
    return fastjsonschema.compile(schema, handlers=handlers, formats={}, use_default=False,
                                  detailed_exceptions=True) if base else None


def validate(doc: Any, name: str, file: str | Path | None = None) -> None:
    """Validate ``doc`` against ``schemas/<name>.schema.json``.

    Raises:
        InputError: Naming the file and the offending field (``annotations[3].keypoints``).
    """
    try:
        _validator(name)(doc)
    except fastjsonschema.JsonSchemaValueException as exc:
        where = exc.name.removeprefix("data").lstrip(".") or "(document)"
        raise InputError(f"Expected '{where}' to satisfy the {name} schema, but {exc.message}"
                         f" (got {_short(exc.value)}).", file) from None


def validate_dataset(doc: Any, file: str | Path | None = None) -> None:
    """Validate a ``dataset.json`` document, plus the cross-references a schema cannot express."""
    validate(doc, "dataset", file)
    image_ids = [im["id"] for im in doc["images"]]
    if len(set(image_ids)) != len(image_ids):
        dup = _first_duplicate(image_ids)
        raise InputError(f"Expected 'images[].id' to be unique, but {dup} appears twice.", file)
    ann_ids = [a["id"] for a in doc["annotations"]]
    if len(set(ann_ids)) != len(ann_ids):
        dup = _first_duplicate(ann_ids)
        raise InputError(f"Expected 'annotations[].id' to be unique, but {dup} appears twice.",
                         file)
    known = set(image_ids)
    for i, a in enumerate(doc["annotations"]):
        if a["image_id"] not in known:
            raise InputError(f"Expected 'annotations[{i}].image_id' to name an image, but got "
                             f"{a['image_id']!r}.", file)
    video_ids = {v["id"] for v in doc.get("videos") or []}
    for i, im in enumerate(doc["images"]):
        if "video_id" in im and im["video_id"] not in video_ids:
            raise InputError(f"Expected 'images[{i}].video_id' to name a video, but got "
                             f"{im['video_id']!r}.", file)


def _first_duplicate(values: list) -> Any:
    seen = set()
    for v in values:
        if v in seen:
            return v
        seen.add(v)
    return None


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
