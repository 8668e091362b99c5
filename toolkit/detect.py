"""Run an ultralytics YOLO pose model over a video or an image folder and write a dataset.

The frames stream through the model (a video is decoded frame by frame with
:class:`toolkit.media.video.VideoReader`, in a background thread a few batches ahead of the model,
:func:`toolkit.prefetch.prefetch`; never the whole video in memory). The model runs on the
runtime ``DetectOptions.runtime`` chooses (:mod:`toolkit.runtime`: OpenVINO, onnxruntime or
ultralytics' own torch ``predict``), ``DetectOptions.batch`` frames per call. Every point written has
provenance ``predicted`` (:data:`toolkit.layout.PREDICTED`) and the model's per-keypoint
confidence in ``ds.scores``; the annotation ``score`` is the person box confidence. A point no
model gave (the tip when no stick was found: a 17-keypoint model alone, or no stick matched to
the person) is missing with provenance ``imported``: nothing predicted it, and "predicted" on an
absent point would count it as model output in ``toolkit info`` and let a review queue treat it
as a prediction to check. The grip guessed at the weapon wrist is placed by the detector
pipeline, so it stays ``predicted`` (with ``v = 1`` and the ``grip_from_wrist`` flag).

Three kinds of model give the stick (keypoints 17 and 18):

* a **19-keypoint** model (``trainer detector``) predicts body and stick directly;
* a **17-keypoint** person model plus a **2-keypoint stick model** (``stick_weights``, keypoints
  grip, tip): each stick is given to the person whose wrist is nearest its grip (greedy, one stick
  per person, within half the person's box size);
* a 17-keypoint model alone: the grip starts at the weapon wrist (``v = 1``, score unknown) and the
  tip is missing (``v = 0``). The annotation gets ``flags: ["grip_from_wrist", "tip_missing"]`` so
  the annotator finds it. The weapon wrist is chosen by :func:`choose_weapon_hand`: the more
  extended arm (wrist farther from its own shoulder, by more than 10 %); otherwise the only
  confident wrist; otherwise the right wrist (most practitioners hold the baston in the right hand)
  with ``hand_rule: "right_default"``. With tracking, each track takes its majority hand so the
  grip does not jump between hands from frame to frame.

A point whose confidence is below ``kpt_conf`` keeps its coordinates with ``v = 1`` (uncertain);
confident points get ``v = 2``. Video frames are referenced by ``video_id`` + ``frame_index`` with
the virtual ``file_name`` ``<stem>/<frame:06d>.jpg``; images by their path relative to the source
folder, which becomes the dataset's ``media_root``, in natural order (``frame_2`` before
``frame_10``: a folder of extracted frames plays in time order).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from toolkit import layout
from toolkit.dataset import Dataset
from toolkit.errors import InputError
from toolkit.media import IMAGE_SUFFIXES, iter_frame_pixels
from toolkit.runtime import Poses

HAND_RULES = (
    "stick",
    "more_extended",
    "only_confident",
    "right_default",
    "track_majority",
    "forced",
)


# ---------------------------------------------------------------------------- sources
@dataclass
class Frame:
    """One frame to run the model on.

    Attributes:
        image: BGR uint8 ``(height, width, 3)`` (what ultralytics expects for arrays).
        file_name: Relative file name (virtual ``<stem>/<frame:06d>.jpg`` for video frames).
        frame_index: 0-based index in the video, or None for an image.
        image_id: The image id to keep (frames of an existing dataset), else numbered from 1.
        video_id: The video id to keep (frames of an existing dataset).
    """

    image: np.ndarray
    file_name: str
    frame_index: int | None = None
    image_id: int | None = None
    video_id: int | None = None


@dataclass
class Source:
    """A video or a set of images, read lazily.

    Attributes:
        root: The folder that ``file_name``s are relative to (becomes ``media_root``).
        kind: ``"video"``, ``"images"`` or ``"dataset"`` (every frame of an existing dataset).
        files: Image paths relative to ``root`` (images only).
        video: ``{file_name, fps, frame_count, width, height}`` (video only).
        every: Keep every ``every``-th video frame.
        dataset: The dataset whose frames to read (``"dataset"`` only).
    """

    root: Path
    kind: str
    files: list[str] = field(default_factory=list)
    video: dict | None = None
    every: int = 1
    dataset: Dataset | None = None

    def __len__(self) -> int:
        if self.kind == "video":
            return -(-self.video["frame_count"] // self.every)
        if self.kind == "dataset":
            return len(self.dataset.images)
        return len(self.files)

    def frames(self, notes: list[str] | None = None) -> Iterator[Frame]:
        """Yield frames in order; a video is decoded as it goes."""
        import cv2

        if self.kind == "images":
            for rel in self.files:
                img = cv2.imread(str(self.root / rel), cv2.IMREAD_COLOR)
                if img is None:
                    raise InputError(
                        "Expected an image OpenCV can read, but it could not be decoded.",
                        self.root / rel,
                    )
                yield Frame(img, rel)
            return
        if self.kind == "dataset":
            yield from self._dataset_frames()
            return
        yield from self._video_frames(notes)

    def _video_frames(self, notes: list[str] | None) -> Iterator[Frame]:
        """Every ``every``-th frame of the video, decoded in order, as OpenCV's BGR.

        Read sequentially (skipped frames are grabbed, not converted), which gives the frames
        :class:`toolkit.media.video.VideoReader` gives, without its conversion to RGB and back.
        """
        import cv2

        path = self.root / self.video["file_name"]
        stem = Path(self.video["file_name"]).stem
        total = int(self.video["frame_count"])
        cap = cv2.VideoCapture(str(path))
        try:
            if not cap.isOpened():
                raise InputError(
                    "Expected a video file OpenCV can open, but it could not be opened "
                    "(corrupt, truncated or not a video).",
                    path,
                )
            pos = 0  # the index the next read returns
            for i in range(0, total, self.every):
                while pos < i and cap.grab():  # decode and drop: exact, unlike a seek
                    pos += 1
                ok, bgr = cap.read() if pos == i else (False, None)
                if not ok or bgr is None:
                    if i == 0:
                        raise InputError(
                            f"Expected frame 0 of {total} to decode, but OpenCV could not read "
                            "it (truncated or corrupt video).",
                            path,
                        )
                    # Containers often over-report the frame count: stop at the last readable.
                    if notes is not None:
                        notes.append(f"video ended at frame {i} of the {total} it reports")
                    return
                pos += 1
                yield Frame(bgr, f"{stem}/{i:06d}.jpg", i)
        finally:
            cap.release()

    def _dataset_frames(self) -> Iterator[Frame]:
        """Images in table order, then each video's frames in frame order (one decoder each).

        The pixels come from :func:`toolkit.media.iter_frame_pixels` (the one row -> pixels).
        """
        im = self.dataset.images
        names = im["file_name"].to_numpy(dtype=object)
        ids = im["id"].to_numpy()
        vids = im["video_id"].to_numpy(dtype=object)
        is_frame = ~pd_isna(im["video_id"])
        fidx = im["frame_index"].to_numpy(dtype=object)
        for pos, rgb in iter_frame_pixels(self.dataset):  # one iteration per picture
            r = int(pos[0])
            bgr = np.ascontiguousarray(rgb[..., ::-1])
            if not is_frame[r]:
                yield Frame(bgr, names[r], image_id=int(ids[r]))
            else:
                yield Frame(bgr, names[r], int(fidx[r]), int(ids[r]), int(vids[r]))


def pd_isna(col: Any) -> np.ndarray:
    """Boolean mask of missing values in a pandas column."""
    import pandas as pd

    return pd.isna(col).to_numpy()


def open_source(source: str | Path, every: int = 1) -> Source:
    """A :class:`Source` for a video file, an image file or a folder of images (recursive).

    Raises:
        FileNotFoundError: ``source`` does not exist.
        InputError: A folder without images, or a file that is neither an image nor a video.
    """
    src = Path(source)
    if every < 1:
        raise ValueError(f"Expected '--every' to be at least 1, but got {every}.")
    if not src.exists():
        raise FileNotFoundError(
            f"Expected 'SOURCE' to be a video, an image or a folder of images, "
            f"but {src} does not exist."
        )
    if src.is_dir():
        from toolkit.io import natural_key

        files = sorted(
            (
                p.relative_to(src).as_posix()
                for p in src.rglob("*")
                if p.suffix.lower() in IMAGE_SUFFIXES
                and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(src).parts)
            ),
            key=natural_key,
        )
        if not files:
            raise InputError(
                f"Expected a folder with images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {src.absolute()} "
                "or its subfolders, but found none.",
                src,
            )
        return Source(root=src.absolute(), kind="images", files=files)
    if src.suffix.lower() in IMAGE_SUFFIXES:
        return Source(root=src.parent.absolute(), kind="images", files=[src.name])
    from toolkit.media.video import probe

    info = probe(src)
    return Source(
        root=src.parent.absolute(), kind="video", every=every, video={"file_name": src.name, **info}
    )


def assign_sticks(
    person_kpts: np.ndarray, person_boxes: np.ndarray, stick_kpts: np.ndarray, max_frac: float = 0.5
) -> np.ndarray:
    """Give each stick to the person whose wrist is nearest its grip (greedy, one each).

    Args:
        person_kpts: ``(n, 17+, 3)`` people of one frame (``x, y, conf``).
        person_boxes: ``(n, 4)`` ``x1, y1, x2, y2``; a match must lie within ``max_frac`` of the
            person's larger box side.
        stick_kpts: ``(m, 2, 3)`` sticks (grip, tip).
        max_frac: The largest grip-to-wrist distance, as a fraction of the person's box size.

    Returns:
        ``(n,)`` index of the stick per person, -1 for none.
    """
    n, m = len(person_kpts), len(stick_kpts)
    out = np.full(n, -1, dtype=np.int64)
    if n == 0 or m == 0:
        return out
    wrists = person_kpts[:, [layout.L_WRIST, layout.R_WRIST], :2]  # (n, 2, 2)
    grips = stick_kpts[:, 0, :2]  # (m, 2)
    d = np.linalg.norm(wrists[:, None, :, :] - grips[None, :, None, :], axis=-1).min(-1)  # (n, m)
    size = np.maximum(
        person_boxes[:, 2] - person_boxes[:, 0], person_boxes[:, 3] - person_boxes[:, 1]
    )
    d = np.where(d <= max_frac * size[:, None], d, np.inf)
    taken = np.zeros(m, bool)
    for flat in np.argsort(d, axis=None):
        p, s = divmod(int(flat), m)
        if not np.isfinite(d[p, s]):
            break
        if out[p] < 0 and not taken[s]:
            out[p] = s
            taken[s] = True
    return out


def choose_weapon_hand(
    kp17: np.ndarray, kpt_conf: float = 0.5, margin: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """The weapon hand per person when no stick was detected (vectorised).

    Rule, in order: the more extended arm (wrist-to-own-shoulder distance larger by more than
    ``margin``, both wrists confident); the only confident wrist; otherwise the right wrist.

    Args:
        kp17: ``(N, 17+, 3)`` ``x, y, confidence``.
        kpt_conf: The confidence at which a wrist counts as seen.
        margin: How much farther (relative) one wrist must be from its shoulder to decide.

    Returns:
        ``(side, rule)``: ``(N,)`` 0 = left, 1 = right; ``(N,)`` rule names from
        :data:`HAND_RULES`.
    """
    kp = np.asarray(kp17, dtype=np.float64)
    conf_l = kp[:, layout.L_WRIST, 2] >= kpt_conf
    conf_r = kp[:, layout.R_WRIST, 2] >= kpt_conf
    ext_l = np.linalg.norm(kp[:, layout.L_WRIST, :2] - kp[:, layout.L_SHOULDER, :2], axis=-1)
    ext_r = np.linalg.norm(kp[:, layout.R_WRIST, :2] - kp[:, layout.R_SHOULDER, :2], axis=-1)
    both = conf_l & conf_r
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = (ext_l - ext_r) / np.maximum(np.maximum(ext_l, ext_r), 1e-9)
    side = np.ones(len(kp), dtype=np.int64)
    rule = np.full(len(kp), "right_default", dtype=object)
    decided = both & (np.abs(rel) > margin)
    side[decided] = np.where(rel[decided] > 0, 0, 1)
    rule[decided] = "more_extended"
    only = conf_l ^ conf_r
    side[only] = np.where(conf_l[only], 0, 1)
    rule[only] = "only_confident"
    return side, rule


def to_arnis(kpts: np.ndarray, kpt_conf: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Model points ``(N, 17|19, 3)`` (``x, y, conf``) -> ``(N, 19, 3)`` ``x, y, v`` + scores.

    ``v`` is 2 at or above ``kpt_conf``, 1 below; points a 17-keypoint model lacks are missing.
    """
    n, k = kpts.shape[:2]
    if k not in (layout.NUM_BODY, layout.NUM_KEYPOINTS):
        raise InputError(
            f"Expected a pose model with {layout.NUM_BODY} or {layout.NUM_KEYPOINTS} "
            f"keypoints, but it predicts {k}."
        )
    out = np.full((n, layout.NUM_KEYPOINTS, 3), np.nan)
    out[..., 2] = 0
    scores = np.full((n, layout.NUM_KEYPOINTS), np.nan, np.float32)
    out[:, :k, :2] = kpts[..., :2]
    conf = np.clip(kpts[..., 2], 0.0, 1.0)
    out[:, :k, 2] = np.where(conf >= kpt_conf, 2, 1)
    scores[:, :k] = conf
    return out, scores


