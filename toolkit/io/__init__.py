"""Format readers and writers, one module per format, behind a registry.

Each format module calls :func:`register_format` at import time with a ``detect`` function (does
this source look like mine, unambiguously?), a ``read`` function returning an
:class:`ImportResult`, and optionally a ``write`` function. :func:`read` and :func:`write`
consult the registry; nothing else dispatches on file extensions.

Library use::

    from toolkit import io
    result = io.read("data.yaml")                       # format detected
    result = io.read("preds/", format="yolo", video="clip.mp4")
    io.write(result.dataset, "yolo", "exported/")
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.dataset import Dataset
from toolkit.errors import InputError, expected
from toolkit.fileio import atomic_write_bytes, staged_dir
from toolkit.taxonomy import read_document


@dataclass
class SkippedItem:
    """One thing ``--skip-bad`` left out.

    Attributes:
        path: The file.
        line: 1-based line, or None for whole-file problems.
        reason: The error message.
    """

    path: str
    line: int | None
    reason: str

    def to_dict(self) -> dict:
        """The item as a plain dict (for the import report)."""
        return {"path": self.path, "line": self.line, "reason": self.reason}


@dataclass
class ImportResult:
    """What a reader returns.

    Attributes:
        dataset: The imported dataset (not yet saved).
        skipped: Items left out under ``skip_bad`` (empty otherwise: errors raise).
        notes: Human-readable remarks for the import report (e.g. "subject unknown").
        media_root: Absolute directory that image/video ``file_name``s are relative to.
    """

    dataset: Dataset
    skipped: list[SkippedItem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    media_root: Path | None = None


@dataclass(frozen=True)
class Format:
    """A registered format.

    Attributes:
        name: ``yolo``, ``coco`` …
        detect: ``detect(path) -> bool``: True only when the source is unambiguously this format.
        read: ``read(path, **options) -> ImportResult``.
        write: ``write(dataset, out, **options) -> Path`` or None when export is unsupported.
    """

    name: str
    detect: Callable[[Path], bool]
    read: Callable[..., ImportResult] | None = None
    write: Callable[..., Path] | None = None
    supersedes: tuple[str, ...] = ()


_DIGITS = re.compile(r"\d+")


def _pad(m: re.Match) -> str:
    return m.group(0).zfill(24)


def natural_key(name: str) -> tuple[str, str]:
    """Sort key for natural order: ``frame_2`` before ``frame_10``, ``2.jpg`` before ``10.jpg``.

    Digit runs compare as numbers (zero-padded to 24 digits, so the comparison stays in C:
    10k names sort in about 20 ms), the rest as case-folded text; the original string breaks
    ties, so the order is total and deterministic.
    """
    return _DIGITS.sub(_pad, name.casefold()), name


_LAST_NUMBER = re.compile(r"(\d+)(?!.*\d)")


def frame_number(name: str) -> int | None:
    """The last number in a file name's stem (``frame_000123.jpg`` -> 123), or None.

    Where names carry a frame number, the frame index comes from it (not from the position in
    a listing, which skips frames without a file).
    """
    stem = name.rsplit("/", 1)[-1]
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    m = _LAST_NUMBER.search(stem)
    return int(m.group(1)) if m else None


def check_reader_args(
    kpt_values: str, subject_regex: str | None = None, **paths: str | Path | None
) -> re.Pattern | None:
    """The argument checks every reader shares: ``kpt_values``, the subject regex, given paths.

    Returns:
        The compiled ``subject_regex`` (None when not given).

    Raises:
        ValueError: ``kpt_values`` is not auto/flag/conf, or the regex does not compile.
        FileNotFoundError: Naming the option (``labels``, ``video`` …) whose path is missing.
    """
    if kpt_values not in ("auto", "flag", "conf"):
        raise ValueError(expected("kpt_values", "'auto', 'flag' or 'conf'", kpt_values))
    for what, p in paths.items():
        if p is not None and not Path(p).exists():
            raise FileNotFoundError(f"Expected '{what}' to exist, but {p} does not.")
    if not subject_regex:
        return None
    try:
        return re.compile(subject_regex)
    except re.error as exc:
        raise ValueError(
            expected("--subject-regex", "a valid regular expression", f"{subject_regex} ({exc})")
        ) from None


_REGISTRY: dict[str, Format] = {}
_MODULES = ("toolkit.io.yolo", "toolkit.io.coco", "toolkit.io.results")


def register_format(
    name: str,
    *,
    detect: Callable[[Path], bool],
    read: Callable[..., ImportResult] | None = None,
    write: Callable[..., Path] | None = None,
    supersedes: tuple[str, ...] = (),
) -> None:
    """Register a format module's functions under ``name``.

    Args:
        name: The format's name (``--format NAME``).
        detect: ``detect(path) -> bool``: True only when the source is unambiguously this format.
        read: ``read(path, **options) -> ImportResult``, or None when import is unsupported.
        write: ``write(dataset, out, **options) -> Path``, or None when export is unsupported.
        supersedes: Formats whose ``detect`` also accepts this format's sources because this one
            is a more specific shape of theirs (AlphaPose results are also a JSON list with
            ``image_id`` and ``keypoints``): when both match, this one wins.
    """
    _REGISTRY[name] = Format(
        name=name, detect=detect, read=read, write=write, supersedes=tuple(supersedes)
    )


def formats() -> dict[str, Format]:
    """All registered formats (importing the format modules on first use)."""
    for mod in _MODULES:
        importlib.import_module(mod)
    return dict(_REGISTRY)


def format_names(capability: str = "read") -> list[str]:
    """The registered formats that can ``read`` (import) or ``write`` (export), sorted.

    The CLI offers these as ``--format`` choices, so a newly registered format appears there.

    Raises:
        ValueError: ``capability`` is neither ``read`` nor ``write``.
    """
    if capability not in ("read", "write"):
        raise ValueError(expected("capability", "'read' or 'write'", capability))
    return sorted(n for n, f in formats().items() if getattr(f, capability) is not None)


def detect_format(src: str | Path) -> str:
    """The one format whose ``detect`` accepts ``src``.

    Raises:
        FileNotFoundError: ``src`` does not exist.
        InputError: No format or several formats match (pass ``format=`` explicitly).
    """
    src = Path(src)
    if not src.exists():
        raise FileNotFoundError(
            f"Expected 'SRC' to be an existing file or folder, but {src} does not exist."
        )
    fmts = formats()
    hits = [name for name, f in fmts.items() if f.detect(src)]
    beaten = {old for h in hits for old in fmts[h].supersedes}
    hits = [h for h in hits if h not in beaten] or hits
    if len(hits) == 1:
        return hits[0]
    if not hits:
        if src.is_file() and src.suffix.lower() in (".yaml", ".yml"):
            _check_yaml_syntax(src)
        raise InputError(
            "Expected a data.yaml, a YOLO dataset folder (images/ + labels/ or split folders "
            "train/, valid/, test/), a folder of label .txt files, a COCO .json, or "
            "AlphaPose/OpenPifPaf/mmpose results, but could not recognise it; pass "
            f"--format {'|'.join(sorted(fmts))}.",
            src,
        )
    raise InputError(
        f"The source looks like several formats ({', '.join(hits)}); pass --format to choose.", src
    )


def _check_yaml_syntax(path: Path) -> None:
    """Raise the YAML parser's own error (file and line) for a yaml that does not parse."""
    import yaml

    try:
        yaml.safe_load(path.read_text("utf-8-sig"))
    except UnicodeDecodeError:
        raise InputError("Expected UTF-8 text, but the file is not valid UTF-8.", path) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(
            f"Expected valid YAML, but parsing failed: {getattr(exc, 'problem', None) or exc}.",
            path,
            None if mark is None else mark.line + 1,
        ) from None


