"""Attach stance labels (and subjects) to an existing dataset from a CSV: ``toolkit label``.

The step from detected footage to a training set: ``toolkit detect clip.mp4 --out ds`` gives
frames with predicted keypoints and no stances; a CSV says which stance each frame (or each
stretch of video) shows. Keypoints, their scores and provenance are not touched.

CSV rows (a header names the columns; any order, case-insensitive; a ``#`` line is a comment):

* ``file,stance[,subject]``: one image by its ``file_name`` (as ``dataset.json`` and
  ``toolkit info`` show it; for video frames ``<stem>/<frame:06d>.jpg``);
* ``image_id,stance[,subject]``: one image by id;
* ``video,start,end,stance[,subject]``: every frame of a video from ``start`` to ``end``
  (inclusive) holds the stance: one line labels a held stance. ``video`` is the video's file
  name, its stem or its id; ``start``/``end`` are frame indices counted from 0 (``frame_index``),
  or times in seconds (``12.5s``, ``0:12.5``) converted with the video's fps. Frames extracted
  to an image folder (``toolkit detect frames/``) work the same way: ``video`` names the folder
  within the file names (``.`` for images at the top, or the name of the folder the dataset's
  images are in), and each image's frame is the number in its name (``frame_000123.png`` is
  123).

One CSV may mix the kinds (a row fills ``file``, ``image_id`` or ``video``). An empty ``stance``
(or ``subject``) cell leaves that field as it is.

Refused, naming the CSV file and line: an unknown file, image id or video; a segment that covers
no frame of the dataset or ends before it starts; two rows (segments or frames) that give one
frame different stances; a stance outside the dataset's taxonomy (or ``taxonomy=FILE``'s).

Every change is journalled (one batch, ``Dataset.set_image_fields``) before it counts, then
folded into
``dataset.json`` by :func:`label_dataset` unless ``fold=False`` (useful while a viewer holds the
dataset open: its next save folds them).
"""

from __future__ import annotations

import csv
import io as _io
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from toolkit.dataset import Dataset
from toolkit.errors import InputError, expected
from toolkit.io import frame_number
from toolkit.taxonomy import read_document

_TIME = re.compile(r"^(?:(\d+):)?(\d+(?:\.\d*)?)s?$")


@dataclass
class LabelRow:
    """One CSV row, resolved to dataset image rows.

    Attributes:
        line: 1-based line in the CSV.
        rows: Image row indices (``ds.images``) it labels.
        stance: The stance, or None to leave it.
        subject: The subject, or None to leave it.
        what: How the row named its images (for messages).
        segment: ``(video id or image folder, start, end)`` for a segment row, else None.
    """

    line: int
    rows: np.ndarray
    stance: str | None
    subject: str | None
    what: str
    segment: tuple[int | str, int, int] | None = None


@dataclass
class LabelSummary:
    """What :func:`label_dataset` did.

    Attributes:
        n_rows: CSV rows read.
        n_images: Images the rows cover.
        stance_set: Images whose stance changed from none to a label.
        stance_replaced: Images whose stance changed from one label to another.
        subject_set: Images whose subject changed.
        unchanged: Covered images that already had these values.
        unlabelled: Images of the dataset still without a stance.
        per_stance: Covered images per stance.
        notes: Remarks (e.g. no taxonomy to check stances against).
    """

    n_rows: int = 0
    n_images: int = 0
    stance_set: int = 0
    stance_replaced: int = 0
    subject_set: int = 0
    unchanged: int = 0
    unlabelled: int = 0
    per_stance: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"Expected '--labels' to be a CSV file, but {path} does not exist."
        ) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(
            "Expected UTF-8 text, but the file is not valid UTF-8.", path, line
        ) from None


def _frame(value: str, fps: float | None, what: str, path: Path, line: int) -> int:
    """A frame index from ``12`` (frame), ``12.5s`` or ``0:12.5`` (time, with ``fps``)."""
    v = value.strip()
    if re.fullmatch(r"\d+", v):
        return int(v)
    m = _TIME.match(v)
    if m and (v.endswith("s") or ":" in v):
        if not fps:
            raise InputError(
                f"Expected '{what}' as a frame number: the video has no fps to convert "
                f"the time {v!r}.",
                path,
                line,
            )
        seconds = int(m.group(1) or 0) * 60 + float(m.group(2))
        return int(round(seconds * fps))
    raise InputError(
        expected(what, "a frame index (0, 1, ...) or a time (12.5s, 0:12.5)", v), path, line
    )


