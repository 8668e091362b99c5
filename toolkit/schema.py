"""JSON Schema validation of the files we read and write (schemas live in ``schemas/``).

The schema files are the documented truth. :func:`validate` runs a compiled
(``fastjsonschema``) validator over a whole document. :func:`validate_dataset` gives the same
verdict for ``dataset.json`` but fast enough for 100k annotations: the small parts of the document
go through the compiled validator; ``images`` and ``annotations`` are screened column by column
(types, ranges, lengths; the big keypoint arrays as numpy arrays), and any item the screen
finds suspicious goes through the compiled item validator, whose message names the field
(``annotations[3].keypoints``). The screen is conservative: it may send a valid item to the
validator, never let a bad one through.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Callable
from importlib import resources
from itertools import chain, repeat
from operator import itemgetter
from pathlib import Path
from typing import Any

import fastjsonschema
import numpy as np

from toolkit import layout
from toolkit.errors import InputError
from toolkit.fileio import name_length_problem

_MISSING = object()
#: Largest coordinate accepted (pixels); mirrors ``definitions.coordinate`` in the schema.
COORD_LIMIT = 1e6
#: Annotation fields checked as numpy arrays by :func:`annotation_arrays`.
_ARRAY_FIELDS = ("keypoints", "keypoints_raw", "keypoint_scores", "keypoint_source", "bbox")


class Columns:
    """Per-key views of a list of dicts, each extracted once.

    Shared by validation and loading (pulling a key out of 100k dicts costs ~10 ms; doing it
    three times adds up).

    Attributes:
        records: The dicts.
    """

    def __init__(self, records: list[dict]):
        self.records = records
        self._cache: dict[str, tuple[list, np.ndarray | None]] = {}

    def present(self, key: str) -> tuple[list, np.ndarray | None]:
        """``(values of the records that have key, None if all have it else a bool mask)``."""
        hit = self._cache.get(key)
        if hit is None:
            recs, n = self.records, len(self.records)
            count = sum(map(dict.__contains__, recs, repeat(key)))
            if count == n:
                hit = (list(map(itemgetter(key), recs)), None)
            elif count == 0:
                hit = ([], np.zeros(n, bool))
            else:
                mask = np.fromiter(map(dict.__contains__, recs, repeat(key)), bool, n)
                hit = ([r[key] for r in recs if key in r], mask)
            self._cache[key] = hit
        return hit

    def full(self, key: str, default: Any = None) -> list:
        """One value per record, ``default`` where the key is absent."""
        vals, mask = self.present(key)
        if mask is None:
            return vals
        out = [default] * len(self.records)
        for i, v in zip(np.flatnonzero(mask).tolist(), vals, strict=True):
            out[i] = v
        return out


@functools.cache
def load_schema(name: str) -> dict:
    """A schema document from the ``schemas`` package, e.g. ``"dataset"``."""
    text = resources.files("schemas").joinpath(f"{name}.schema.json").read_text("utf-8")
    return json.loads(text)


def _resolve(uri: str) -> dict:
    return load_schema(uri.rsplit("/", 1)[-1].removesuffix(".schema.json"))


def _compile(schema: dict) -> Callable[[Any], Any]:
    # fastjsonschema resolves relative $refs against $id; map them back to our package files.
    handlers = {"https": _resolve, "http": _resolve}
    return fastjsonschema.compile(
        schema, handlers=handlers, formats={}, use_default=False, detailed_exceptions=True
    )


@functools.cache
def _validator(name: str):
    return _compile(load_schema(name))


@functools.cache
def _item_validator(section: str):
    """Compiled validator for one item of ``dataset.json``'s ``images``/``annotations``."""
    root = load_schema("dataset")
    item = dict(root["properties"][section]["items"])
    item["definitions"] = root.get("definitions", {})
    item["$schema"] = root["$schema"]
    return _compile(item)


# ---------------------------------------------------------------------- messages and lines
_PART = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]")


def _parts(name: str) -> list[str | int]:
    """``data.annotations[3].keypoints`` -> ``["annotations", 3, "keypoints"]``."""
    out: list[str | int] = []
    for key, idx in _PART.findall(name.removeprefix("data")):
        out.append(int(idx) if idx else key)
    return out


def field_path(parts: list[str | int] | tuple) -> str:
    """``["annotations", 3, "keypoints"]`` -> ``annotations[3].keypoints``."""
    text = ""
    for p in parts:
        text += f"[{p}]" if isinstance(p, int) else (f".{p}" if text else str(p))
    return text or "(document)"