# ---------------------------------------------------------------------------- tracking
class IoUTracker:
    """Greedy IoU linking of person boxes across consecutive processed frames.

    A box continues the track whose last box overlaps it most (IoU at least ``min_iou``); tracks
    unseen for more than ``max_age`` processed frames end. Cheap and dependency-free (ultralytics'
    trackers need the ``lap`` package, which is not installed).
    """

    def __init__(self, min_iou: float = 0.3, max_age: int = 5):
        self.min_iou = min_iou
        self.max_age = max_age
        self._boxes = np.zeros((0, 4))
        self._ids = np.zeros(0, np.int64)
        self._age = np.zeros(0, np.int64)
        self._next = 1

    def __repr__(self) -> str:
        return (
            f"IoUTracker(min_iou={self.min_iou}, max_age={self.max_age}, tracks={len(self._ids)})"
        )

    def update(self, boxes: np.ndarray) -> np.ndarray:
        """Track ids ``(n,)`` for this frame's ``(n, 4)`` xyxy boxes."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        ids = np.zeros(len(boxes), np.int64)
        iou = box_iou(boxes, self._boxes)
        used = np.zeros(len(self._ids), bool)
        assigned = np.zeros(len(boxes), bool)
        for flat in np.argsort(-iou, axis=None):
            i, j = divmod(int(flat), len(self._ids))
            if iou[i, j] < self.min_iou:
                break
            if not assigned[i] and not used[j]:
                ids[i] = self._ids[j]
                self._boxes[j] = boxes[i]
                assigned[i] = used[j] = True
        self._age[used] = 0
        self._age[~used] += 1
        keep = self._age <= self.max_age
        new = ~assigned
        ids[new] = np.arange(self._next, self._next + new.sum())
        self._next += int(new.sum())
        self._boxes = np.concatenate([self._boxes[keep], boxes[new]])
        self._ids = np.concatenate([self._ids[keep], ids[new]])
        self._age = np.concatenate([self._age[keep], np.zeros(int(new.sum()), np.int64)])
        return ids


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(n, m)`` IoU of xyxy boxes."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).prod(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = inter / (area_a[:, None] + area_b[None, :] - inter)
    return np.nan_to_num(iou, nan=0.0)


# ---------------------------------------------------------------------------- the detector
@dataclass
class DetectOptions:
    """What ``toolkit detect`` runs with.

    Attributes:
        imgsz: Inference size (pixels, long side).
        every: Keep every ``every``-th video frame.
        conf: Minimum person (and stick) box confidence.
        kpt_conf: Keypoint confidence at and above which a point is ``v = 2`` (below: ``v = 1``).
        hand: ``auto`` (see :func:`choose_weapon_hand`), ``left`` or ``right``: the weapon hand
            when no stick was detected.
        track: Link people across video frames (``track_id``).
        device: ``cpu``, ``cuda``/``0`` or ``auto``.
        batch: Frames per model call (frames of one size are stacked).
        runtime: How the model runs (:data:`toolkit.runtime.RUNTIMES`): ``auto`` (OpenVINO for a
            ``.pt`` on the CPU when installed, torch on a GPU or without it; an exported model on
            its own runtime), ``torch``, ``openvino`` or ``onnx`` (see :mod:`toolkit.runtime`).
        threads: Inference threads of the OpenVINO/onnxruntime runtimes; 0 = one per core (an
            engine running several tasks on one machine passes each its share).
    """

    imgsz: int = 640
    every: int = 1
    conf: float = 0.25
    kpt_conf: float = 0.5
    hand: str = "auto"
    track: bool = True
    device: str = "auto"
    batch: int = 1
    runtime: str = "auto"
    threads: int = 0


class TorchModel:
    """A ``.pt`` pose model through ultralytics' own ``predict`` (the ``torch`` runtime).

    Args:
        model: The ``ultralytics.YOLO``.
        imgsz: Inference size.
        conf: Minimum box confidence.
        device: An ultralytics device string.
    """

    def __init__(self, model: Any, imgsz: int, conf: float, device: str):
        self.model = model
        self.imgsz = imgsz
        self.conf = conf
        self.device = device

    def __repr__(self) -> str:
        return f"TorchModel(imgsz={self.imgsz}, device={self.device!r})"

    def predict(self, images: list[np.ndarray]) -> list[Poses]:
        """:class:`Poses` for a batch of BGR frames."""
        res = self.model.predict(
            images, imgsz=self.imgsz, conf=self.conf, verbose=False, device=self.device
        )
        return [Poses.from_result(r) for r in res]


class Detector:
    """A pose model (and an optional stick model) turning frames into Arnis poses.

    Args:
        weights: A ``.pt``, an exported ``.onnx`` or an OpenVINO export (folder or ``.xml``) of a
            pose model (17 or 19 keypoints).
        stick_weights: Optional 2-keypoint (grip, tip) model.
        options: :class:`DetectOptions` (``runtime`` chooses how each model runs).
    """

    def __init__(
        self,
        weights: str | Path,
        stick_weights: str | Path | None = None,
        options: DetectOptions | None = None,
    ):
        from toolkit import ultra

        self.options = options or DetectOptions()
        self.device = ultra.auto_device(self.options.device)
        self.imgsz = self.options.imgsz
        self.weights = ultra.resolve_weights(weights, "--weights")
        self.runtime, self.model = self._load(self.weights, "--weights")
        self.stick_weights = (
            ultra.resolve_weights(stick_weights, "--stick-weights") if stick_weights else None
        )
        self.stick_model = (
            self._load(self.stick_weights, "--stick-weights")[1] if self.stick_weights else None
        )

    def __repr__(self) -> str:
        return (
            f"Detector(weights='{self.weights}', stick_weights={self.stick_weights!r}, "
            f"runtime={self.runtime!r}, imgsz={self.imgsz})"
        )

    def _load(self, path: Path, what: str) -> tuple[str, Any]:
        """``(runtime, model)`` for a resolved model file (exported first when needed)."""
        from toolkit import runtime, ultra

        opts = self.options
        # on a GPU, torch is the fast runtime
        rt, model_file = runtime.model_for(path, opts.runtime, gpu=self.device != "cpu")
        if rt == "torch":
            return rt, TorchModel(ultra.yolo(path, what=what), self.imgsz, opts.conf, self.device)
        return rt, runtime.ExportedModel(
            model_file, self.imgsz, opts.conf, batch=opts.batch, threads=opts.threads
        )

    def predict(self, images: list[np.ndarray]) -> list[tuple[Poses, Poses | None]]:
        """People (and sticks) for a batch of BGR frames."""
        people = self.model.predict(images)
        sticks = (
            self.stick_model.predict(images)
            if self.stick_model is not None
            else [None] * len(images)
        )
        return list(zip(people, sticks, strict=True))


def run_frames(
    det: Detector,
    frames: Iterable[Frame],
    acc: _Accumulator,
    tracker: IoUTracker | None = None,
    bar: Any = None,
) -> None:
    """Run ``det`` over ``frames`` in batches, adding each frame's people to ``acc``.

    The frames are produced (decoded) in a background thread, a few batches ahead
    (:func:`toolkit.prefetch.prefetch`), while the model runs on the previous batch.
    """
    from toolkit.prefetch import prefetch

    size = max(1, det.options.batch)
    batch: list[Frame] = []

    def flush() -> None:
        for fr, (people, sticks) in zip(batch, det.predict([f.image for f in batch]), strict=True):
            tids = tracker.update(people.boxes) if tracker is not None else None
            acc.add(fr, people, sticks, tids)
        if bar is not None:
            bar.update(len(batch))
        batch.clear()

    with contextlib.closing(prefetch(frames, size=2 * size, name="detect-decode")) as it:
        for fr in it:
            batch.append(fr)
            if len(batch) >= size:
                flush()
    if batch:
        flush()


def detect(
    source: str | Path,
    weights: str | Path,
    out: str | Path | None = None,
    *,
    stick_weights: str | Path | None = None,
    options: DetectOptions | None = None,
    overwrite: bool = False,
    progress: bool = True,
    detector: Detector | None = None,
) -> Dataset:
    """Run a pose model over ``source`` and build (and, with ``out``, write) a dataset.

    Args:
        source: A video file, an image file or a folder of images.
        weights: The pose model (``.pt``, ``.onnx`` or OpenVINO folder/``.xml``; see
            :func:`toolkit.ultra.resolve_weights`); ``options.runtime`` chooses how it runs.
        out: Dataset directory to write (built beside it, renamed into place when complete).
        stick_weights: Optional 2-keypoint stick model.
        options: :class:`DetectOptions`.
        overwrite: Replace an existing ``out``.
        progress: Show a tqdm bar on stderr.
        detector: A :class:`Detector` already loaded with these ``weights``, ``stick_weights``
            and ``options`` (an engine's worker reuses one across its sources).

    Returns:
        The dataset (saved at ``out`` when given).
    """
    from tqdm import tqdm

    opts = options or DetectOptions()
    if opts.hand not in ("auto", "left", "right"):
        raise ValueError(f"Expected '--hand' to be auto, left or right, but got {opts.hand!r}.")
    if out is not None and Path(out).exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; choose another --out or pass --overwrite.")
    src = open_source(source, opts.every)
    det = detector or Detector(weights, stick_weights, opts)
    tracker = IoUTracker() if (opts.track and src.kind == "video") else None
    notes: list[str] = []
    acc = _Accumulator()
    with tqdm(
        total=len(src), unit="frame", desc="detect", disable=not progress, leave=False
    ) as bar:
        run_frames(det, src.frames(notes), acc, tracker, bar)
    ds = acc.build(src, opts, det, notes)
    if out is not None:
        from toolkit.fileio import staged_dir

        out = Path(out).absolute()
        try:
            ds.media_root = os.path.relpath(src.root, out)
        except ValueError:  # another drive (Windows)
            ds.media_root = str(src.root)
        with staged_dir(out, overwrite=overwrite) as stage:
            ds.save(stage)
        ds.path = out
        ds._stamp = None
    return ds


def detect_dataset(
    ds: Dataset,
    weights: str | Path,
    *,
    stick_weights: str | Path | None = None,
    options: DetectOptions | None = None,
    progress: bool = True,
) -> Dataset:
    """Predictions for every frame of an existing dataset, keeping its image ids and file names.

    The result shares ``ds``'s frames (same ``images`` ids, ``file_name``s, ``videos`` and an
    absolute ``media_root``), so :func:`toolkit.evaluate.evaluate` pairs them exactly. Used by
    ``trainer detector`` to report a trained model's accuracy on its data. A ``.pt`` with
    ``runtime="auto"`` runs on torch here: one pass over a training set does not repay an export
    (seconds, and a cache entry per trained model), and the reported accuracy is torch's.

    Args:
        ds: The dataset whose frames to predict.
        weights: The pose model (see :func:`detect`).
        stick_weights: Optional 2-keypoint stick model.
        options: :class:`DetectOptions` (``track`` is ignored).
        progress: Show a tqdm bar on stderr.

    Returns:
        The predictions, as a dataset over ``ds``'s frames.
    """
    from dataclasses import replace

    from tqdm import tqdm

    opts = options or DetectOptions()
    if opts.runtime == "auto":
        all_pt = _is_pt(weights) and (stick_weights is None or _is_pt(stick_weights))
        opts = replace(opts, runtime="torch" if all_pt else "auto")
    src = Source(root=ds.media_path().absolute(), kind="dataset", dataset=ds)
    det = Detector(weights, stick_weights, opts)
    acc = _Accumulator()
    notes: list[str] = []
    with tqdm(
        total=len(src), unit="frame", desc="predict", disable=not progress, leave=False
    ) as bar:
        run_frames(det, src.frames(notes), acc, None, bar)
    no_track = DetectOptions(**{**opts.__dict__, "track": False})
    return acc.build(src, no_track, det, notes)


def _is_pt(weights: str | Path) -> bool:
    """Whether ``weights`` names a ``.pt`` model."""
    return Path(str(weights)).suffix.lower() == ".pt"


class _Accumulator:
    """Collects per-frame model output; :meth:`build` converts all frames at once."""

    def __init__(self) -> None:
        self.images: list[dict] = []
        self.kpts: list[np.ndarray] = []
        self.boxes: list[np.ndarray] = []
        self.conf: list[np.ndarray] = []
        self.image_of: list[np.ndarray] = []
        self.track: list[np.ndarray] = []
        self.stick: list[np.ndarray] = []  # (n, 2, 3) matched stick points, NaN when none
        self.k: int | None = None

    def add(
        self, fr: Frame, people: Poses, sticks: Poses | None, track_ids: np.ndarray | None
    ) -> None:
        h, w = fr.image.shape[:2]
        image_id = fr.image_id if fr.image_id is not None else len(self.images) + 1
        rec = {"id": image_id, "file_name": fr.file_name, "width": int(w), "height": int(h)}
        if fr.frame_index is not None:
            rec.update(video_id=fr.video_id or 1, frame_index=int(fr.frame_index))
        self.images.append(rec)
        n = len(people.conf)
        if n == 0:
            return
        self.k = people.kpts.shape[1]
        self.kpts.append(people.kpts)
        self.boxes.append(people.boxes)
        self.conf.append(people.conf)
        self.image_of.append(np.full(n, image_id))
        self.track.append(track_ids if track_ids is not None else np.zeros(n, np.int64))
        matched = np.full((n, 2, 3), np.nan)
        if sticks is not None and len(sticks.conf):
            if sticks.kpts.shape[1] != 2:
                raise InputError(
                    f"Expected a stick model with 2 keypoints (grip, tip), but it "
                    f"predicts {sticks.kpts.shape[1]}."
                )
            idx = assign_sticks(people.kpts, people.boxes, sticks.kpts)
            ok = idx >= 0
            matched[ok] = sticks.kpts[idx[ok]]
        self.stick.append(matched)

    def build(self, src: Source, opts: DetectOptions, det: Detector, notes: list[str]) -> Dataset:
        k = self.k or layout.NUM_BODY
        if self.kpts:
            raw = np.concatenate(self.kpts)
            boxes = np.concatenate(self.boxes)
            conf = np.concatenate(self.conf)
            image_of = np.concatenate(self.image_of)
            track = np.concatenate(self.track)
            stick = np.concatenate(self.stick)
        else:
            raw = np.zeros((0, k, 3))
            boxes = np.zeros((0, 4))
            conf = image_of = track = np.zeros(0)
            stick = np.zeros((0, 2, 3))
        kp, scores = to_arnis(raw, opts.kpt_conf)
        n = len(kp)
        method = np.full(n, "model" if k == layout.NUM_KEYPOINTS else "wrist_guess", dtype=object)
        if k == layout.NUM_BODY:
            has_stick = np.isfinite(stick[:, 0, 0])
            sc = np.clip(stick[..., 2], 0, 1)
            kp[has_stick, layout.GRIP :, :2] = stick[has_stick, :, :2]
            kp[has_stick, layout.GRIP :, 2] = np.where(sc[has_stick] >= opts.kpt_conf, 2, 1)
            scores[has_stick, layout.GRIP :] = sc[has_stick]
            method[has_stick] = "stick_model"
        side = np.full(n, -1, np.int64)
        rule = np.full(n, "stick", dtype=object)
        stick_known = method != "wrist_guess"
        if stick_known.any():  # weapon hand = the wrist nearest the grip
            wr = kp[stick_known][:, [layout.L_WRIST, layout.R_WRIST], :2]
            d = np.linalg.norm(wr - kp[stick_known, layout.GRIP, None, :2], axis=-1)
            side[stick_known] = np.argmin(np.nan_to_num(d, nan=np.inf), axis=1)
        guess = ~stick_known
        if guess.any():
            if opts.hand == "auto":
                s, r = choose_weapon_hand(raw[guess], opts.kpt_conf)
                if opts.track and src.kind == "video":
                    s, r = _track_majority(track[guess], s, r)
            else:
                s = np.full(int(guess.sum()), 0 if opts.hand == "left" else 1)
                r = np.full(len(s), "forced", dtype=object)
            side[guess] = s
            rule[guess] = r
            rows = np.flatnonzero(guess)
            wrist = layout.L_WRIST + side[guess]
            kp[rows, layout.GRIP, :2] = kp[rows, wrist, :2]
            kp[rows, layout.GRIP, 2] = 1  # a guess: labelled, not seen
            # tip stays missing (NaN, v = 0); scores of both stay unknown (NaN)
        tracked = bool(opts.track and src.kind == "video")
        anns = []
        hand_name = np.array(["left", "right"])
        for i in range(n):
            a: dict[str, Any] = {
                "id": i + 1,
                "image_id": int(image_of[i]),
                "category_id": 1,
                "score": float(conf[i]),
                "stick": str(method[i]),
                "hand_rule": str(rule[i]),
            }
            if side[i] >= 0:
                a["weapon_hand"] = str(hand_name[side[i]])
            if tracked:
                a["track_id"] = int(track[i])
            if method[i] == "wrist_guess":
                a["flags"] = ["grip_from_wrist", "tip_missing"]
            anns.append(a)
        xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
        videos = []
        if src.kind == "dataset":
            videos = [dict(v) for v in src.dataset.videos]
        elif src.kind == "video":
            v = src.video
            videos = [
                {
                    "id": 1,
                    "file_name": v["file_name"],
                    "fps": v["fps"] or 30.0,
                    "frame_count": int(v["frame_count"]),
                    "width": int(v["width"]),
                    "height": int(v["height"]),
                }
            ]
            if not v["fps"]:
                notes.append("the video reports no fps; 30 assumed")
        meta = {
            "detect": {
                "source": (
                    str(src.dataset.path)
                    if src.kind == "dataset"
                    else str(src.root / (src.video["file_name"] if src.video else ""))
                ),
                "weights": str(det.weights),
                "runtime": det.runtime,
                "stick_weights": str(det.stick_weights) if det.stick_weights else None,
                "model_keypoints": int(k),
                "imgsz": det.imgsz,
                "every": opts.every,
                "conf": opts.conf,
                "kpt_conf": opts.kpt_conf,
                "hand": opts.hand,
                "tracked": tracked,
                "n_frames": len(self.images),
                "n_people": n,
                "n_wrist_guess": int((method == "wrist_guess").sum()),
                "notes": notes,
            }
        }
        return Dataset.from_records(
            self.images,
            anns,
            kp,
            scores=scores,
            # Absent points (v = 0) were not predicted: they stay missing, as imported.
            source=np.where(kp[..., 2] > 0, layout.PREDICTED, layout.IMPORTED).astype(np.uint8),
            bboxes=xywh,
            videos=videos,
            media_root=str(src.root),
            meta=meta,
        )


def _track_majority(
    track: np.ndarray, side: np.ndarray, rule: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each track takes the hand most of its decided frames chose (``right_default`` excluded)."""
    import pandas as pd

    decided = rule != "right_default"
    if not decided.any():
        return side, rule
    df = pd.DataFrame({"track": track[decided], "side": side[decided]})
    vote = df.groupby("track")["side"].mean()
    maj = vote.reindex(track).to_numpy()
    has = np.isfinite(maj)
    new_side = side.copy()
    new_side[has] = (maj[has] >= 0.5).astype(np.int64)
    new_rule = rule.copy()
    new_rule[has] = "track_majority"
    return new_side, new_rule
