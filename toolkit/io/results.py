"""Pose-estimator results (AlphaPose, OpenPifPaf, mmpose): imported without ground truth.

These tools write what they detected, not a labelled dataset: no ``images`` list, no sizes, often
a file name where COCO has an integer id. :func:`read_results` accepts (``toolkit import SRC
--format results``, detected automatically where unambiguous):

* **AlphaPose** ``alphapose-results.json``: a list of
  ``{"image_id": "0.jpg", "category_id": 1, "keypoints": [x, y, s] * K, "score": 2.7,
  "box": [x, y, w, h], "idx": [0]}``. ``image_id`` is the image's file name (``--indir``) or, for
  a video, ``<frame>.jpg`` with the frame counted from 0. An integer ``image_id`` (AlphaPose's
  ``--format coco``) is the frame index of ``--video``, or the image whose name carries that
  number (``000000000139.jpg`` is 139).
* **OpenPifPaf** ``--json-output``: one file per image, ``<image file name>.predictions.json``,
  each a list of ``{"keypoints": [x, y, c] * 17, "bbox": [x, y, w, h], "score": s,
  "category_id": 1}``; a folder of them or one file. ``openpifpaf.video --json-output`` writes
  JSON lines instead, one ``{"frame": i, "predictions": [...]}`` a line (frames from 0).
* **mmpose** ``pred_out_dir`` files (``<image stem>.json``: a list of ``{"keypoints": [[x, y],
  ...], "keypoint_scores": [...], "bbox": [[x1, y1, x2, y2]], "bbox_score": s}``) and the demo's
  ``--save-predictions`` file (``{"meta_info": ..., "instance_info": [...]}``: for a video a list
  of ``{"frame_id": n, "instances": [...]}`` with frames counted from 1).

Keypoints: 17 COCO body points (19 when the stick is included); the first 17 of Halpe-26,
Halpe-136 and COCO-WholeBody-133 are COCO's, so those are read and the rest dropped (the notes say
so). The third value (or ``keypoint_scores``) is a confidence whatever its range: AlphaPose's go
slightly above 1. It is stored in ``Dataset.scores`` clipped to 0..1 (the dataset's range; the
notes give the original range and each annotation keeps the unclipped values in
``source_keypoint_scores`` when any was outside); ``v = 2`` when ``conf >= 0.5``, ``1`` when
below, missing at 0 or at ``(0, 0)``. The person score (``score``/``bbox_score``, AlphaPose's can
exceed 1) is kept as the annotation's ``score``. Every point has provenance ``predicted``.

Images: ``images=DIR`` is the folder the tool read (default: the results file's folder, or the
folder of per-image files); ``video=FILE`` the video it read, whose frames become images
``<stem>/<frame:06d>.jpg`` with ``frame_index`` taken from the number in the name. Only images
the results name become dataset images (per-image files name theirs even when empty), in natural
order (``frame_2`` before ``frame_10``). No ground-truth file is needed.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import orjson

from toolkit import layout
from toolkit.dataset import Dataset, boxes_from_keypoints
from toolkit.errors import InputError, expected
from toolkit.fileio import safe_relpath
from toolkit.io import (
    ImportResult,
    SkippedItem,
    check_reader_args,
    frame_number,
    natural_key,
    register_format,
)
from toolkit.io.yolo import _image_size, _stances_subjects, read_labels_csv
from toolkit.media import IMAGE_SUFFIXES
from toolkit.media.video import probe
from toolkit.schema import field_path, locate_line

#: Keypoint counts whose first 17 points are COCO's body points, with the layout's name.
LAYOUTS = {
    17: "COCO-17",
    19: "COCO-17 + stick",
    26: "Halpe-26",
    133: "COCO-WholeBody-133",
    136: "Halpe-136",
}
#: A confidence at or above this makes a point visible (v = 2); below it, v = 1.
CONF_VISIBLE = 0.5
_PIFPAF_SUFFIX = ".predictions.json"


@dataclass
class _Person:
    """One detected person before it is placed in the dataset."""

    key: Any  # image key: a file name (str) or a number (int)
    kp: np.ndarray  # (K, 3) x, y, confidence
    score: float | None
    box: list[float] | None  # x, y, w, h
    track: int | None


class _Bad(Exception):
    def __init__(self, path: Path, raw: bytes | None, parts: list, reason: str):
        super().__init__(reason)
        self.path, self.raw, self.parts, self.reason = path, raw, parts, reason

    def error(self) -> InputError:
        where = f"'{field_path(self.parts)}': " if self.parts else ""
        return InputError(where + self.reason, self.path, locate_line(self.raw, self.parts))


# ---------------------------------------------------------------------- detection
def _head(path: Path, n: int = 1 << 16) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(n).lstrip()
    except OSError:
        return b""


def _looks_like_results(path: Path) -> bool:
    head = _head(path)
    if head.startswith(b"{"):
        return b'"instance_info"' in head or (b'"frame"' in head and b'"predictions"' in head)
    if not head.startswith(b"["):
        return False
    if b'"keypoints"' not in head and head.rstrip() != b"[]":
        return False
    if path.name.endswith(_PIFPAF_SUFFIX):
        return True
    # AlphaPose: a file name as image_id, or its own fields; per-image files have no image_id.
    return (
        re.search(rb'"image_id"\s*:\s*"', head) is not None
        or b'"idx"' in head
        or b'"box"' in head
        or (b'"keypoints"' in head and b'"image_id"' not in head)
    )


def detect_results(path: Path) -> bool:
    """An AlphaPose/OpenPifPaf/mmpose results file, or a folder holding only such files."""
    path = Path(path)
    if path.is_file():
        return path.suffix.lower() in (".json", ".jsonl") and _looks_like_results(path)
    if not path.is_dir():
        return False
    try:
        names = os.listdir(path)
    except OSError:
        return False
    jsons = [n for n in names if n.lower().endswith(".json")]
    if not jsons or any(n.lower().endswith(".txt") for n in names):
        return False
    if {"images", "labels"} <= set(names):
        return False
    if all(n.endswith(_PIFPAF_SUFFIX) for n in jsons):
        return True
    # Judge by the first few files that hold somebody (an empty list fits any tool).
    sample = [n for n in sorted(jsons) if _head(path / n, 64).rstrip() != b"[]"][:3]
    return bool(sample) and all(_looks_like_results(path / n) for n in sample)


# ---------------------------------------------------------------------- parsing
def _load(path: Path) -> tuple[Any, bytes]:
    """The parsed file and its text.

    JSON lines (one object a line, as ``openpifpaf.video`` writes) come back as a list, with a
    text that keeps each object on its own line.
    """
    raw = path.read_bytes()
    if not raw.strip():
        raise InputError("Expected a JSON results list, but the file is empty.", path)
    try:
        return orjson.loads(raw), raw
    except orjson.JSONDecodeError as exc:
        error = exc
    text = _json_lines_as_array(raw)
    if text is not None:
        try:
            return orjson.loads(text), text
        except orjson.JSONDecodeError as exc:
            error = exc
    raise InputError(
        f"Expected valid JSON, but parsing failed: {error.msg}.", path, error.lineno
    ) from None


def _json_lines_as_array(raw: bytes) -> bytes | None:
    """JSON lines as one JSON array with the same line numbers (for messages), or None."""
    lines = raw.splitlines()
    filled = [i for i, ln in enumerate(lines) if ln.strip()]
    if len(filled) < 2 or not all(lines[i].lstrip().startswith(b"{") for i in filled):
        return None
    for i in filled[:-1]:
        lines[i] = lines[i].rstrip() + b","
    lines[filled[0]] = b"[" + lines[filled[0]]
    lines[filled[-1]] = lines[filled[-1]].rstrip() + b"]"
    return b"\n".join(lines)


def _num(v: Any) -> bool:
    return type(v) in (int, float) and math.isfinite(v)


def _keypoints(entry: dict, path: Path, raw: bytes, parts: list) -> np.ndarray:
    """``(K, 3)`` x, y, confidence from a flat ``[x, y, c] * K`` list or mmpose's pairs."""
    kps = entry.get("keypoints")
    if not isinstance(kps, list) or not kps:
        got = kps if isinstance(kps, list) else type(kps).__name__
        raise _Bad(
            path, raw, parts + ["keypoints"], expected("keypoints", "a list of numbers", got)
        )
    if isinstance(kps[0], list):  # mmpose: [[x, y], ...] + keypoint_scores
        if not all(isinstance(p, list) and len(p) in (2, 3) and all(map(_num, p)) for p in kps):
            raise _Bad(path, raw, parts + ["keypoints"], "Expected [x, y] pairs of finite numbers.")
        xy = np.array([p[:2] for p in kps], dtype=np.float64)
        sc = entry.get("keypoint_scores")
        if sc is None:
            conf = np.array([p[2] if len(p) == 3 else 1.0 for p in kps], dtype=np.float64)
        elif isinstance(sc, list) and len(sc) == len(kps) and all(map(_num, sc)):
            conf = np.asarray(sc, dtype=np.float64)
        else:
            raise _Bad(
                path,
                raw,
                parts + ["keypoint_scores"],
                expected("keypoint_scores", f"{len(kps)} numbers", sc),
            )
        kp = np.concatenate([xy, conf[:, None]], 1)
    else:
        if not all(map(_num, kps)):
            k = next(i for i, v in enumerate(kps) if not _num(v))
            raise _Bad(
                path,
                raw,
                parts + ["keypoints", k],
                expected(f"keypoints[{k}]", "a finite number", kps[k]),
            )
        if len(kps) % 3:
            raise _Bad(
                path,
                raw,
                parts + ["keypoints"],
                expected("keypoints", "x, y, score per keypoint (a multiple of 3)", len(kps)),
            )
        kp = np.asarray(kps, dtype=np.float64).reshape(-1, 3)
    if len(kp) not in LAYOUTS:
        raise _Bad(
            path,
            raw,
            parts + ["keypoints"],
            expected(
                "the number of keypoints",
                f"one of {sorted(LAYOUTS)} ({', '.join(LAYOUTS.values())})",
                len(kp),
            )
            + " Other layouts (e.g. BlazePose-33) cannot be imported.",
        )
    return kp