def read_label_rows(ds: Dataset, path: str | Path) -> list[LabelRow]:
    """Parse and resolve a labels CSV against ``ds`` (see the module docstring).

    Raises:
        InputError: A bad header, an unknown file/image/video, an empty segment, a line the
            CSV parser refuses (e.g. a bare carriage return inside a field) (file, line).
    """
    path = Path(path)
    text = _read_text(path)
    lines = text.splitlines(keepends=True)
    reader = csv.reader(
        _io.StringIO("".join("\n" if ln.lstrip().startswith("#") else ln for ln in lines))
    )
    rows = _csv_rows(reader, path)
    cols = _header(rows, reader, path)
    resolve = _Resolver(ds, path)
    out: list[LabelRow] = []
    for row in rows:
        if not row or not any(c.strip() for c in row):
            continue
        out.append(
            resolve.row(dict(zip(cols, (c.strip() for c in row), strict=False)), reader.line_num)
        )
    if not out:
        raise InputError("Expected label rows after the header, but found none.", path)
    _check_overlaps(out, path)
    return out


def _csv_rows(reader: Any, path: Path) -> Iterator[list[str]]:
    """The reader's rows; a line the CSV parser refuses is an :class:`InputError` (file, line)."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # e.g. a bare carriage return inside an unquoted field
            raise InputError(
                f"Expected CSV text, but the line cannot be parsed: {exc}.", path, reader.line_num
            ) from None
        yield row


def _header(rows: Iterator[list[str]], reader: Any, path: Path) -> list[str]:
    """The normalised column names of the first non-empty row.

    Raises:
        InputError: No ``stance``/``subject`` column, or no way to name the images.
    """
    header = None
    for header in rows:
        if any(c.strip() for c in header):
            break
    cols = [c.strip().lower() for c in header or []]
    cols = ["file" if c == "file_name" else "image_id" if c == "image" else c for c in cols]
    if (
        "stance" not in cols
        and "subject" not in cols
        or not {"file", "image_id", "video"} & set(cols)
    ):
        raise InputError(
            expected(
                "the header",
                "'file,stance[,subject]', 'image_id,stance[,subject]' or "
                "'video,start,end,stance[,subject]'",
                ",".join(header or []),
            ),
            path,
            reader.line_num or 1,
        )
    if "video" in cols and not {"start", "end"} <= set(cols):
        raise InputError(
            expected("the header", "'video,start,end,stance[,subject]'", ",".join(header)),
            path,
            reader.line_num,
        )
    return cols


class _Resolver:
    """Resolves CSV rows (as ``column -> cell``) to image rows of a dataset."""

    def __init__(self, ds: Dataset, path: Path):
        self.ds = ds
        self.path = path
        imgs = ds.images
        self.by_name = {str(n): r for r, n in enumerate(imgs["file_name"].tolist())}
        self.by_id = {int(i): r for r, i in enumerate(imgs["id"].tolist())}
        vid_col = imgs["video_id"]
        self.has_frames = bool(vid_col.notna().any())
        self.videos: dict[str, dict] = {}
        for v in ds.videos:
            name = PurePosixPath(str(v["file_name"]))
            for key in (str(v["id"]), str(v["file_name"]), name.name, name.stem):
                self.videos[key] = v
        self.frames_of: dict[int | str, tuple[np.ndarray, np.ndarray]] = {}
        for v in ds.videos:
            rows = np.flatnonzero((vid_col == v["id"]).fillna(False).to_numpy(dtype=bool))
            f = imgs["frame_index"].iloc[rows].to_numpy(dtype=np.int64)
            order = np.argsort(f, kind="stable")
            self.frames_of[v["id"]] = (f[order], rows[order])
        self.folders = _image_folders(ds)
        self.frames_of.update(self.folders)

    def row(self, cells: dict[str, str], line: int) -> LabelRow:
        """The :class:`LabelRow` of one CSV line."""
        stance = cells.get("stance") or None
        subject = cells.get("subject") or None
        given = [k for k in ("file", "image_id", "video") if cells.get(k)]
        if len(given) != 1:
            raise InputError(
                "Expected each row to name its images one way (a file, an image_id or a "
                f"video segment), but this row gives {' and '.join(given) or 'none'}.",
                self.path,
                line,
            )
        if given[0] == "file":
            return self._file(cells["file"], stance, subject, line)
        if given[0] == "image_id":
            return self._image_id(cells["image_id"], stance, subject, line)
        return self._segment(cells, stance, subject, line)

    def _file(self, cell: str, stance: str | None, subject: str | None, line: int) -> LabelRow:
        name = cell.replace("\\", "/")
        if name not in self.by_name:
            hint = (
                " (video frames are named <video stem>/<frame:06d>.jpg)" if self.has_frames else ""
            )
            raise InputError(
                f"Expected a file_name of the dataset, but {name!r} is not one{hint}; "
                "`toolkit info DATASET --json` lists them.",
                self.path,
                line,
            )
        return LabelRow(line, np.array([self.by_name[name]]), stance, subject, name)

    def _image_id(self, raw: str, stance: str | None, subject: str | None, line: int) -> LabelRow:
        if not re.fullmatch(r"\d+", raw) or int(raw) not in self.by_id:
            raise InputError(
                expected("image_id", "the id of an image of the dataset", raw), self.path, line
            )
        return LabelRow(line, np.array([self.by_id[int(raw)]]), stance, subject, f"image {raw}")

    def _video(self, key: str, line: int) -> tuple[dict, str | None]:
        """The video (or image folder, as a video-like dict) a segment names, and the folder."""
        v = self.videos.get(key) or self.videos.get(PurePosixPath(key).name)
        if v is not None:
            return v, None
        folder = _folder_key(key, self.folders, self.ds)
        if folder is not None:
            return {"id": folder, "file_name": f"{folder}/" if folder != "." else "./"}, folder
        known = sorted({str(x["file_name"]) for x in self.ds.videos})
        dirs = sorted(self.folders)
        raise InputError(
            expected(
                "video",
                (f"one of the dataset's videos {known[:5]}" if known else "a video")
                + (
                    f" or an image folder of numbered frames {dirs[:5]}"
                    if dirs
                    else " (the dataset has no video and no numbered frame images: "
                    "name its images with a 'file' column)"
                ),
                key,
            ),
            self.path,
            line,
        )

    def _segment(
        self, cells: dict[str, str], stance: str | None, subject: str | None, line: int
    ) -> LabelRow:
        v, folder = self._video(cells["video"], line)
        fps = v.get("fps")
        start = _frame(cells.get("start", ""), fps, "start", self.path, line)
        end = _frame(cells.get("end", ""), fps, "end", self.path, line)
        if end < start:
            raise InputError(
                f"Expected 'end' ({end}) to be at or after 'start' ({start}).", self.path, line
            )
        f, rows = self.frames_of[v["id"]]
        lo, hi = np.searchsorted(f, start, "left"), np.searchsorted(f, end, "right")
        if hi <= lo:
            span = f"{f[0]}..{f[-1]}" if len(f) else "none"
            counted = (
                "frame_index counted from 0"
                if folder is None
                else "frames numbered as in the image names"
            )
            raise InputError(
                f"Expected the segment {start}..{end} of {v['file_name']} to cover frames of "
                f"the dataset ({counted}; the dataset has frames {span}), but it covers none.",
                self.path,
                line,
            )
        return LabelRow(
            line,
            rows[lo:hi],
            stance,
            subject,
            f"{v['file_name']} frames {start}..{end}",
            (v["id"] if folder is not None else int(v["id"]), start, end),
        )


def _image_folders(ds: Dataset) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Numbered frame images outside videos, per folder (``.`` for the top).

    Returns:
        ``folder -> (sorted frame numbers, image rows)``.
    """
    imgs = ds.images
    still = np.flatnonzero(imgs["video_id"].isna().to_numpy(dtype=bool))
    per: dict[str, tuple[list[int], list[int]]] = {}
    names = imgs["file_name"].to_numpy(dtype=object)
    for r in still:
        name = str(names[r])
        n = frame_number(name)
        if n is None:
            continue
        folder = name.rsplit("/", 1)[0] if "/" in name else "."
        nums, rows = per.setdefault(folder, ([], []))
        nums.append(n)
        rows.append(int(r))
    out = {}
    for folder, (nums, rows) in per.items():
        f = np.asarray(nums, dtype=np.int64)
        order = np.argsort(f, kind="stable")
        out[folder] = (f[order], np.asarray(rows, dtype=np.int64)[order])
    return out


