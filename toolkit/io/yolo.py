"""ultralytics YOLO pose datasets and per-frame prediction files: import and export.

Sources :func:`read_yolo` accepts (``toolkit import SRC``):

* a ``data.yaml`` (any name ending ``.yaml``/``.yml``) with ``path``, ``train``/``val``/``test``
  (folders, ``.txt`` image lists or lists of either), ``kpt_shape``, ``names``, ``flip_idx`` and
  optional ``kpt_names``. An empty ``path`` means the yaml's folder; a relative one is tried
  against the yaml's folder first, then the working directory (ultralytics' rule).
* a folder holding ``images/`` and ``labels/`` trees with the same relative paths (a folder with
  a dataset yaml in it is read through that yaml; a yaml there that does not parse is refused);
* split folders without a yaml, as Roboflow exports them (``train/images`` + ``train/labels``,
  ``valid/...``, ``test/...``): labels found by ultralytics' ``/images/`` -> ``/labels/`` rule;
* a folder of images with their label ``.txt`` beside them (a ``classes.txt`` there names the
  classes, as LabelImg writes it);
* ultralytics ``predict`` output for still images (``image0.jpg`` + ``labels/image0.txt``), with
  ``images=DIR`` naming the source images (labels matched by relative path or file stem);
* a folder of per-frame label files ``<stem>_<frame>.txt`` with ``video=FILE`` (what
  ``predict(save_txt=True)`` writes; frames counted from 1).

Images are listed in natural order (``frame_2`` before ``frame_10``). A label file whose image is
missing is the same error with or without a yaml.

A label line is ``class cx cy w h`` (normalised) then ``K`` keypoints of ``D`` values (``x y`` or
``x y v``), then optionally the box confidence and a track id: ``5 + K*D (+1) (+2)`` tokens.
Persons carry 19 keypoints (body + stick) or 17 (the stick points are then missing, or come from a
separate stick object). A stick object is a line with 2 keypoints (grip, tip): a class whose name
contains ``stick`` (or ``baston``) in the same file, or any 2-keypoint line in a file under
``stick_labels=DIR`` (same relative paths as the labels). Each stick goes to the person whose
nearer wrist (left or right) is closest to its grip, one stick per person, within half the
person's box diagonal; the rest are listed in the notes.

The third keypoint value is decided per label file: all values in {0, 1, 2} with some 2 are
visibility flags; values in 0..1 with some non-integer are confidences (``save_txt``); a file with
only 0 and 1 is ambiguous and follows ``kpt_values`` (``flag``/``conf``) or, under ``auto``, the
majority of the unambiguous files (flags when there are none; the notes say so). Confidences go to
``Dataset.scores``; the point becomes ``v = 2`` when ``conf >= 0.5``, ``v = 1`` when
``0 < conf < 0.5``, and missing when ``conf == 0`` or the point is ``(0, 0)``. With 2-value
keypoints every point is ``v = 2`` except ``(0, 0)`` (missing).

Other decisions: an empty label file (or an image without one) is an image with no persons; a
zero-byte yaml, a non-UTF-8 file, a malformed line, NaN/inf, coordinates outside 0..1 (beyond
:data:`EPS`), a third value that is neither a flag nor a confidence, a missing or unreadable image,
a corrupt video, two images sharing one label file, a label without its image, and names that
escape the dataset are :class:`~toolkit.errors.InputError` naming file and line. With
``skip_bad=True`` the whole image of a bad label file is left out (a partly labelled image would
teach a detector that the unlabelled person is background) and every bad line is recorded.
For a video only frames that have a label file become images (``frame_count`` is recorded in
``videos[]``); frames are never extracted.
"""

from __future__ import annotations

import csv
import io as _io
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from toolkit import layout
from toolkit.dataset import Dataset, boxes_from_keypoints
from toolkit.errors import InputError, expected
from toolkit.fileio import safe_relpath, staged_dir
from toolkit.io import (
    ImportResult,
    SkippedItem,
    check_reader_args,
    natural_key,
    register_format,
)
from toolkit.media import IMAGE_SUFFIXES, iter_frame_pixels
from toolkit.media.video import probe

#: Folder names that mark a split rather than a stance class.
SPLIT_DIRS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
#: Tolerance for normalised coordinates slightly outside 0..1 (rounding in other tools).
EPS = 1e-3
#: A confidence at or above this makes a point visible (v = 2); below it, v = 1.
CONF_VISIBLE = 0.5
#: Class names taken as the stick object.
STICK_WORDS = ("stick", "baston", "bastón", "weapon")
#: A stick's grip must lie within this fraction of the person's box diagonal from a wrist.
ATTACH_DIAG = 0.5
_NON_LABEL_TXT = {"classes.txt", "readme.txt", "train.txt", "val.txt", "test.txt"}


# ---------------------------------------------------------------------- discovery
@dataclass
class _Item:
    """One image (or video frame) to import."""

    file_name: str
    label: str | None
    image: str | None = None
    split: str | None = None
    folder_stance: str | None = None
    frame_index: int | None = None
    origin: tuple[Path, int | None] | None = None  # where it was listed (for errors)


