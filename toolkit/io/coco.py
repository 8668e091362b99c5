"""COCO keypoints JSON: import of ground truth and of results files, and export.

Sources :func:`read_coco` accepts (``toolkit import SRC --format coco``):

* a COCO keypoints file (``{"images", "annotations", "categories"}``, what pycocotools loads)
  with 19 keypoints (17 COCO body points + ``stick_grip``, ``stick_tip``) or 17 (the stick is then
  missing: ``v = 0``). Keypoints are mapped by the category's ``keypoints`` names (any order of
  our 19 names works); a category with other names is refused, naming them. Without names, 51
  values are read as COCO-17 and 57 as our 19 (the notes say so).
* a COCO *results* file (a list of ``{"image_id", "keypoints", "score"}``, what detectors and
  ``COCOeval`` use) with ``images_from=GT.json`` (a COCO file or a dataset directory) giving the
  images. Every point gets provenance ``predicted``; the third keypoint value is a confidence
  (0..1, stored in ``Dataset.scores``; ``v = 2`` when ``conf >= 0.5``, ``1`` when below, missing
  when ``0``) or a visibility flag (all values in {0, 1, 2}); ``kpt_values`` settles it.

Images: ``file_name``s are kept as written, relative to the image folder (``media_root``):
``images=DIR`` when given, else ``images/`` beside the JSON when the first image is there, else
the JSON's own folder. Every image must exist there (video frames of a ``videos`` list excepted).
Stance and subject come from the labels CSV (``file,stance[,subject]``, ``file`` as in
``file_name``), else the image's own ``stance``/``subject`` fields, else (subject only)
``subject_regex`` searched in the file's base name.

Round trip: every field we do not model (``license``, ``coco_url``, ``segmentation`` …, top-level
``info``/``licenses``) is kept, so ``toolkit export --format coco --keypoints 17`` of a COCO-17
import writes the original document back exactly (as parsed JSON), and the default 19-point
export differs only by the two stick points (``0, 0, 0``) and the category's extended
``keypoints``/``skeleton``. ``num_keypoints`` is recomputed (points with ``v > 0``); a missing
point is written ``0, 0, 0``.

Bad input (empty, not UTF-8, not JSON, NaN, missing or ill-typed fields, wrong keypoint count,
duplicate ids or file names, names escaping the image folder, unknown image ids, missing images)
is an :class:`~toolkit.errors.InputError` naming the file, the field path
(``annotations[3].keypoints``) and its line. An import refuses exactly what
:meth:`Dataset.load <toolkit.dataset.Dataset.load>` would refuse: every image, video and
annotation also goes through the dataset schema's item check (``frame_index`` a whole number
>= 0, ids that fit, video names inside the media root), visibility flags must be 0, 1 or 2,
coordinates within +-1e6 px, names at most 255 bytes a part, fields nested at most 64 levels, a
skeleton of keypoint-number pairs. A box-only results file is refused with a message saying so.

Our extensions round-trip: ``toolkit export --format coco`` writes ``keypoint_source`` and
``keypoint_scores`` where they carry information, and this reader reads them back, so an
export/re-import keeps provenance (``predicted``, ``human`` …) and scores. With ``skip_bad=True`` a bad image entry, or an
image with a bad annotation, is left out with all its annotations and recorded; problems with the
file as a whole still raise.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import orjson

from toolkit import layout
from toolkit.dataset import (
    DATASET_FILE,
    Dataset,
    _clean_kpts,
    boxes_from_keypoints,
    json_rows,
)
from toolkit.errors import InputError, expected
from toolkit.fileio import atomic_write_bytes, name_length_problem, safe_relpath
from toolkit.io import ImportResult, SkippedItem, check_reader_args, register_format
from toolkit.io.yolo import read_labels_csv
from toolkit.schema import (
    COORD_LIMIT,
    MAX_DEPTH,
    check_record,
    depth_exceeds,
    field_path,
    locate_line,
    validate,
)

_COCO17 = list(layout.COCO_KEYPOINTS)
_NAMES19 = list(layout.KEYPOINT_NAMES)
_COCO17_SKELETON = [[a + 1, b + 1] for a, b in layout.COCO_SKELETON]
_SKELETON19 = [[a + 1, b + 1] for a, b in layout.SKELETON]
_IMAGE_MODELLED = ("id", "file_name", "width", "height")
_NUMBER_TYPES = {int, float}
_FLAGS = {0, 1, 2}
# Annotation fields whose length follows the source's keypoint count (checked here, not by the
# dataset schema's 19-point definitions).
_PER_KEYPOINT = (
    "keypoints",
    "keypoints_raw",
    "keypoint_scores",
    "keypoint_source",
    "num_keypoints",
)
_MODELLED_TOP = ("images", "annotations", "categories", "videos", "version", "media_root")
# Top-level fields the dataset schema constrains and an import keeps (checked as load checks them).
_CHECKED_TOP = ("info", "licenses", "import", "detect")
# A relative POSIX name that is already normal (no '..', '.', empty parts, backslashes):
# checked by regex; anything else goes through safe_relpath (which explains the problem).
_PLAIN_NAME = re.compile(
    r"^(?!.*//)(?!\.\.?/)(?!.*/\.\.?(/|$))(?!\.\.?$)[^/\\\x00\s][^\\\x00]*"
    r"(?<!/)(?<!\s)$"
)


class _Bad(Exception):
    """One bad item: ``parts`` is its JSON path, ``image_id`` the image to leave out."""

    def __init__(self, parts: list, reason: str, image_id: Any = None):
        super().__init__(reason)
        self.parts = parts
        self.reason = reason
        self.image_id = image_id


# ---------------------------------------------------------------------- reading JSON
def _load_json(path: Path) -> tuple[Any, bytes]:
    """Parse ``path`` as JSON; empty, non-UTF-8 and malformed files name the file and line."""
    raw = path.read_bytes()
    if not raw.strip():
        raise InputError("Expected a COCO JSON document, but the file is empty.", path)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(
            f"Expected UTF-8 text, but byte {exc.start} is not UTF-8.", path, line
        ) from None
    try:
        return orjson.loads(raw), raw
    except orjson.JSONDecodeError as exc:
        hint = (
            " (NaN and Infinity are not JSON: write missing points as 0, 0, 0)"
            if re.search(rb"\b(NaN|-?Infinity)\b", raw)
            else ""
        )
        raise InputError(
            f"Expected valid JSON, but parsing failed: {exc.msg}{hint}.",
            path,
            getattr(exc, "lineno", None),
        ) from None


def _too_deep(record: dict, skip: tuple = ()) -> str | None:
    """The first field of ``record`` nested deeper than the dataset allows (None: none)."""
    for key, value in record.items():
        if (
            key not in skip
            and type(value) in (list, dict)
            and depth_exceeds([value], MAX_DEPTH + 1)
        ):
            return key
    return None


def _is_num(v: Any) -> bool:
    return type(v) in (int, float) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return type(v) is int


def detect_coco(path: Path) -> bool:
    """A ``.json`` file whose top level is a COCO dict (images/annotations) or a results list."""
    path = Path(path)
    if not path.is_file() or path.suffix.lower() != ".json":
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 20)
    except OSError:
        return False
    text = head.lstrip()
    if text.startswith(b"["):
        return b'"image_id"' in head and b'"keypoints"' in head
    if text.startswith(b"{"):
        return b'"annotations"' in head or b'"images"' in head
    return False


# ---------------------------------------------------------------------- the reader
def read_coco(
    src: Path,
    *,
    labels: Path | None = None,
    subject_regex: str | None = None,
    skip_bad: bool = False,
    images: Path | None = None,
    images_from: Path | None = None,
    kpt_values: str = "auto",
) -> ImportResult:
    """Read a COCO keypoints file, or a COCO results file, into a dataset.

    Args:
        src: The ``.json`` file.
        labels: CSV ``file,stance[,subject]`` (``file`` as the image's ``file_name``).
        subject_regex: Searched in each image's base name; group 1 (or the match) is the subject.
        skip_bad: Leave out bad images (and images with a bad annotation), recording them.
        images: The folder the image ``file_name``s are relative to (see the module docstring).
        images_from: For a results file: the ground-truth COCO file or dataset directory whose
            images the results refer to.
        kpt_values: Results files: ``auto``, ``flag`` or ``conf`` (the third keypoint value).

    Returns:
        The dataset, skipped items, notes and the media root (absolute).

    Raises:
        InputError: Bad input (file, field path and line named).
        FileNotFoundError: ``src``, ``labels``, ``images`` or ``images_from`` does not exist.
    """
    src = Path(src)
    regex = check_reader_args(
        kpt_values, subject_regex, SRC=src, labels=labels, images=images, images_from=images_from
    )
    if src.is_dir():
        raise InputError("Expected a COCO .json file, but got a folder.", src)
    doc, raw = _load_json(src)
    if isinstance(doc, list):
        if images_from is None:
            raise InputError(
                "This is a COCO results file (a list of detections without images): pass the "
                "ground truth it belongs to with --images-from GT.json (or a dataset folder).",
                src,
            )
        reader = _Reader(src, raw, skip_bad, labels, regex)
        return reader.results(doc, Path(images_from), images, kpt_values)
    if images_from is not None:
        raise ValueError(
            "Expected --images-from only with a COCO results file, but "
            f"{src} is a ground-truth file (it has its own images)."
        )
    if not isinstance(doc, dict):
        raise InputError(
            expected("the top level", "a COCO object or a results list", type(doc).__name__), src, 1
        )
    reader = _Reader(src, raw, skip_bad, labels, regex)
    return reader.ground_truth(doc, images)


def _valid_source(src: Any, n: int) -> bool:
    if type(src) is str:
        return len(src) == n and all(c in layout.SOURCE_LETTERS for c in src)
    return type(src) is list and len(src) == n and all(s in layout.SOURCE_CODE for s in src)


def _source_codes(recs: list[dict], maps: list[np.ndarray], default: int) -> np.ndarray:
    """``(n, 19)`` provenance: our ``keypoint_source`` extension where present, else ``default``.

    Points a 17-point source does not have (the stick) keep ``default``.
    """
    out = np.full((len(recs), layout.NUM_KEYPOINTS), default, np.uint8)
    for i, r in enumerate(recs):
        src = r.get("keypoint_source")
        if src is None:
            continue
        names = (
            [layout.SOURCES[layout.SOURCE_LETTERS.index(c)] for c in src]
            if type(src) is str
            else src
        )
        out[i, maps[i]] = [layout.SOURCE_CODE[s] for s in names]
    return out


def _image_name(i: int, im: Any) -> str:
    """Check ``images[i]``'s own fields; returns its (safe) ``file_name``.

    Raises:
        _Bad: Not an object, a field missing, a bad id or size, an escaping file name.
    """
    if not isinstance(im, dict):
        raise _Bad(["images", i], expected(f"images[{i}]", "an object", type(im).__name__))
    for key in _IMAGE_MODELLED:
        if key not in im:
            raise _Bad(
                ["images", i], f"Expected the field '{key}', but it is missing.", im.get("id")
            )
    if not _is_int(im["id"]):
        raise _Bad(["images", i, "id"], expected("id", "an integer", im["id"]))
    for key in ("width", "height"):
        if not _is_int(im[key]) or im[key] < 1:
            raise _Bad(["images", i, key], expected(key, "a positive integer", im[key]), im["id"])
    name = im["file_name"]
    if not (type(name) is str and _PLAIN_NAME.match(name)):
        try:
            name = safe_relpath(name, "file_name")
        except InputError as exc:
            raise _Bad(["images", i, "file_name"], exc.reason, im["id"]) from None
    return name


def _check_image_links(
    i: int,
    im: dict,
    name: str,
    video_ids: set,
    seen_ids: dict[Any, int],
    seen_names: dict[str, int],
) -> None:
    """Check ``images[i]`` against the others and the schema (unique id and name, video ...).

    Raises:
        _Bad: The first problem found.
    """
    if im["id"] in seen_ids:
        raise _Bad(
            ["images", i, "id"],
            f"Expected image ids to be unique, but "
            f"{im['id']} is also images[{seen_ids[im['id']]}].",
            im["id"],
        )
    if name in seen_names:
        raise _Bad(
            ["images", i, "file_name"],
            f"Expected file names to be unique, but {name!r} is also images[{seen_names[name]}].",
            im["id"],
        )
    if "video_id" in im and (not _is_int(im["video_id"]) or im["video_id"] not in video_ids):
        raise _Bad(
            ["images", i, "video_id"],
            expected("video_id", "a videos[].id", im["video_id"]),
            im["id"],
        )
    for key in ("stance", "subject"):
        if im.get(key) is not None and not isinstance(im[key], str):
            raise _Bad(["images", i, key], expected(key, "a string or null", im[key]), im["id"])
    if (problem := name_length_problem(name)) is not None:
        raise _Bad(["images", i, "file_name"], f"Expected it to be {problem}.", im["id"])
    # The same verdict Dataset.load gives (frame_index a whole number >= 0 ...).
    problem = check_record("images", {**im, "file_name": name}, ["images", i])
    if problem is not None:
        raise _Bad(["images", i], problem, im["id"])
    if (key := _too_deep(im)) is not None:
        raise _Bad(
            ["images", i, key],
            f"Expected it to be nested at most {MAX_DEPTH} levels deep.",
            im["id"],
        )


def _category_problem(c: dict, names: Any) -> tuple[list, str] | None:
    """Why a category with ``keypoints`` cannot be imported: (field path under it, reason)."""
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return ["keypoints"], expected("keypoints", "a list of keypoint names", names)
    unknown = [n for n in names if n not in _NAMES19]
    if unknown or len(set(names)) != len(names) or not set(_COCO17) <= set(names):
        return ["keypoints"], (
            "Expected the 17 COCO keypoint names (optionally followed by stick_grip, "
            f"stick_tip), but got {len(names)} names"
            + (f" including unknown {unknown[:5]}" if unknown else "")
            + ". Other layouts (e.g. COCO-WholeBody, BlazePose) cannot be imported."
        )
    if type(c["id"]) is not int:
        return ["id"], expected("id", "an integer", c["id"])
    skel = c.get("skeleton")
    if skel is not None and not (
        isinstance(skel, list)
        and all(
            isinstance(e, list)
            and len(e) == 2
            and all(type(x) is int and 1 <= x <= len(names) for x in e)
            for e in skel
        )
    ):
        return ["skeleton"], expected(
            "skeleton",
            f"a list of [a, b] keypoint numbers in 1..{len(names)}",
            skel if len(repr(skel)) < 80 else f"{repr(skel)[:77]}...",
        )
    for key in ("name", "supercategory"):
        if key in c and not isinstance(c[key], str):
            return [key], expected(key, "a string", c[key])
    if (key := _too_deep(c)) is not None:
        return [key], f"Expected it to be nested at most {MAX_DEPTH} levels deep."
    return None


def _person_keypoints(a: dict, parts: list, image_id: Any, need_id: bool) -> list:
    """An annotation's ``keypoints``: a list of finite numbers in range (flags for ground truth).

    Raises:
        _Bad: No keypoints (a detection-only entry), a non-number, a value out of range.
    """
    kps = a.get("keypoints")
    if kps is None and "bbox" in a:
        raise _Bad(
            parts,
            "Expected 'keypoints' (x, y, v for each keypoint), but this entry has only a box "
            "('bbox'): a detection-only file has no poses to import. Export keypoint results "
            "from a pose model (or run `toolkit detect` on the images).",
            image_id,
        )
    if not isinstance(kps, list):
        raise _Bad(
            parts + ["keypoints"],
            expected("keypoints", "a list of numbers", type(kps).__name__),
            image_id,
        )
    if not set(map(type, kps)) <= _NUMBER_TYPES:  # JSON numbers are finite (no NaN/inf)
        k = next(k for k, v in enumerate(kps) if not _is_num(v))
        raise _Bad(
            parts + ["keypoints", k],
            expected(f"keypoints[{k}]", "a finite number", kps[k]),
            image_id,
        )
    if kps and max(map(abs, kps)) > COORD_LIMIT:
        k = next(k for k, v in enumerate(kps) if abs(v) > COORD_LIMIT)
        raise _Bad(
            parts + ["keypoints", k],
            expected(f"keypoints[{k}]", f"within +-{COORD_LIMIT:g} px", kps[k]),
            image_id,
        )
    if need_id and not set(kps[2::3]) <= _FLAGS:  # ground truth: COCO visibility flags
        k = next(k for k in range(2, len(kps), 3) if kps[k] not in _FLAGS)
        raise _Bad(
            parts + ["keypoints", k],
            expected(f"keypoints[{k}] (a visibility flag)", "0, 1 or 2", kps[k]),
            image_id,
        )
    return kps


def _check_per_keypoint(a: dict, k: int, parts: list, image_id: Any) -> None:
    """``keypoint_scores`` (k confidences or null) and ``keypoint_source`` (k letters).

    Raises:
        _Bad: The first problem found.
    """
    sc = a.get("keypoint_scores")
    if sc is not None and not (
        isinstance(sc, list) and len(sc) == k and all(v is None or _is_num(v) for v in sc)
    ):
        raise _Bad(
            parts + ["keypoint_scores"], expected("keypoint_scores", f"{k} numbers", sc), image_id
        )
    if sc is not None and any(v is not None and not 0 <= v <= 1 for v in sc):
        raise _Bad(
            parts + ["keypoint_scores"],
            expected("keypoint_scores", "confidences in 0..1 (or null)", sc),
            image_id,
        )
    src = a.get("keypoint_source")
    if src is not None and not _valid_source(src, k):
        raise _Bad(
            parts + ["keypoint_source"],
            expected(
                "keypoint_source", f"{k} letters from '{layout.SOURCE_LETTERS}' (or names)", src
            ),
            image_id,
        )


class _Reader:
    """State of one import: the source, its text (for line numbers), skipped items, notes."""

    def __init__(
        self, src: Path, raw: bytes, skip_bad: bool, labels: Path | None, regex: re.Pattern | None
    ):
        self.src = src
        self.raw = raw
        self.skip_bad = skip_bad
        self.labels = labels
        self.regex = regex
        self.skipped: list[SkippedItem] = []
        self.notes: list[str] = []

    # -------------------------------------------------------------- errors
    def error(
        self, parts: list, reason: str, path: Path | None = None, raw: bytes | None = None
    ) -> InputError:
        where = field_path(parts)
        return InputError(
            f"'{where}': {reason}",
            path or self.src,
            locate_line(self.raw if raw is None else raw, parts),
        )

    def skip(self, bad: _Bad, path: Path | None = None, raw: bytes | None = None) -> None:
        err = self.error(bad.parts, bad.reason, path, raw)
        if not self.skip_bad:
            raise err
        self.skipped.append(
            SkippedItem(str(err.path), err.line, f"'{field_path(bad.parts)}': {bad.reason}")
        )

    # -------------------------------------------------------------- images
    def parse_images(
        self, doc: dict, json_path: Path, raw: bytes, images_dir: Path | None
    ) -> tuple[list[dict], Path, list[dict]]:
        """Checked image records (bad ones skipped or raised), the media root, the videos."""
        imgs = doc.get("images")
        if not isinstance(imgs, list):
            raise self.error(
                ["images"], expected("images", "a list", type(imgs).__name__), json_path, raw
            )
        videos = doc.get("videos") or []
        if not isinstance(videos, list):
            raise self.error(
                ["videos"], expected("videos", "a list", type(videos).__name__), json_path, raw
            )
        self.check_videos(videos, json_path, raw)
        video_ids = {v.get("id") for v in videos if isinstance(v, dict)}
        out: list[dict] = []
        seen_ids: dict[Any, int] = {}
        seen_names: dict[str, int] = {}
        for i, im in enumerate(imgs):
            try:
                name = _image_name(i, im)
                _check_image_links(i, im, name, video_ids, seen_ids, seen_names)
            except _Bad as bad:
                self.skip(bad, json_path, raw)
                continue
            seen_ids[im["id"]] = i
            seen_names[name] = i
            out.append({**im, "file_name": name, "_index": i})
        media = self.media_root(out, json_path, images_dir)
        return self.existing_images(out, media, json_path, raw, images_dir), media, videos

    def existing_images(
        self, images: list[dict], media: Path, json_path: Path, raw: bytes, images_dir: Path | None
    ) -> list[dict]:
        """The image records whose file exists under ``media`` (video frames always)."""
        kept = []
        root = str(media)
        for im in images:
            if "video_id" in im or os.path.isfile(os.path.join(root, im["file_name"])):
                kept.append(im)
                continue
            hint = "" if images_dir else " (pass --images DIR: the folder the file_names are in)"
            self.skip(
                _Bad(
                    ["images", im["_index"], "file_name"],
                    f"Expected the image {media / im['file_name']} to exist, but it does "
                    f"not{hint}.",
                    im["id"],
                ),
                json_path,
                raw,
            )
        return kept

    def check_videos(self, videos: list, json_path: Path, raw: bytes) -> None:
        """Every ``videos`` entry as load checks it: id, a file name inside the media root."""
        seen: set = set()
        for j, v in enumerate(videos):
            parts = ["videos", j]
            problem = check_record("videos", v, parts)
            if problem is None and (key := _too_deep(v)) is not None:
                problem = f"Expected '{field_path(parts + [key])}' to be nested less deeply."
            if problem is None:
                name = v["file_name"]
                try:
                    safe_relpath(name, f"videos[{j}].file_name")
                except InputError as exc:
                    problem = exc.reason
                if problem is None and v["id"] in seen:
                    problem = f"Expected video ids to be unique, but {v['id']} appears twice."
            if problem is not None:
                raise self.error(parts, problem, json_path, raw)
            seen.add(v["id"])

    def check_top_level(self, doc: dict) -> None:
        """Top-level fields kept in the dataset (``info``, ``licenses`` …) as load checks them."""
        kept = {k: v for k, v in doc.items() if k not in _MODELLED_TOP}
        for key, value in kept.items():
            if type(value) in (list, dict) and depth_exceeds([value], MAX_DEPTH + 1):
                raise self.error(
                    [key], f"Expected it to be nested at most {MAX_DEPTH} levels deep."
                )
        probe = {
            "version": 1,
            "categories": [
                {"id": 1, "name": "person", "keypoints": _NAMES19, "skeleton": _SKELETON19}
            ],
            "images": [],
            "annotations": [],
            **{k: v for k, v in kept.items() if k in _CHECKED_TOP},
        }
        if isinstance(kept.get("taxonomy"), dict):
            probe["taxonomy"] = kept["taxonomy"]
        validate(probe, "dataset", self.src, raw=self.raw)

    def media_root(self, images: list[dict], json_path: Path, images_dir: Path | None) -> Path:
        if images_dir is not None:
            return Path(images_dir).absolute()
        here = json_path.absolute().parent
        files = [im for im in images if "video_id" not in im]
        if (
            files
            and (here / "images").is_dir()
            and (here / "images" / files[0]["file_name"]).is_file()
        ):
            return here / "images"
        return here

    def stances_subjects(self, images: list[dict]) -> None:
        """Fill ``stance``/``subject`` from the CSV, the image fields, the regex (in place)."""
        csv_rows = None
        if self.labels is not None:
            csv_rows = read_labels_csv(Path(self.labels))
            names = {im["file_name"] for im in images}
            unknown = [f for f in csv_rows if f not in names]
            if unknown:
                self.notes.append(
                    f"labels CSV: {len(unknown)} files not in the dataset (e.g. {unknown[0]!r})"
                )
        for im in images:
            stance, subject = im.get("stance"), im.get("subject")
            if csv_rows is not None and im["file_name"] in csv_rows:
                c_stance, c_subject, _ = csv_rows[im["file_name"]]
                stance = c_stance if c_stance is not None else stance
                subject = c_subject if c_subject is not None else subject
            if subject is None and self.regex is not None:
                m = self.regex.search(PurePosixPath(im["file_name"]).name)
                if m:
                    subject = m.group(1) if m.groups() else m.group(0)
            im["stance"], im["subject"] = stance, subject
        n_no_stance = sum(im["stance"] is None for im in images)
        n_no_subject = sum(im["subject"] is None for im in images)
        if n_no_stance:
            self.notes.append(
                f"stance unknown for {n_no_stance} of {len(images)} images "
                "(give a labels CSV with --labels FILE)"
            )
        if n_no_subject:
            self.notes.append(
                f"subject unknown for {n_no_subject} of {len(images)} images "
                "(give it in the labels CSV or with --subject-regex RE)"
            )

    # -------------------------------------------------------------- categories
    def layouts(self, doc: dict) -> tuple[dict[Any, np.ndarray | None], list[dict] | None]:
        """``category_id -> index map`` (source keypoint j -> our index) and the categories."""
        cats = doc.get("categories")
        if cats is None:
            self.notes.append(
                "no 'categories': keypoints read by count (51 values = COCO-17, "
                "57 = COCO-17 + stick_grip, stick_tip)"
            )
            return {}, None
        if not isinstance(cats, list):
            raise self.error(["categories"], expected("categories", "a list", type(cats).__name__))
        out: dict[Any, np.ndarray | None] = {}
        kept: list[dict] = []
        for i, c in enumerate(cats):
            if not isinstance(c, dict) or "id" not in c:
                raise self.error(["categories", i], "Expected an object with an 'id'.")
            names = c.get("keypoints")
            if names is None:
                continue
            problem = _category_problem(c, names)
            if problem is not None:
                raise self.error(["categories", i, *problem[0]], problem[1])
            out[c["id"]] = np.array([_NAMES19.index(n) for n in names], dtype=np.intp)
            cat = {k: v for k, v in c.items() if k not in ("keypoints", "skeleton")}
            if names not in (_COCO17, _NAMES19):
                cat["source_keypoints"] = names
            skel = c.get("skeleton")
            if skel is not None and skel not in (_COCO17_SKELETON, _SKELETON19):
                cat["source_skeleton"] = skel
            kept.append(cat)
        if not out:
            self.notes.append(
                "no category lists 'keypoints': keypoints read by count (51 "
                "values = COCO-17, 57 = COCO-17 + stick_grip, stick_tip)"
            )
        return out, kept or None

    def index_map(
        self, maps: dict, cat: Any, n_values: int, parts: list, image_id: Any
    ) -> np.ndarray:
        if maps:
            if cat not in maps:
                raise _Bad(
                    parts[:-1] + ["category_id"],
                    expected("category_id", f"a keypoint category ({sorted(maps)})", cat),
                    image_id,
                )
            m = maps[cat]
            if n_values != 3 * len(m):
                raise _Bad(
                    parts,
                    expected(
                        "keypoints",
                        f"{3 * len(m)} values (x, y, v for the category's {len(m)} keypoints)",
                        n_values,
                    ),
                    image_id,
                )
            return m
        if n_values == 3 * layout.NUM_BODY:
            return np.arange(layout.NUM_BODY)
        if n_values == 3 * layout.NUM_KEYPOINTS:
            return np.arange(layout.NUM_KEYPOINTS)
        raise _Bad(
            parts,
            expected("keypoints", "51 values (COCO-17) or 57 (with the stick)", n_values),
            image_id,
        )

    # -------------------------------------------------------------- annotations
    def parse_person(
        self, a: Any, j: int, section: str, image_ids: set, maps: dict, need_id: bool
    ) -> tuple[dict, list, np.ndarray, list | None]:
        """One checked annotation/result: (record, keypoint values, index map, bbox)."""
        parts: list = [section, j] if section else [j]
        if not isinstance(a, dict):
            raise _Bad(parts, expected(field_path(parts), "an object", type(a).__name__))
        image_id = a.get("image_id")
        if "image_id" not in a or not _is_int(image_id):
            raise _Bad(parts + ["image_id"], expected("image_id", "an integer", image_id))
        if image_id not in image_ids:
            raise _Bad(
                parts + ["image_id"], expected("image_id", "the id of an image", image_id), image_id
            )
        if need_id and ("id" not in a or not _is_int(a["id"])):
            raise _Bad(parts + ["id"], expected("id", "an integer", a.get("id")), image_id)
        kps = _person_keypoints(a, parts, image_id, need_id)
        for key in ("iscrowd", "track_id", "category_id"):
            if key in a and not _is_int(a[key]):
                raise _Bad(parts + [key], expected(key, "an integer", a[key]), image_id)
        m = self.index_map(maps, a.get("category_id", 1), len(kps), parts + ["keypoints"], image_id)
        bbox = a.get("bbox")
        if bbox is not None and not (
            isinstance(bbox, list) and len(bbox) == 4 and all(map(_is_num, bbox))
        ):
            raise _Bad(
                parts + ["bbox"], expected("bbox", "4 finite numbers x, y, w, h", bbox), image_id
            )
        for key in ("score", "area"):
            if key in a and not _is_num(a[key]):
                raise _Bad(parts + [key], expected(key, "a finite number", a[key]), image_id)
        _check_per_keypoint(a, len(m), parts, image_id)
        # Everything else as Dataset.load checks it (the per-keypoint fields are checked above,
        # at the source's keypoint count).
        probe = a
        if not need_id:
            probe = {**a, "id": 0}  # results files: ids are assigned on import
        problem = check_record("annotations", probe, parts, _PER_KEYPOINT)
        if problem is not None:
            raise _Bad(parts, problem, image_id)
        if (key := _too_deep(a, _PER_KEYPOINT)) is not None:
            raise _Bad(
                parts + [key],
                f"Expected it to be nested at most {MAX_DEPTH} levels deep.",
                image_id,
            )
        return a, kps, m, bbox

    def ground_truth(self, doc: dict, images_dir: Path | None) -> ImportResult:
        self.check_top_level(doc)
        maps, cats = self.layouts(doc)
        images, media, videos = self.parse_images(doc, self.src, self.raw, images_dir)
        anns = doc.get("annotations")
        if not isinstance(anns, list):
            raise self.error(
                ["annotations"], expected("annotations", "a list", type(anns).__name__)
            )
        image_ids = {im["id"] for im in images}
        dropped = {
            im.get("id") for im in doc["images"] if isinstance(im, dict) and _is_int(im.get("id"))
        } - image_ids
        recs, pts, idx_maps, boxes, bad_images = [], [], [], [], set()
        seen: dict[int, int] = {}
        for j, a in enumerate(anns):
            try:
                if (
                    dropped
                    and isinstance(a, dict)
                    and _is_int(a.get("image_id"))
                    and (a["image_id"] in dropped)
                ):
                    continue  # its image was skipped already
                rec, p, m, bb = self.parse_person(a, j, "annotations", image_ids, maps, True)
                if rec["id"] in seen:
                    raise _Bad(
                        ["annotations", j, "id"],
                        f"Expected annotation ids to be "
                        f"unique, but {rec['id']} is also annotations[{seen[rec['id']]}].",
                        rec["image_id"],
                    )
            except _Bad as bad:
                self.skip(bad)
                bad_images.add(bad.image_id)
                continue
            seen[rec["id"]] = j
            recs.append(rec)
            pts.append(p)
            idx_maps.append(m)
            boxes.append(bb)
        if bad_images:  # leave out the whole image: a half-labelled image teaches wrong things
            keep = [r["image_id"] not in bad_images for r in recs]
            recs, pts, idx_maps, boxes = (
                [x for x, k in zip(seq, keep, strict=True) if k]
                for seq in (recs, pts, idx_maps, boxes)
            )
            images = [im for im in images if im["id"] not in bad_images]
        kp, scores = self.to_layout(pts, idx_maps, [r.get("keypoint_scores") for r in recs])
        n_17 = sum(len(m) == layout.NUM_BODY for m in idx_maps)
        if n_17:
            self.notes.append(
                f"{n_17} of {len(recs)} annotations have 17 keypoints: the stick "
                "(stick_grip, stick_tip) is marked missing"
            )
        source = _source_codes(recs, idx_maps, layout.IMPORTED)
        ds = self.build(images, recs, kp, scores, boxes, media, videos, cats, doc, source=source)
        return ImportResult(dataset=ds, skipped=self.skipped, notes=self.notes, media_root=media)

    def to_layout(
        self, pts: list[list], maps: list[np.ndarray], scores: list
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(n, 19, 3)`` points (source keypoint j -> our ``map[j]``) and ``(n, 19)`` scores."""
        n = len(pts)
        kp = np.zeros((n, layout.NUM_KEYPOINTS, 3))
        sc = np.full((n, layout.NUM_KEYPOINTS), np.nan, np.float32)
        groups: dict[tuple, list[int]] = {}
        for i, m in enumerate(maps):
            groups.setdefault(tuple(m.tolist()), []).append(i)
        for key, rows in groups.items():
            m = np.array(key, dtype=np.intp)
            vals = np.array([pts[i] for i in rows], dtype=np.float64).reshape(len(rows), -1, 3)
            kp[np.ix_(rows, m)] = vals
        for i in (i for i, s in enumerate(scores) if s is not None):
            sc[i, maps[i]] = np.array([np.nan if v is None else v for v in scores[i]], np.float32)
        if not np.isfinite(kp).all():
            raise InputError("Expected finite keypoint values, but found NaN or inf.", self.src)
        return kp, sc

    def build(
        self,
        images: list[dict],
        recs: list[dict],
        kp: np.ndarray,
        scores: np.ndarray,
        boxes: list,
        media: Path,
        videos: list,
        cats: list | None,
        doc: dict | None,
        source: int | np.ndarray,
    ) -> Dataset:
        self.stances_subjects(images)
        img_recs = [{k: v for k, v in im.items() if k != "_index"} for im in images]
        ann_recs = [{k: v for k, v in r.items() if k not in _PER_KEYPOINT} for r in recs]
        n = len(recs)
        bb = np.full((n, 4), np.nan)
        given = np.array([b is not None for b in boxes], bool)
        if given.any():
            bb[given] = np.array([b for b in boxes if b is not None], dtype=np.float64)
        missing_box = ~given
        if missing_box.any():
            bb[missing_box] = np.round(boxes_from_keypoints(_clean_kpts(kp[missing_box])), 2)
        meta = {
            k: v
            for k, v in (doc or {}).items()
            if k not in ("images", "annotations", "categories", "videos")
        }
        taxonomy = meta.pop("taxonomy", None)
        for k in ("version", "media_root"):
            meta.pop(k, None)
        return Dataset.from_records(
            img_recs,
            ann_recs,
            kp,
            scores=scores,
            source=source,
            bboxes=bb,
            videos=videos,
            media_root=str(media),
            taxonomy=taxonomy if isinstance(taxonomy, dict) else None,
            meta=meta,
            categories=cats,
        )

    # -------------------------------------------------------------- results files
    def gt_images(
        self, gt: Path, images_dir: Path | None
    ) -> tuple[list[dict], Path, list[dict], list[dict] | None]:
        if gt.is_dir() or gt.name == DATASET_FILE:
            ds = Dataset.load(gt)
            images = ds.coco_records()[0]
            for i, im in enumerate(images):
                im["_index"] = i
            media = Path(images_dir).absolute() if images_dir else ds.media_path().absolute()
            return images, media, ds.videos, ds.categories
        gdoc, graw = _load_json(gt)
        if not isinstance(gdoc, dict):
            raise InputError(
                expected("the ground truth's top level", "a COCO object", type(gdoc).__name__),
                gt,
                1,
            )
        images, media, videos = self.parse_images(gdoc, gt, graw, images_dir)
        cats = None
        if gdoc.get("categories"):
            saved = self.notes
            self.notes = []
            _, cats = self.layouts(gdoc)
            self.notes = saved
        return images, media, videos, cats

    def results(
        self, doc: list, gt: Path, images_dir: Path | None, kpt_values: str
    ) -> ImportResult:
        images, media, videos, cats = self.gt_images(gt, images_dir)
        image_ids = {im["id"] for im in images}
        recs, pts, idx_maps, boxes = [], [], [], []
        for j, a in enumerate(doc):
            try:
                rec, p, m, bb = self.parse_person(a, j, "", image_ids, {}, False)
            except _Bad as bad:
                self.skip(bad)
                continue
            recs.append(rec)
            pts.append(p)
            idx_maps.append(m)
            boxes.append(bb)
        kp, scores = self.to_layout(pts, idx_maps, [r.get("keypoint_scores") for r in recs])
        third = (
            np.concatenate([kp[i, m, 2] for i, m in enumerate(idx_maps)]) if pts else np.zeros(0)
        )
        mode = kpt_values
        if mode == "auto":
            if np.isin(third, (0, 1, 2)).all():
                mode = "flag"
            elif ((third >= 0) & (third <= 1)).all():
                mode = "conf"
            else:
                raise InputError(
                    "Expected the third keypoint values to be visibility flags (0/1/2) or "
                    f"confidences in 0..1, but they range {third.min():g}..{third.max():g}; "
                    "pass --kpt-values conf to read them as confidences (clipped to 0..1).",
                    self.src,
                )
        if mode == "conf":
            conf = np.clip(kp[..., 2], 0, 1)
            mapped = np.zeros(kp.shape[:2], bool)
            for i, m in enumerate(idx_maps):
                mapped[i, m] = True
            given = np.isfinite(scores) | ~mapped  # the stick of a 17-point result: unknown
            scores = np.where(given, scores, conf).astype(np.float32)
            origin = (kp[..., 0] == 0) & (kp[..., 1] == 0)
            kp[..., 2] = np.where(conf >= 0.5, 2, np.where(conf > 0, 1, 0))
            kp[origin, 2] = 0
            self.notes.append(
                "results: third keypoint value read as a confidence "
                "(v = 2 when >= 0.5, 1 below, missing at 0)"
            )
        else:
            self.notes.append("results: third keypoint value read as a visibility flag")
        ids = [r.get("id") for r in recs]
        if not all(_is_int(i) for i in ids) or len(set(ids)) != len(ids):
            ids = list(range(1, len(recs) + 1))
        recs = [{**r, "id": i} for r, i in zip(recs, ids, strict=True)]
        n_imgs = len({r["image_id"] for r in recs})
        self.notes.append(
            f"results: {len(recs)} detections on {n_imgs} of {len(images)} "
            "ground-truth images (provenance 'predicted')"
        )
        source = _source_codes(recs, idx_maps, layout.PREDICTED)
        # Points the model did not give (a 17-point model's stick, invisible points) were not
        # predicted: they stay missing with provenance 'imported', as in detect and results.
        absent = ~(kp[..., 2] > 0)
        source = np.where(absent & (source == layout.PREDICTED), layout.IMPORTED, source)
        source = source.astype(np.uint8)
        ds = self.build(images, recs, kp, scores, boxes, media, videos, cats, None, source=source)
        return ImportResult(dataset=ds, skipped=self.skipped, notes=self.notes, media_root=media)


# ---------------------------------------------------------------------- export
def coco_document(ds: Dataset, keypoints: int = layout.NUM_KEYPOINTS) -> dict:
    """The plain COCO document for ``ds`` (big lists as ``orjson.Fragment``; see ``write``).

    Args:
        ds: The dataset.
        keypoints: 19 (default), or 17 to drop the stick and restore a COCO-17 source's own
            category (``source_keypoints``/``source_skeleton``) exactly.
    """
    if keypoints not in (layout.NUM_BODY, layout.NUM_KEYPOINTS):
        raise ValueError(expected("keypoints", "17 or 19", keypoints))
    # Our extensions only where they carry information (provenance other than imported, known
    # scores): an untouched import exports as plain COCO, and a re-import keeps both.
    images, anns = ds.coco_records(extensions="auto", num_keypoints=keypoints)
    cats = []
    for c in ds.categories or [{"id": 1, "name": "person", "supercategory": "person"}]:
        out = {k: v for k, v in c.items() if k not in ("source_keypoints", "source_skeleton")}
        if keypoints == layout.NUM_BODY:
            out["keypoints"] = c.get("source_keypoints", _COCO17)
            out["skeleton"] = c.get("source_skeleton", _COCO17_SKELETON)
        else:
            out["keypoints"] = _NAMES19
            out["skeleton"] = _SKELETON19
        cats.append(out)
    doc: dict[str, Any] = {k: v for k, v in ds.meta.items() if k != "import"}
    doc.update({"images": images, "annotations": anns, "categories": cats})
    if ds.videos:
        doc["videos"] = ds.videos
    if ds.taxonomy:
        doc["taxonomy"] = ds.taxonomy
    return doc


def write_coco(
    ds: Dataset, out: Path, *, keypoints: int = layout.NUM_KEYPOINTS, overwrite: bool = False
) -> Path:
    """Write ``ds`` as one COCO keypoints JSON file (atomic) that pycocotools loads.

    Args:
        ds: The dataset.
        out: A ``.json`` file, or a folder (then ``out/annotations.json``).
        keypoints: 19, or 17 (drops the stick: a COCO-17 import comes back exactly).
        overwrite: Replace an existing file.

    Returns:
        The written file. Image ``file_name``s stay relative to the dataset's media root.
    """
    out = Path(out)
    target = out if out.suffix.lower() == ".json" else out / "annotations.json"
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists; choose another --out or pass --overwrite.")
    data = orjson.dumps(coco_document(ds, keypoints), option=orjson.OPT_SERIALIZE_NUMPY)
    atomic_write_bytes(target, data)
    return target


__all__ = ["coco_document", "detect_coco", "json_rows", "read_coco", "write_coco"]

register_format("coco", detect=detect_coco, read=read_coco, write=write_coco)