def locate_line(raw: bytes | str | None, parts: list[str | int] | tuple) -> int | None:
    """1-based line where the value at ``parts`` starts in the JSON text ``raw`` (None if unknown).

    Only used on the error path: it walks the text with the standard decoder, skipping
    siblings, so it costs one pass over the part of the file before the value.
    """
    if raw is None:
        return None
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        dec = json.JSONDecoder()
        ws = re.compile(r"\s*")
        pos = ws.match(text, 0).end()
        for part in parts:
            if isinstance(part, int):
                if text[pos] != "[":
                    return None
                pos = ws.match(text, pos + 1).end()
                for _ in range(part):
                    _, pos = dec.raw_decode(text, pos)
                    pos = ws.match(text, pos).end()
                    if text[pos] != ",":
                        return None
                    pos = ws.match(text, pos + 1).end()
            else:
                if text[pos] != "{":
                    return None
                pos = ws.match(text, pos + 1).end()
                while True:
                    key, pos = dec.raw_decode(text, pos)
                    pos = ws.match(text, pos).end()
                    pos = ws.match(text, pos + 1).end()  # the ':'
                    if key == part:
                        break
                    _, pos = dec.raw_decode(text, pos)
                    pos = ws.match(text, pos).end()
                    if text[pos] != ",":
                        return None
                    pos = ws.match(text, pos + 1).end()
        return text.count("\n", 0, pos) + 1
    except (ValueError, IndexError, TypeError, AttributeError, RecursionError):
        return None


def _schema_error(
    exc: fastjsonschema.JsonSchemaValueException,
    name: str,
    prefix: list[str | int],
    file: str | Path | None,
    raw: bytes | None,
) -> InputError:
    parts = prefix + _parts(exc.name)
    where = field_path(parts)
    return InputError(
        f"Expected '{where}' to satisfy the {name} schema, but {exc.message}"
        f" (got {_short(exc.value)}).",
        file,
        locate_line(raw, parts),
    )


def validate(
    doc: Any, name: str, file: str | Path | None = None, *, raw: bytes | None = None
) -> None:
    """Validate ``doc`` against ``schemas/<name>.schema.json``.

    Args:
        doc: The parsed document.
        name: Schema name (``dataset``, ``taxonomy`` …).
        file: Named in the message.
        raw: The document's text, to name the line of the offending field.

    Raises:
        InputError: Naming the file and the offending field (``annotations[3].keypoints``).
    """
    try:
        _validator(name)(doc)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise _schema_error(exc, name, [], file, raw) from None


# ---------------------------------------------------------------------- dataset.json, fast
def validate_dataset(
    doc: Any, file: str | Path | None = None, *, raw: bytes | None = None
) -> dict[str, np.ndarray]:
    """Validate a ``dataset.json`` document, plus the cross-references a schema cannot express.

    Same verdict as :func:`validate` with the ``dataset`` schema (see the module docstring for
    how it stays fast), plus: ids unique, ``image_id``/``video_id`` refer to existing entries,
    image ``file_name``s unique, numbers finite.

    Args:
        doc: The parsed document.
        file: Named in messages.
        raw: The document's bytes: names the line of an error, and lets the boolean check be
            skipped when the text holds no ``true``/``false`` at all.

    Returns:
        The numeric annotation columns (see :func:`annotation_arrays`), so a loader need not
        convert them again.

    Raises:
        InputError: Naming the file, the field (``annotations[3].keypoints``) and, with ``raw``,
            the line.
    """
    if not isinstance(doc, dict):
        validate(doc, "dataset", file, raw=raw)
    images, anns = doc.get("images"), doc.get("annotations")
    shallow = dict(doc)
    for key in ("images", "annotations"):
        if isinstance(shallow.get(key), list):
            shallow[key] = []
    validate(shallow, "dataset", file, raw=raw)
    img_cols = Columns(images or [])
    ann_cols = Columns(anns or [])
    _screen_items(images or [], "images", file, raw, img_cols)
    _screen_items(anns or [], "annotations", file, raw, ann_cols)
    arrays = annotation_arrays(anns or [], file, raw=raw, cols=ann_cols)
    _cross_refs(doc, file, raw, img_cols, ann_cols)
    _file_names(doc, file, raw, img_cols)
    _nesting(doc, file, raw, img_cols, ann_cols)
    arrays["image_columns"] = img_cols
    return arrays