def read(
    src: str | Path, format: str = "auto", *, taxonomy: str | Path | None = None, **options: Any
) -> ImportResult:
    """Read ``src`` into an :class:`ImportResult` (see each format module for options).

    Args:
        src: The source file or folder.
        format: A registered format's name, or ``auto`` to detect it.
        taxonomy: A stance taxonomy JSON (``schemas/taxonomy.schema.json``). When omitted, a
            ``taxonomy.json`` beside the source (next to a ``data.yaml`` or COCO file, or inside a
            source folder) is used. Every stance label must be one of its stances.
        **options: The format reader's options.
    """
    result = _read(src, format, **options)
    _attach_taxonomy(result, Path(src), taxonomy)
    return result


def _attach_taxonomy(result: ImportResult, src: Path, explicit: str | Path | None) -> None:
    path = Path(explicit) if explicit is not None else None
    if path is None:
        candidate = (src if src.is_dir() else src.parent) / "taxonomy.json"
        if not candidate.is_file():
            return
        path = candidate
    doc = read_document(path)
    names = [s["name"] for s in doc["stances"]]
    labels = set(result.dataset.images["stance"].dropna().tolist())
    unknown = sorted(labels - set(names))
    if unknown:
        raise InputError(
            f"Expected every stance label to be one of the taxonomy's {len(names)} stances, "
            f"but got {unknown[:5]}{' ...' if len(unknown) > 5 else ''}.",
            path,
        )
    result.dataset.taxonomy = doc
    result.notes.append(f"taxonomy: {len(names)} stances from {path}")