def _box(entry: dict, path: Path, raw: bytes, parts: list) -> list[float] | None:
    for key in ("box", "bbox"):
        if key not in entry:
            continue
        b = entry[key]
        if isinstance(b, list) and len(b) == 1 and isinstance(b[0], list):  # mmpose: [[x1..y2]]
            b = b[0]
            if len(b) == 4 and all(map(_num, b)):
                return [b[0], b[1], b[2] - b[0], b[3] - b[1]]
        if isinstance(b, list) and len(b) == 4 and all(map(_num, b)):
            return [float(v) for v in b]
        raise _Bad(path, raw, parts + [key], expected(key, "4 finite numbers x, y, w, h", b))
    return None


def _score(entry: dict, path: Path, raw: bytes, parts: list) -> float | None:
    for key in ("score", "bbox_score"):
        if key in entry:
            s = entry[key]
            if isinstance(s, list) and len(s) == 1:
                s = s[0]
            if not _num(s):
                raise _Bad(path, raw, parts + [key], expected(key, "a finite number", s))
            return float(s)
    return None


def _track(entry: dict) -> int | None:
    t = entry.get("idx", entry.get("track_id"))
    if isinstance(t, list) and t:
        t = t[0]
    if _num(t) and float(t) == int(t) and t >= 0:
        return int(t)
    return None