@dataclass
class _Source:
    items: list[_Item]
    images_root: Path
    labels_root: Path | None = None
    names: dict[int, str] | None = None
    kpt_shape: tuple[int, int] | None = None
    kpt_names: list[str] | None = None
    yaml_path: Path | None = None
    key_line: dict[str, int] = field(default_factory=dict)  # yaml key -> line
    video: dict | None = None
    errors: list[tuple[int | None, Path, int | None, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _walk_images(root: str | Path, skip: frozenset[str] = frozenset()) -> list[str]:
    """Absolute image paths under ``root`` in natural order (``frame_2`` before ``frame_10``).

    Hidden entries and folders named in ``skip`` are left out. Plain strings: pathlib objects
    cost more than everything else for 10k files.
    """
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            (d for d in dirnames if not d.startswith(".") and d not in skip), key=natural_key
        )
        images = [
            f
            for f in filenames
            if os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES and not f.startswith(".")
        ]
        out.extend(os.path.join(dirpath, f) for f in sorted(images, key=natural_key))
    return out


def _img2label(image: str | Path) -> str:
    """Ultralytics' rule: the last ``/images/`` becomes ``/labels/``, the suffix ``.txt``."""
    s = os.fspath(image)
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return os.path.splitext(sb.join(s.rsplit(sa, 1)))[0] + ".txt"


def _rel(path: str, root: str) -> str:
    """``path`` relative to ``root`` as a POSIX string (``path`` known to be inside)."""
    r = path[len(root) + 1 :] if path.startswith(root + os.sep) else os.path.relpath(path, root)
    return r.replace(os.sep, "/")


def _read_text(path: str | Path, what: str = "file") -> str:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise InputError(f"Expected the {what} to exist, but it does not.", path) from None
    except OSError as exc:
        raise InputError(f"Expected a readable {what}, but reading failed: {exc}.", path) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(
            f"Expected UTF-8 text, but byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start} is not valid UTF-8.",
            path,
            line,
        ) from None


def _is_dataset_yaml(path: Path) -> bool:
    try:
        import yaml

        doc = yaml.safe_load(path.read_text("utf-8-sig"))
    except Exception:  # detection must never raise
        return False
    return isinstance(doc, dict) and ("kpt_shape" in doc or "train" in doc)


def _folder_yaml(src: Path, strict: bool = False) -> Path | None:
    """The dataset yaml in folder ``src`` (``data.yaml`` first), or None.

    Args:
        src: The folder.
        strict: Raise for a yaml in the folder that does not parse (reading: a broken yaml is
            refused, not silently ignored); detection passes False and never raises.
    """
    yamls = sorted(p for p in src.iterdir() if p.suffix.lower() in (".yaml", ".yml"))
    if strict:
        for p in yamls:
            _parse_yaml(
                p,
                _read_text(p, "yaml"),
                " Fix it, or move it out of the folder if it is not the dataset's yaml.",
            )
    cands = [p for p in yamls if _is_dataset_yaml(p)]
    if not cands:
        return None
    named = [p for p in cands if p.stem == "data"]
    return named[0] if named else cands[0]


def _parse_names(raw, path: Path, line: int | None = None) -> dict[int, str] | None:
    if raw is None:
        return None
    if isinstance(raw, list):
        return {i: str(n) for i, n in enumerate(raw)}
    if isinstance(raw, dict):
        try:
            return {int(k): str(v) for k, v in raw.items()}
        except (TypeError, ValueError):
            pass
    raise InputError(expected("names", "a list or a {id: name} mapping", raw), path, line)


def _parse_yaml(yaml_path: Path, text: str, hint: str = ""):
    """``yaml.safe_load(text)``; a syntax error names the file and line."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(
            f"Expected valid YAML, but parsing failed: {getattr(exc, 'problem', None) or exc}."
            + hint,
            yaml_path,
            None if mark is None else mark.line + 1,
        ) from None


def _discover_yaml(yaml_path: Path) -> _Source:
    """Items of a YOLO dataset described by a ``data.yaml`` (ultralytics' rules).

    Raises:
        InputError: A yaml that is empty, does not parse, or names bad values (file, line).
    """
    doc, key_line = _yaml_document(yaml_path)
    kpt_shape = _yaml_kpt_shape(doc.get("kpt_shape"), yaml_path, key_line)
    names = _parse_names(doc.get("names"), yaml_path, key_line.get("names"))
    kpt_names = _yaml_kpt_names(doc.get("kpt_names"), names, yaml_path, key_line)
    root = _yaml_root(doc, yaml_path, key_line)
    src = _Source(
        items=[],
        images_root=root,
        names=names,
        kpt_shape=kpt_shape,
        kpt_names=kpt_names,
        yaml_path=yaml_path,
        key_line=key_line,
    )
    found, split_sources = _yaml_splits(doc, root, yaml_path, key_line)
    # Record the split only when the yaml really splits (samples use the same folder for both).
    splits_differ = len({tuple(v) for v in split_sources.values()}) > 1
    inside = [f for f in found if _inside(f[0], root)]
    for im, _key, _d, origin in found:
        if not _inside(im, root):
            src.errors.append(
                (
                    None,
                    origin[0],
                    origin[1],
                    f"Expected image paths inside the dataset folder {root}, but {im} escapes it.",
                )
            )
    src.images_root = _common_images_root(inside, root, yaml_path)
    by_label, multi_split = _yaml_items(src, inside, splits_differ)
    src.labels_root = Path(_img2label(src.images_root / "x.jpg")).parent
    src.errors.extend(_split_orphans(inside, by_label))
    if multi_split:
        src.notes.append(f"{multi_split} images are in more than one split; kept in the first.")
    return src


#: An image the yaml lists: (absolute path, split key, its split folder or None, origin).
_Found = tuple[str, str, str | None, tuple[Path, int | None]]


def _yaml_document(yaml_path: Path) -> tuple[dict, dict[str, int]]:
    """The parsed yaml (a dict with ``train``) and the line of each top-level key."""
    text = _read_text(yaml_path, "data.yaml")
    if not text.strip():
        raise InputError(
            "Expected a dataset yaml with 'train' and 'kpt_shape', but the file is empty.",
            yaml_path,
            1,
        )
    doc = _parse_yaml(yaml_path, text)
    key_line = {
        m.group(1): i
        for i, ln in enumerate(text.splitlines(), 1)
        if (m := re.match(r"([A-Za-z_]+)\s*:", ln))
    }
    if not isinstance(doc, dict) or not doc.get("train"):
        raise InputError(
            expected(
                "train",
                "an image folder, a .txt list or a list of them",
                None if not isinstance(doc, dict) else doc.get("train"),
            ),
            yaml_path,
            key_line.get("train"),
        )
    return doc, key_line


def _yaml_kpt_shape(
    kpt_shape: Any, yaml_path: Path, key_line: dict[str, int]
) -> tuple[int, int] | None:
    """``kpt_shape`` as ``(K, 2|3)`` (None when the yaml has none)."""
    if kpt_shape is None:
        return None
    if (
        not isinstance(kpt_shape, list)
        or len(kpt_shape) != 2
        or not all(isinstance(v, int) for v in kpt_shape)
        or kpt_shape[0] < 1
        or kpt_shape[1] not in (2, 3)
    ):
        raise InputError(
            expected("kpt_shape", "[K, 2] or [K, 3]", kpt_shape),
            yaml_path,
            key_line.get("kpt_shape"),
        )
    return int(kpt_shape[0]), int(kpt_shape[1])


def _yaml_kpt_names(
    kpt_names: Any, names: dict[int, str] | None, yaml_path: Path, key_line: dict[str, int]
) -> list[str] | None:
    """The person class's keypoint names (a per-class mapping picks the non-stick class)."""
    if isinstance(kpt_names, dict):
        person = next((k for k, v in (names or {0: ""}).items() if not _is_stick_name(v)), 0)
        kpt_names = kpt_names.get(person, kpt_names.get(str(person)))
    if kpt_names is not None and not (
        isinstance(kpt_names, list) and all(isinstance(n, str) for n in kpt_names)
    ):
        raise InputError(
            expected("kpt_names", "a list of keypoint names", kpt_names),
            yaml_path,
            key_line.get("kpt_names"),
        )
    return kpt_names


def _yaml_root(doc: dict, yaml_path: Path, key_line: dict[str, int]) -> Path:
    """The dataset root: ``path`` (beside the yaml, else from the working directory)."""
    ydir = yaml_path.parent.absolute()
    p = doc.get("path")
    if p in (None, ""):
        roots = [ydir]
    elif Path(str(p)).is_absolute():
        roots = [Path(str(p))]
    else:
        roots = [ydir / str(p), Path.cwd() / str(p)]
    first = doc["train"][0] if isinstance(doc["train"], list) else doc["train"]
    root = next((r for r in roots if (r / str(first)).exists()), None)
    if root is None:
        raise InputError(
            f"Expected the 'train' images {first!r} under 'path' "
            f"({' or '.join(str(r) for r in roots)}), but they are not there.",
            yaml_path,
            key_line.get("train"),
        )
    return Path(os.path.abspath(root))


def _yaml_splits(
    doc: dict, root: Path, yaml_path: Path, key_line: dict[str, int]
) -> tuple[list[_Found], dict[str, list[str]]]:
    """Every image ``train``/``val``/``test`` list, and each split's source paths."""
    found: list[_Found] = []
    split_sources: dict[str, list[str]] = {}
    for key in ("train", "val", "test"):
        val = doc.get(key) if key != "val" else doc.get("val", doc.get("validation"))
        if not val:
            continue
        entries = val if isinstance(val, list) else [val]
        split_sources[key] = []
        for entry in entries:
            entry_path = Path(os.path.abspath(root / str(entry)))
            if not entry_path.exists() and str(entry).startswith("../"):
                entry_path = Path(os.path.abspath(root / str(entry)[3:]))
            split_sources[key].append(str(entry_path))
            if entry_path.is_dir():
                found.extend(
                    (im, key, str(entry_path), (yaml_path, None)) for im in _walk_images(entry_path)
                )
            elif entry_path.is_file() and entry_path.suffix.lower() == ".txt":
                found.extend(_image_list(entry_path, key, root))
            elif entry_path.is_file() and entry_path.suffix.lower() in IMAGE_SUFFIXES:
                found.append((str(entry_path), key, None, (yaml_path, None)))
            else:
                raise InputError(
                    f"Expected '{key}' entry {entry!r} to be an image folder, a "
                    f".txt image list or an image under {root}, but it does not "
                    "exist.",
                    yaml_path,
                    key_line.get(key),
                )
    return found, split_sources


def _image_list(entry_path: Path, key: str, root: Path) -> list[_Found]:
    """The images a ``.txt`` image list names (``./x`` beside it, absolute, or under root)."""
    out: list[_Found] = []
    for lineno, line in enumerate(_read_text(entry_path, "image list").splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if line.startswith("./"):
            im = entry_path.parent / line[2:]
        elif os.path.isabs(line):
            im = Path(line)
        else:
            im = root / line
        out.append((os.path.abspath(im), key, None, (entry_path, lineno)))
    return out


def _common_images_root(inside: list[_Found], root: Path, yaml_path: Path) -> Path:
    """``root/images`` when every image is under it, else the images' common folder."""
    img_dir = root / "images"
    if inside and all(_inside(f[0], img_dir) for f in inside):
        return img_dir
    if inside:
        return Path(os.path.commonpath([os.path.dirname(f[0]) for f in inside]))
    raise InputError("Expected images in 'train'/'val', but found none.", yaml_path)


def _yaml_items(src: _Source, inside: list[_Found], splits_differ: bool) -> tuple[dict, int]:
    """Fill ``src.items`` (first listing of each image wins) and its duplicate errors.

    Returns:
        ``label file -> image name`` and how many images more than one split listed.
    """
    iroot = str(src.images_root)
    seen: dict[str, str] = {}  # image name -> the split that listed it first
    by_label: dict[str, str] = {}
    multi_split = 0
    for im, key, split_dir, origin in inside:
        name = _rel(im, iroot)
        if name in seen:
            if seen[name] == key and origin[1] is not None:
                src.errors.append(
                    (
                        None,
                        origin[0],
                        origin[1],
                        f"Expected each image once, but {name!r} is listed again.",
                    )
                )
            elif seen[name] != key and splits_differ:
                multi_split += 1
            continue
        label = _img2label(im)
        if label in by_label:
            src.errors.append(
                (
                    None,
                    im,
                    None,
                    f"Expected one image per label file, but "
                    f"{by_label[label]!r} and {name!r} both map to {os.path.basename(label)}.",
                )
            )
            continue
        by_label[label] = name
        seen[name] = key
        src.items.append(
            _Item(
                file_name=name,
                label=label,
                image=im,
                split=key if splits_differ else None,
                folder_stance=_folder_stance(name, im, split_dir),
                origin=origin,
            )
        )
    return by_label, multi_split


def _folder_stance(name: str, image: str, split_dir: str | None) -> str | None:
    """The stance a class folder gives (``<stance>/x.jpg`` below the split folder), or None."""
    if split_dir is not None:
        parts = _rel(image, split_dir).split("/")
    else:
        parts = name.split("/")
        if len(parts) > 1 and parts[0].lower() in SPLIT_DIRS:
            parts = parts[1:]
    return parts[0] if len(parts) > 1 else None


def _split_orphans(inside: list[_Found], by_label: dict[str, str]) -> list:
    """A label whose image is missing: the same check and message as without a yaml."""
    label_dirs = set()
    for d in {d for _im, _k, d, _o in inside if d is not None}:
        ldir = os.path.dirname(_img2label(os.path.join(d, "x.jpg")))
        if ldir != d and os.path.isdir(ldir):  # labels beside images: nothing separate to check
            label_dirs.add(ldir)
    errors = []
    for ldir in sorted(label_dirs):
        if not any(_inside(ldir, other) for other in label_dirs):  # nested: walked once
            errors.extend(_orphan_labels(ldir, by_label))
    return errors


def _orphan_labels(labels_root: str, known: set[str] | dict) -> list:
    """Errors for label files under ``labels_root`` that no image maps to."""
    out = []
    for dirpath, dirnames, filenames in os.walk(labels_root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for f in sorted(filenames):
            if not _is_label_name(f):
                continue
            lab = os.path.join(dirpath, f)
            if lab not in known:
                out.append((None, lab, None, _NO_IMAGE))
    return out


_NO_IMAGE = (
    "Expected an image for this label file (same relative path under images/, any image "
    "suffix), but found none."
)


def _inside(p: str | Path, root: str | Path) -> bool:
    p, root = os.fspath(p), os.fspath(root)
    return p.startswith(root.rstrip(os.sep) + os.sep)


def _discover_folder(src_dir: Path, images: Path | None = None) -> _Source:
    """Items of a YOLO folder without a yaml.

    Layouts: ``images/`` + ``labels/``; split folders (``train/images`` + ``train/labels``,
    ``valid/...``, as Roboflow exports them); ultralytics ``predict`` output (images with a
    ``labels/`` folder beside them); labels beside their images; or, with ``images=DIR``, a
    folder of labels (or one holding ``labels/``) whose images are in ``DIR`` (same relative
    path, or the same file stem: ``predict`` writes labels flat). The label of an image under an
    ``images`` folder is found by ultralytics' rule (the last ``/images/`` becomes ``/labels/``).
    """
    src_dir = Path(os.path.abspath(src_dir))
    images_root, labels_root, flat, note = _folder_roots(src_dir, images)
    src = _Source(items=[], images_root=images_root, labels_root=labels_root)
    if note:
        src.notes.append(note)
    src.names = _classes_txt(labels_root, src_dir)
    by_label: dict[str, _Item] = {}
    iroot = str(images_root)
    skip = frozenset({"labels"}) if labels_root != images_root and not flat else frozenset()
    for im in _walk_images(images_root, skip):
        rel = _rel(im, iroot)
        parts = rel.split("/")
        split = None
        if len(parts) > 1 and parts[0].lower() in SPLIT_DIRS:
            split, parts = SPLIT_DIRS[parts[0].lower()], parts[1:]
        if len(parts) > 1 and parts[0] == "images":  # train/images/x.jpg: no stance folder
            parts = parts[1:]
        label = _folder_label(im, rel, images_root, labels_root, flat)
        item = _Item(
            file_name=rel,
            label=label,
            image=im,
            split=split,
            folder_stance=parts[0] if len(parts) > 1 else None,
        )
        if label in by_label:
            src.errors.append(
                (
                    len(src.items),
                    im,
                    None,
                    f"Expected one image per label file, but "  # worded as through a yaml
                    f"{by_label[label].file_name!r} and {rel!r} both map to "
                    f"{os.path.basename(label)}.",
                )
            )
        by_label[label] = item
        src.items.append(item)
    if not src.items:
        _no_images(src_dir, images_root)
    src.errors.extend(_folder_orphans(images_root, labels_root, flat, by_label))
    return src


def _folder_roots(src_dir: Path, images: Path | None) -> tuple[Path, Path, bool, str | None]:
    """``(images root, labels root, flat, note)`` of a folder without a yaml.

    ``flat``: the labels of ``--images DIR`` (matched by relative path or by stem).
    """
    if images is not None:
        labels_root = src_dir / "labels" if (src_dir / "labels").is_dir() else src_dir
        return Path(os.path.abspath(images)), labels_root, True, None
    if (src_dir / "images").is_dir():
        if not (src_dir / "labels").is_dir():
            raise InputError(
                "Expected a 'labels/' folder beside 'images/', but there is none.", src_dir
            )
        return src_dir / "images", src_dir / "labels", False, None
    if (src_dir / "labels").is_dir() and any(
        os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES for f in os.listdir(src_dir)
    ):
        note = (
            f"images taken from {src_dir}: in ultralytics predict output these are its drawings "
            "(boxes and skeletons on the frame); pass --images DIR to use the source images."
        )
        return src_dir, src_dir / "labels", False, note  # ultralytics predict output
    return src_dir, src_dir, False, None


def _classes_txt(labels_root: Path, src_dir: Path) -> dict[int, str] | None:
    """Class names from a ``classes.txt`` (in the labels folder, else the source folder)."""
    for cfile in (labels_root / "classes.txt", src_dir / "classes.txt"):
        if cfile.is_file():
            return {
                i: n.strip()
                for i, n in enumerate(x for x in _read_text(cfile).splitlines() if x.strip())
            }
    return None


def _folder_label(im: str, rel: str, images_root: Path, labels_root: Path, flat: bool) -> str:
    """The label file of image ``im`` (``rel`` under ``images_root``) in a folder layout."""
    lroot = str(labels_root)
    if flat:
        label = os.path.join(lroot, os.path.splitext(rel)[0] + ".txt")
        if not os.path.isfile(label):
            alt = os.path.join(lroot, os.path.splitext(os.path.basename(rel))[0] + ".txt")
            label = alt if os.path.isfile(alt) else label
        return label
    if images_root == labels_root and f"{os.sep}images{os.sep}" in im[len(str(images_root)) :]:
        return _img2label(im)
    return os.path.join(lroot, os.path.splitext(rel)[0] + ".txt")


def _no_images(src_dir: Path, images_root: Path) -> None:
    """Raise the "no images" error (with a hint when there are label files only)."""
    has_txt = any(src_dir.glob("*.txt")) or any((src_dir / "labels").glob("*.txt"))
    hint = (
        " Label files only? For per-frame labels of a video pass --video FILE; for labels "
        "of still images (ultralytics predict's labels/) pass --images DIR, the folder of "
        "the source images."
        if has_txt
        else ""
    )
    raise InputError(
        f"Expected images (.jpg, .jpeg, .png, .bmp, .webp, .tif …) in {images_root} or its "
        f"subfolders, but found none.{hint}",
        src_dir,
    )


def _is_label_name(f: str) -> bool:
    """A ``.txt`` that can be a label file (not classes.txt, a split list, a readme, hidden)."""
    return (
        f.endswith(".txt")
        and f.lower() not in _NON_LABEL_TXT
        and not f.startswith(".")
        and not f.lower().startswith("readme")
    )


def _folder_orphans(images_root: Path, labels_root: Path, flat: bool, by_label: dict) -> list:
    """Errors for label files without an image (named by the label file, as through a yaml)."""
    errors = []
    for dirpath, dirnames, filenames in os.walk(labels_root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        in_labels = flat or labels_root != images_root or "labels" in Path(dirpath).parts
        beside = not in_labels and any(
            os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES for f in filenames
        )
        if not (in_labels or beside):
            continue
        for f in sorted(filenames):
            if not _is_label_name(f):
                continue
            lab = os.path.join(dirpath, f)
            if lab not in by_label:
                reason = (
                    f"Expected an image for this label file in {images_root} (same name, any "
                    "image suffix), but found none."
                    if flat
                    else _NO_IMAGE
                )
                errors.append((None, lab, None, reason))
    return errors


def _discover_video(src_dir: Path, video: Path) -> _Source:
    if not src_dir.is_dir():
        raise InputError(
            "Expected SRC to be the folder of per-frame label files "
            "'<stem>_<frame>.txt' when --video is given, but it is not a folder.",
            src_dir,
        )
    video = Path(os.path.abspath(video))
    info = probe(video)
    stem = video.stem
    pat = re.compile(rf"^{re.escape(stem)}_(\d+)\.txt$")
    src = _Source(items=[], images_root=video.parent, labels_root=src_dir)
    src.video = {"id": 1, "file_name": video.name, **info}
    if not src.video["fps"]:
        del src.video["fps"]  # unknown: the schema wants a positive number or nothing
    others = 0
    frames: dict[int, Path] = {}
    for f in sorted(os.listdir(src_dir)):
        if not f.endswith(".txt"):
            continue
        m = pat.match(f)
        if not m:
            others += 1
            continue
        lab = src_dir / f
        n = int(m.group(1))
        if n < 1 or n > info["frame_count"]:
            src.errors.append(
                (
                    None,
                    lab,
                    None,
                    expected(
                        "frame number",
                        f"1..{info['frame_count']} (frames count from 1 in {video.name})",
                        n,
                    ),
                )
            )
            continue
        if n in frames:
            src.errors.append(
                (
                    None,
                    lab,
                    None,
                    f"Expected one label file per frame, but {frames[n].name} is frame {n} too.",
                )
            )
            continue
        frames[n] = lab
    if not frames and not src.errors:
        raise InputError(
            f"Expected per-frame label files named '{stem}_<frame>.txt' for "
            f"{video.name}, but found none ({others} other .txt files).",
            src_dir,
        )
    if others:
        src.notes.append(
            f"{others} .txt files in {src_dir} do not match '{stem}_<frame>.txt' and were ignored."
        )
    for n in sorted(frames):
        src.items.append(
            _Item(file_name=f"{stem}/{n - 1:06d}.jpg", label=str(frames[n]), frame_index=n - 1)
        )
    return src


# ---------------------------------------------------------------------- label parsing
def _is_stick_name(name: str) -> bool:
    n = str(name).lower()
    return any(w in n for w in STICK_WORDS)


@dataclass
class _Rows:
    """Parsed label lines of all files (one row per line, concatenated)."""

    file: np.ndarray  # (n,) index into the label-file list
    line: np.ndarray  # (n,) 1-based line numbers
    stick: np.ndarray  # (n,) bool
    cls: np.ndarray
    box: np.ndarray  # (n, 4) normalised cx cy w h
    kp: np.ndarray  # (n, 19, 3) normalised x, y, raw third value (NaN where absent)
    dims: np.ndarray  # (n,) 2 or 3
    conf: np.ndarray  # (n,) box confidence or NaN
    track: np.ndarray  # (n,) track id or NaN


class _LabelParser:
    """Vectorised parsing of many label files.

    The tokens of every line with the same count and keypoint layout go through numpy
    together, so 10k files cost a few array operations each.
    """

    def __init__(
        self,
        *,
        kpt_shape: tuple[int, int] | None,
        names: dict[int, str] | None,
        kpt_names: list[str] | None,
        kpt_values: str,
        yaml_path: Path | None,
        key_line: dict[str, int] | None = None,
    ):
        key_line = key_line or {}
        self.d_hint = kpt_shape[1] if kpt_shape else None
        body_k = kpt_shape[0] if kpt_shape else None
        self.kmap: dict[int, np.ndarray] = {}
        if kpt_names is not None and body_k is not None and len(kpt_names) != body_k:
            raise InputError(
                expected("kpt_names", f"{body_k} names (kpt_shape)", len(kpt_names)),
                yaml_path,
                key_line.get("kpt_names"),
            )
        if (
            body_k is not None
            and body_k not in (17, 19)
            and (kpt_names is None or not set(kpt_names) <= set(layout.KEYPOINT_NAMES))
        ):
            raise InputError(
                expected(
                    "kpt_shape",
                    "[19, D] or [17, D] (or kpt_names naming our "
                    f"keypoints: {', '.join(layout.KEYPOINT_NAMES)})",
                    list(kpt_shape),
                ),
                yaml_path,
                key_line.get("kpt_shape"),
            )
        if kpt_names is not None and set(kpt_names) <= set(layout.KEYPOINT_NAMES):
            self.kmap[len(kpt_names)] = np.array(
                [layout.KEYPOINT_NAMES.index(n) for n in kpt_names]
            )
        for k in (19, 17):
            if body_k in (None, k):
                self.kmap.setdefault(k, np.arange(k))
        self.names = names
        self.stick_cls = None
        if names:
            sticks = [c for c, n in names.items() if _is_stick_name(n)]
            self.stick_cls = sticks[0] if sticks else None
        self.kpt_values = kpt_values
        self.files: list[Path] = []
        self.stick_only: list[bool] = []
        self._tokens: list[list[str]] = []
        self._file: list[int] = []
        self._line: list[int] = []
        self.errors: list[tuple[int, int | None, str]] = []  # (file index, line, reason)

    # -- phase 1: read and split text (per file)
    def add(self, path: Path, stick_only: bool = False) -> int:
        fi = len(self.files)
        self.files.append(path)
        self.stick_only.append(stick_only)
        try:
            text = _read_text(path, "label file")
        except InputError as exc:
            self.errors.append((fi, exc.line, exc.reason))
            return fi
        for lineno, line in enumerate(text.splitlines(), 1):
            toks = line.split()
            if toks:
                self._tokens.append(toks)
                self._file.append(fi)
                self._line.append(lineno)
        return fi

    # -- phase 2: numbers, validation, interpretation (vectorised over all files)
    def _layouts(self, d: int) -> np.ndarray:
        """Lookup ``count -> K`` (0: no layout) for keypoint dimension ``d``."""
        lut = np.zeros(5 + 19 * 3 + 3 + 1, dtype=np.int64)
        for k in (2, *sorted(self.kmap, reverse=True)):
            for extra in (0, 1, 2):
                t = 5 + k * d + extra
                if t < len(lut) and lut[t] == 0:
                    lut[t] = k
        return lut

    def parse(self) -> _Rows:
        n = len(self._tokens)
        file = np.asarray(self._file, dtype=np.int64)
        line = np.asarray(self._line, dtype=np.int64)
        counts = np.fromiter(map(len, self._tokens), dtype=np.int64, count=n)
        luts = {d: self._layouts(d) for d in (3, 2)}
        cap = len(luts[3]) - 1
        cc = np.minimum(counts, cap)
        nfiles = len(self.files)
        if self.d_hint is not None:
            dims = np.full(n, self.d_hint, dtype=np.int64)
        else:  # per file: 3 values per keypoint unless only 2 fits every line
            bad3 = np.bincount(file, weights=(luts[3][cc] == 0), minlength=nfiles) > 0
            bad2 = np.bincount(file, weights=(luts[2][cc] == 0), minlength=nfiles) > 0
            dims = np.where(bad3 & ~bad2, 2, 3)[file] if n else np.zeros(0, np.int64)
        kk = np.where(dims == 3, luts[3][cc], luts[2][cc])
        kk[counts > cap] = 0
        rows = _empty_rows(n)
        rows.file, rows.line, rows.dims = file, line, dims
        good = np.zeros(n, dtype=bool)
        for i in np.flatnonzero(kk == 0):
            self._bad(
                file[i],
                line[i],
                self._count_reason(int(counts[i]), int(dims[i]), bool(self.stick_only[file[i]])),
            )
        for t, d in {(int(a), int(b)) for a, b in zip(counts[kk > 0], dims[kk > 0], strict=True)}:
            idx = np.flatnonzero((counts == t) & (dims == d) & (kk > 0))
            self._group(idx, t, d, int(kk[idx[0]]), rows, good)
        keep = good & ~np.isin(file, [e[0] for e in self.errors])
        rows = _take(rows, keep)
        self._modes = self._decide_modes(rows)
        return rows

    def _count_reason(self, t: int, d: int, stick_only: bool) -> str:
        ks = [2] if stick_only else sorted(self.kmap, reverse=True) + [2]
        allowed = sorted({5 + k * d + e for k in ks for e in (0, 1, 2)})
        return expected(
            "token count",
            f"one of {allowed} (class, box, K keypoints x {d} "
            "values[, box confidence[, track id]])",
            t,
        )

    def _bad(self, fi: int, line: int | None, reason: str) -> None:
        self.errors.append((int(fi), None if line is None else int(line), reason))

    def _group(
        self, idx: np.ndarray, t: int, d: int, k: int, rows: _Rows, good: np.ndarray
    ) -> None:
        """Parse and check the lines ``idx`` (all ``t`` tokens, ``k`` keypoints x ``d``)."""
        toks = [self._tokens[i] for i in idx]
        a = self._group_numbers(toks, idx, t, rows)
        fl, ln = rows.file[idx], rows.line[idx]
        reasons = _Reasons(a[:, 0] == -1)  # the unconvertible lines: reported already
        cls, box, kp, conf, track = self._check_values(a, toks, t, d, k, reasons)
        stick, kp19 = self._place(cls, kp, d, k, np.asarray(self.stick_only)[fl], reasons)
        ok = np.array([r is None for r in reasons.reason])
        for j in np.flatnonzero(~ok):
            if reasons.reason[j]:
                self._bad(fl[j], ln[j], reasons.reason[j])
        good[idx[ok]] = True
        rows.cls[idx], rows.box[idx], rows.kp[idx] = cls, box, kp19
        rows.conf[idx], rows.track[idx], rows.stick[idx] = conf, track, stick

    def _group_numbers(self, toks: list[list[str]], idx: np.ndarray, t: int, rows: _Rows):
        """The lines' tokens as ``(n, t)`` floats.

        A line with a non-number is reported and its class set to -1 (marked bad without a
        second message).
        """
        try:
            return np.array(toks, dtype=np.float64)
        except ValueError:
            pass
        a = np.full((len(idx), t), np.nan)
        for j, tk in enumerate(toks):
            try:
                a[j] = np.array(tk, dtype=np.float64)
            except ValueError:
                word = next(w for w in tk if not _is_float(w))
                self._bad(rows.file[idx[j]], rows.line[idx[j]], expected("token", "a number", word))
                a[j, 0] = -1
        return a

    def _check_values(
        self, a: np.ndarray, toks: list[list[str]], t: int, d: int, k: int, reasons: _Reasons
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Flag values out of range.

        Returns:
            Class, box, ``(n, k, d)`` keypoints, box confidence and track id (NaN where the
            line has none).
        """
        flag = reasons.flag
        finite = np.isfinite(a)
        flag(
            ~finite.all(1),
            lambda j: expected(
                "values", "finite numbers", toks[j][int(np.flatnonzero(~finite[j])[0])]
            ),
        )
        cls = a[:, 0]
        flag(
            (cls < 0) | (cls != np.round(cls)),
            lambda j: expected("class id", "a non-negative integer", toks[j][0]),
        )
        if self.names:
            flag(
                ~np.isin(cls, list(self.names)),
                lambda j: expected("class id", f"one of {sorted(self.names)} (names)", toks[j][0]),
            )
        box = a[:, 1:5]
        flag(
            ((box < -EPS) | (box > 1 + EPS)).any(1),
            lambda j: expected("box cx cy w h", "normalised to 0..1", " ".join(toks[j][1:5])),
        )
        kp = a[:, 5 : 5 + k * d].reshape(len(a), k, d)
        _check_keypoints(kp, d, reasons)
        extra = t - 5 - k * d
        conf = a[:, 5 + k * d] if extra >= 1 else np.full(len(a), np.nan)
        track = a[:, 6 + k * d] if extra == 2 else np.full(len(a), np.nan)
        if extra >= 1:
            flag(
                (conf < 0) | (conf > 1),
                lambda j: expected("box confidence", "in 0..1", float(conf[j])),
            )
        if extra == 2:
            flag(
                (track < 0) | (track != np.round(track)) | (track >= 2**53),
                lambda j: expected("track id", "a non-negative integer", float(track[j])),
            )
        return cls, box, kp, conf, track

    def _place(
        self,
        cls: np.ndarray,
        kp: np.ndarray,
        d: int,
        k: int,
        stick_only: np.ndarray,
        reasons: _Reasons,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Which lines are sticks, and their points in our 19-point layout ``(n, 19, 3)``."""
        flag = reasons.flag
        n = len(cls)
        kp19 = np.full((n, layout.NUM_KEYPOINTS, 3), np.nan)
        if k == 2:
            if self.stick_cls is not None:
                flag(
                    cls != self.stick_cls,
                    lambda j: expected(
                        "class of a 2-keypoint line",
                        f"{self.stick_cls} ({self.names[self.stick_cls]!r})",
                        int(cls[j]),
                    ),
                )
            kp19[:, [layout.GRIP, layout.TIP], :d] = kp
            return np.ones(n, dtype=bool), kp19
        flag(
            stick_only,
            lambda j: expected(
                "a line in a stick label file",
                "a stick with 2 keypoints (grip, tip)",
                f"{k} keypoints",
            ),
        )
        stick = np.zeros(n, dtype=bool)
        kp19[:, self.kmap[k], :d] = kp
        if self.stick_cls is not None:
            # A stick written with the person layout: grip and tip are its first two points.
            padded = cls == self.stick_cls
            rest = (np.nan_to_num(kp[:, 2:]) != 0).any((1, 2))
            flag(
                padded & rest,
                lambda j: expected(
                    f"stick line ({k} keypoints)",
                    "grip and tip as the first two points and the rest 0",
                    "other points set",
                ),
            )
            if padded.any():
                stick[padded] = True
                kp19[padded] = np.nan
                kp19[np.ix_(padded, [layout.GRIP, layout.TIP], range(d))] = kp[padded, :2]
        return stick, kp19

    def _decide_modes(self, rows: _Rows) -> np.ndarray:
        """Per label file: 'flag', 'conf', '' (no third values) or '?' (ambiguous)."""
        nf = len(self.files)
        modes = np.full(nf, "", dtype=object)
        m3 = rows.dims == 3
        v = rows.kp[m3][..., 2]
        fi, ln = rows.file[m3], rows.line[m3]
        with np.errstate(invalid="ignore"):
            nonint = (np.nan_to_num(v) != np.round(np.nan_to_num(v))).any(1)
            two = (v == 2).any(1)
        big = np.iinfo(np.int64).max
        first_nonint = np.full(nf, big)
        first_two = np.full(nf, big)
        np.minimum.at(first_nonint, fi[nonint], ln[nonint])
        np.minimum.at(first_two, fi[two], ln[two])
        has3 = np.bincount(fi, minlength=nf) > 0
        for f in np.flatnonzero(has3):
            a, b = first_nonint[f], first_two[f]
            if self.kpt_values == "flag" and a < big:
                self._bad(
                    f,
                    a,
                    "Expected visibility flags 0, 1 or 2 (--kpt-values flag), but "
                    "this line has a fractional third value (a confidence).",
                )
            elif self.kpt_values == "conf" and b < big:
                self._bad(
                    f,
                    b,
                    "Expected confidences in 0..1 (--kpt-values conf), but this line "
                    "has a third value of 2 (a visibility flag).",
                )
            elif a < big and b < big:
                self._bad(
                    f,
                    max(a, b),
                    f"Expected the third keypoint values of one file to be "
                    f"all visibility flags (0/1/2) or all confidences (0..1), but line "
                    f"{min(a, b)} has {'a fraction' if a < b else 'a 2'} and line "
                    f"{max(a, b)} {'a 2' if a < b else 'a fraction'}.",
                )
            elif self.kpt_values in ("flag", "conf"):
                modes[f] = self.kpt_values
            else:
                modes[f] = "conf" if a < big else "flag" if b < big else "?"
        return modes


class _Reasons:
    """The first problem of each line of a group (None: fine; ``""``: reported already)."""

    def __init__(self, reported: np.ndarray):
        self.reason: list[str | None] = ["" if b else None for b in reported]

    def flag(self, mask: np.ndarray, make: Any) -> None:
        """Give lines in ``mask`` without a problem yet the reason ``make(j)``."""
        for j in np.flatnonzero(mask):
            if self.reason[j] is None:
                self.reason[j] = make(j)


def _check_keypoints(kp: np.ndarray, d: int, reasons: _Reasons) -> None:
    """Flag keypoints outside 0..1 and third values that are neither flags nor confidences."""
    xy = kp[..., :2]
    out = ((xy < -EPS) | (xy > 1 + EPS)).any(-1)
    reasons.flag(
        out.any(1),
        lambda j: expected(
            f"keypoint {int(np.flatnonzero(out[j])[0])} x y",
            "normalised to 0..1",
            " ".join(f"{v:g}" for v in xy[j, np.flatnonzero(out[j])[0]]),
        ),
    )
    if d == 3:
        v = kp[..., 2]
        badv = (v < 0) | (v > 2) | ((v > 1) & (v != 2))
        reasons.flag(
            badv.any(1),
            lambda j: expected(
                f"keypoint {int(np.flatnonzero(badv[j])[0])} third value",
                "a visibility flag (0, 1, 2) or a confidence in 0..1",
                float(v[j, np.flatnonzero(badv[j])[0]]),
            ),
        )


def _is_float(w: str) -> bool:
    try:
        float(w)
    except ValueError:
        return False
    return True


def _empty_rows(n: int) -> _Rows:
    return _Rows(
        file=np.zeros(n, np.int64),
        line=np.zeros(n, np.int64),
        stick=np.zeros(n, bool),
        cls=np.zeros(n),
        box=np.full((n, 4), np.nan),
        kp=np.full((n, layout.NUM_KEYPOINTS, 3), np.nan),
        dims=np.zeros(n, np.int64),
        conf=np.full(n, np.nan),
        track=np.full(n, np.nan),
    )


def _take(rows: _Rows, mask: np.ndarray) -> _Rows:
    return _Rows(**{k: getattr(rows, k)[mask] for k in rows.__dataclass_fields__})


def _interpret(rows: _Rows, modes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalised ``(n, 19, 3)`` x, y, v (NaN x/y when missing) and ``(n, 19)`` scores."""
    kp = rows.kp.copy()
    third = kp[..., 2]
    absent = np.isnan(kp[..., 0])
    origin = (kp[..., 0] == 0) & (kp[..., 1] == 0)
    mode = modes[rows.file] if len(rows.file) else np.zeros(0, object)
    is_conf = (mode == "conf")[:, None] & (rows.dims == 3)[:, None]
    is_flag = ~is_conf & (rows.dims == 3)[:, None]
    scores = np.where(is_conf & ~absent, third, np.nan).astype(np.float32)
    with np.errstate(invalid="ignore"):
        v_conf = np.where(third >= CONF_VISIBLE, 2.0, np.where(third > 0, 1.0, 0.0))
        v_conf[origin] = 0.0
        v_two = np.where(origin, 0.0, 2.0)
        v = np.where(is_conf, v_conf, np.where(is_flag, third, v_two))
    v[absent] = 0.0
    kp[..., 2] = v
    kp[v <= 0, :2] = np.nan
    kp[v <= 0, 2] = 0.0
    return kp, scores


# ---------------------------------------------------------------------- images, labels CSV
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(fh) -> tuple[int, int] | None:
    """Width and height from a JPEG's SOF marker.

    None when an EXIF block comes first (its orientation may swap them: PIL decides) or the
    markers are not what we expect.
    """
    fh.seek(2)
    while True:
        b = fh.read(1)
        while b == b"\xff":
            b = fh.read(1)
        if not b:
            return None
        m = b[0]
        if 0xD0 <= m <= 0xD7 or m == 0x01:
            continue
        seg = fh.read(2)
        if len(seg) < 2 or m in (0xD9, 0xDA):
            return None
        length = (seg[0] << 8) | seg[1]
        if m in _SOF:
            data = fh.read(5)
            if len(data) < 5:
                return None
            return (data[3] << 8) | data[4], (data[1] << 8) | data[2]
        if m == 0xE1 and fh.read(4) == b"Exif":
            return None
        fh.seek(length - 2 - (4 if m == 0xE1 else 0), 1)
        if length < 2:
            return None


def _image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` from the file header, EXIF-rotated as ultralytics does.

    PNG and EXIF-less JPEG headers are parsed directly (a few bytes, no decoder); anything else
    goes through PIL, which also reads only the header.
    """
    size = None
    try:
        with open(path, "rb") as fh:
            head = fh.read(24)
            if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
                size = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
            elif head[:3] == b"\xff\xd8\xff":
                size = _jpeg_size(fh)
    except FileNotFoundError:
        raise InputError("Expected the image to exist, but it does not.", path) from None
    except OSError as exc:
        raise InputError(f"Expected a readable image, but reading failed: {exc}.", path) from None
    if size is None:
        from PIL import Image

        try:
            with Image.open(path) as im:
                w, h = im.size
                if im.format in ("JPEG", "MPO") and im.getexif().get(0x0112) in (6, 8):
                    w, h = h, w
            size = (w, h)
        # Any decoder failure is bad input. Not just PIL's own errors: once ultralytics is
        # imported it patches Image.open and raises ModuleNotFoundError('pi_heif') instead.
        except Exception as exc:  # noqa: BLE001
            raise InputError(
                f"Expected a readable image, but it could not be decoded ({exc}).", path
            ) from None
    w, h = size
    if w < 1 or h < 1:
        raise InputError(expected("image size", "at least 1x1", f"{w}x{h}"), path)
    return int(w), int(h)


def read_labels_csv(path: Path) -> dict[str, tuple[str | None, str | None, int]]:
    """``file -> (stance, subject, line)`` from a ``file,stance[,subject]`` CSV.

    Raises:
        InputError: Not UTF-8, a line the CSV parser refuses (e.g. a bare carriage return
            inside a field), missing columns, names escaping the dataset, duplicate files.
    """
    text = _read_text(Path(path), "labels CSV")
    reader = csv.reader(_io.StringIO(text))
    try:
        return _labels_csv_rows(reader, path)
    except csv.Error as exc:
        raise InputError(
            f"Expected a CSV file,stance[,subject], but the line cannot be parsed: {exc}.",
            path,
            reader.line_num,
        ) from None


def _labels_csv_rows(reader: Any, path: Path) -> dict[str, tuple[str | None, str | None, int]]:
    """The rows of :func:`read_labels_csv` (its ``csv.Error`` is turned into an InputError)."""
    header = next(reader, None)
    cols = [c.strip().lower() for c in header or []]
    if "file" not in cols or "stance" not in cols:
        raise InputError(
            expected("labels CSV header", "'file,stance[,subject]'", ",".join(header or [])),
            path,
            1,
        )
    fi, si = cols.index("file"), cols.index("stance")
    ui = cols.index("subject") if "subject" in cols else None
    out: dict[str, tuple[str | None, str | None, int]] = {}
    for row in reader:
        if not row or not any(c.strip() for c in row):
            continue
        line = reader.line_num
        if len(row) < len(cols):
            raise InputError(expected("columns", f"{len(cols)} values", len(row)), path, line)
        name = safe_relpath(row[fi].strip(), "file", path, line)
        if name in out:
            raise InputError(
                f"Expected each file once, but {name!r} is also on line {out[name][2]}.", path, line
            )
        stance = row[si].strip() or None
        subject = row[ui].strip() or None if ui is not None else None
        out[name] = (stance, subject, line)
    return out


# ---------------------------------------------------------------------- the reader
def read_yolo(
    src: Path,
    *,
    labels: Path | None = None,
    subject_regex: str | None = None,
    stick_labels: Path | None = None,
    video: Path | None = None,
    kpt_values: str = "auto",
    skip_bad: bool = False,
    stance_from_folders: bool = True,
    images: Path | None = None,
) -> ImportResult:
    """Read a YOLO pose dataset or per-frame prediction files into a dataset.

    Args:
        src: A dataset yaml, a folder (``images/`` + ``labels/``, or labels beside images), or,
            with ``video``, the folder of ``<stem>_<frame>.txt`` files.
        labels: CSV ``file,stance[,subject]`` (``file`` relative to the images root; for video
            frames the virtual ``<stem>/<frame_index:06d>.jpg``).
        subject_regex: Regular expression searched in each image's file name (the video's for
            frames); its first group (or the whole match) is the subject.
        stick_labels: A folder of stick label files (2-keypoint lines) with the same relative
            paths as the person labels.
        video: The video the per-frame labels in ``src`` belong to.
        kpt_values: ``auto``, ``flag`` or ``conf``: how to read the third keypoint value (see the
            module docstring).
        skip_bad: Leave out images with bad labels (recorded in ``skipped``) instead of raising.
        stance_from_folders: Take the stance from the first folder level under the images root
            when the CSV does not give one.
        images: The folder of the source images when ``src`` holds only labels (ultralytics
            ``predict`` output: ``labels/<stem>.txt`` for ``DIR/<stem>.<ext>``).

    Returns:
        The dataset (19 keypoints, pixels), skipped items, notes and the media root (the images
        root, or the video's folder).

    Raises:
        InputError: Bad input (file and line named), unless ``skip_bad`` covers it.
        FileNotFoundError: ``src``, ``labels``, ``stick_labels`` or ``video`` does not exist.
    """
    src = Path(src)
    regex = check_reader_args(
        kpt_values,
        subject_regex,
        SRC=src,
        labels=labels,
        stick_labels=stick_labels,
        video=video,
        images=images,
    )
    if images is not None and (video is not None or src.is_file()):
        raise ValueError(
            "Expected --images only with a folder of label files (ultralytics predict output), "
            f"but got {'--video too' if video is not None else 'a yaml, which names its images'}."
        )
    csv_rows = read_labels_csv(Path(labels)) if labels is not None else None
    # 1. What to import.
    source = _discover(src, video, images)
    items = source.items
    notes = list(source.notes)
    errors: list[tuple[int | None, Path, int | None, str]] = list(source.errors)
    # 2. Labels: read every file, then parse all lines together.
    parser, file_item, no_label = _read_label_files(source, kpt_values, stick_labels)
    rows = parser.parse()
    for fi, line, reason in parser.errors:
        errors.append((int(file_item[fi]), parser.files[fi], line, reason))
    # 3. Image sizes (header reads) and the video's size.
    bad_items = {e[0] for e in errors if e[0] is not None}
    if errors and not skip_bad:
        _raise_first(errors)
    sizes = _item_sizes(source, bad_items, errors, skip_bad)
    # A label path named by an error that has no item (orphan labels) is skipped by itself.
    skipped = [SkippedItem(str(path), line, reason) for _item, path, line, reason in errors]
    if skip_bad and skipped:
        notes.append(
            f"{len(skipped)} bad items skipped ({len(bad_items)} images left out); "
            "see 'skipped' in the import report."
        )
    # 4. Persons and sticks in pixels, for the images that survive.
    keep_item = np.ones(len(items), dtype=bool)
    keep_item[list(bad_items)] = False
    row_item = file_item[rows.file] if len(rows.file) else np.zeros(0, np.int64)
    kp_n, scores = _interpret(rows, _settle_modes(parser._modes, notes))
    kp_px, bb = _to_pixels(kp_n, rows.box, sizes[row_item].astype(np.float64))
    alive = keep_item[row_item]
    person = np.flatnonzero(alive & ~rows.stick)
    stick = np.flatnonzero(alive & rows.stick)
    order = np.lexsort((rows.line[person], rows.file[person], row_item[person]))
    person = _drop_repeated_persons(person[order], rows, parser.files, notes)
    pkp, pscore = kp_px[person], scores[person]
    if len(stick):
        unmatched = _attach_sticks(
            pkp, pscore, bb[person], row_item[person], kp_px[stick], scores[stick], row_item[stick]
        )
        if unmatched.any():
            where = [f"{parser.files[rows.file[s]]}:{rows.line[s]}" for s in stick[unmatched]]
            notes.append(
                f"{len(where)} sticks were not attached to a person (no free person "
                f"with a wrist near the grip): {', '.join(where[:20])}"
                f"{' …' if len(where) > 20 else ''}"
            )
    no_stick_in_source = np.isnan(rows.kp[person][:, layout.GRIP, 0])
    missing_stick = int((no_stick_in_source & (pkp[:, layout.GRIP, 2] <= 0)).sum())
    if missing_stick:  # worded as the COCO reader words it
        notes.append(
            f"{missing_stick} of {len(person)} annotations have 17 keypoints: the stick "
            "(stick_grip, stick_tip) is marked missing"
        )
    if no_label:
        notes.append(f"{no_label} images have no label file: imported with no persons.")
    # 5. Images table: stance and subject.
    image_ids = np.cumsum(keep_item)  # 1-based ids of kept items
    stance, subject = _stances_subjects(
        items, keep_item, source, csv_rows, regex, stance_from_folders, notes, labels
    )
    image_records = _image_records(items, keep_item, image_ids, sizes, stance, subject)
    ann_records = _ann_records(image_ids[row_item[person]], rows.conf[person], rows.track[person])
    bb_p = bb[person]
    nobox = ~np.isfinite(bb_p).all(1)
    if nobox.any():
        bb_p[nobox] = boxes_from_keypoints(pkp[nobox])
    ds = Dataset.from_records(
        image_records,
        ann_records,
        pkp,
        scores=pscore,
        bboxes=bb_p,
        videos=[source.video] if source.video else [],
        media_root=str(source.images_root),
    )
    return ImportResult(dataset=ds, skipped=skipped, notes=notes, media_root=source.images_root)


def _discover(src: Path, video: Path | None, images: Path | None) -> _Source:
    """What to import: a video's per-frame labels, a yaml, or a folder (its yaml first)."""
    if video is not None:
        return _discover_video(src, Path(video))
    if src.is_file():
        if src.suffix.lower() not in (".yaml", ".yml"):
            raise InputError(
                "Expected a dataset yaml, a YOLO dataset folder, or a folder of "
                "per-frame label files with --video FILE.",
                src,
            )
        return _discover_yaml(src)
    if images is None and (y := _folder_yaml(src, strict=True)) is not None:
        return _discover_yaml(y)
    return _discover_folder(src, images)


def _read_label_files(
    source: _Source, kpt_values: str, stick_labels: Path | None
) -> tuple[_LabelParser, np.ndarray, int]:
    """A parser holding every label file (and stick label file) of the items.

    Returns:
        The parser, the item of each label file it read, and how many items have no label.
    """
    parser = _LabelParser(
        kpt_shape=source.kpt_shape,
        names=source.names,
        kpt_names=source.kpt_names,
        kpt_values=kpt_values,
        yaml_path=source.yaml_path,
        key_line=source.key_line,
    )
    item_of_file: list[int] = []
    no_label = 0
    for i, it in enumerate(source.items):
        if it.label is not None and os.path.isfile(it.label):
            parser.add(it.label)
            item_of_file.append(i)
        else:
            no_label += 1
        if stick_labels is not None:
            rel = (
                Path(os.path.relpath(it.label, source.labels_root))
                if it.label is not None and source.labels_root is not None
                else Path(it.file_name).with_suffix(".txt")
            )
            sp = Path(stick_labels) / rel
            if sp.is_file():
                parser.add(sp, stick_only=True)
                item_of_file.append(i)
    return parser, np.asarray(item_of_file, dtype=np.int64), no_label


def _item_sizes(source: _Source, bad_items: set, errors: list, skip_bad: bool) -> np.ndarray:
    """``(n_items, 2)`` width, height: the video's, or each image's header (bad ones 0).

    An unreadable image raises, or with ``skip_bad`` joins ``errors`` and ``bad_items``.
    """
    sizes = np.zeros((len(source.items), 2), dtype=np.int64)
    if source.video is not None:
        sizes[:] = (source.video["width"], source.video["height"])
        return sizes
    for i, it in enumerate(source.items):
        if i in bad_items:
            continue
        try:
            sizes[i] = _image_size(it.image)
        except InputError as exc:
            if not skip_bad:
                raise
            errors.append((i, exc.path, None, exc.reason))
            bad_items.add(i)
    return sizes


def _settle_modes(modes: np.ndarray, notes: list[str]) -> np.ndarray:
    """Per label file ``flag``/``conf``: an ambiguous file follows the majority (noted)."""
    undecided = modes == "?"
    if undecided.any():
        decided = [m for m in modes if m in ("flag", "conf")]
        fill = max(("flag", "conf"), key=decided.count) if decided else "flag"
        modes = modes.copy()
        modes[undecided] = fill
        notes.append(
            f"{int(undecided.sum())} label files hold only 0 and 1 as third keypoint "
            f"values (flags or confidences?); read as {fill}s"
            f"{' like the other files' if decided else ''}; pass --kpt-values to "
            "choose."
        )
    if (modes == "conf").any():
        notes.append(
            f"{int((modes == 'conf').sum())} label files carry keypoint confidences: "
            f"kept as scores; v = 2 where conf >= {CONF_VISIBLE}, else 1."
        )
    return modes


def _to_pixels(kp_n: np.ndarray, box: np.ndarray, wh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalised keypoints and ``cx cy w h`` boxes -> pixels (``x, y, w, h`` boxes).

    Shapes:
        ``kp_n``: ``(n, 19, 3)``; ``box``: ``(n, 4)``; ``wh``: ``(n, 2)`` image sizes.
    """
    kp_px = kp_n.copy()
    kp_px[..., 0] *= wh[:, None, 0]
    kp_px[..., 1] *= wh[:, None, 1]
    if not len(box):
        return kp_px, np.zeros((0, 4))
    bb = np.stack(
        [
            (box[:, 0] - box[:, 2] / 2) * wh[:, 0],
            (box[:, 1] - box[:, 3] / 2) * wh[:, 1],
            box[:, 2] * wh[:, 0],
            box[:, 3] * wh[:, 1],
        ],
        axis=1,
    )
    return kp_px, bb


def _drop_repeated_persons(
    person: np.ndarray, rows: _Rows, files: list[Path], notes: list[str]
) -> np.ndarray:
    """Keep the first of persons written twice in one label file (a repeated line), noted.

    A repeat would import as two people standing in the same place.
    """
    if len(person) <= 1:
        return person
    sig = np.concatenate(
        [
            rows.file[person, None].astype(np.float64),
            rows.cls[person, None],
            rows.box[person],
            np.nan_to_num(rows.kp[person], nan=-9.0).reshape(len(person), -1),
        ],
        1,
    )
    # One opaque bytes value per row: 5x faster than np.unique(axis=0). Identical lines
    # parse to identical floats, so byte equality is the test we want.
    rows_as_bytes = np.ascontiguousarray(sig).view(np.dtype((np.void, sig.shape[1] * 8)))
    _, first = np.unique(rows_as_bytes.ravel(), return_index=True)
    dup = np.ones(len(person), dtype=bool)
    dup[first] = False
    if not dup.any():
        return person
    where = [f"{files[rows.file[p]]}:{rows.line[p]}" for p in person[dup]]
    notes.append(
        f"{len(where)} persons are written twice in their label file (the same line "
        f"repeated): each imported once, the repeats left out: {', '.join(where[:10])}"
        f"{' …' if len(where) > 10 else ''}"
    )
    return person[~dup]


def _image_records(
    items: list[_Item],
    keep_item: np.ndarray,
    image_ids: np.ndarray,
    sizes: np.ndarray,
    stance: list,
    subject: list,
) -> list[dict]:
    """The ``images`` records of the kept items."""
    out = []
    for i in np.flatnonzero(keep_item):
        it = items[i]
        rec = {
            "id": int(image_ids[i]),
            "file_name": it.file_name,
            "width": int(sizes[i, 0]),
            "height": int(sizes[i, 1]),
            "stance": stance[i],
            "subject": subject[i],
        }
        if it.frame_index is not None:
            rec["video_id"] = 1
            rec["frame_index"] = it.frame_index
        if it.split is not None:
            rec["split"] = it.split
        out.append(rec)
    return out


def _ann_records(ann_image: np.ndarray, conf: np.ndarray, track: np.ndarray) -> list[dict]:
    """The ``annotations`` records (ids from 1) with box confidence and track where known."""
    out = []
    for j in range(len(ann_image)):
        rec = {"id": j + 1, "image_id": int(ann_image[j]), "category_id": 1}
        if np.isfinite(conf[j]):
            rec["score"] = float(conf[j])
        if np.isfinite(track[j]):
            rec["track_id"] = int(track[j])
        out.append(rec)
    return out


def _raise_first(errors: list[tuple[int | None, Path, int | None, str]]) -> None:
    item, path, line, reason = min(
        errors, key=lambda e: (e[0] if e[0] is not None else -1, e[2] or 0)
    )
    raise InputError(reason, path, line)


def _attach_sticks(
    pkp: np.ndarray,
    pscore: np.ndarray,
    pbox: np.ndarray,
    pimg: np.ndarray,
    skp: np.ndarray,
    sscore: np.ndarray,
    simg: np.ndarray,
) -> np.ndarray:
    """Give each stick (grip, tip) to the nearest free person of its image; in place.

    Distance is from the stick's grip to the person's nearer wrist (left 9 or right 10: a
    left-handed player holds it in the left hand). Pairs are taken closest first, one stick per
    person, persons that already have stick points excluded, within ``ATTACH_DIAG`` of the
    person's box diagonal.

    Returns:
        ``(m,)`` bool: sticks left unattached.
    """
    unmatched = np.ones(len(skp), dtype=bool)
    grips = skp[:, layout.GRIP, :2]
    for img in np.unique(simg):
        ps = np.flatnonzero((pimg == img) & (pkp[:, layout.GRIP, 2] <= 0))
        ss = np.flatnonzero(simg == img)
        if not len(ps):
            continue
        wrists = pkp[ps][:, [layout.L_WRIST, layout.R_WRIST], :2]  # (p, 2, 2)
        d = np.linalg.norm(grips[ss][:, None, None, :] - wrists[None], axis=-1)  # (s, p, 2)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            d = np.nanmin(d, axis=2)
        diag = np.hypot(pbox[ps, 2], pbox[ps, 3])
        d[~(d <= ATTACH_DIAG * diag[None, :])] = np.inf
        while np.isfinite(d).any():
            si, pi = np.unravel_index(np.argmin(d), d.shape)
            pkp[ps[pi], [layout.GRIP, layout.TIP]] = skp[ss[si], [layout.GRIP, layout.TIP]]
            pscore[ps[pi], [layout.GRIP, layout.TIP]] = sscore[ss[si], [layout.GRIP, layout.TIP]]
            unmatched[ss[si]] = False
            d[si, :] = np.inf
            d[:, pi] = np.inf
    return unmatched


def _stances_subjects(
    items: list[_Item],
    keep: np.ndarray,
    source: _Source,
    csv_rows: dict | None,
    regex: re.Pattern | None,
    from_folders: bool,
    notes: list[str],
    labels: Path | None,
):
    n = len(items)
    stance: list[str | None] = [None] * n
    subject: list[str | None] = [None] * n
    used = set()
    not_in_csv = 0
    for i in np.flatnonzero(keep):
        it = items[i]
        row = csv_rows.get(it.file_name) if csv_rows is not None else None
        if row is not None:
            used.add(it.file_name)
            stance[i], subject[i] = row[0], row[1]
        elif csv_rows is not None:
            not_in_csv += 1
        if stance[i] is None and from_folders and row is None:
            stance[i] = it.folder_stance
        if subject[i] is None and regex is not None:
            target = source.video["file_name"] if source.video else PurePosixPath(it.file_name).name
            m = regex.search(target) or regex.search(it.file_name)
            if m:
                subject[i] = m.group(1) if m.re.groups else m.group(0)
    if csv_rows is not None:
        extra = len(csv_rows) - len(used)
        if not_in_csv:
            notes.append(
                f"{not_in_csv} images are not in {labels}"
                f"{' (stance from their folder)' if from_folders else ''}."
            )
        if extra:
            sample = sorted(set(csv_rows) - used)[:5]
            notes.append(
                f"{extra} rows of {labels} name no imported image (e.g. {', '.join(sample)})."
            )
    kept = len(np.flatnonzero(keep))
    unknown = sum(1 for i in np.flatnonzero(keep) if subject[i] is None)
    if unknown:  # worded as the COCO reader words it
        notes.append(
            f"subject unknown for {unknown} of {kept} images "
            "(give it in the labels CSV or with --subject-regex RE)"
        )
    return stance, subject


# ---------------------------------------------------------------------- detection
def detect_yolo(path: Path) -> bool:
    """Whether ``path`` looks like YOLO.

    A dataset yaml, a folder with ``images/`` + ``labels/`` or a dataset yaml, or a folder
    holding label ``.txt`` files (and no COCO ``.json``).
    """
    path = Path(path)
    if path.is_file():
        return path.suffix.lower() in (".yaml", ".yml") and _is_dataset_yaml(path)
    if not path.is_dir():
        return False
    if (path / "images").is_dir() and (path / "labels").is_dir():
        return True
    try:
        if _folder_yaml(path) is not None:
            return True
    except OSError:
        return False
    seen = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            if f.endswith(".json") and dirpath == str(path):
                return False
            if f.endswith(".txt") and f.lower() not in _NON_LABEL_TXT:
                return True
            seen += 1
        if seen > 2000:
            break
    return False


# ---------------------------------------------------------------------- export
def _yaml_text(train: str, val: str, test: str | None) -> str:
    names = "\n".join(f"    - {n}" for n in layout.KEYPOINT_NAMES)
    return (
        "# ultralytics YOLO pose dataset written by `toolkit export --format yolo`.\n"
        "# 19 keypoints: the 17 COCO body points, then stick_grip and stick_tip.\n"
        "path: # empty: the folder holding this file\n"
        f"train: {train}\n"
        f"val: {val}\n"
        + (f"test: {test}\n" if test else "")
        + f"\nkpt_shape: [{layout.NUM_KEYPOINTS}, 3]\n"
        f"flip_idx: [{', '.join(map(str, layout.FLIP_IDX))}]\n"
        "\nnames:\n  0: person\n"
        f"\nkpt_names:\n  0:\n{names}\n"
    )


def _label_lines(
    ds: Dataset, rows: np.ndarray, w: np.ndarray, h: np.ndarray
) -> tuple[list[str], int, np.ndarray]:
    """YOLO label lines for annotation ``rows`` (``w``/``h`` per row); (lines, clipped, kept)."""
    kp = ds.keypoints[rows]
    bb = np.array(ds.bboxes[rows], dtype=np.float64)
    nobox = ~np.isfinite(bb).all(1) | (bb[:, 2] <= 0) | (bb[:, 3] <= 0)
    if nobox.any():
        bb[nobox] = boxes_from_keypoints(kp[nobox])
    kept = np.isfinite(bb).all(1) & (bb[:, 2] > 0) & (bb[:, 3] > 0)
    kp, bb, w, h = kp[kept], bb[kept], w[kept], h[kept]
    x0 = np.clip(bb[:, 0], 0, w)
    y0 = np.clip(bb[:, 1], 0, h)
    x1 = np.clip(bb[:, 0] + bb[:, 2], 0, w)
    y1 = np.clip(bb[:, 1] + bb[:, 3], 0, h)
    box = np.stack([(x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h], 1)
    vis = (kp[..., 2] > 0) & np.isfinite(kp[..., :2]).all(-1)
    xn = kp[..., 0] / w[:, None]
    yn = kp[..., 1] / h[:, None]
    with np.errstate(invalid="ignore"):
        outside = vis & ((xn < 0) | (xn > 1) | (yn < 0) | (yn > 1))
    xn, yn = np.clip(xn, 0, 1), np.clip(yn, 0, 1)
    v = np.where(vis, np.clip(np.round(kp[..., 2]), 1, 2), 0)
    xn, yn = np.where(vis, xn, 0.0), np.where(vis, yn, 0.0)
    k = np.stack([xn, yn, v], -1).reshape(len(kp), 3 * layout.NUM_KEYPOINTS)
    table = np.concatenate([np.zeros((len(kp), 1)), box, k], 1)
    fmt = " ".join(["%d"] + ["%.6f"] * 4 + ["%.6f %.6f %d"] * layout.NUM_KEYPOINTS)
    buf = _io.StringIO()
    if len(table):
        np.savetxt(buf, table, fmt=fmt)
    return buf.getvalue().splitlines(), int(outside.sum()), kept


def write_yolo(ds: Dataset, out: Path, *, overwrite: bool = False, image_ext: str = ".jpg") -> Path:
    """Write ``ds`` as an ultralytics YOLO pose dataset (what ``yolo train data=...`` reads).

    Layout: ``data.yaml`` (empty ``path`` = its own folder, ``kpt_shape [19, 3]``, ``flip_idx``,
    ``kpt_names``, ``names {0: person}``), ``images/<file_name>`` (hard links or copies of the
    source images; video frames decoded and written as ``image_ext`` only here), and
    ``labels/<file_name>.txt`` (normalised, visibility flags 0/1/2, missing points ``0 0 0``; an
    image without persons gets an empty file). When images carry a ``split`` the yaml points to
    ``train.txt``/``val.txt`` image lists; otherwise ``train`` and ``val`` are both ``images``.
    ``labels.csv`` (``file,stance,subject``) keeps stances and subjects for re-import.

    Args:
        ds: The dataset.
        out: The folder to create (built beside it and renamed into place when complete).
        overwrite: Replace an existing ``out``.
        image_ext: Suffix for frames decoded from videos.

    Returns:
        ``out``.

    Raises:
        FileExistsError: ``out`` exists and ``overwrite`` is false.
        InputError: A source image or video is missing or unreadable.
    """
    out = Path(out)
    if not image_ext.startswith("."):
        image_ext = "." + image_ext
    imgs = ds.images
    if not len(imgs):
        raise InputError(
            "Expected a dataset with at least one image to export, but it has none "
            "(nothing to train on: import or detect images first).",
            ds.path,
        )
    is_frame = imgs["video_id"].notna().to_numpy(dtype=bool)
    names = _export_names(imgs["file_name"].tolist(), is_frame, image_ext)
    ann_img = ds.annotations["image_id"].to_numpy()
    img_row = {int(i): r for r, i in enumerate(imgs["id"].to_numpy())}
    ann_rows = np.array([img_row.get(int(i), -1) for i in ann_img], dtype=np.int64)
    with staged_dir(out, overwrite=overwrite) as stage:
        (stage / "images").mkdir()
        # Images: link or copy; video frames: decoded in order, one reader per video.
        sizes = _link_images(ds, stage / "images", names, is_frame)
        _write_frames(ds, stage / "images", names, np.flatnonzero(is_frame), sizes, image_ext)
        rows = np.flatnonzero(ann_rows >= 0)
        lines, clipped, kept = _label_lines(
            ds, rows, sizes[ann_rows[rows], 0], sizes[ann_rows[rows], 1]
        )
        per_image: dict[int, list[str]] = {}
        for r, text in zip(ann_rows[rows[kept]], lines, strict=True):
            per_image.setdefault(int(r), []).append(text)
        for r in range(len(imgs)):
            lab = Path(_img2label(stage / "images" / names[r]))
            lab.parent.mkdir(parents=True, exist_ok=True)
            body = per_image.get(r)
            lab.write_text("\n".join(body) + "\n" if body else "", encoding="utf-8")
        _write_splits_and_yaml(stage, imgs, names)
        _write_labels_csv(stage, imgs, names)
    dropped = int(len(rows) - kept.sum())
    if clipped or dropped:
        warnings.warn(
            f"YOLO export: {clipped} keypoints outside their image were clipped to its "
            f"border; {dropped} annotations without points or box were left out.",
            stacklevel=2,
        )
    return out


def _export_names(file_names: list[str], is_frame: np.ndarray, image_ext: str) -> list[str]:
    """Each image's name in the export (video frames get ``image_ext``), checked unique."""
    names = []
    for fn, frame in zip(file_names, is_frame, strict=True):
        fn = safe_relpath(fn)
        names.append(str(PurePosixPath(fn).with_suffix(image_ext)) if frame else fn)
    lower = [n.lower() for n in names]
    if len(set(lower)) != len(lower):
        dup = next(n for n in names if lower.count(n.lower()) > 1)
        raise InputError(f"Expected unique image file names, but {dup!r} occurs twice.")
    return names


def _link_images(ds: Dataset, images: Path, names: list[str], is_frame: np.ndarray) -> np.ndarray:
    """Hard-link (else copy) each image file into ``images``; returns ``(n, 2)`` sizes.

    Video frames are left for :func:`_write_frames` (size 0 here); every image's folder is made.
    """
    import shutil

    imgs = ds.images
    widths = imgs["width"].to_numpy(dtype=object)
    heights = imgs["height"].to_numpy(dtype=object)
    sizes = np.zeros((len(imgs), 2))
    for r in range(len(imgs)):
        dst = images / names[r]
        dst.parent.mkdir(parents=True, exist_ok=True)
        if is_frame[r]:
            continue
        srcp = ds.image_path(imgs["file_name"].iat[r])
        if not srcp.is_file():
            raise InputError("Expected the image to exist for export, but it does not.", srcp)
        try:
            os.link(srcp, dst)
        except OSError:
            shutil.copy2(srcp, dst)
        w, h = widths[r], heights[r]
        sizes[r] = _image_size(srcp) if _na(w) or _na(h) else (w, h)
    return sizes


def _write_frames(
    ds: Dataset,
    images: Path,
    names: list[str],
    frame_rows: np.ndarray,
    sizes: np.ndarray,
    image_ext: str,
) -> None:
    """Decode the video frames ``frame_rows`` (image rows) and write them as images."""
    if not len(frame_rows):
        return
    import cv2

    for pos, rgb in iter_frame_pixels(ds, frame_rows):
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        for r in frame_rows[pos]:
            if not cv2.imwrite(str(images / names[r]), bgr):
                raise InputError(
                    f"Expected OpenCV to write {image_ext} images, but it could not.",
                    images / names[r],
                )
            sizes[r] = (rgb.shape[1], rgb.shape[0])


def _write_splits_and_yaml(stage: Path, imgs: Any, names: list[str]) -> None:
    """``data.yaml``, and ``train.txt``/``val.txt``/``test.txt`` when images carry a split."""
    extras = imgs["extra"].tolist() if "extra" in imgs else [None] * len(imgs)
    splits = [(e or {}).get("split") if isinstance(e, dict) else None for e in extras]
    if any(splits):
        lists: dict[str, list[str]] = {}
        for n, s in zip(names, splits, strict=True):
            lists.setdefault(SPLIT_DIRS.get(str(s).lower(), "train") if s else "train", []).append(
                f"./images/{n}"
            )
        for key, entries in lists.items():
            (stage / f"{key}.txt").write_text("\n".join(entries) + "\n", encoding="utf-8")
        train = "train.txt" if "train" in lists else next(f"{k}.txt" for k in lists)
        val = "val.txt" if "val" in lists else train
        text = _yaml_text(train, val, "test.txt" if "test" in lists else None)
    else:
        text = _yaml_text("images", "images", None)
    (stage / "data.yaml").write_text(text, encoding="utf-8")


def _write_labels_csv(stage: Path, imgs: Any, names: list[str]) -> None:
    """``labels.csv`` (``file,stance,subject``) when any image has a stance or subject."""
    st = imgs["stance"].tolist()
    su = imgs["subject"].tolist()
    if not any(not _na(x) for x in st + su):
        return
    buf = _io.StringIO()
    wr = csv.writer(buf, lineterminator="\n")
    wr.writerow(["file", "stance", "subject"])
    for n, a, b in zip(names, st, su, strict=True):
        wr.writerow([n, "" if _na(a) else a, "" if _na(b) else b])
    (stage / "labels.csv").write_text(buf.getvalue(), encoding="utf-8")


def _na(v) -> bool:
    if v is None:
        return True
    try:
        import pandas as pd

        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


register_format("yolo", detect=detect_yolo, read=read_yolo, write=write_yolo)
