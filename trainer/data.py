"""Dataset -> tensors: taxonomy targets, normalised graph inputs, grip crops, augmentation.

Everything here is plain numpy over all frames (or one batch) at once; the model and the ONNX
scorer consume exactly what :func:`featurise` and :func:`read_crops` return, so a scorer only has
to call these two functions to feed an exported model.

Normalisation (stored in the ONNX metadata, see :func:`normalisation_spec`):

* centre = midpoint of the hips (one hip when the other is missing, else the mean of the
  present points);
* scale = torso length (shoulder midpoint to hip midpoint; fallback 0.3 x the height of the
  present points), so coordinates are in "torso units";
* node features ``x, y, confidence, visibility, weapon`` (:data:`NODE_FEATURES`): visibility is
  the COCO flag / 2 (0.5 occluded, 1 visible); a missing point has all of them 0 except weapon,
  so ``visibility > 0`` marks a present point;
* edge attributes ``length, sin, cos, rigid`` per directed edge of :data:`trainer.graph.GRAPH`
  (zeros when an endpoint is missing);
* crop: a square of side ``1.5 x torso`` (at least 32 px) centred on the grip (the weapon wrist
  when the grip is missing), resized to 128 x 128, RGB, float in 0..1 (ImageNet mean/std are
  applied inside the model).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from toolkit import layout
from toolkit.errors import InputError, expected
from trainer.graph import GRAPH, GROUPS, GraphSpec, edge_sources, weapon_side

NODE_FEATURES: tuple[str, ...] = ("x", "y", "confidence", "visibility", "weapon")
VISIBILITY_FEATURE = NODE_FEATURES.index("visibility")
EDGE_FEATURES: tuple[str, ...] = ("length", "sin", "cos", "rigid")
GEOMETRY_TARGETS: tuple[str, ...] = ("grip_dx", "grip_dy", "stick_length", "angle_offset")
WEAPON_FEATURE = NODE_FEATURES.index("weapon")
CROP_SIZE = 128
CROP_SIDE_TORSO = 1.5
CROP_MIN_SIDE = 32.0


# ---------------------------------------------------------------------- taxonomy
@dataclass
class Taxonomy:
    """Stance classes and their hierarchy (family = footwork, chamber = weapon position).

    Attributes:
        classes: Stance names in class-index order.
        families: Family names (empty for a flat taxonomy).
        chambers: Chamber names (empty for a flat taxonomy).
        family_of: ``(C,)`` family index of each stance (-1 when flat).
        chamber_of: ``(C,)`` chamber index of each stance (-1 when flat).
    """

    classes: list[str]
    families: list[str] = field(default_factory=list)
    chambers: list[str] = field(default_factory=list)
    family_of: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    chamber_of: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def hierarchical(self) -> bool:
        return bool(self.families) and bool(self.chambers)

    def __repr__(self) -> str:
        return (
            f"Taxonomy(classes={len(self.classes)}, families={len(self.families)}, "
            f"chambers={len(self.chambers)})"
        )

    @classmethod
    def from_dict(cls, doc: dict, file: str | Path | None = None) -> Taxonomy:
        """Validate a taxonomy document (``schemas/taxonomy.schema.json``) and index it.

        Raises:
            InputError: Schema violations, duplicate stance names, or family/chamber given for
                some stances but not others.
        """
        from toolkit.schema import validate

        validate(doc, "taxonomy", file)
        names = [s["name"] for s in doc["stances"]]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise InputError(
                expected("taxonomy stances[].name", "unique", dup[0])
                + " (it appears more than once)",
                file,
            )
        has_f = [("family" in s) and ("chamber" in s) for s in doc["stances"]]
        if any(has_f) and not all(has_f):
            bad = names[has_f.index(False)]
            raise InputError(
                f"Expected every stance to have both 'family' and 'chamber' (or none, for a flat "
                f"taxonomy), but stance {bad!r} lacks one.",
                file,
            )
        if not all(has_f):
            return cls(classes=names)
        families = list(doc.get("families") or dict.fromkeys(s["family"] for s in doc["stances"]))
        chambers = list(doc.get("chambers") or dict.fromkeys(s["chamber"] for s in doc["stances"]))
        for key, known in (("family", families), ("chamber", chambers)):
            for s in doc["stances"]:
                if s[key] not in known:
                    raise InputError(
                        expected(f"stance {s['name']!r} {key}", f"one of {known}", s[key]), file
                    )
        return cls(
            classes=names,
            families=families,
            chambers=chambers,
            family_of=np.array([families.index(s["family"]) for s in doc["stances"]], np.int64),
            chamber_of=np.array([chambers.index(s["chamber"]) for s in doc["stances"]], np.int64),
        )

    @classmethod
    def load(cls, path: str | Path) -> Taxonomy:
        """Read and validate a taxonomy JSON file."""
        import json

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"Expected a taxonomy file, but {path} does not exist.")
        try:
            doc = json.loads(path.read_text("utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(f"Expected valid JSON, but parsing failed: {exc}", path) from None
        return cls.from_dict(doc, path)

    def to_dict(self) -> dict:
        """The taxonomy document (round-trips through :meth:`from_dict`)."""
        if not self.hierarchical:
            return {"stances": [{"name": n} for n in self.classes]}
        return {
            "families": self.families,
            "chambers": self.chambers,
            "stances": [
                {"name": n, "family": self.families[f], "chamber": self.chambers[c]}
                for n, f, c in zip(self.classes, self.family_of, self.chamber_of, strict=True)
            ],
        }


# ---------------------------------------------------------------------- normalisation
def _nanmean_pair(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Midpoint of two ``(N, 2)`` points, or whichever one is present."""
    both = np.stack([a, b])
    ok = np.isfinite(both).all(-1)
    cnt = ok.sum(0)
    tot = np.where(ok[..., None], both, 0.0).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt[:, None] > 0, tot / np.maximum(cnt, 1)[:, None], np.nan)