#: Deepest nesting accepted inside one field (``orjson`` cannot write beyond ~250 levels; no real
#: annotation tool nests anywhere near this).
MAX_DEPTH = 64
_SCALARS = frozenset((int, float, str, bool, type(None)))
_FLAT_IMAGE_KEYS = frozenset(
    ("id", "file_name", "width", "height", "stance", "subject", "video_id", "frame_index")
)
_FLAT_ANN_KEYS = frozenset(
    ("id", "image_id", "category_id", "score", "track_id", "area", "iscrowd", "num_keypoints")
    + _ARRAY_FIELDS
)


def depth_exceeds(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether lists/objects in ``value`` nest more than ``limit`` levels.

    Iterative, no recursion; whole lists of scalars are checked at C speed.
    """
    level = [value]
    depth = 0
    while level:
        nxt: list = []
        for x in level:
            t = type(x)
            items = x if t is list else x.values() if t is dict else None
            if items is None:
                continue
            if t is list and _SCALARS.issuperset(map(type, x)):
                continue
            nxt.extend(y for y in items if type(y) in (list, dict))
        if nxt:
            depth += 1
            if depth >= limit:
                return True
        level = nxt
    return False


def check_depth(
    value: Any, parts: list, file: str | Path | None = None, raw: bytes | None = None
) -> None:
    """Raise :class:`InputError` when ``value`` (at ``parts``) nests too deeply.

    The limit is :data:`MAX_DEPTH` levels.
    """
    if type(value) in (list, dict) and depth_exceeds([value], MAX_DEPTH + 1):
        raise InputError(
            f"Expected '{field_path(parts)}' to be nested at most {MAX_DEPTH} levels deep, but "
            "it is deeper.",
            file,
            locate_line(raw, parts),
        )


def _nesting(
    doc: dict, file: str | Path | None, raw: bytes | None, img_cols: Columns, ann_cols: Columns
) -> None:
    for key, value in doc.items():
        if key not in ("images", "annotations"):
            check_depth(value, [key], file, raw)
    for section, cols, flat in (
        ("images", img_cols, _FLAT_IMAGE_KEYS),
        ("annotations", ann_cols, _FLAT_ANN_KEYS),
    ):
        recs = cols.records
        if not recs:
            continue
        keys = set().union(*map(dict.keys, recs)) - flat
        for key in keys:
            vals, mask = cols.present(key)
            if not depth_exceeds(vals, MAX_DEPTH + 1):
                continue
            rows = np.arange(len(recs)) if mask is None else np.flatnonzero(mask)
            for i, v in zip(rows.tolist(), vals, strict=True):
                check_depth(v, [section, i, key], file, raw)


def _file_names(doc: dict, file: str | Path | None, raw: bytes | None, img_cols: Columns) -> None:
    """Image and video file names the file system can hold (each part <= 255 bytes)."""
    names = img_cols.present("file_name")[0]
    vids = doc.get("videos") or []
    sections = [("images", names)]
    if vids:
        sections.append(("videos", [v.get("file_name", "") for v in vids]))
    for section, vals in sections:
        if not vals or (max(map(len, vals)) <= 255 and "".join(vals).isascii()):
            continue
        for i, name in enumerate(vals):
            problem = name_length_problem(name)
            if problem is not None:
                parts = [section, i, "file_name"]
                raise InputError(
                    f"Expected '{field_path(parts)}' to be {problem}.",
                    file,
                    locate_line(raw, parts),
                )


@functools.cache
def _partial_validator(section: str, skip: tuple[str, ...]):
    """Like :func:`_item_validator`, without the properties in ``skip`` (checked elsewhere)."""
    root = load_schema("dataset")
    item = copy.deepcopy(root["properties"][section]["items"])
    for key in skip:
        item.get("properties", {}).pop(key, None)
    item["required"] = [k for k in item.get("required", []) if k not in skip]
    item["definitions"] = copy.deepcopy(root.get("definitions", {}))
    item["$schema"] = root["$schema"]
    return _compile(item)


def check_record(section: str, item: Any, parts: list, skip: tuple[str, ...] = ()) -> str | None:
    """The dataset schema's verdict on one ``images``/``annotations``/``videos`` item.

    Importers call it on the source's records so that an import refuses exactly what
    :meth:`toolkit.dataset.Dataset.load` would refuse.

    Args:
        section: ``images``, ``annotations`` or ``videos``.
        item: The record.
        parts: Its JSON path (named in the message).
        skip: Properties the caller checks itself (e.g. the per-keypoint fields of a 17-point
            source), left out of the check and of ``required``.

    Returns:
        The message (naming ``parts``) when the item breaks the schema, else None.
    """
    try:
        (_partial_validator(section, skip) if skip else _item_validator(section))(item)
    except fastjsonschema.JsonSchemaValueException as exc:
        where = field_path(parts + _parts(exc.name))
        return (
            f"Expected '{where}' to satisfy the dataset schema, but {exc.message}"
            f" (got {_short(exc.value)})."
        )
    return None


def _fail(
    section: str,
    i: int,
    item: Any,
    file: str | Path | None,
    raw: bytes | None,
    fallback: tuple[str, str] | None = None,
) -> None:
    """Raise the item validator's message for ``section[i]`` (or ``fallback = (key, reason)``).

    Returns without raising when the item is valid and there is no fallback (the screen was
    stricter than the schema).
    """
    try:
        _item_validator(section)(item)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise _schema_error(exc, "dataset", [section, i], file, raw) from None
    if fallback is not None:
        key, reason = fallback
        parts = [section, i, key]
        raise InputError(
            f"Expected '{field_path(parts)}' to be {reason}.", file, locate_line(raw, parts)
        )


_TYPES: dict[str, tuple[type, ...]] = {
    "integer": (int,),
    "number": (int, float),
    "string": (str,),
    "null": (type(None),),
    "object": (dict,),
    "array": (list,),
    "boolean": (bool,),
}
#: The schema's "file name escapes" pattern (absolute, '..' segment, backslash).
_ESCAPE_PATTERN = "(^/|(^|/)\\.\\.(/|$)|\\\\)"
_SCREENED = {
    "type",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "minLength",
    "maxLength",
    "not",
    "enum",
    "description",
}


def _suspicious(vals: list, sub: dict) -> np.ndarray | None:
    """Mask over ``vals`` of values that may break the property schema ``sub`` (None: all fine).

    Every check has a whole-column fast path (C-level ``map``/``set``/numpy); the per-value
    mask is built only when the column fails it.
    """
    n = len(vals)
    if set(sub) - _SCREENED or set(sub.get("not", {})) - {"pattern"}:
        return np.ones(n, bool)  # a keyword the screen does not model: let the validator look
    bad = None

    def add(mask: np.ndarray) -> None:
        nonlocal bad
        bad = mask if bad is None else bad | mask

    types = set(map(type, vals))
    allowed: tuple[type, ...] = ()
    if "type" in sub:
        allowed = tuple(chain.from_iterable(_TYPES[t] for t in np.atleast_1d(sub["type"])))
        if not types <= set(allowed):
            add(np.fromiter((type(v) not in allowed for v in vals), bool, n))
    if any(k in sub for k in ("minimum", "maximum", "exclusiveMinimum")):
        if types <= {int, float}:
            x = np.array(vals, dtype=np.float64)
        else:
            x = np.fromiter((v if type(v) in (int, float) else np.nan for v in vals), float, n)
        with np.errstate(invalid="ignore"):
            if "minimum" in sub:
                add(x < sub["minimum"])
            if "maximum" in sub:
                add(x > sub["maximum"])
            if "exclusiveMinimum" in sub:
                add(x <= sub["exclusiveMinimum"])
    strs = types == {str}
    if "minLength" in sub and not (strs and min(map(len, vals)) >= sub["minLength"]):
        add(np.fromiter((type(v) is str and len(v) < sub["minLength"] for v in vals), bool, n))
    if "maxLength" in sub and not (strs and max(map(len, vals)) <= sub["maxLength"]):
        add(np.fromiter((type(v) is str and len(v) > sub["maxLength"] for v in vals), bool, n))
    if "not" in sub:
        pat = re.compile(sub["not"]["pattern"], re.MULTILINE)
        # One search over all names joined by newlines (^/$ then match at every name), unless a
        # name holds a newline itself. For the file-name pattern, three substring tests decide
        # the common case (no '..', no backslash, no leading '/') without the regex.
        joined = "\n".join(vals) if strs else None
        clean = (
            joined is not None
            and sub["not"]["pattern"] == _ESCAPE_PATTERN
            and ".." not in joined
            and "\\" not in joined
            and "\n/" not in joined
            and not joined.startswith("/")
        )
        if not clean and (joined is None or joined.count("\n") != n - 1 or pat.search(joined)):
            pat = re.compile(sub["not"]["pattern"])
            add(np.fromiter((type(v) is str and pat.search(v) is not None for v in vals), bool, n))
    if "enum" in sub:
        allowed_vals = sub["enum"]
        add(np.fromiter((v not in allowed_vals for v in vals), bool, n))
    return bad


def _screen_items(
    items: list,
    section: str,
    file: str | Path | None,
    raw: bytes | None,
    cols: Columns | None = None,
) -> None:
    """Screen the scalar fields of ``images``/``annotations`` column by column."""
    if not items:
        return
    schema = load_schema("dataset")["properties"][section]["items"]
    if set(map(type, items)) != {dict}:
        i = next(i for i, it in enumerate(items) if type(it) is not dict)
        _fail(section, i, items[i], file, raw)
    n = len(items)
    cols = cols or Columns(items)
    suspect = np.zeros(n, bool)
    for key in schema.get("required", []):
        _, mask = cols.present(key)
        if mask is not None:
            suspect |= ~mask
    definitions = load_schema("dataset").get("definitions", {})
    for key, sub in schema.get("properties", {}).items():
        if section == "annotations" and key in _ARRAY_FIELDS:
            continue
        # (the compiled validator rewrites "#/definitions/x" to an absolute URI in place)
        name = sub.get("$ref", "").rpartition("#/definitions/")[2]
        if "$ref" in sub and name in definitions:
            sub = {**definitions[name], **{k: v for k, v in sub.items() if k != "$ref"}}
        pv, idx = cols.present(key)
        if not pv:
            continue
        bad = _suspicious(pv, sub)
        if bad is not None and bad.any():
            suspect[np.flatnonzero(bad) if idx is None else np.flatnonzero(idx)[bad]] = True
    for i in np.flatnonzero(suspect).tolist():
        _fail(section, i, items[i], file, raw)


def annotation_arrays(
    anns: list,
    file: str | Path | None = None,
    *,
    raw: bytes | None = None,
    cols: Columns | None = None,
) -> dict[str, Any]:
    """Check and convert the big per-annotation arrays, vectorised.

    Returns:
        ``keypoints`` ``(N, 57)`` float64; ``keypoints_raw`` ``(M, 57)`` for the ``M``
        annotations that have one, marked by ``has_raw`` ``(N,)`` bool; ``keypoint_scores`` ``(N, 19)`` float32 (NaN
        where absent or null); ``keypoint_source`` ``(N, 19)`` uint8 codes (0 = imported where
        absent); ``bbox`` ``(N, 4)`` float64 (NaN where absent).

    Raises:
        InputError: Naming ``annotations[i].<field>`` (and the line, with ``raw``).
    """
    k = layout.NUM_KEYPOINTS
    if anns and set(map(type, anns)) != {dict}:
        i = next(i for i, a in enumerate(anns) if type(a) is not dict)
        _fail("annotations", i, anns[i], file, raw)
    cols = cols or Columns(anns)
    m = _Matrices(anns, file, raw, cols)
    n = len(anns)
    kp, _ = m.read("keypoints", 3 * k, required=True, points=True)
    raw_kp, raw_idx = m.read("keypoints_raw", 3 * k, points=True)
    has_raw = np.zeros(n, bool)
    has_raw[raw_idx] = True
    scores, sc_idx = m.read("keypoint_scores", k, nullable=True, lo=0.0, hi=1.0)
    bbox, bb_idx = m.read("bbox", 4, lo=-COORD_LIMIT, hi=COORD_LIMIT)
    return {
        "keypoints": kp.reshape(n, 3 * k),
        "keypoints_raw": raw_kp,
        "has_raw": has_raw,
        "keypoint_scores": _full_rows(scores, sc_idx, n, k, np.float32),
        "bbox": _full_rows(bbox, bb_idx, n, 4, np.float64),
        "keypoint_source": _source_codes(anns, file, raw, cols),
        "columns": cols,
    }


def _full_rows(arr: np.ndarray, idx: np.ndarray, n: int, width: int, dtype: type) -> np.ndarray:
    """``(n, width)`` with ``arr`` at rows ``idx`` and NaN elsewhere."""
    if len(idx) == n:
        return arr.astype(dtype, copy=False)
    out = np.full((n, width), np.nan, dtype)
    out[idx] = arr
    return out


class _Matrices:
    """Reads one numeric per-annotation field as a checked matrix (see :func:`annotation_arrays`)."""

    def __init__(self, anns: list, file: str | Path | None, raw: bytes | None, cols: Columns):
        self.anns = anns
        self.file = file
        self.raw = raw
        self.cols = cols
        self.check_bools = raw is None or b"true" in raw or b"false" in raw

    def read(
        self,
        key: str,
        width: int,
        *,
        required: bool = False,
        nullable: bool = False,
        lo: float | None = None,
        hi: float | None = None,
        points: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The values of the annotations that have ``key`` as ``(m, width)``, and their rows.

        Args:
            key: The field.
            width: Numbers per annotation.
            required: Every annotation must have it.
            nullable: ``null`` allowed (becomes NaN).
            lo: Smallest value allowed.
            hi: Largest value allowed.
            points: ``x, y, v`` triples (v in 0, 1, 2; coordinates within the limit).
        """
        pv, has = self.cols.present(key)
        if has is None:
            idx = np.arange(len(self.anns))
        else:
            if required:
                i = int(np.flatnonzero(~has)[0])
                _fail("annotations", i, self.anns[i], self.file, self.raw, (key, "present"))
            idx = np.flatnonzero(has)
        if not pv:
            return np.zeros((0, width)), idx

        def fail_at(rows: np.ndarray, reason: str) -> None:
            i = int(idx[int(np.flatnonzero(rows)[0])])
            _fail("annotations", i, self.anns[i], self.file, self.raw, (key, reason))

        arr = self._numbers(pv, width, nullable, fail_at)
        _check_matrix(arr, width, nullable, lo, hi, points, fail_at)
        return arr, idx

    def _numbers(self, pv: list, width: int, nullable: bool, fail_at: Any) -> np.ndarray:
        """``pv`` (lists of ``width`` numbers, nulls when ``nullable``) as ``(m, width)``."""
        if set(map(type, pv)) != {list}:
            fail_at(
                np.fromiter((type(v) is not list for v in pv), bool, len(pv)),
                f"a list of {width} numbers",
            )
        lens = np.fromiter(map(len, pv), np.intp, len(pv))
        if (lens != width).any():
            fail_at(lens != width, f"a list of {width} numbers")
        try:
            arr = np.array(pv)
        except (ValueError, TypeError):  # a nested list somewhere: find it below
            arr = np.zeros(0, dtype=object)
        if arr.dtype.kind not in "if" or (
            self.check_bools and bool in set(map(type, chain.from_iterable(pv)))
        ):
            allowed = (int, float, type(None)) if nullable else (int, float)
            rowbad = np.fromiter(
                (any(type(x) not in allowed for x in r) for r in pv), bool, len(pv)
            )
            if rowbad.any():
                fail_at(rowbad, f"a list of {width} numbers")
            arr = np.array(pv, dtype=np.float64)  # only nulls remain: they become NaN
        return arr.astype(np.float64, copy=False).reshape(len(pv), width)


def _check_matrix(
    arr: np.ndarray,
    width: int,
    nullable: bool,
    lo: float | None,
    hi: float | None,
    points: bool,
    fail_at: Any,
) -> None:
    """Fail at the first row that is not finite, out of ``lo..hi`` or not ``x, y, v`` points."""
    nonfinite = np.isinf(arr) if nullable else ~np.isfinite(arr)
    if nonfinite.any():
        fail_at(nonfinite.any(1), f"a list of {width} finite numbers")
    with np.errstate(invalid="ignore"):
        if lo is not None and (arr < lo).any():
            fail_at((arr < lo).any(1), f"numbers >= {lo}")
        if hi is not None and (arr > hi).any():
            fail_at((arr > hi).any(1), f"numbers <= {hi}")
    if points:
        v = arr[:, 2::3]
        badv = ~((v == 0) | (v == 1) | (v == 2))
        if badv.any():
            fail_at(badv.any(1), "x, y, v triples with v in 0, 1, 2")
        far = np.abs(np.delete(arr, np.s_[2::3], axis=1)) > COORD_LIMIT
        if far.any():
            fail_at(far.any(1), f"coordinates within +-{COORD_LIMIT:g} px")


def _source_codes(
    anns: list, file: str | Path | None, raw: bytes | None, cols: Columns
) -> np.ndarray:
    """``keypoint_source`` (19-letter string or list of names) -> ``(N, 19)`` uint8 codes."""
    k = layout.NUM_KEYPOINTS
    n = len(anns)
    out = np.zeros((n, k), np.uint8)
    lut = np.full(256, 255, np.uint8)
    lut[np.frombuffer(layout.SOURCE_LETTERS.encode(), np.uint8)] = np.arange(
        len(layout.SOURCE_LETTERS)
    )
    pv, mask = cols.present("keypoint_source")
    if mask is None and set(map(type, pv)) == {str}:
        vals, strs, others = pv, range(n), []
    else:
        vals = cols.full("keypoint_source", _MISSING)
        strs = [i for i, v in enumerate(vals) if type(v) is str]
        others = [i for i, v in enumerate(vals) if v is not _MISSING and type(v) is not str]
    if strs:
        sv = vals if len(strs) == n else [vals[i] for i in strs]
        lens = np.fromiter(map(len, sv), np.intp, len(sv))
        ok_len = lens == k
        if not ok_len.all():
            i = list(strs)[int(np.flatnonzero(~ok_len)[0])]
            _fail("annotations", i, anns[i], file, raw, ("keypoint_source", f"{k} letters"))
        blob = "".join(sv).encode("utf-8")
        if len(blob) != k * len(sv):  # a non-ASCII letter
            codes = np.full((len(sv), k), 255, np.uint8)
            for r, s in enumerate(sv):
                codes[r] = lut[np.frombuffer(s.encode("utf-8")[:k].ljust(k, b"?"), np.uint8)]
        else:
            codes = lut[np.frombuffer(blob, np.uint8)].reshape(len(sv), k)
        bad = (codes == 255).any(1)
        if bad.any():
            i = list(strs)[int(np.flatnonzero(bad)[0])]
            _fail(
                "annotations",
                i,
                anns[i],
                file,
                raw,
                ("keypoint_source", f"{k} letters from '{layout.SOURCE_LETTERS}'"),
            )
        out[list(strs) if len(strs) != n else slice(None)] = codes
    for i in others:
        v = vals[i]
        if (
            type(v) is not list
            or len(v) != k
            or not all(type(s) is str and s in layout.SOURCE_CODE for s in v)
        ):
            _fail(
                "annotations",
                i,
                anns[i],
                file,
                raw,
                ("keypoint_source", f"{k} names from {list(layout.SOURCES)}"),
            )
        out[i] = [layout.SOURCE_CODE[s] for s in v]
    return out


def _cross_refs(
    doc: dict, file: str | Path | None, raw: bytes | None, img_cols: Columns, ann_cols: Columns
) -> None:
    images = doc.get("images") or []

    def err(parts: list, reason: str) -> InputError:
        return InputError(
            f"Expected '{field_path(parts)}' to {reason}.", file, locate_line(raw, parts)
        )

    def first_dup(values: list) -> int | None:
        import pandas as pd

        index = pd.Index(values)
        if index.is_unique:
            return None
        return int(np.flatnonzero(index.duplicated())[0])

    image_ids = img_cols.present("id")[0]
    if (i := first_dup(image_ids)) is not None:
        raise err(["images", i, "id"], f"be unique, but {image_ids[i]} appears twice")
    names = img_cols.present("file_name")[0]
    if (i := first_dup(names)) is not None:
        raise err(["images", i, "file_name"], f"be unique, but {names[i]!r} appears twice")
    ann_ids = ann_cols.present("id")[0]
    if (i := first_dup(ann_ids)) is not None:
        raise err(["annotations", i, "id"], f"be unique, but {ann_ids[i]} appears twice")
    ref = np.array(ann_cols.present("image_id")[0], dtype=np.int64)
    missing = ~np.isin(ref, np.array(image_ids, dtype=np.int64))
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        raise err(["annotations", i, "image_id"], f"name an image, but got {int(ref[i])}")
    video_ids = {v["id"] for v in doc.get("videos") or []}
    if not img_cols.present("video_id")[0]:
        return
    for i, im in enumerate(images):
        if "video_id" in im and im["video_id"] not in video_ids:
            raise err(["images", i, "video_id"], f"name a video, but got {im['video_id']!r}")


def _short(value: Any, limit: int = 80) -> str:
    try:
        text = repr(value)
    except RecursionError:
        return f"a {type(value).__name__} nested too deeply to show"
    return text if len(text) <= limit else text[: limit - 3] + "..."