def _person(entry: Any, key: Any, path: Path, raw: bytes, parts: list) -> _Person:
    if not isinstance(entry, dict):
        raise _Bad(path, raw, parts, expected(field_path(parts), "an object", type(entry).__name__))
    cat = entry.get("category_id", 1)
    if cat != 1:
        raise _Bad(path, raw, parts + ["category_id"], expected("category_id", "1 (person)", cat))
    return _Person(
        key=key,
        kp=_keypoints(entry, path, raw, parts),
        score=_score(entry, path, raw, parts),
        box=_box(entry, path, raw, parts),
        track=_track(entry),
    )


def _image_key(entry: Any, path: Path, raw: bytes, parts: list) -> Any:
    if not isinstance(entry, dict):
        raise _Bad(path, raw, parts, expected(field_path(parts), "an object", type(entry).__name__))
    if "image_id" not in entry:
        raise _Bad(
            path,
            raw,
            parts,
            "Expected an 'image_id' (AlphaPose's file name or frame), but it is missing; "
            "per-image result files (OpenPifPaf, mmpose) go one per image, named after it.",
        )
    key = entry["image_id"]
    if type(key) is int and key >= 0:
        return key
    if isinstance(key, str) and key.strip():
        try:
            return safe_relpath(key.strip(), "image_id")
        except InputError as exc:
            raise _Bad(path, raw, parts + ["image_id"], exc.reason) from None
    raise _Bad(
        path,
        raw,
        parts + ["image_id"],
        expected("image_id", "a file name or a non-negative integer", key),
    )