def _folder_key(key: str, folders: dict, ds: Dataset) -> str | None:
    """The image folder a segment row's ``video`` cell names, or None."""
    k = key.strip().strip("/") or "."
    if k in folders:
        return k
    if k.startswith("./") and k[2:] in folders:
        return k[2:]
    # The folder the dataset's images are in (what was passed to `toolkit detect frames/`).
    if "." in folders and k == Path(str(ds.media_root)).name:
        return "."
    return None


def _check_overlaps(rows: list[LabelRow], path: Path) -> None:
    """Refuse two segments of one video (or image folder) that overlap with different stances."""
    segs: dict[int | str, list[tuple[int, int, str, int]]] = {}
    for r in rows:
        seg = r.segment
        if seg is not None and r.stance is not None:
            segs.setdefault(seg[0], []).append((seg[1], seg[2], r.stance, r.line))
    for items in segs.values():
        items.sort()
        active: list[tuple[int, int, str, int]] = []
        for s in items:
            active = [a for a in active if a[1] >= s[0]]
            clash = next((a for a in active if a[2] != s[2]), None)
            if clash is not None:
                lo, hi = s[0], min(s[1], clash[1])
                raise InputError(
                    f"Expected segments with different stances not to overlap, but frames "
                    f"{lo}..{hi} are {clash[2]!r} on line {clash[3]} and {s[2]!r} here.",
                    path,
                    s[3],
                )
            active.append(s)