def body_frame(kp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre (hips) and scale (torso length) of each frame, in pixels.

    Shapes:
        kp: ``(N, 19, 3)`` pixels, NaN where missing. Returns ``centre (N, 2)``, ``scale (N,)``.
    """
    xy = np.asarray(kp, np.float64)[..., :2]
    hip = _nanmean_pair(xy[:, layout.L_HIP], xy[:, layout.R_HIP])
    sho = _nanmean_pair(xy[:, layout.L_SHOULDER], xy[:, layout.R_SHOULDER])
    present = np.isfinite(xy).all(-1)
    cnt = present.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(present[..., None], xy, 0.0).sum(1) / np.maximum(cnt, 1)[:, None]
    mean[cnt == 0] = 0.0
    centre = np.where(np.isfinite(hip).all(-1, keepdims=True), hip, mean)
    torso = np.hypot(*(sho - hip).T)
    ys = np.where(present, xy[..., 1], np.nan)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        height = np.nanmax(ys, 1) - np.nanmin(ys, 1)
    fallback = np.where(np.isfinite(height) & (height > 0), 0.3 * height, 1.0)
    scale = np.where(np.isfinite(torso) & (torso > 1e-6), torso, fallback)
    return centre, scale


def confidence(kp: np.ndarray, scores: np.ndarray | None) -> np.ndarray:
    """``(N, 19)`` confidence per point: the score when known, else 1 when present, 0 missing."""
    present = np.isfinite(kp[..., :2]).all(-1) & (kp[..., 2] > 0)
    conf = present.astype(np.float64)
    if scores is not None:
        s = np.asarray(scores, np.float64)
        conf = np.where(np.isfinite(s) & present, np.clip(s, 0, 1), conf)
    return conf


def facing_left(kp: np.ndarray) -> np.ndarray:
    """Whether each person faces image-left: the nose is left of the eyes/ears midpoint.

    Shapes:
        kp: ``(N, 19, 3)``. Returns ``(N,)`` bool (False when the head is not visible).
    """
    kp = np.asarray(kp, np.float64)
    ok = np.isfinite(kp[..., 0]) & (kp[..., 2] > 0)
    head = ok[:, 1:5]
    hx = np.where(head, kp[:, 1:5, 0], 0.0).sum(1) / np.maximum(head.sum(1), 1)
    return ok[:, layout.NOSE] & head.any(1) & (kp[:, layout.NOSE, 0] < hx)


def canonical(kp: np.ndarray, conf: np.ndarray | None = None):
    """Mirror people facing image-left so everyone faces right (x -> -x, left/right swapped).

    Stance labels do not depend on which way the camera saw the person, so the model never has
    to learn both directions from a few hundred frames. The crops get the same flip
    (:func:`read_crops`).

    Shapes:
        kp: ``(N, 19, 3)``; conf: ``(N, 19)``. Returns them canonicalised (copies).
    """
    kp = np.array(kp, np.float64, copy=True)
    flip = facing_left(kp)
    perm = np.asarray(layout.FLIP_IDX)
    kp[flip] = kp[flip][:, perm]
    kp[flip, :, 0] = -kp[flip, :, 0]
    if conf is not None:
        conf = np.array(conf, np.float64, copy=True)
        conf[flip] = conf[flip][:, perm]
    return kp, conf


def featurise(
    kp: np.ndarray, conf: np.ndarray | None = None, spec: GraphSpec = GRAPH
) -> tuple[np.ndarray, np.ndarray]:
    """Node features and edge attributes for the 19-node graph.

    Args:
        kp: Keypoints in pixels (NaN or ``v == 0`` where missing).
        conf: Per-point confidence (default: 1 present / 0 missing).

    Shapes:
        kp: ``(N, 19, 3)``; conf: ``(N, 19)``.
        Returns ``nodes (N, 19, 5)`` and ``edge_attr (N, E, 4)``, float32.
    """
    kp = np.asarray(kp, np.float64)
    n = len(kp)
    present = np.isfinite(kp[..., :2]).all(-1) & (kp[..., 2] > 0)
    if conf is None:
        conf = present.astype(np.float64)
    kp, conf = canonical(kp, conf)
    present = np.isfinite(kp[..., :2]).all(-1) & (kp[..., 2] > 0)
    centre, scale = body_frame(np.where(present[..., None], kp, np.nan))
    xy = (kp[..., :2] - centre[:, None]) / scale[:, None, None]
    xy = np.where(present[..., None], xy, 0.0)
    side = weapon_side(np.where(present[..., None], kp, np.nan))
    weapon = np.zeros((n, layout.NUM_KEYPOINTS))
    rows = np.arange(n)
    weapon[rows, layout.L_WRIST + side] = 1.0
    weapon[rows, layout.L_ELBOW + side] = 1.0
    nodes = np.concatenate(
        [
            xy,
            np.where(present, conf, 0.0)[..., None],
            np.where(present, np.clip(kp[..., 2], 1, 2) / 2, 0.0)[..., None],
            weapon[..., None],
        ],
        axis=-1,
    )
    src, dst = edge_sources(side, spec)
    vec = xy[rows[:, None], dst] - xy[rows[:, None], src]
    ok = present[rows[:, None], src] & present[rows[:, None], dst] & (src != dst)
    length = np.hypot(vec[..., 0], vec[..., 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        sin = np.where(length > 0, vec[..., 1] / length, 0.0)
        cos = np.where(length > 0, vec[..., 0] / length, 0.0)
    rigid = np.broadcast_to(spec.group == GROUPS.index("rigid"), ok.shape)
    edge = np.stack([length, sin, cos, rigid.astype(np.float64)], -1)
    edge = np.where(ok[..., None], edge, 0.0)
    return nodes.astype(np.float32), edge.astype(np.float32)


def geometry_targets(kp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stick-geometry regression targets and their validity mask.

    ``grip_dx, grip_dy``: grip minus weapon wrist; ``stick_length``: grip-to-tip length (all in
    torso units); ``angle_offset``: stick angle minus forearm angle (elbow -> wrist), wrapped to
    -pi..pi and divided by pi.

    Shapes:
        kp: ``(N, 19, 3)``. Returns ``targets (N, 4)`` float32 and ``mask (N, 4)`` bool.
    """
    kp, _ = canonical(kp)
    present = np.isfinite(kp[..., :2]).all(-1) & (kp[..., 2] > 0)
    xyn = np.where(present[..., None], kp[..., :2], np.nan)
    centre, scale = body_frame(xyn)
    xy = (xyn - centre[:, None]) / scale[:, None, None]
    side = weapon_side(xyn)
    rows = np.arange(len(kp))
    wrist = xy[rows, layout.L_WRIST + side]
    elbow = xy[rows, layout.L_ELBOW + side]
    grip, tip = xy[:, layout.GRIP], xy[:, layout.TIP]
    d = grip - wrist
    stick = tip - grip
    fore = wrist - elbow
    ang = np.arctan2(stick[:, 1], stick[:, 0]) - np.arctan2(fore[:, 1], fore[:, 0])
    ang = (ang + np.pi) % (2 * np.pi) - np.pi
    t = np.stack([d[:, 0], d[:, 1], np.hypot(*stick.T), ang / np.pi], -1)
    mask = np.isfinite(t)
    return np.nan_to_num(t).astype(np.float32), mask


def normalisation_spec() -> dict:
    """What a consumer of an exported model must reproduce (written into the ONNX metadata)."""
    return {
        "centre": "midpoint of left_hip/right_hip (one hip if the other is missing)",
        "scale": "torso length: shoulder midpoint to hip midpoint (pixels)",
        "node_features": list(NODE_FEATURES),
        "edge_features": list(EDGE_FEATURES),
        "missing_point": "x = y = confidence = visibility = 0",
        "weapon_side": "wrist nearest the grip (tip when grip missing); weapon=1 on that wrist "
        "and elbow",
        "crop": {
            "size": CROP_SIZE,
            "side": f"{CROP_SIDE_TORSO} x torso, min {CROP_MIN_SIDE} px",
            "centre": "grip, else weapon wrist",
            "channels": "RGB",
            "range": "0..1",
            "layout": "NCHW",
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
            "mean_std_applied": "inside the model",
        },
        "facing": "a person whose nose is left of the eyes/ears midpoint is mirrored (x -> -x) "
        "and left/right points swapped (FLIP_IDX) before all of the above; the crop is mirrored "
        "horizontally too",
        "implementation": "trainer.data.featurise / trainer.data.read_crops",
    }


# ---------------------------------------------------------------------- crops
def crop_windows(kp: np.ndarray) -> np.ndarray:
    """Square crop windows around the grip (weapon wrist when missing), in pixels.

    Shapes:
        kp: ``(N, 19, 3)``. Returns ``(N, 3)``: centre x, centre y, side.
    """
    kp = np.asarray(kp, np.float64)
    present = np.isfinite(kp[..., :2]).all(-1) & (kp[..., 2] > 0)
    xyn = np.where(present[..., None], kp[..., :2], np.nan)
    centre, scale = body_frame(xyn)
    side = weapon_side(xyn)
    rows = np.arange(len(kp))
    wrist = xyn[rows, layout.L_WRIST + side]
    other = xyn[rows, layout.R_WRIST - side]
    c = xyn[:, layout.GRIP]
    for fallback in (wrist, other, centre):
        c = np.where(np.isfinite(c).all(-1, keepdims=True), c, fallback)
    c = np.nan_to_num(c)
    return np.column_stack([c, np.maximum(CROP_SIDE_TORSO * scale, CROP_MIN_SIDE)])


def _crop(img: np.ndarray, window: np.ndarray, size: int) -> np.ndarray:
    import cv2

    cx, cy, side = window
    s = size / side
    # Affine map from the window to the output square; outside the image reads as black.
    m = np.array([[s, 0, size / 2 - s * cx], [0, s, size / 2 - s * cy]], np.float64)
    return cv2.warpAffine(
        img,
        m,
        (size, size),
        flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def _video_frames(path: Path, frames: np.ndarray):
    """Yield ``(frame_index, RGB image)`` for sorted ``frames`` of one video."""
    try:
        from toolkit.io.video import VideoReader
    except ImportError:
        VideoReader = None  # noqa: N806
    if VideoReader is not None:
        reader = VideoReader(path)
        for f in frames:
            yield int(f), np.asarray(reader[int(f)])
        return
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise FileNotFoundError(f"Expected a readable video, but {path} could not be opened.")
    pos = 0
    try:
        for f in frames:
            if f != pos:
                cap.set(cv2.CAP_PROP_POS_FRAMES, int(f))
            ok, bgr = cap.read()
            if not ok:
                raise InputError(expected("frame_index", "< the video's frame count", int(f)), path)
            pos = int(f) + 1
            yield int(f), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()


def read_crops(
    ds,
    rows: np.ndarray | None = None,
    kp: np.ndarray | None = None,
    size: int = CROP_SIZE,
    progress: bool = False,
) -> np.ndarray:
    """Grip crops for annotations of a dataset, reading each image or video once.

    Args:
        ds: A :class:`toolkit.dataset.Dataset`.
        rows: Annotation rows to crop (default all).
        kp: Keypoints that place the windows (default ``ds.keypoints[rows]``).
        size: Output side in pixels.
        progress: Show a tqdm bar on stderr.

    Shapes:
        Returns ``(len(rows), size, size, 3)`` uint8 RGB.

    Raises:
        FileNotFoundError: An image or video is missing (the visual stream needs the pixels).
    """
    import cv2
    from tqdm.auto import tqdm

    rows = np.arange(len(ds)) if rows is None else np.asarray(rows)
    kp = ds.keypoints[rows] if kp is None else np.asarray(kp)
    windows = crop_windows(kp)
    table = ds.frame_table().iloc[rows]
    out = np.zeros((len(rows), size, size, 3), np.uint8)
    vid = table["video_id"].to_numpy(dtype=float, na_value=np.nan)
    fidx = table["frame_index"].to_numpy(dtype=float, na_value=np.nan)
    is_video = np.isfinite(vid) & np.isfinite(fidx)
    names = table["file_name"].to_numpy(dtype=object)
    bar = tqdm(total=len(rows), desc="crops", unit="frame", disable=not progress, leave=False)
    img_pos = np.flatnonzero(~is_video)
    order = img_pos[np.argsort(names[img_pos], kind="stable")]
    start = 0
    while start < len(order):
        name = names[order[start]]
        stop = start
        while stop < len(order) and names[order[stop]] == name:
            stop += 1
        path = ds.image_path(name)
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(
                f"Expected the image {path} to exist and be readable (the visual stream needs "
                "the pixels; train --model graph to do without them)."
            )
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        for i in order[start:stop]:
            out[i] = _crop(rgb, windows[i], size)
        bar.update(stop - start)
        start = stop
    for v in np.unique(vid[is_video]).astype(int):
        pos = np.flatnonzero(is_video & (vid == v))
        pos = pos[np.argsort(fidx[pos], kind="stable")]
        frames = fidx[pos].astype(int)
        path = ds.video_path(v)
        if not Path(path).exists():
            raise FileNotFoundError(
                f"Expected the video {path} to exist (the visual stream "
                "needs the pixels; train --model graph to do without them)."
            )
        uniq = np.unique(frames)
        got = dict(_video_frames(path, uniq))
        for i, f in zip(pos, frames, strict=True):
            out[i] = _crop(got[f], windows[i], size)
        bar.update(len(pos))
    bar.close()
    flip = facing_left(kp)
    out[flip] = out[flip, :, ::-1]
    return out


# ---------------------------------------------------------------------- dataset -> arrays
@dataclass
class Prepared:
    """A labelled dataset as arrays, ready for cross-validation.

    Attributes:
        taxonomy: The class hierarchy.
        keypoints: ``(N, 19, 3)`` keypoints trained on (current or raw).
        conf: ``(N, 19)`` per-point confidence.
        y: ``(N,)`` stance class index.
        family: ``(N,)`` family index (-1 when flat).
        chamber: ``(N,)`` chamber index (-1 when flat).
        groups: ``(N,)`` group label per row (subject, video or row index), as strings.
        ann_id, image_id: ``(N,)`` ids of the rows in the dataset.
        file_name: ``(N,)`` image file names.
        rows: ``(N,)`` annotation row indices in the dataset.
        crops: ``(N, 128, 128, 3)`` uint8 RGB grip crops, or None when not read.
        angles: ``(N, F)`` angle features for the baselines (computed on first use, or read
            from a CSV).
        group_by: ``"subject"``, ``"video"`` or ``"none"``.
        notes: Remarks for the terminal and config (skipped rows ...).
    """

    taxonomy: Taxonomy
    keypoints: np.ndarray
    conf: np.ndarray
    y: np.ndarray
    family: np.ndarray
    chamber: np.ndarray
    groups: np.ndarray
    ann_id: np.ndarray
    image_id: np.ndarray
    file_name: np.ndarray
    rows: np.ndarray
    crops: np.ndarray | None = None
    angles: np.ndarray | None = None
    group_by: str = "subject"
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.y)

    def __repr__(self) -> str:
        return (
            f"Prepared(n={len(self)}, classes={len(self.taxonomy.classes)}, "
            f"groups={len(np.unique(self.groups))} by {self.group_by}, "
            f"crops={'yes' if self.crops is not None else 'no'})"
        )


def prepare(
    ds,
    taxonomy: Taxonomy | None = None,
    *,
    group: str = "subject",
    raw: bool = False,
    crops: bool = False,
    progress: bool = False,
) -> Prepared:
    """Turn a dataset into labelled arrays (frames without a stance label are left out).

    Args:
        ds: The dataset.
        taxonomy: Class hierarchy; default the dataset's own, else the sorted labels (flat).
        group: CV grouping column: ``"subject"``, ``"video"`` or ``"none"``.
        raw: Use ``ds.keypoints_raw`` (as imported) instead of ``ds.keypoints``.
        crops: Also read the grip crops (needed by the visual stream).

    Raises:
        InputError: Unknown stance labels, a missing group column, or too little data.
    """
    if group not in ("subject", "video", "none"):
        raise ValueError(expected("--group", "one of subject, video, none", group))
    src = ds.path / "dataset.json" if ds.path is not None else None
    if taxonomy is None:
        taxonomy = (
            Taxonomy.from_dict(ds.taxonomy, src) if ds.taxonomy else Taxonomy(classes=ds.stances)
        )
    table = ds.frame_table()
    stance = table["stance"].to_numpy(dtype=object)
    labelled = np.array([isinstance(s, str) and s != "" for s in stance])
    notes = []
    if not labelled.any():
        raise InputError(
            "Expected frames with a 'stance' label to train on, but none has one "
            "(set labels with `toolkit import ... --labels labels.csv` or in the "
            "viewer).",
            src,
        )
    if (~labelled).sum():
        notes.append(f"{int((~labelled).sum())} annotations without a stance label left out")
    rows = np.flatnonzero(labelled)
    names = stance[rows].astype(str)
    index = {c: i for i, c in enumerate(taxonomy.classes)}
    unknown = sorted(set(names) - set(index))
    if unknown:
        counts = {u: int((names == u).sum()) for u in unknown[:5]}
        raise InputError(
            expected("stance labels", f"classes of the taxonomy {taxonomy.classes}", unknown[:5])
            + f" (counts {counts}; fix the labels or pass --taxonomy)",
            src,
        )
    y = np.array([index[n] for n in names], np.int64)
    if group == "none":
        groups = np.array([str(i) for i in rows], dtype=object)
    else:
        col = "subject" if group == "subject" else "video_id"
        vals = table[col].to_numpy(dtype=object)[rows]
        miss = pd.isna(pd.Series(vals, dtype=object)).to_numpy() | (vals == "")
        if miss.all():
            raise InputError(
                f"Expected a '{col}' for every frame to keep folds {group}-independent, but the "
                f"dataset has none. Use --group {'video' if group == 'subject' else 'subject'}, "
                "or --group none (the accuracy estimate is then optimistic).",
                src,
            )
        if miss.any():
            raise InputError(
                f"Expected a '{col}' for every frame to keep folds {group}-independent, but "
                f"{int(miss.sum())} of {len(miss)} labelled frames have none (first: "
                f"{table['file_name'].to_numpy()[rows][np.argmax(miss)]!r}).",
                src,
            )
        groups = np.array([str(v) for v in vals], dtype=object)
    kp_all = ds.keypoints_raw if raw else ds.keypoints
    kp = np.array(kp_all[rows], np.float64)
    conf = confidence(kp, ds.scores[rows])
    fam = taxonomy.family_of[y] if taxonomy.hierarchical else np.full(len(y), -1, np.int64)
    cha = taxonomy.chamber_of[y] if taxonomy.hierarchical else np.full(len(y), -1, np.int64)
    prep = Prepared(
        taxonomy=taxonomy,
        keypoints=kp,
        conf=conf,
        y=y,
        family=fam,
        chamber=cha,
        groups=groups,
        ann_id=table["ann_id"].to_numpy()[rows],
        image_id=table["image_id"].to_numpy()[rows],
        file_name=table["file_name"].to_numpy(dtype=object)[rows],
        rows=rows,
        group_by=group,
        notes=notes,
    )
    if crops:
        prep.crops = read_crops(ds, rows, kp, progress=progress)
    return prep


# ---------------------------------------------------------------------- augmentation
@dataclass
class KeypointAugment:
    """Training-time keypoint augmentation (pixel space, before :func:`featurise`).

    Node dropout (never the stick nodes), coordinate noise that perturbs every edge length, stick
    jitter (rotation about the grip, length scale), and hard negatives: the stick direction of a
    sibling stance (same family, other chamber) with the label kept, so the model cannot lean on
    the stick points alone.

    Attributes:
        node_dropout: Probability of dropping each body point.
        length_noise: Std of the coordinate noise, in torso units.
        stick_jitter_deg: Maximum stick rotation (degrees).
        stick_scale: Maximum relative stick length change.
        stick_prob: Probability a frame's stick is jittered.
        hard_negative: Probability a frame gets a sibling's stick direction.
    """

    node_dropout: float = 0.05
    length_noise: float = 0.03
    stick_jitter_deg: float = 10.0
    stick_scale: float = 0.15
    stick_prob: float = 0.5
    hard_negative: float = 0.1

    def __call__(
        self,
        kp: np.ndarray,
        y: np.ndarray,
        rng: np.random.Generator,
        pool: np.ndarray | None = None,
        pool_y: np.ndarray | None = None,
        siblings: list[np.ndarray] | None = None,
    ) -> np.ndarray:
        """Augment a batch.

        Args:
            kp: Batch keypoints (pixels).
            y: Batch class indices.
            rng: Random generator.
            pool: Training keypoints to draw hard negatives from.
            pool_y: Their classes.
            siblings: Per class, the sibling class indices (same family, other chamber).

        Shapes:
            kp: ``(B, 19, 3)``. Returns ``(B, 19, 3)``.
        """
        kp = np.array(kp, np.float64, copy=True)
        b = len(kp)
        _, scale = body_frame(kp)
        body = np.zeros(layout.NUM_KEYPOINTS, bool)
        body[: layout.NUM_BODY] = True
        drop = (rng.random((b, layout.NUM_KEYPOINTS)) < self.node_dropout) & body
        kp[..., :2] += (
            rng.normal(0, self.length_noise, (b, layout.NUM_KEYPOINTS, 2)) * scale[:, None, None]
        )
        grip, tip = kp[:, layout.GRIP, :2], kp[:, layout.TIP, :2]
        vec = tip - grip
        if pool is not None and siblings is not None and self.hard_negative > 0:
            hard = np.flatnonzero(rng.random(b) < self.hard_negative)
            for i in hard:  # a handful of rows per batch
                sib = siblings[int(y[i])]
                if not len(sib):
                    continue
                cand = np.flatnonzero(np.isin(pool_y, sib))
                if not len(cand):
                    continue
                j = rng.choice(cand)
                pg, pt = pool[j, layout.GRIP, :2], pool[j, layout.TIP, :2]
                _, ps = body_frame(pool[j : j + 1])
                if np.isfinite(pt - pg).all():
                    vec[i] = (pt - pg) / ps[0] * scale[i]
        jit = rng.random(b) < self.stick_prob
        ang = np.deg2rad(rng.uniform(-self.stick_jitter_deg, self.stick_jitter_deg, b)) * jit
        sc = 1 + rng.uniform(-self.stick_scale, self.stick_scale, b) * jit
        c, s = np.cos(ang), np.sin(ang)
        vec = np.stack([c * vec[:, 0] - s * vec[:, 1], s * vec[:, 0] + c * vec[:, 1]], -1)
        kp[:, layout.TIP, :2] = grip + vec * sc[:, None]
        kp[drop, :2] = np.nan
        kp[drop, 2] = 0
        bad = ~np.isfinite(kp[..., :2]).all(-1)
        kp[bad, :2] = np.nan
        kp[bad, 2] = 0
        return kp


def sibling_classes(tax: Taxonomy) -> list[np.ndarray]:
    """Per class, the classes of the same family with another chamber (empty when flat)."""
    c = len(tax.classes)
    if not tax.hierarchical:
        return [np.zeros(0, np.int64) for _ in range(c)]
    return [
        np.flatnonzero((tax.family_of == tax.family_of[k]) & (np.arange(c) != k)) for k in range(c)
    ]


# ---------------------------------------------------------------------- toy data
#: A standing person in a unit box (x right, y down), COCO order; test and tracing poses start here.
STANDING_TEMPLATE = np.array(
    [[0.5, 0.1], [0.48, 0.08], [0.52, 0.08], [0.45, 0.09], [0.55, 0.09], [0.4, 0.22],
     [0.6, 0.22], [0.36, 0.36], [0.64, 0.36], [0.34, 0.48], [0.66, 0.48], [0.44, 0.52],
     [0.56, 0.52], [0.43, 0.7], [0.57, 0.7], [0.42, 0.88], [0.58, 0.88]]
)  # fmt: skip


def toy_dataset(
    root: str | Path,
    *,
    n_subjects: int = 4,
    per_class: int = 3,
    image_size: int = 96,
    with_stick: bool = True,
    seed: int = 0,
):
    """A tiny labelled dataset with images, for tests and smoke runs (not a benchmark).

    Four stances (2 families x 2 chambers): the family sets the foot spread, the chamber the
    stick direction; subjects differ in size and position. Images are grey squares with the
    stick drawn, written under ``root/images``.

    Args:
        root: Directory for the images (becomes the dataset's ``media_root``).
        n_subjects: Subjects ``s01``...
        per_class: Frames per subject and stance.
        image_size: Image side in pixels.
        with_stick: False leaves grip and tip missing (17-keypoint data).
        seed: Random seed.

    Returns:
        A :class:`toolkit.dataset.Dataset` (not saved).
    """
    import cv2

    from toolkit.dataset import Dataset

    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    taxonomy = {
        "families": ["open", "closed"],
        "chambers": ["high", "low"],
        "stances": [
            {"name": f"{f}_{c}", "family": f, "chamber": c}
            for f in ("open", "closed")
            for c in ("high", "low")
        ],
    }
    tpl = STANDING_TEMPLATE
    images, anns, kps = [], [], []
    for si in range(n_subjects):
        subject = f"s{si + 1:02d}"
        size = image_size * rng.uniform(0.7, 0.9)
        for ci, st in enumerate(taxonomy["stances"]):
            fam, cham = ci // 2, ci % 2
            for k in range(per_class):
                body = tpl.copy()
                spread = 0.12 if fam == 0 else 0.02
                body[[13, 15], 0] -= spread
                body[[14, 16], 0] += spread
                body += rng.normal(0, 0.01, body.shape)
                pts = body * size + rng.uniform(0, image_size - size, 2)
                grip = pts[10] + rng.normal(0, 1.0, 2)
                ang = np.deg2rad((-60 if cham == 0 else 40) + rng.normal(0, 8))
                tip = grip + 0.35 * size * np.array([np.cos(ang), np.sin(ang)])
                xy = np.vstack([pts, grip, tip])
                v = np.full((19, 1), 2.0)
                if not with_stick:
                    xy[17:] = np.nan
                    v[17:] = 0
                iid = len(images) + 1
                name = f"images/{subject}_{st['name']}_{k:02d}.png"
                img = np.full((image_size, image_size, 3), 90, np.uint8)
                cv2.line(
                    img, tuple(int(c) for c in grip), tuple(int(c) for c in tip), (200, 140, 60), 2
                )
                cv2.imwrite(str(root / name), img)
                images.append(
                    {
                        "id": iid,
                        "file_name": name,
                        "width": image_size,
                        "height": image_size,
                        "stance": st["name"],
                        "subject": subject,
                    }
                )
                anns.append({"id": iid, "image_id": iid})
                kps.append(np.hstack([xy, v]))
    return Dataset.from_records(
        images, anns, np.array(kps), media_root=str(root.resolve()), taxonomy=taxonomy
    )