def _image_of_file(name: str) -> str:
    """The image a per-image results file belongs to (its name without the results suffix)."""
    if name.endswith(_PIFPAF_SUFFIX):
        return name[: -len(_PIFPAF_SUFFIX)]
    stem = name[: -len(".json")]
    return stem[len("results_") :] if stem.startswith("results_") else stem


def _collect(src: Path, skip_bad: bool, skipped: list[SkippedItem]) -> tuple[list, list, str, dict]:
    """Read every results file of ``src``.

    Returns:
        All persons, the image keys named (in source order), the tool's name, and where each
        key was first named (file, text, JSON path) for messages.
    """
    files = (
        sorted(
            (
                p
                for p in src.iterdir()
                if p.suffix.lower() == ".json" and not p.name.startswith(".")
            ),
            key=lambda p: natural_key(p.name),
        )
        if src.is_dir()
        else [src]
    )
    if not files:
        raise InputError("Expected .json results files in this folder, but found none.", src)
    got = _Collected(skip_bad, skipped)
    tool = "OpenPifPaf/mmpose"
    for f in files:
        doc, raw = _load(f)
        if isinstance(doc, dict) and "predictions" in doc:  # JSON lines of one line
            doc = [doc]
        if isinstance(doc, list) and doc and isinstance(doc[0], dict) and "frame" in doc[0]:
            tool = "OpenPifPaf"  # openpifpaf.video --json-output: {"frame", "predictions"}
            got.pifpaf_video(f, doc, raw)
        elif isinstance(doc, dict) and "instance_info" in doc:
            tool = "mmpose"
            got.mmpose(f, doc["instance_info"], raw)
        elif not isinstance(doc, list):
            raise InputError(
                expected("the top level", "a list of results", type(doc).__name__), f, 1
            )
        elif doc and isinstance(doc[0], dict) and "image_id" in doc[0]:
            tool = "AlphaPose"
            got.alphapose(f, doc, raw)
        else:
            got.per_image(f, _image_of_file(f.name), doc, raw, [])
    return got.persons, got.keys, tool, got.origin