def label_dataset(
    dataset: str | Path | Dataset,
    labels: str | Path,
    *,
    taxonomy: str | Path | None = None,
    dry_run: bool = False,
    fold: bool = True,
) -> LabelSummary:
    """Set stances (and subjects) of ``dataset``'s images from the CSV ``labels``.

    Args:
        dataset: A dataset directory (or a loaded dataset with a path).
        labels: The CSV (see the module docstring).
        taxonomy: A taxonomy JSON to check stances against when the dataset has none (the
            dataset's own taxonomy wins; it is not attached).
        dry_run: Check and count, change nothing.
        fold: Save (fold the journal into ``dataset.json``) at the end; False leaves the
            journalled edits for the next save (e.g. a viewer that has the dataset open).

    Returns:
        A :class:`LabelSummary`.

    Raises:
        InputError: Bad rows (CSV file and line named), a stance outside the taxonomy.
    """
    ds = dataset if isinstance(dataset, Dataset) else Dataset.load(dataset)
    labels = Path(labels)
    rows = read_label_rows(ds, labels)
    summary = LabelSummary(n_rows=len(rows))
    allowed = _allowed_stances(ds, taxonomy)
    if allowed is None:
        summary.notes.append(
            "the dataset has no stance taxonomy: stance names were not checked "
            "(pass --taxonomy FILE to check them)"
        )
    # Per image: the stance/subject and the line that gave it; one frame, one stance.
    n = len(ds.images)
    new_stance = np.full(n, None, dtype=object)
    new_subject = np.full(n, None, dtype=object)
    stance_line = np.zeros(n, dtype=np.int64)
    for r in rows:
        if r.stance is not None and allowed is not None and r.stance not in allowed:
            raise InputError(
                expected(
                    "stance",
                    f"one of the taxonomy's {len(allowed)} stances "
                    f"({', '.join(allowed[:6])}{', ...' if len(allowed) > 6 else ''})",
                    r.stance,
                ),
                labels,
                r.line,
            )
        if r.stance is not None:
            prev = new_stance[r.rows]
            clash = np.flatnonzero((prev != None) & (prev != r.stance))  # noqa: E711
            if len(clash):
                row = int(r.rows[clash[0]])
                raise InputError(
                    f"Expected one stance per image, but {ds.images['file_name'].iat[row]!r} is "
                    f"{prev[clash[0]]!r} on line {stance_line[row]} and {r.stance!r} here.",
                    labels,
                    r.line,
                )
            new_stance[r.rows] = r.stance
            stance_line[r.rows] = r.line
        if r.subject is not None:
            new_subject[r.rows] = r.subject
    covered = np.flatnonzero((new_stance != None) | (new_subject != None))  # noqa: E711
    summary.n_images = len(covered)
    old_stance = ds.images["stance"].to_numpy(dtype=object)
    old_subject = ds.images["subject"].to_numpy(dtype=object)
    ids = ds.images["id"].to_numpy()
    changes: list[tuple[int, str, str]] = []
    for r in covered:
        changed = False
        s, old = new_stance[r], _clean(old_stance[r])
        if s is not None and s != old:
            changes.append((int(ids[r]), "stance", s))
            if old is None:
                summary.stance_set += 1
            else:
                summary.stance_replaced += 1
            changed = True
        u = new_subject[r]
        if u is not None and u != _clean(old_subject[r]):
            changes.append((int(ids[r]), "subject", u))
            summary.subject_set += 1
            changed = True
        summary.unchanged += not changed
    summary.per_stance = dict(
        sorted(Counter(s for s in new_stance[covered] if s is not None).items())
    )
    final = np.array(
        [new_stance[r] if new_stance[r] is not None else _clean(old_stance[r]) for r in range(n)],
        dtype=object,
    )
    summary.unlabelled = int(sum(v is None for v in final))
    if dry_run:
        return summary
    # One batch: every edit is journalled (one fsync for all) before any of them counts.
    ds.set_image_fields(changes)
    if fold and changes:
        ds.save()
    return summary


def _clean(v):
    if v is None:
        return None
    try:
        if v != v:  # NaN / pandas NA
            return None
    except TypeError:
        return None
    return v


def _allowed_stances(ds: Dataset, taxonomy: str | Path | None) -> list[str] | None:
    if ds.taxonomy and ds.taxonomy.get("stances"):
        return [s["name"] for s in ds.taxonomy["stances"]]
    if taxonomy is None:
        return None
    doc = read_document(taxonomy)
    return [s["name"] for s in doc["stances"]]