def _read(src: str | Path, format: str = "auto", **options: Any) -> ImportResult:
    name = detect_format(src) if format == "auto" else format
    fmt = formats().get(name)
    if fmt is None or fmt.read is None:
        raise ValueError(
            f"Expected 'format' to be one of {format_names('read')} or 'auto', but got {format!r}."
        )
    if not Path(src).exists():
        raise FileNotFoundError(f"Expected 'SRC' to exist, but {src} does not.")
    return fmt.read(Path(src), **options)


def write(dataset: Dataset, format: str, out: str | Path, **options: Any) -> Path:
    """Export ``dataset`` as ``format`` into ``out``."""
    fmt = formats().get(format)
    if fmt is None or fmt.write is None:
        raise ValueError(
            f"Expected 'format' to be one of {format_names('write')}, but got {format!r}."
        )
    return fmt.write(dataset, Path(out), **options)


def import_dataset(
    src: str | Path,
    out: str | Path,
    format: str = "auto",
    *,
    overwrite: bool = False,
    **options: Any,
) -> ImportResult:
    """Read ``src`` and write it as a new dataset directory ``out``, all or nothing.

    The dataset is built in a staging directory beside ``out`` and renamed into place only when
    complete, so a failure leaves no partial dataset. ``import_report.json`` beside
    ``dataset.json`` lists the source, the format, notes and every skipped item.
    """
    import os

    import orjson

    name = detect_format(src) if format == "auto" else format
    out = Path(out).absolute()
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; choose another --out or pass --overwrite.")
    result = read(src, name, **options)
    ds = result.dataset
    if result.media_root is not None:
        media = Path(result.media_root).absolute()
        try:
            ds.media_root = os.path.relpath(media, out)
        except ValueError:  # different drive (Windows): keep it absolute
            ds.media_root = str(media)
    report = {
        "source": str(Path(src).absolute()),
        "format": name,
        "n_images": len(ds.images),
        "n_annotations": len(ds),
        "n_videos": len(ds.videos),
        "notes": result.notes,
        "skipped": [s.to_dict() for s in result.skipped],
    }
    ds.meta["import"] = {k: report[k] for k in ("source", "format", "notes")} | {
        "n_skipped": len(result.skipped)
    }
    with staged_dir(out, overwrite=overwrite) as stage:
        ds.save(stage)
        atomic_write_bytes(
            stage / "import_report.json", orjson.dumps(report, option=orjson.OPT_INDENT_2)
        )
    ds.path = out
    ds._stamp = None
    return result