class _Collected:
    """The persons read so far, the image keys named and where each key was first named."""

    def __init__(self, skip_bad: bool, skipped: list[SkippedItem]):
        self.skip_bad = skip_bad
        self.skipped = skipped
        self.persons: list[_Person] = []
        self.keys: list[Any] = []
        self.origin: dict[Any, tuple[Path, bytes, list]] = {}

    def bad(self, exc: _Bad) -> None:
        """Raise the problem, or with ``skip_bad`` record it as skipped."""
        err = exc.error()
        if not self.skip_bad:
            raise err
        self.skipped.append(SkippedItem(str(err.path), err.line, err.reason))

    def per_image(self, path: Path, key: Any, doc: Any, raw: bytes, parts: list) -> None:
        """The people of one image (a list); a bad one leaves the whole image out."""
        if not isinstance(doc, list):
            raise InputError(
                expected(field_path(parts), "a list of detected people", type(doc).__name__),
                path,
                locate_line(raw, parts),
            )
        got = []
        try:
            for j, e in enumerate(doc):
                got.append(_person(e, key, path, raw, [*parts, j]))
        except _Bad as exc:
            self.bad(exc)  # a half-read image would teach that its other people are background
            return
        self.keys.append(key)
        self.origin.setdefault(key, (path, raw, parts))
        self.persons.extend(got)

    def pifpaf_video(self, f: Path, doc: list, raw: bytes) -> None:
        """``openpifpaf.video --json-output``: ``{"frame", "predictions"}`` per line."""
        for i, fr in enumerate(doc):
            frame = fr.get("frame") if isinstance(fr, dict) else None
            if type(frame) is not int or frame < 0:
                self.bad(
                    _Bad(
                        f,
                        raw,
                        [i, "frame"],
                        expected("frame", "a frame index counted from 0", frame),
                    )
                )
                continue
            self.per_image(f, frame, fr.get("predictions"), raw, [i, "predictions"])

    def mmpose(self, f: Path, info: Any, raw: bytes) -> None:
        """Read mmpose's ``instance_info``: per-frame ``{frame_id, instances}`` or one image's list."""
        if not (
            isinstance(info, list) and info and isinstance(info[0], dict) and "frame_id" in info[0]
        ):
            self.per_image(f, _image_of_file(f.name), info, raw, ["instance_info"])
            return
        for i, fr in enumerate(info):
            fid = fr.get("frame_id") if isinstance(fr, dict) else None
            if type(fid) is not int or fid < 1:
                self.bad(
                    _Bad(
                        f,
                        raw,
                        ["instance_info", i, "frame_id"],
                        expected("frame_id", "a frame number counted from 1", fid),
                    )
                )
                continue
            self.per_image(f, fid - 1, fr.get("instances"), raw, ["instance_info", i, "instances"])

    def alphapose(self, f: Path, doc: list, raw: bytes) -> None:
        """AlphaPose: one list of people, each naming its ``image_id``."""
        by_key: dict[Any, list[int]] = {}
        for j, e in enumerate(doc):
            try:
                by_key.setdefault(_image_key(e, f, raw, [j]), []).append(j)
            except _Bad as exc:
                self.bad(exc)
        for key, idx in by_key.items():
            try:
                got = [_person(doc[j], key, f, raw, [j]) for j in idx]
            except _Bad as exc:
                self.bad(exc)
                continue
            self.keys.append(key)
            self.origin.setdefault(key, (f, raw, [idx[0], "image_id"]))
            self.persons.extend(got)


# ---------------------------------------------------------------------- images
def _list_images(root: Path) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for f in filenames:
            if os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES and not f.startswith("."):
                out.append(os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, "/"))
    return sorted(out, key=natural_key)


class _Images:
    """Maps image keys to files in ``root`` (by name, stem or number)."""

    def __init__(self, root: Path):
        self.root = root
        self._files: list[str] | None = None
        self._by_stem: dict[str, list[str]] = {}
        self._by_num: dict[int, list[str]] = {}

    def _index(self) -> None:
        if self._files is not None:
            return
        self._files = _list_images(self.root)
        for f in self._files:
            p = PurePosixPath(f)
            self._by_stem.setdefault(str(p.with_suffix("")), []).append(f)
            self._by_stem.setdefault(p.stem, []).append(f)
            n = frame_number(f)
            if n is not None:
                self._by_num.setdefault(n, []).append(f)

    def find(self, key: Any) -> tuple[str | None, int]:
        """The file for ``key`` (None unless exactly one matches) and how many match."""
        if isinstance(key, str):
            if (self.root / key).is_file():
                return key, 1
            self._index()
            hits = self._by_stem.get(key, []) or self._by_stem.get(
                str(PurePosixPath(key).with_suffix("")), []
            )
        else:
            self._index()
            hits = self._by_num.get(int(key), [])
        hits = sorted(set(hits), key=natural_key)
        return (hits[0] if len(hits) == 1 else None), len(hits)


