"""Dataset -> arrays: normalised graph inputs, coordinate features, grip crops, augmentation.

Also the other way data enters the trainer: an existing CSV of angle features
(:func:`read_angles_csv`, :func:`prepare_angles_csv`, and :func:`prepared_from_csv`, what
``trainer fit --angles-csv`` calls). The feature constants (``NODE_FEATURES``,
``EDGE_FEATURES``, ...) live in :mod:`trainer.graph`.

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

import csv
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from toolkit import layout
from toolkit.errors import InputError, expected
from toolkit.geometry import UNKNOWN
from toolkit.geometry import weapon_side as _weapon_side_rule
from toolkit.taxonomy import Taxonomy
from trainer.graph import (
    EDGE_FEATURES,
    GRAPH,
    GROUPS,
    NODE_FEATURES,
    GraphSpec,
    edge_sources,
)

CROP_SIZE = 128
CROP_SIDE_TORSO = 1.5
CROP_MIN_SIDE = 32.0


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


def canonical_side(kp: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """The weapon side of each frame after :func:`canonical` (0 left, 1 right, -1 unknown).

    The side is decided on the keypoints as given by the one rule,
    :func:`toolkit.geometry.weapon_side` (wrist nearest the grip, else the usual hand of the
    row's group, e.g. its subject), then swapped for the frames :func:`canonical` mirrors (a
    mirror swaps left and right).

    Shapes:
        kp: ``(N, 19, 3)``; groups: ``(N,)`` or None. Returns ``(N,)`` int64.
    """
    kp = np.asarray(kp, np.float64)
    side = _weapon_side_rule(kp, groups)
    flip = facing_left(kp)
    return np.where(flip & (side != UNKNOWN), 1 - side, side).astype(np.int64)


def featurise(
    kp: np.ndarray,
    conf: np.ndarray | None = None,
    spec: GraphSpec = GRAPH,
    groups: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Node features and edge attributes for the 19-node graph.

    Args:
        kp: Keypoints in pixels (NaN or ``v == 0`` where missing).
        conf: Per-point confidence (default: 1 present / 0 missing).
        spec: The graph topology.
        groups: Optional subject (or track) per row: a frame whose weapon hand cannot be seen
            takes its group's usual hand (:func:`toolkit.geometry.weapon_side`).

    Shapes:
        kp: ``(N, 19, 3)``; conf: ``(N, 19)``.
        Returns ``nodes (N, 19, 5)`` and ``edge_attr (N, E, 4)``, float32.
    """
    kp = np.asarray(kp, np.float64)
    n = len(kp)
    present = np.isfinite(kp[..., :2]).all(-1) & (kp[..., 2] > 0)
    if conf is None:
        conf = present.astype(np.float64)
    side_all = canonical_side(np.where(present[..., None], kp, np.nan), groups)
    kp, conf = canonical(kp, conf)
    present = np.isfinite(kp[..., :2]).all(-1) & (kp[..., 2] > 0)
    centre, scale = body_frame(np.where(present[..., None], kp, np.nan))
    xy = (kp[..., :2] - centre[:, None]) / scale[:, None, None]
    xy = np.where(present[..., None], xy, 0.0)
    known = side_all != UNKNOWN
    side = np.maximum(side_all, 0)  # unknown: slots wired to the left points, no weapon flag
    weapon = np.zeros((n, layout.NUM_KEYPOINTS))
    rows = np.arange(n)
    weapon[rows[known], layout.L_WRIST + side[known]] = 1.0
    weapon[rows[known], layout.L_ELBOW + side[known]] = 1.0
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


