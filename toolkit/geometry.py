"""Vectorised, NaN-aware geometry over ``(N, 19, 3)`` keypoint arrays.

Every function takes the whole array and returns one value (or vector) per annotation; a missing
point (``x = y = NaN``) propagates as NaN instead of being mistaken for the origin. Angles are in
degrees, image coordinates (``y`` down), so a positive angle turns clockwise on screen.

The weapon hand is found per frame (the wrist nearest the grip), never assumed: left-handers
exist, and COCO index 9 is the person's LEFT wrist.
"""

from __future__ import annotations

import numpy as np

from toolkit import layout

#: Side codes returned by :func:`weapon_side`.
LEFT, RIGHT, UNKNOWN = 0, 1, -1


class Points:
    """Per-keypoint coordinate columns of an ``(N, 19, 3)`` array, read once and cached.

    Every geometry function accepts a :class:`Points` wherever it takes ``kp``. On millions of
    annotations the interleaved ``(N, 19, 3)`` layout makes each keypoint a strided read, and
    ``(N, K, 2)`` intermediates make numpy loop over pairs; a :class:`Points` reads each keypoint
    it is asked for once into contiguous ``x``/``y`` columns (NaN where missing), so the checks
    run on flat ``(N,)`` arrays. The values are exactly those of :func:`_xy`.

    Attributes:
        kp: The keypoint array (not copied: call :meth:`forget` after editing a keypoint in it).
        keys: The keypoints read in the first block-wise pass (all by default); others are read
            one at a time when asked for.
        keep_raw: Keep the unmasked ``x, y, v`` rows of that pass (:meth:`raw`); without them
            the pass writes only the masked ``x``/``y`` columns (less memory).

    Shapes:
        ``kp``: ``(N, 19, 3)`` (or ``(N, 19, 2)`` without visibility); columns ``(N,)``.
    """

    __slots__ = ("kp", "keys", "keep_raw", "_cols", "_raw", "_dist")

    def __init__(self, kp: np.ndarray, keys: list[int] | None = None, keep_raw: bool = True):
        self.kp = np.asarray(kp, dtype=np.float64)
        self.keys = list(range(self.kp.shape[1])) if keys is None else [int(k) for k in keys]
        self.keep_raw = keep_raw
        self._cols: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._raw: dict[int, np.ndarray] = {}
        self._dist: dict[tuple[int, int], np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.kp)

    def raw(self, k: int) -> np.ndarray:
        """``(C, N)`` contiguous ``x, y(, v)`` rows of keypoint ``k`` as stored (no masking).

        The first call transposes the whole array once, block by block (cache-sized blocks:
        far cheaper than one strided pass per keypoint); a keypoint dropped by :meth:`forget`
        is read again on its own.
        """
        k = int(k)
        r = self._raw.get(k)
        if r is None:
            if not self._raw and not self._cols and k in self.keys:
                t = _transpose_blocks(self.kp, self.keys)  # (K, C, N)
                self._raw = {j: t[i] for i, j in enumerate(self.keys)}
                r = self._raw[k]
            else:
                r = np.ascontiguousarray(self.kp[:, k].T)
                self._raw[k] = r
        return r

    def xy(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` columns of keypoint ``k``, NaN where the point is missing (``v <= 0``)."""
        k = int(k)
        c = self._cols.get(k)
        first = not self._cols and not self._raw
        if c is None and first and not self.keep_raw and k in self.keys and self.kp.shape[2] > 2:
            x, y = _masked_blocks(self.kp, self.keys)
            self._cols = {j: (x[i], y[i]) for i, j in enumerate(self.keys)}
            c = self._cols[k]
        if c is None:
            c = _masked_rows(self.raw(k))
            self._cols[k] = c
        return c

    def dist(self, a: int, b: int) -> np.ndarray:
        """``(N,)`` distance between keypoints ``a`` and ``b``, cached (read-only).

        A length ignores the signs of its components, so ``dist(a, b)`` and ``dist(b, a)`` are
        the same values and share one entry; they are :func:`norm`'s values of the difference.
        """
        key = (min(int(a), int(b)), max(int(a), int(b)))
        d = self._dist.get(key)
        if d is None:
            ax, ay = self.xy(a)
            bx, by = self.xy(b)
            d = _hypot_into(ax - bx, ay - by, (ax, ay, bx, by))
            d.flags.writeable = False
            self._dist[key] = d
        return d

    def has_dist(self, a: int, b: int) -> bool:
        """Whether :meth:`dist` of ``a`` and ``b`` is cached (costs nothing to read)."""
        return (min(int(a), int(b)), max(int(a), int(b))) in self._dist

    def pick(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` of one keypoint per row (``index`` ``(N,)``; -1 gives NaN)."""
        idx = np.asarray(index)
        x = np.full(len(self), np.nan)
        y = np.full(len(self), np.nan)
        valid = idx[idx >= 0]
        present = np.flatnonzero(np.bincount(valid)) if len(valid) else []
        for k in present:  # loops over keypoints (<= 19), not annotations
            m = idx == k
            kx, ky = self.xy(int(k))
            np.copyto(x, kx, where=m)  # in place: no gather or scatter of the masked rows
            np.copyto(y, ky, where=m)
        return x, y

    def release_raw(self) -> None:
        """Drop the unmasked rows of the first pass (the masked columns and distances stay).

        For a caller done with :meth:`raw`; a later :meth:`raw` reads its keypoint again.
        """
        self._raw = {}

    def mask_raw(self) -> None:
        """Turn the unmasked rows into the masked columns, in place (for a caller done with them).

        Each keypoint whose columns are not read yet gets its ``x``/``y`` rows set to NaN where
        ``v <= 0``: the values of :meth:`xy`, without new columns or a pass that writes them.
        The rows are then dropped as by :meth:`release_raw` (a later :meth:`raw` reads its
        keypoint again).
        """
        raw, self._raw = self._raw, {}
        for k, r in raw.items():
            if k in self._cols:
                continue
            if np.may_share_memory(r, self.kp):  # a view of ``kp`` (one row): never written
                self._cols[k] = _masked_rows(r)
                continue
            if len(r) > 2:
                missing = ~(r[2] > 0)
                np.copyto(r[0], np.nan, where=missing)
                np.copyto(r[1], np.nan, where=missing)
            self._cols[k] = (r[0], r[1])

    def forget(self, *ks: int) -> None:
        """Drop the cached columns of keypoints ``ks`` (after they were edited in ``kp``)."""
        for k in ks:
            self._cols.pop(int(k), None)
            self._raw.pop(int(k), None)
            for key in [key for key in self._dist if int(k) in key]:
                del self._dist[key]


def _masked_rows(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New ``(x, y)`` columns from the ``(C, N)`` rows ``r``: NaN where ``v <= 0`` (C = 3)."""
    if len(r) > 2:
        ok = r[2] > 0
        return np.where(ok, r[0], np.nan), np.where(ok, r[1], np.nan)
    return r[0].copy(), r[1].copy()


def _transpose_blocks(kp: np.ndarray, keys: list[int], block: int = 8192) -> np.ndarray:
    """``(N, K, C)`` -> contiguous ``(len(keys), C, N)`` of keypoints ``keys``.

    Copied ``block`` rows at a time.
    """
    n = len(kp)
    out = np.empty((len(keys), kp.shape[2], n), dtype=np.float64)
    every = list(keys) == list(range(kp.shape[1]))
    for start in range(0, n, block):  # blocks of rows: a few hundred per million
        part = kp[start : start + block]
        part = part if every else part[:, keys]
        out[:, :, start : start + block] = part.transpose(1, 2, 0)
    return out


def _masked_blocks(
    kp: np.ndarray, keys: list[int], block: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """``(len(keys), N)`` contiguous ``x`` and ``y`` of keypoints ``keys``.

    NaN where ``v <= 0`` (or NaN); written ``block`` rows at a time (a block of the interleaved
    array stays in cache while each keypoint's columns are copied out of it, with no gathered
    temporary).
    """
    n = len(kp)
    x = np.empty((len(keys), n), dtype=np.float64)
    y = np.empty((len(keys), n), dtype=np.float64)
    for start in range(0, n, block):  # blocks of rows: a few hundred per million
        part = kp[start : start + block]
        stop = start + len(part)
        for i, k in enumerate(keys):  # loops over keypoints, not annotations
            p = part[:, k]
            missing = ~(p[:, 2] > 0)
            xs, ys = x[i, start:stop], y[i, start:stop]
            np.copyto(xs, p[:, 0])
            np.copyto(ys, p[:, 1])
            np.copyto(xs, np.nan, where=missing)
            np.copyto(ys, np.nan, where=missing)
    return x, y


def as_points(kp: np.ndarray | Points) -> Points:
    """``kp`` as a :class:`Points` (itself when it already is one)."""
    return kp if isinstance(kp, Points) else Points(kp)


def _xy(kp: np.ndarray | Points, idx: list[int] | None = None) -> np.ndarray:
    """``(N, K, 2)`` coordinates with NaN where the point is missing (``v <= 0``).

    Only keypoints ``idx`` when given: selecting first keeps this cheap on millions of rows.
    """
    if isinstance(kp, Points):
        kp = kp.kp
    kp = np.asarray(kp, dtype=np.float64)
    sel = kp if idx is None else np.take(kp, idx, axis=1)
    if kp.shape[-1] > 2:
        return np.where(sel[..., 2:3] > 0, sel[..., :2], np.nan)
    return sel[..., :2].copy()


def point(kp: np.ndarray | Points, index: int | np.ndarray) -> np.ndarray:
    """``(N, 2)`` coordinates of keypoint ``index`` (a scalar, or one index per row)."""
    if isinstance(kp, Points):
        x, y = kp.xy(int(index)) if np.ndim(index) == 0 else kp.pick(index)
        return np.stack([x, y], 1)
    if np.ndim(index) == 0:
        p = np.asarray(kp, dtype=np.float64)[:, int(index)]  # a view: no gather
        return np.where(p[:, 2:3] > 0, p[:, :2], np.nan) if p.shape[-1] > 2 else p[:, :2].copy()
    idx = np.asarray(index)
    out = np.full((len(kp), 2), np.nan)
    ok = idx >= 0
    rows = np.flatnonzero(ok)
    p = np.asarray(kp, dtype=np.float64)[rows, idx[ok]]  # (M, 3)
    out[ok] = np.where(p[:, 2:3] > 0, p[:, :2], np.nan) if p.shape[-1] > 2 else p[:, :2]
    return out


def norm(v: np.ndarray) -> np.ndarray:
    """Euclidean length of ``(..., 2)`` vectors (NaN in, NaN out): :func:`hypot` of the columns."""
    return hypot(v[..., 0], v[..., 1])


def hypot(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``np.hypot(x, y)`` of float arrays, about twice as fast (``x`` and ``y`` are kept).

    ``sqrt(x*x + y*y)``, and ``np.hypot`` itself where that is not finite: an infinite side
    (hypot is ``inf`` even beside a NaN) or a square that overflows. Finite values agree with
    ``np.hypot`` to an ulp or two, and equal components give equal lengths in any order or sign.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim == 0:
        return np.hypot(x, y)
    with np.errstate(over="ignore", invalid="ignore"):
        return _hypot_into(np.multiply(x, x), np.multiply(y, y), (x, y), squared=True)


def _hypot_into(dx: np.ndarray, dy: np.ndarray, src: tuple, squared: bool = False) -> np.ndarray:
    """``hypot(dx, dy)`` written over ``dx`` (``dy`` is overwritten too).

    ``src``: ``(x, y)``, the components, or ``(ax, ay, bx, by)`` with ``dx = ax - bx``; the
    rows that are not finite are computed again from them with ``np.hypot``. ``squared``: ``dx``
    and ``dy`` already hold the squares.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        if not squared:
            np.multiply(dx, dx, out=dx)
            np.multiply(dy, dy, out=dy)
        dx += dy
        np.sqrt(dx, out=dx)
    bad = np.flatnonzero(~np.isfinite(dx))  # usually the missing points only
    if len(bad):
        if len(src) == 2:
            cx, cy = src[0].reshape(-1)[bad], src[1].reshape(-1)[bad]
        else:
            ax, ay, bx, by = (a.reshape(-1)[bad] for a in src)
            cx, cy = ax - bx, ay - by
        dx.reshape(-1)[bad] = np.hypot(cx, cy)
    return dx


def positive_norm(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``hypot(x, y) > 0`` without computing the (slow) hypot: exactly the same booleans."""
    with np.errstate(invalid="ignore"):
        finite = ~(np.isnan(x) | np.isnan(y))
        return np.isinf(x) | np.isinf(y) | (finite & ((x != 0) | (y != 0)))


def unit(v: np.ndarray, length: np.ndarray | None = None) -> np.ndarray:
    """``(..., 2)`` unit vectors; zero or NaN vectors give NaN.

    ``length``: ``norm(v)`` when the caller has it (the same values; not computed again).
    """
    n = (norm(v) if length is None else length)[..., None]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = v / n
    np.copyto(out, np.nan, where=~(n > 0))  # in place: as ``np.where(n > 0, v / n, nan)``
    return out


def distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise distance between two ``(N, 2)`` point arrays."""
    return norm(a - b)


def point_distance(kp: np.ndarray | Points, a: int, b: int) -> np.ndarray:
    """``(N,)`` distance between keypoints ``a`` and ``b`` (NaN when either is missing)."""
    return as_points(kp).dist(a, b).copy()


def weapon_side(kp: np.ndarray | Points, groups: np.ndarray | None = None) -> np.ndarray:
    """``(N,)`` side of the weapon hand: :data:`LEFT`, :data:`RIGHT` or :data:`UNKNOWN`.

    The one rule every package uses (correct, validate, viewer, trainer, generator):

    1. the wrist nearest the grip, when a grip and a wrist are labelled;
    2. otherwise the usual hand of the row's group (``groups``: a subject or track id per row),
       i.e. the majority of rule 1 over that group's rows;
    3. otherwise unknown. There is never a silent right-hand default.

    Args:
        kp: ``(N, 19, 2|3)`` keypoints or their :class:`Points`.
        groups: Optional ``(N,)`` group label per row (any hashable dtype; NaN/None = no group).
    """
    p = as_points(kp)
    d = [p.dist(w, layout.GRIP) for w in (layout.L_WRIST, layout.R_WRIST)]
    d = [np.where(np.isfinite(x), x, np.inf) for x in d]
    side = (d[1] < d[0]).astype(np.int64)  # argmin: the first (left) on ties
    side[~np.isfinite(np.minimum(d[0], d[1]))] = UNKNOWN
    if groups is not None and (side == UNKNOWN).any():
        side = _fill_side_by_group(side, np.asarray(groups))
    return side


def usual_side(side: np.ndarray, groups: np.ndarray, share: float = 0.5) -> np.ndarray:
    """``(N,)`` the usual hand of each row's group (rule 2 of :func:`weapon_side`).

    The majority of the known ``side`` over the group's rows, held by more than ``share`` of
    them (a habit, where ``share`` is above a half); :data:`UNKNOWN` on a tie (or a majority
    under ``share``), for an empty group, or for a row without a group.
    """
    codes, uniq = _group_codes(groups)
    out = np.full(len(side), UNKNOWN, np.int64)
    if codes is None:
        return out
    known = (side >= 0) & (codes >= 0)
    g = len(uniq)
    right = np.bincount(codes[known], weights=(side[known] == RIGHT), minlength=g)
    total = np.bincount(codes[known], minlength=g)
    usual = np.full(g, UNKNOWN, np.int64)
    usual[(total > 0) & (right > share * total)] = RIGHT
    usual[(total > 0) & (total - right > share * total)] = LEFT
    has = codes >= 0
    out[has] = usual[codes[has]]
    return out


def _fill_side_by_group(side: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Unknown sides take their group's majority side (ties and empty groups stay unknown)."""
    return np.where(side == UNKNOWN, usual_side(side, groups), side)


def _group_codes(groups: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """Integer codes per row for a group column (-1 where the group is missing)."""
    import pandas as pd

    if np.issubdtype(groups.dtype, np.integer):  # codes already (-1 or below: no group)
        codes = np.where(groups >= 0, groups, -1).astype(np.int64)
        return codes, np.arange(int(codes.max()) + 1 if len(codes) else 0)

    codes, uniq = pd.factorize(pd.Series(groups, dtype=object), use_na_sentinel=True)
    return np.asarray(codes, np.int64), np.asarray(uniq)


def weapon_wrist_index(kp: np.ndarray | Points) -> np.ndarray:
    """``(N,)`` keypoint index of the weapon wrist (9 or 10), or -1 when unknown."""
    side = weapon_side(kp)
    return np.where(side >= 0, layout.L_WRIST + side, -1)


def weapon_elbow_index(kp: np.ndarray | Points, side: np.ndarray | None = None) -> np.ndarray:
    """``(N,)`` keypoint index of the weapon arm's elbow (7 or 8), or -1 when unknown."""
    side = weapon_side(kp) if side is None else side
    return np.where(side >= 0, layout.L_ELBOW + side, -1)


def body_scale(kp: np.ndarray | Points) -> np.ndarray:
    """``(N,)`` torso size in pixels: the mean of the left and right shoulder-hip distances.

    Robust to missing points: one side suffices; with neither, the distance between the
    shoulder midpoint and the hip midpoint of whatever points exist; otherwise NaN.
    """
    p = as_points(kp)
    left = p.dist(layout.L_SHOULDER, layout.L_HIP)
    right = p.dist(layout.R_SHOULDER, layout.R_HIP)
    n = np.isfinite(left).astype(np.int64) + np.isfinite(right)
    total = np.where(np.isnan(left), 0.0, left) + np.where(np.isnan(right), 0.0, right)
    with np.errstate(invalid="ignore"):
        s = np.where(n > 0, total / np.maximum(n, 1), np.nan)
    # Cross-side fallback (e.g. only the left shoulder and the right hip were labelled), for
    # the rows that need it.
    rows = np.flatnonzero(~np.isfinite(s))
    if len(rows):
        pts = [np.stack([c[rows] for c in p.xy(k)], 1) for k in _TORSO]
        ls, rs, lh, rh = pts
        s[rows] = distance(_nanmean2(ls, rs), _nanmean2(lh, rh))
    return np.where(s > 0, s, np.nan)


_TORSO = (layout.L_SHOULDER, layout.R_SHOULDER, layout.L_HIP, layout.R_HIP)


def _nanmean2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean of two ``(N, 2)`` point arrays, or whichever one exists (NaN when neither)."""
    fa = np.isfinite(a).all(-1, keepdims=True)
    fb = np.isfinite(b).all(-1, keepdims=True)
    return np.where(fa & fb, (a + b) / 2, np.where(fa, a, b))


def stick_vector(kp: np.ndarray | Points) -> np.ndarray:
    """``(N, 2)`` tip minus grip."""
    p = as_points(kp)
    gx, gy = p.xy(layout.GRIP)
    tx, ty = p.xy(layout.TIP)
    return np.stack([tx - gx, ty - gy], 1)


def stick_length(kp: np.ndarray | Points) -> np.ndarray:
    """``(N,)`` grip-to-tip distance in pixels."""
    return point_distance(kp, layout.TIP, layout.GRIP)


def angle(v: np.ndarray) -> np.ndarray:
    """Direction of ``(..., 2)`` vectors in degrees, ``atan2(y, x)`` in (-180, 180]."""
    return np.degrees(np.arctan2(v[..., 1], v[..., 0]))


def stick_angle(kp: np.ndarray | Points) -> np.ndarray:
    """``(N,)`` direction of the stick (grip to tip) in degrees."""
    return angle(stick_vector(kp))


def forearm_vector(kp: np.ndarray | Points, side: np.ndarray | None = None) -> np.ndarray:
    """``(N, 2)`` weapon-arm wrist minus elbow (NaN when the side or a point is unknown)."""
    p = as_points(kp)
    side = weapon_side(p) if side is None else np.asarray(side)
    wx, wy = p.pick(np.where(side >= 0, layout.L_WRIST + side, -1))
    ex, ey = p.pick(np.where(side >= 0, layout.L_ELBOW + side, -1))
    return np.stack([wx - ex, wy - ey], 1)


def _same_columns(*cols) -> bool:
    """All float64 arrays of one shape: element-wise results may be written over temporaries."""
    first = cols[0]
    return all(
        isinstance(c, np.ndarray) and c.dtype == np.float64 and c.shape == first.shape for c in cols
    )


def dot_xy(ux: np.ndarray, uy: np.ndarray, vx: np.ndarray, vy: np.ndarray) -> np.ndarray:
    """Row-wise dot product, bit for bit ``(u * v).sum(-1)`` (whose sum starts at +0.0)."""
    if not _same_columns(ux, uy, vx, vy):
        return ux * vx + uy * vy + 0.0
    out = ux * vx  # the same operations, in the same order, over one temporary
    np.add(out, uy * vy, out=out)
    return np.add(out, 0.0, out=out)


def angle_between_xy(ux: np.ndarray, uy: np.ndarray, vx: np.ndarray, vy: np.ndarray) -> np.ndarray:
    """:func:`angle_between` on separate ``x``/``y`` columns (the same values)."""
    bad = ~positive_norm(ux, uy) | ~positive_norm(vx, vy)
    if not _same_columns(ux, uy, vx, vy):
        out = np.degrees(np.arctan2(ux * vy - uy * vx, dot_xy(ux, uy, vx, vy)))
        return np.where(bad, np.nan, out)
    out = ux * vy  # as above, written over one temporary
    np.subtract(out, uy * vx, out=out)
    np.arctan2(out, dot_xy(ux, uy, vx, vy), out=out)
    np.degrees(out, out=out)
    np.copyto(out, np.nan, where=bad)
    return out


def angle_between(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed angle from ``u`` to ``v`` in degrees, in (-180, 180] (NaN if either is NaN/zero)."""
    return angle_between_xy(u[..., 0], u[..., 1], v[..., 0], v[..., 1])


def wrap_degrees(a: np.ndarray) -> np.ndarray:
    """Wrap angles to (-180, 180]."""
    return -((-np.asarray(a, dtype=np.float64) + 180.0) % 360.0 - 180.0)


def rotate(v: np.ndarray, degrees: np.ndarray) -> np.ndarray:
    """Rotate ``(N, 2)`` vectors by ``(N,)`` angles (degrees, image coordinates)."""
    t = np.radians(degrees)
    c, s = np.cos(t), np.sin(t)
    return np.stack([c * v[..., 0] - s * v[..., 1], s * v[..., 0] + c * v[..., 1]], -1)


def bone_lengths_t(
    kp: np.ndarray | Points, edges: tuple[tuple[int, int], ...] = layout.COCO_SKELETON
) -> np.ndarray:
    """``(E, N)`` length of each edge in pixels (one contiguous row per edge)."""
    p = as_points(kp)
    out = np.empty((len(edges), len(p)))
    for j, (a, b) in enumerate(edges):  # loops over edges, not annotations
        out[j] = p.dist(a, b)
    return out


def bone_lengths(
    kp: np.ndarray | Points, edges: tuple[tuple[int, int], ...] = layout.COCO_SKELETON
) -> np.ndarray:
    """``(N, E)`` length of each edge in pixels."""
    return np.ascontiguousarray(bone_lengths_t(kp, edges).T)


def joint_angle(kp: np.ndarray | Points, a: int, b: int, c: int) -> np.ndarray:
    """``(N,)`` unsigned interior angle at ``b`` between ``b->a`` and ``b->c`` (0..180 deg)."""
    p = as_points(kp)
    ax, ay = p.xy(a)
    bx, by = p.xy(b)
    cx, cy = p.xy(c)
    return np.abs(angle_between_xy(ax - bx, ay - by, cx - bx, cy - by))


def normalise_pose(kp: np.ndarray | Points) -> np.ndarray:
    """``(N, 19, 2)`` poses centred on the hip midpoint (or torso centre) and divided by torso size.

    Missing points stay NaN. Used by the plausibility model and the anatomy statistics.
    """
    xy = _xy(kp)
    hip = _nanmean2(xy[:, layout.L_HIP], xy[:, layout.R_HIP])
    sh = _nanmean2(xy[:, layout.L_SHOULDER], xy[:, layout.R_SHOULDER])
    centre = np.where(np.isfinite(hip), hip, sh)
    s = body_scale(kp)
    return (xy - centre[:, None, :]) / s[:, None, None]