# ---------------------------------------------------------------------- the reader
def read_results(
    src: Path,
    *,
    images: Path | None = None,
    video: Path | None = None,
    labels: Path | None = None,
    subject_regex: str | None = None,
    skip_bad: bool = False,
) -> ImportResult:
    """Read AlphaPose, OpenPifPaf or mmpose results into a dataset (no ground truth needed).

    Args:
        src: A results ``.json`` (AlphaPose list, mmpose ``instance_info``, one per-image file)
            or a folder of per-image result files.
        images: The folder of the images the tool read (default: the results' folder).
        video: The video the tool read; results then name its frames.
        labels: CSV ``file,stance[,subject]`` (``file`` as the image's ``file_name``; for video
            frames the virtual ``<stem>/<frame:06d>.jpg``).
        subject_regex: Searched in each image's name (the video's name for frames).
        skip_bad: Leave out bad entries (their whole image) and record them.

    Returns:
        The dataset (19 keypoints, pixels, provenance ``predicted``), skipped items, notes and
        the media root.

    Raises:
        InputError: Bad input (file, field path and line named), an image or frame not found.
        FileNotFoundError: ``src``, ``images``, ``video`` or ``labels`` does not exist.
    """
    src = Path(src)
    regex = check_reader_args(
        "auto", subject_regex, SRC=src, images=images, video=video, labels=labels
    )
    if images is not None and video is not None:
        raise ValueError("Expected --images or --video, not both: results name one or the other.")
    skipped: list[SkippedItem] = []
    notes: list[str] = []
    persons, keys, tool, origin = _collect(src, skip_bad, skipped)
    here = src if src.is_dir() else src.parent
    # 1. Image keys -> file names, frames, sizes.
    vinfo, media = _media(video, images, here)
    resolved = _resolve_keys(keys, origin, src, tool, vinfo, media, skip_bad, skipped)
    keys = _ordered_keys(keys, resolved, src, by_frame=vinfo is not None)
    image_id = {k: i + 1 for i, k in enumerate(keys)}
    # 2. Persons -> (N, 19, 3) in our layout.
    persons = [p for p in persons if p.key in image_id]
    persons.sort(key=lambda p: image_id[p.key])
    kp, scores, raw_scores = _persons_array(persons, notes)
    # 3. Records.
    sizes = {
        k: (int(vinfo["width"]), int(vinfo["height"]))
        if vinfo is not None
        else _image_size(media / resolved[k][0])
        for k in keys
    }
    anns, bb = _ann_records(persons, image_id, raw_scores, kp)
    csv_rows = read_labels_csv(Path(labels)) if labels is not None else None
    items = [_Item(resolved[k][0]) for k in keys]
    stance, subject = _stances_subjects(
        items,
        np.ones(len(items), bool),
        _VideoName(vinfo),
        csv_rows,
        regex,
        False,
        notes,
        labels,
    )
    no_stance = sum(x is None for x in stance)
    if no_stance:
        notes.append(
            f"stance unknown for {no_stance} of {len(keys)} images (attach them afterwards with "
            "`toolkit label DATASET --labels CSV`, by frame or by video,start,end,stance segment)"
        )
    image_records = []
    for i, k in enumerate(keys):
        w, h = sizes[k]
        rec = {
            "id": image_id[k],
            "file_name": resolved[k][0],
            "width": w,
            "height": h,
            "stance": stance[i],
            "subject": subject[i],
        }
        if vinfo is not None:
            rec["video_id"] = 1
            rec["frame_index"] = resolved[k][1]
        image_records.append(rec)
    if vinfo is not None and keys:
        notes.append(
            f"{len(keys)} of {vinfo['frame_count']} frames of {vinfo['file_name']} have results "
            "(frames without people are not listed)"
        )
    notes.append(
        f"results ({tool}): {len(persons)} people on {len(keys)} images (provenance 'predicted', "
        "no ground truth)"
    )
    ds = Dataset.from_records(
        image_records,
        anns,
        kp,
        scores=scores,
        # A point the tool did not report stays as imported (missing), not 'predicted'.
        source=np.where(kp[..., 2] > 0, layout.PREDICTED, layout.IMPORTED).astype(np.uint8),
        bboxes=bb,
        videos=[vinfo] if vinfo else [],
        media_root=str(media),
    )
    return ImportResult(dataset=ds, skipped=skipped, notes=notes, media_root=media)