def geometry_targets(
    kp: np.ndarray, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Stick-geometry regression targets and their validity mask.

    ``grip_dx, grip_dy``: grip minus weapon wrist; ``stick_length``: grip-to-tip length (all in
    torso units); ``angle_offset``: stick angle minus forearm angle (elbow -> wrist), wrapped to
    -pi..pi and divided by pi.

    Shapes:
        kp: ``(N, 19, 3)``. Returns ``targets (N, 4)`` float32 and ``mask (N, 4)`` bool.
    """
    kp = np.asarray(kp, np.float64)
    side_all = canonical_side(kp, groups)
    kp, _ = canonical(kp)
    present = np.isfinite(kp[..., :2]).all(-1) & (kp[..., 2] > 0)
    xyn = np.where(present[..., None], kp[..., :2], np.nan)
    centre, scale = body_frame(xyn)
    xy = (xyn - centre[:, None]) / scale[:, None, None]
    side = np.maximum(side_all, 0)
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
    mask[side_all == UNKNOWN] = False
    return np.nan_to_num(t).astype(np.float32), mask


def normalisation_spec() -> dict:
    """What a consumer of an exported model must reproduce (written into the ONNX metadata)."""
    return {
        "centre": "midpoint of left_hip/right_hip (one hip if the other is missing)",
        "scale": "torso length: shoulder midpoint to hip midpoint (pixels)",
        "node_features": list(NODE_FEATURES),
        "edge_features": list(EDGE_FEATURES),
        "missing_point": "x = y = confidence = visibility = 0",
        "weapon_side": "toolkit.geometry.weapon_side on the keypoints as given: the wrist nearest "
        "the grip, else the majority side of the row's subject/track, else unknown; weapon=1 on "
        "that wrist and elbow (after the facing mirror, which swaps the side); unknown: no weapon "
        "flag and the weapon slots wired to the left points",
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
def crop_windows(kp: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """Square crop windows around the grip (weapon wrist when missing), in pixels.

    Shapes:
        kp: ``(N, 19, 3)``; groups: ``(N,)`` or None. Returns ``(N, 3)``: centre x, centre y,
        side.
    """
    kp = np.asarray(kp, np.float64)
    present = np.isfinite(kp[..., :2]).all(-1) & (kp[..., 2] > 0)
    xyn = np.where(present[..., None], kp[..., :2], np.nan)
    centre, scale = body_frame(xyn)
    side_all = _weapon_side_rule(np.where(present[..., None], kp, np.nan), groups)
    side = np.maximum(side_all, 0)
    rows = np.arange(len(kp))
    wrist = np.where((side_all != UNKNOWN)[:, None], xyn[rows, layout.L_WRIST + side], np.nan)
    c = xyn[:, layout.GRIP]
    for fallback in (wrist, centre):
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


def read_crops(
    ds,
    rows: np.ndarray | None = None,
    kp: np.ndarray | None = None,
    size: int = CROP_SIZE,
    progress: bool = False,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """Grip crops for annotations of a dataset, reading each image or video frame once.

    The pixels come from :func:`toolkit.media.iter_pixels` (image files and video frames).

    Args:
        ds: A :class:`toolkit.dataset.Dataset`.
        rows: Annotation rows to crop (default all).
        kp: Keypoints that place the windows (default ``ds.keypoints[rows]``).
        size: Output side in pixels.
        progress: Show a tqdm bar on stderr.
        groups: Optional subject per row (weapon hand of frames without a grip).

    Shapes:
        Returns ``(len(rows), size, size, 3)`` uint8 RGB.

    Raises:
        FileNotFoundError: An image or video is missing (the visual stream needs the pixels).
    """
    from toolkit.media import iter_pixels

    rows = np.arange(len(ds)) if rows is None else np.asarray(rows)
    kp = ds.keypoints[rows] if kp is None else np.asarray(kp)
    windows = crop_windows(kp, groups)
    out = np.zeros((len(rows), size, size, 3), np.uint8)
    hint = "the visual stream needs the pixels; train --model graph to do without them"
    for pos, rgb in iter_pixels(ds, rows, progress=progress, hint=hint):
        for i in pos:
            out[i] = _crop(rgb, windows[i], size)
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
        subject: ``(N,)`` subject per row (the weapon hand of frames without a grip), or None.
        video: ``(N,)`` video id per row (-1 for still images), or None.
        frame: ``(N,)`` frame index per row (-1 for still images), or None.
        visual: ``(N, D)`` pretrained visual features (:mod:`trainer.visual`), or None.
        coords: ``(N, 38)`` normalised coordinates of the ``coords-*`` baselines (on first use).
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
    subject: np.ndarray | None = None
    video: np.ndarray | None = None
    frame: np.ndarray | None = None
    visual: np.ndarray | None = None
    coords: np.ndarray | None = None

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
        progress: Show a progress bar while reading the crops.

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
    unknown = sorted(set(names.tolist()) - set(index))
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
    subj = table["subject"].to_numpy(dtype=object)[rows]
    subj_ok = ~pd.isna(pd.Series(subj, dtype=object)).to_numpy()
    subject = np.where(subj_ok, subj, None) if subj_ok.any() else None
    vid = table["video_id"].to_numpy(dtype=float, na_value=np.nan)[rows]
    fidx = table["frame_index"].to_numpy(dtype=float, na_value=np.nan)[rows]
    seq = np.isfinite(vid) & np.isfinite(fidx)
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
        subject=subject,
        video=np.where(seq, vid, -1).astype(np.int64),
        frame=np.where(seq, fidx, -1).astype(np.int64),
    )
    if crops:
        prep.crops = read_crops(ds, rows, kp, progress=progress, groups=subject)
    return prep


# ---------------------------------------------------------------------- augmentation
@dataclass
class KeypointAugment:
    """Training-time keypoint augmentation (pixel space, before :func:`featurise`).

    What differs between people and cameras (so a model trained on 3-4 subjects meets new ones):

    * body proportions: each bone class (torso, upper arm, forearm, thigh, shin) scaled by its
      own factor, the children moving with their parents along the kinematic chain (the stick
      moves with the weapon wrist);
    * viewpoint: a yaw-like horizontal scaling about the hips (a person turned away from the
      camera looks narrower) and a small in-plane rotation;
    * handedness: left and right points swap places (:data:`toolkit.layout.FLIP_IDX`): the
      mirror image turned half way round, which keeps the facing that :func:`canonical` would
      otherwise undo, so a right-handed subject looks left-handed.

    Then node dropout (never the stick nodes), coordinate noise that perturbs every edge length,
    stick jitter (rotation about the grip, length scale), and hard negatives: the stick direction
    of a sibling stance (same family, other chamber) with the label kept, so the model cannot
    lean on the stick points alone.

    Attributes:
        bone_scale: Maximum relative change of each bone class's length.
        yaw_min: Smallest horizontal scale (1 = none); drawn in ``[yaw_min, 1]``.
        rotate_deg: Maximum in-plane rotation about the hips (degrees).
        mirror: Probability a frame's left and right points swap (handedness).
        node_dropout: Probability of dropping each body point.
        length_noise: Std of the coordinate noise, in torso units.
        stick_jitter_deg: Maximum stick rotation (degrees).
        stick_scale: Maximum relative stick length change.
        stick_prob: Probability a frame's stick is jittered.
        hard_negative: Probability a frame gets a sibling's stick direction.
    """

    bone_scale: float = 0.15
    yaw_min: float = 0.7
    rotate_deg: float = 10.0
    mirror: float = 0.0
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
        kp = self.body(kp, rng)
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

    def body(self, kp: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Bone lengths, yaw, rotation and handedness (see the class docstring).

        Shapes:
            kp: ``(B, 19, 3)`` pixels, NaN where missing. Returns a new ``(B, 19, 3)``.
        """
        kp = np.array(kp, np.float64, copy=True)
        b = len(kp)
        if not b:
            return kp
        xy = np.where((kp[..., 2:3] > 0), kp[..., :2], np.nan)
        if self.mirror > 0:
            swap = rng.random(b) < self.mirror
            perm = np.asarray(layout.FLIP_IDX)
            kp[swap] = kp[swap][:, perm]
            xy[swap] = xy[swap][:, perm]
        if self.bone_scale > 0:
            xy = _scale_bones(xy, 1 + rng.uniform(-self.bone_scale, self.bone_scale, (b, 5)))
        centre, _ = body_frame(xy)
        rel = xy - centre[:, None]
        sx = rng.uniform(min(self.yaw_min, 1.0), 1.0, b) if self.yaw_min < 1 else np.ones(b)
        rel[..., 0] *= sx[:, None]
        ang = np.deg2rad(rng.uniform(-self.rotate_deg, self.rotate_deg, b))
        c, s = np.cos(ang)[:, None], np.sin(ang)[:, None]
        rot = np.stack([c * rel[..., 0] - s * rel[..., 1], s * rel[..., 0] + c * rel[..., 1]], -1)
        out = centre[:, None] + rot
        ok = np.isfinite(out).all(-1) & (kp[..., 2] > 0)
        kp[..., :2] = np.where(ok[..., None], out, np.nan)
        kp[~ok, 2] = 0
        return kp


#: (child, parent, bone class) along the kinematic chain, parents first. Bone classes: 0 torso,
#: 1 upper arm, 2 forearm, 3 thigh, 4 shin. Shoulders hang from the hips (torso).
_BONES: tuple[tuple[int, int, int], ...] = (
    (layout.L_SHOULDER, layout.L_HIP, 0),
    (layout.R_SHOULDER, layout.R_HIP, 0),
    (layout.L_ELBOW, layout.L_SHOULDER, 1),
    (layout.R_ELBOW, layout.R_SHOULDER, 1),
    (layout.L_WRIST, layout.L_ELBOW, 2),
    (layout.R_WRIST, layout.R_ELBOW, 2),
    (layout.L_KNEE, layout.L_HIP, 3),
    (layout.R_KNEE, layout.R_HIP, 3),
    (layout.L_ANKLE, layout.L_KNEE, 4),
    (layout.R_ANKLE, layout.R_KNEE, 4),
)


def _scale_bones(xy: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """Scale bone lengths along the kinematic chain.

    The head follows the shoulders' midpoint and the stick follows the weapon wrist.

    Shapes:
        xy: ``(B, 19, 2)`` NaN where missing; factor: ``(B, 5)`` per bone class.
        Returns ``(B, 19, 2)`` (a point whose parent is missing keeps its place).
    """
    old = xy
    new = xy.copy()
    for child, parent, k in _BONES:
        moved = new[:, parent] + factor[:, k, None] * (old[:, child] - old[:, parent])
        new[:, child] = np.where(np.isfinite(moved).all(-1, keepdims=True), moved, old[:, child])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sh_old = np.nanmean(old[:, [layout.L_SHOULDER, layout.R_SHOULDER]], 1)
        sh_new = np.nanmean(new[:, [layout.L_SHOULDER, layout.R_SHOULDER]], 1)
    shift = np.nan_to_num(sh_new - sh_old)
    new[:, : layout.L_SHOULDER] = old[:, : layout.L_SHOULDER] + shift[:, None]
    side = _weapon_side_rule(np.concatenate([old, np.ones(old.shape[:2] + (1,))], -1))
    w = layout.L_WRIST + np.maximum(side, 0)
    rows = np.arange(len(xy))
    wshift = np.nan_to_num(new[rows, w] - old[rows, w])
    wshift[side == UNKNOWN] = 0.0
    new[:, [layout.GRIP, layout.TIP]] = old[:, [layout.GRIP, layout.TIP]] + wshift[:, None]
    return new


def sibling_classes(tax: Taxonomy) -> list[np.ndarray]:
    """Per class, the classes of the same family with another chamber (empty when flat)."""
    c = len(tax.classes)
    if not tax.hierarchical:
        return [np.zeros(0, np.int64) for _ in range(c)]
    return [
        np.flatnonzero((tax.family_of == tax.family_of[k]) & (np.arange(c) != k)) for k in range(c)
    ]


# ---------------------------------------------------------------------- coordinate features
def coordinate_features(kp: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Hip-centred, torso-scaled coordinates of the 19 points, everyone facing right.

    The input of the ``coords-*`` baselines: :func:`canonical` (mirror people facing image-left)
    then :func:`body_frame` (centre on the hips, divide by the torso length). Missing points are
    NaN (the baselines impute them and add missingness indicators).

    Shapes:
        kp: ``(N, 19, 3)`` pixels. Returns ``X (N, 38)`` float64 and the 38 column names
        (``<keypoint>_x``, ``<keypoint>_y``).
    """
    kp = np.asarray(kp, np.float64)
    kp, _ = canonical(kp)
    present = np.isfinite(kp[..., :2]).all(-1) & (kp[..., 2] > 0)
    xyn = np.where(present[..., None], kp[..., :2], np.nan)
    centre, scale = body_frame(xyn)
    xy = (xyn - centre[:, None]) / scale[:, None, None]
    names = [f"{k}_{a}" for k in layout.KEYPOINT_NAMES for a in ("x", "y")]
    return xy.reshape(len(kp), -1), names


# ---------------------------------------------------------------------- angle CSV -> arrays
def read_angles_csv(
    path: str | Path,
    label_column: str,
    group_column: str | None = None,
    *,
    feature_columns: list[str] | None = None,
    notes: list[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, list[str]]:
    """Read an existing CSV of angle features (one row per frame), as users have it.

    Feature columns are every column other than the label and group columns, or exactly
    ``feature_columns``. Without ``feature_columns``, a column with a non-numeric value (a camera
    name, a frame id like ``f_0012``) is left out, and a note names it; a chosen column must be
    numeric. Empty cells and ``nan`` are missing values (imputed later).

    Args:
        path: The CSV file (header row first).
        label_column: Column holding the class name of each row.
        group_column: Optional column holding the group (subject, video) for grouped CV.
        feature_columns: Use exactly these columns as features (``--feature-columns``).
        notes: A list that receives remarks for the user (columns left out).

    Returns:
        ``(X, y_names, groups, feature_names)``: ``X`` float64 ``(N, F)``, ``y_names`` ``(N,)`` str,
        ``groups`` ``(N,)`` str or None, and the ``F`` feature column names.

    Raises:
        FileNotFoundError: The file does not exist.
        InputError: Empty file, no data rows, a missing column, a ragged row, an empty label or
            group, no numeric feature column left, or a non-numeric value in a chosen feature
            column (with its line and column).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Angle-feature CSV not found: {path}")
    header, rows, lines = _read_csv_rows(path)
    columns = [c.strip() for c in header]
    for what, col in (("label column", label_column), ("group column", group_column)):
        if col is not None and col not in columns:
            raise InputError(expected(what, f"one of the header's columns {columns}", col), path, 1)
    if not rows:
        raise InputError(
            expected("file", "at least one data row after the header", "none"), path, 2
        )
    feature_idx = _feature_indices(path, columns, label_column, group_column, feature_columns)
    feature_names = [columns[i] for i in feature_idx]
    text = np.char.strip(np.array(rows, dtype=str).reshape(len(rows), len(columns)))
    line_of = np.asarray(lines)

    def _filled(col: str) -> np.ndarray:
        vals = text[:, columns.index(col)]
        empty = np.flatnonzero(vals == "")
        if len(empty):
            raise InputError(expected(col, "a non-empty value", ""), path, int(line_of[empty[0]]))
        return vals

    y_names = _filled(label_column)
    groups = _filled(group_column) if group_column is not None else None
    numeric, feature_names = _numeric_features(
        path,
        text[:, feature_idx],
        feature_names,
        line_of,
        chosen=feature_columns is not None,
        notes=notes,
    )
    return numeric, y_names, groups, feature_names


def _read_csv_rows(path: Path) -> tuple[list[str], list[list[str]], list[int]]:
    """The header, the non-blank data rows and their line numbers (ragged rows refused)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, skipinitialspace=True)
            header = next(reader, None)
            rows: list[list[str]] = []
            lines: list[int] = []
            for row in reader:
                if not row or all(not c.strip() for c in row):
                    continue  # blank line
                if len(row) != len(header):
                    raise InputError(
                        expected("row", f"{len(header)} fields like the header", len(row)),
                        path,
                        reader.line_num,
                    )
                rows.append(row)
                lines.append(reader.line_num)
    except UnicodeDecodeError as exc:
        raise InputError(
            expected("file", "UTF-8 text", f"undecodable bytes ({exc.reason})"), path
        ) from None
    except csv.Error as exc:
        raise InputError(f"Malformed CSV: {exc}", path) from None
    if header is None or not any(c.strip() for c in header):
        raise InputError(expected("file", "a CSV with a header row", "an empty file"), path, 1)
    return header, rows, lines


def _feature_indices(
    path: Path,
    columns: list[str],
    label_column: str,
    group_column: str | None,
    feature_columns: list[str] | None,
) -> list[int]:
    """Header indices of the feature columns: the chosen ones, else all but label and group."""
    if feature_columns is not None:
        chosen = [c.strip() for c in feature_columns if c.strip()]
        missing = [c for c in chosen if c not in columns]
        if missing or not chosen:
            raise InputError(
                expected("--feature-columns", f"columns of the header {columns}", missing or []),
                path,
                1,
            )
        return [columns.index(c) for c in chosen]
    idx = [i for i, c in enumerate(columns) if c not in (label_column, group_column)]
    if not idx:
        raise InputError(
            expected("header", "at least one feature column besides label/group", columns), path, 1
        )
    return idx


def _numeric_features(
    path: Path,
    cells: np.ndarray,
    feature_names: list[str],
    line_of: np.ndarray,
    *,
    chosen: bool,
    notes: list[str] | None,
) -> tuple[np.ndarray, list[str]]:
    """Parse the feature cells; text columns are dropped with a note unless they were chosen.

    Shapes:
        cells: ``(N, F)`` stripped strings. Returns ``X (N, F')`` float64 (NaN missing) and the
        ``F'`` kept names.
    """
    numeric = (
        pd.to_numeric(pd.Series(cells.ravel(), dtype=object), errors="coerce")
        .to_numpy(dtype=np.float64, na_value=np.nan)
        .reshape(cells.shape)
        .copy()
    )
    is_missing = np.isin(np.char.lower(cells), ("", "nan", "na", "n/a", "null", "none"))
    bad = ~np.isfinite(numeric) & ~is_missing
    if bad.any() and not chosen:
        drop = bad.any(0)
        if drop.all():
            row, col = np.argwhere(bad)[0]
            raise InputError(
                expected(
                    "at least one numeric feature column",
                    "numbers (or empty for missing)",
                    f"{feature_names[col]}={cells[row, col]!s}",
                )
                + " (every column has text in it)",
                path,
                int(line_of[row]),
            )
        if notes is not None:
            dropped = [n for n, d in zip(feature_names, drop, strict=True) if d]
            notes.append(
                f"{len(dropped)} non-numeric column(s) ignored: {', '.join(dropped)} "
                "(choose features with --feature-columns)"
            )
        keep = ~drop
        numeric, cells, is_missing, bad = (
            numeric[:, keep],
            cells[:, keep],
            is_missing[:, keep],
            bad[:, keep],
        )
        feature_names = [n for n, k in zip(feature_names, keep, strict=True) if k]
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise InputError(
            expected(
                feature_names[col], "a finite number (or empty for missing)", str(cells[row, col])
            ),
            path,
            int(line_of[row]),
        )
    numeric[is_missing] = np.nan
    return numeric, feature_names


def prepare_angles_csv(
    path: str | Path,
    label_column: str = "stance",
    group_column: str | None = None,
    *,
    taxonomy=None,
    group: str = "subject",
    feature_columns: list[str] | None = None,
):
    """A :class:`Prepared` from an existing CSV of angle features.

    Args:
        path: The CSV file.
        label_column: Class column.
        group_column: Subject or video column (folds keep each group together).
        taxonomy: A :class:`toolkit.taxonomy.Taxonomy` (default: the sorted labels, flat).
        group: ``"none"`` allows a CSV without ``group_column`` (an optimistic estimate).
        feature_columns: Use exactly these columns (default: every numeric column).

    Raises:
        InputError: Labels outside the taxonomy, or no group column without ``group="none"``.
    """
    notes: list[str] = []
    X, names, groups, feats = read_angles_csv(
        path, label_column, group_column, feature_columns=feature_columns, notes=notes
    )
    names = [str(n) for n in np.asarray(names).tolist()]
    tax = taxonomy if taxonomy is not None else Taxonomy(classes=sorted(set(names)))
    unknown = sorted(set(names) - set(tax.classes))
    if unknown:
        raise InputError(
            expected(
                f"'{label_column}' values", f"classes of the taxonomy {tax.classes}", unknown[:5]
            ),
            path,
        )
    index = {c: i for i, c in enumerate(tax.classes)}
    y = np.array([index[n] for n in names], np.int64)
    if groups is None:
        if group != "none":
            raise InputError(
                "Expected --group-column naming the subject (or video) column, so "
                "no subject is in both training and test; or pass --group none "
                "(the estimate is then optimistic).",
                path,
            )
        groups = np.array([str(i) for i in range(len(y))], dtype=object)
    n = len(y)
    fam = tax.family_of[y] if tax.hierarchical else np.full(n, -1, np.int64)
    cha = tax.chamber_of[y] if tax.hierarchical else np.full(n, -1, np.int64)
    notes.append(f"{len(feats)} feature columns from {Path(path).name}")
    return Prepared(
        taxonomy=tax,
        keypoints=np.full((n, 19, 3), np.nan),
        conf=np.zeros((n, 19)),
        y=y,
        family=fam,
        chamber=cha,
        groups=np.array([str(g) for g in np.asarray(groups).tolist()], dtype=object),
        ann_id=np.arange(n),
        image_id=np.full(n, -1),
        file_name=np.full(n, "", dtype=object),
        rows=np.arange(n),
        angles=X,
        group_by=group_column or "none",
        notes=notes,
    )


#: What ``--group none`` means for the estimate (printed before such a run).
GROUP_NONE_WARNING = (
    "WARNING: --group none: frames of the same subject (and consecutive video frames) can land "
    "in both the training and the test part of a fold, so the accuracy below is OPTIMISTIC and "
    "does not tell how the model does on a new person."
)


def _stderr(message: str) -> None:
    import sys

    print(message, file=sys.stderr)


def prepared_from_csv(
    path,
    label_column: str,
    group_column: str | None,
    opts: dict,
    feature_columns: list[str] | None = None,
    *,
    echo=None,
    warn=None,
) -> Prepared:
    """A :class:`Prepared` from a CSV of angle features, as ``trainer fit --angles-csv`` reads it.

    :func:`prepare_angles_csv` with the training options, saying what a user
    must know: the ``--group none`` warning (:data:`GROUP_NONE_WARNING`) when the CSV has no
    group column, and every note of the reader (e.g. the text columns it left out).

    Args:
        path: The angle CSV.
        label_column: Its class column.
        group_column: Its subject/video column (None: ``--group none`` only).
        opts: The training options: ``group`` (``subject``/``video``/``none``) and optionally
            ``taxonomy`` (a taxonomy file).
        feature_columns: Columns to use (default: every numeric one).
        echo: Where notes go (default: a line on stderr).
        warn: Where the ``--group none`` warning goes (default: ``echo``).

    Returns:
        A :class:`Prepared` (``angles`` holds the features).

    Raises:
        InputError: See :func:`read_angles_csv`.
    """
    echo = echo or _stderr
    warn = warn or echo
    if group_column is None and opts["group"] == "none":
        warn(GROUP_NONE_WARNING)
    prep = prepare_angles_csv(
        path,
        label_column,
        group_column,
        taxonomy=Taxonomy.load(opts["taxonomy"]) if opts.get("taxonomy") else None,
        group=opts["group"],
        feature_columns=feature_columns,
    )
    for note in prep.notes:
        echo(f"note: {note}")
    return prep