def _media(video: Path | None, images: Path | None, here: Path) -> tuple[dict | None, Path]:
    """The video's ``videos`` entry (None for images) and the media root."""
    if video is None:
        return None, Path(os.path.abspath(images if images is not None else here))
    video = Path(os.path.abspath(video))
    vinfo = {"id": 1, "file_name": video.name, **probe(video)}
    if not vinfo["fps"]:
        del vinfo["fps"]
    return vinfo, video.parent


def _resolve_keys(
    keys: list,
    origin: dict,
    src: Path,
    tool: str,
    vinfo: dict | None,
    media: Path,
    skip_bad: bool,
    skipped: list[SkippedItem],
) -> dict[Any, tuple[str, int | None]]:
    """Image key -> ``(file_name, frame_index or None)``.

    An unresolvable key raises, or with ``skip_bad`` is skipped.
    """
    finder = _Images(media) if vinfo is None else None
    # AlphaPose is mostly run on videos, the per-image tools on image folders: name that first.
    hint = (
        "pass --video FILE (the video the tool read) or --images DIR (the folder of images)."
        if tool == "AlphaPose"
        else "pass --images DIR (the folder of images the tool read) or --video FILE (the video)."
    )
    resolved: dict[Any, tuple[str, int | None]] = {}
    for key in keys:
        if key in resolved:
            continue
        where = origin.get(key, (src, None, []))
        try:
            if vinfo is not None:
                resolved[key] = _frame_of_key(key, vinfo, where)
            else:
                resolved[key] = (_file_of_key(key, finder, media, hint, where), None)
        except _Bad as exc:
            err = exc.error()
            if not skip_bad:
                raise err from None
            skipped.append(SkippedItem(str(err.path), err.line, err.reason))
    return resolved


def _frame_of_key(key: Any, vinfo: dict, where: tuple) -> tuple[str, int]:
    """A video frame's virtual ``file_name`` and index from a key (a number, or a name)."""
    n = key if isinstance(key, int) else frame_number(key)
    if n is None or n >= vinfo["frame_count"]:
        raise _Bad(
            where[0],
            where[1],
            where[2],
            expected(
                "the frame",
                f"a frame number 0..{vinfo['frame_count'] - 1} of {vinfo['file_name']} "
                "(counted from 0)",
                key,
            ),
        )
    return f"{PurePosixPath(vinfo['file_name']).stem}/{n:06d}.jpg", n


def _file_of_key(key: Any, finder: _Images, media: Path, hint: str, where: tuple) -> str:
    """The one image file in ``media`` a key names (by name, stem or number)."""
    name, n_hits = finder.find(key)
    if name is None:
        what = (
            f"an image named {key!r}"
            if isinstance(key, str)
            else f"one image whose name carries the number {key}"
        )
        raise _Bad(
            where[0],
            where[1],
            where[2],
            f"Expected {what} in {media}, but found {'several' if n_hits > 1 else 'none'}; {hint}",
        )
    return name


def _ordered_keys(keys: list, resolved: dict, src: Path, by_frame: bool) -> list:
    """The resolved keys once each, in frame order (video) or natural file order.

    Raises:
        InputError: Two keys name the same image.
    """
    keys = [k for k in dict.fromkeys(keys) if k in resolved]
    by_name: dict[str, Any] = {}
    for k in keys:
        name = resolved[k][0]
        if name in by_name and by_name[name] != k:
            raise InputError(
                f"Expected each image once, but {by_name[name]!r} and {k!r} both name {name}.",
                src,
            )
        by_name[name] = k
    if by_frame:
        keys.sort(key=lambda k: resolved[k][1])
    else:
        keys.sort(key=lambda k: natural_key(resolved[k][0]))
    return keys


def _persons_array(
    persons: list[_Person], notes: list[str]
) -> tuple[np.ndarray, np.ndarray, list[list[float] | None]]:
    """The persons' points in our layout, their confidences, and raw scores outside 0..1.

    Returns:
        ``(N, 19, 3)`` keypoints (v = 2 where conf >= CONF_VISIBLE, 1 where > 0), ``(N, 19)``
        scores clipped to 0..1, and per person the original scores when any lay outside 0..1.
    """
    n = len(persons)
    kp = np.full((n, layout.NUM_KEYPOINTS, 3), np.nan)
    kp[..., 2] = 0
    scores = np.full((n, layout.NUM_KEYPOINTS), np.nan, np.float32)
    raw_scores: list[list[float] | None] = [None] * n
    counts: dict[int, int] = {}
    lo, hi = math.inf, -math.inf
    for i, p in enumerate(persons):
        k = len(p.kp)
        counts[k] = counts.get(k, 0) + 1
        take = layout.NUM_KEYPOINTS if k == layout.NUM_KEYPOINTS else layout.NUM_BODY
        src_kp = p.kp[:take]
        conf = src_kp[:, 2]
        if len(conf):
            lo, hi = min(lo, float(conf.min())), max(hi, float(conf.max()))
        if ((conf < 0) | (conf > 1)).any():
            raw_scores[i] = [float(c) for c in conf]
        at_origin = (src_kp[:, 0] == 0) & (src_kp[:, 1] == 0)
        v = np.where(conf >= CONF_VISIBLE, 2.0, np.where(conf > 0, 1.0, 0.0))
        v[at_origin] = 0.0
        kp[i, :take, :2] = np.where(v[:, None] > 0, src_kp[:, :2], np.nan)
        kp[i, :take, 2] = v
        scores[i, :take] = np.clip(conf, 0, 1)
    _layout_notes(counts, n, notes)
    outside = sum(r is not None for r in raw_scores)
    if outside:
        notes.append(
            f"keypoint scores range {lo:g}..{hi:g}: kept as confidences, clipped to 0..1 in "
            f"keypoint_scores for {outside} people (their originals are in "
            "'source_keypoint_scores')"
        )
    return kp, scores, raw_scores


def _layout_notes(counts: dict[int, int], n: int, notes: list[str]) -> None:
    """Notes on keypoint counts other than 19 (points dropped, the stick missing)."""
    for k, c in sorted(counts.items()):
        if k not in (layout.NUM_BODY, layout.NUM_KEYPOINTS):
            notes.append(
                f"{c} results have {k} keypoints ({LAYOUTS[k]}): the first 17 (COCO body) "
                f"were read, the other {k - 17} dropped"
            )
    n17 = sum(c for k, c in counts.items() if k != layout.NUM_KEYPOINTS)
    if n17:
        notes.append(  # worded as the COCO reader words it
            f"{n17} of {n} annotations have 17 keypoints: the stick (stick_grip, stick_tip) "
            "is marked missing"
        )


def _ann_records(
    persons: list[_Person], image_id: dict, raw_scores: list, kp: np.ndarray
) -> tuple[list[dict], np.ndarray]:
    """The ``annotations`` records and ``(N, 4)`` boxes (from the points where none given)."""
    bb = np.full((len(persons), 4), np.nan)
    anns = []
    for i, p in enumerate(persons):
        rec: dict[str, Any] = {"id": i + 1, "image_id": image_id[p.key], "category_id": 1}
        if p.score is not None:
            rec["score"] = p.score
        if p.track is not None:
            rec["track_id"] = p.track
        if raw_scores[i] is not None:
            rec["source_keypoint_scores"] = raw_scores[i]
        if p.box is not None:
            bb[i] = p.box
        anns.append(rec)
    nobox = ~np.isfinite(bb).all(1)
    if nobox.any():
        bb[nobox] = boxes_from_keypoints(kp[nobox])
    return anns, bb


@dataclass
class _Item:
    file_name: str


@dataclass
class _VideoName:
    video: dict | None


register_format("results", detect=detect_results, read=read_results, supersedes=("coco",))
