"""Robust per-group statistics of the stick: the data set's own levels, never constants.

Groups are subjects (and videos, and tracks), stances, or the whole data set. Every level is a
robust statistic (quantiles after dropping gross outliers, medians, MADs) of the data being
processed, so the thresholds built on them move with the data: another renderer, real photos or a
detector's output calibrate themselves.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import numpy as np
import pandas as pd

from toolkit import geometry as geo

#: ``[dataset, group codes or None, {column: codes, ("chunks", id): (codes, chunks)}]`` while
#: :func:`sharing_group_codes` runs.
_SHARED_CODES: contextvars.ContextVar[list | None] = contextvars.ContextVar(
    "shared_group_codes", default=None
)


@contextlib.contextmanager
def sharing_group_codes(ds) -> Iterator[None]:
    """Within the block, :func:`group_codes` of ``ds`` is computed once and shared (read-only).

    For callers that run several judgements of the same, unchanging data set (``validate``
    runs the stick assessment and then summarises per group); the codes are forgotten when the
    block ends, so a later edit of the data set is always seen.
    """
    token = _SHARED_CODES.set([ds, None, {}])
    try:
        yield
    finally:
        _SHARED_CODES.reset(token)


def group_codes(ds) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per annotation: the stick-length group and the stance, as integer codes and labels.

    The group is the subject (and the video, when there is one); no per-annotation strings.

    Returns:
        ``(group_codes (N,), group_labels (G,), stance_codes (N,), stance_labels (S,))`` with
        ``group_labels[group_codes]`` and ``stance_labels[stance_codes]`` equal to
        the group (``"?"`` without a subject, ``"s01|v2"`` in a video) and the stance (``""``
        when unknown) of each row; equal labels share one code.
    """
    shared = _SHARED_CODES.get()
    if shared is not None and shared[0] is ds:
        if shared[1] is None:
            shared[1] = _group_codes(ds)
            for a in shared[1]:
                a.flags.writeable = False
        return shared[1]
    return _group_codes(ds)


def image_column_codes(ds, column: str) -> tuple[np.ndarray, np.ndarray]:
    """``pd.factorize`` of an image column (``subject``, ``stance``): codes per image, -1 = NA.

    Shared (read-only) within :func:`sharing_group_codes`.
    """
    shared = _SHARED_CODES.get()
    memo = shared[2] if shared is not None and shared[0] is ds else None
    if memo is not None and column in memo:
        return memo[column]
    codes, uniq = pd.factorize(ds.images[column].to_numpy(dtype=object), use_na_sentinel=True)
    if memo is not None:
        codes.flags.writeable = False
        memo[column] = (codes, uniq)
    return codes, uniq


def _group_codes(ds) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`group_codes`, computed."""
    # Per image first (images <= annotations), then one gather to the annotation rows; labels
    # are built for the distinct (subject, video) pairs only.
    img = ds.images
    row_of = _image_rows(img["id"].to_numpy(), ds.annotations["image_id"].to_numpy())
    if row_of is None:
        row_of = pd.Index(img["id"].to_numpy()).get_indexer(ds.annotations["image_id"].to_numpy())
    s_codes, s_uniq = image_column_codes(ds, "subject")
    vid = img["video_id"].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    v_codes, v_uniq = pd.factorize(vid, use_na_sentinel=True)
    pair = (s_codes + 1).astype(np.int64) * (len(v_uniq) + 1) + (v_codes + 1)
    p_codes, p_uniq = pd.factorize(pair)
    s_names = np.array(["?", *[str(x) for x in s_uniq]], dtype=object)
    v_names = np.array(["", *[f"|v{int(x)}" for x in v_uniq]], dtype=object)
    labels = s_names[p_uniq // (len(v_uniq) + 1)] + v_names[p_uniq % (len(v_uniq) + 1)]
    lab_codes, lab_uniq = pd.factorize(labels.astype(object))
    group = lab_codes[p_codes][row_of]
    st_codes, st_uniq = image_column_codes(ds, "stance")
    st_names = np.array(["", *[str(x) for x in st_uniq]], dtype=object)
    name_codes, name_uniq = pd.factorize(st_names)
    stance = name_codes[st_codes + 1][row_of]
    return (
        group,
        np.asarray(lab_uniq, dtype=object),
        stance,
        np.asarray(name_uniq, dtype=object),
    )


#: Below this many values the selections below defer to numpy (nothing to gain).
_SELECT_MIN = 256


def median_of(x: np.ndarray, overwrite_input: bool = False):
    """``np.median`` of a 1-D float array, bit for bit, with single-``kth`` partitions.

    numpy partitions at two or three ``kth`` at once (the middle pair and the last element, for
    its NaN check), several times slower than one ``kth`` on millions of values. The same order
    statistics come from one partition at the upper middle and the maximum of the part left of
    it, averaged by ``np.mean`` as numpy does. Signed zeros are treated as equal by the
    selection, so a zero median of data holding both ``-0.0`` and ``0.0`` may differ in sign
    (not in value); the callers' values carry no ``-0.0``.

    Args:
        x: The values (NaN anywhere gives NaN, as ``np.median``).
        overwrite_input: ``x`` may be reordered in place.
    """
    n = len(x)
    if n < _SELECT_MIN or x.ndim != 1 or x.dtype != np.float64 or np.isnan(x).any():
        return np.median(x, overwrite_input=overwrite_input)
    part = x if overwrite_input else x.copy()
    hi = n // 2
    part.partition(hi)
    pair = [part[hi]] if n % 2 else [part[:hi].max(), part[hi]]
    return np.mean(np.array(pair))


def quantile_of(x: np.ndarray, q: float, overwrite_input: bool = False):
    """``np.quantile(x, q)`` (``linear``, ``q`` a float) of a 1-D float array, bit for bit.

    As :func:`median_of`: the two neighbouring order statistics from one single-``kth`` partition
    and the maximum left of it, interpolated with numpy's own formula (``_lerp``).

    Args:
        x: The values (NaN anywhere gives NaN, as ``np.quantile``).
        q: The quantile, in ``[0, 1]``.
        overwrite_input: ``x`` may be reordered in place.
    """
    n = len(x)
    if (
        n < _SELECT_MIN or x.ndim != 1 or x.dtype != np.float64 or type(q) is not float
        or not 0.0 <= q <= 1.0 or np.isnan(x).any()
    ):  # fmt: skip
        return np.quantile(x, q, overwrite_input=overwrite_input)
    virtual = np.float64(n - 1) * np.float64(q)  # numpy's virtual index, 'linear'
    if virtual >= n - 1:  # the maximum (numpy's index -1)
        prev = -1
        a = b = np.max(x)
    else:
        prev = int(np.floor(virtual))
        part = x if overwrite_input else x.copy()
        part.partition(prev + 1)
        b = part[prev + 1]
        a = part[: prev + 1].max()
    t = float(virtual - prev)
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


def nanmedian_of(x: np.ndarray):
    """``np.nanmedian`` of a 1-D float array (:func:`median_of` of its non-NaN values)."""
    f = x[~np.isnan(x)]
    return median_of(f, overwrite_input=True) if len(f) else np.nanmedian(x)


def nanquantile_of(x: np.ndarray, q: float):
    """``np.nanquantile`` of a 1-D float array (:func:`quantile_of` of its non-NaN values)."""
    f = x[~np.isnan(x)]
    return quantile_of(f, q, overwrite_input=True) if len(f) else np.nanquantile(x, q)


def _group_chunks(codes: np.ndarray) -> list[np.ndarray]:
    """Row indices of each group (ascending within a group), in the order of the codes.

    One stable sort (a radix sort on small integer codes), shared by every per-group statistic
    over the same keys.
    """
    if not len(codes):
        return []
    # The shared (read-only) codes of :func:`group_codes` are split once per block of
    # :func:`sharing_group_codes`.
    shared = _SHARED_CODES.get()
    own = shared is not None and shared[1] is not None and any(codes is a for a in shared[1])
    memo = shared[2] if own else None
    hit = memo.get(("chunks", id(codes))) if memo is not None else None
    if hit is not None and hit[0] is codes:
        return hit[1]
    small = codes.min() >= np.iinfo(np.int16).min and codes.max() <= np.iinfo(np.int16).max
    order = np.argsort(codes.astype(np.int16) if small else codes, kind="stable")
    cuts = np.flatnonzero(np.diff(codes[order])) + 1
    chunks = np.split(order, cuts)
    if memo is not None:
        order.flags.writeable = False  # the chunks are views of it
        memo[("chunks", id(codes))] = (codes, chunks)
    return chunks


def _robust_level(
    values: np.ndarray,
    k: np.ndarray,
    usable: np.ndarray,
    quantile: float = 0.9,
    min_count: int = 5,
    cut: float = 1.3,
    chunks: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A robust upper level of ``values`` per group code ``k``: ``(level, count)`` per group.

    Values above ``cut`` times the group's 75th percentile are dropped first (a too-long label
    is at least 1.4 times the real length, while foreshortening only ever shortens), then the
    ``quantile`` of the rest is the level; NaN where fewer than ``min_count`` values remain.
    """
    if not len(k):
        return np.zeros(0), np.zeros(0)
    n_groups = int(k.max()) + 1
    level = np.full(n_groups, np.nan)
    count = np.zeros(n_groups)
    usable = np.asarray(usable)
    # One gather per group: its usable finite values (row order), partitioned in place by the
    # first quantile; those within ``cut`` of it are the second quantile's (the same multisets,
    # so the same quantiles, as filtering full-length columns).
    for chunk in _group_chunks(k) if chunks is None else chunks:  # one pass per group
        x = values[chunk]
        x = x[usable[chunk] & np.isfinite(x)]
        if not len(x):
            continue
        q75 = quantile_of(x, 0.75, overwrite_input=True)
        with np.errstate(invalid="ignore"):
            kept = x[x <= cut * q75]
        g = k[chunk[0]]
        count[g] = len(kept)
        if len(kept):
            level[g] = quantile_of(kept, quantile, overwrite_input=True)
    level[count < min_count] = np.nan
    return level, count


def _group_and_subject_codes(group, coded, with_map: bool = False):
    """Per row: group codes, subject codes (the group's ``subject|vN`` prefix) and subjects.

    With ``with_map``, also the subject code of each group code.
    """
    # Keys are factorised once; subjects are derived from the distinct groups only.
    if coded is None:
        g_codes, g_uniq = pd.factorize(np.asarray(group, dtype=object))
    else:
        g_codes, g_uniq = coded
    s_of_g, s_uniq = pd.factorize(np.array([str(g).split("|v")[0] for g in g_uniq], dtype=object))
    if with_map:
        return g_codes, s_of_g[g_codes], s_uniq, s_of_g
    return g_codes, s_of_g[g_codes], s_uniq


def subject_support(
    usable: np.ndarray, group: np.ndarray | None = None, coded: tuple | None = None
) -> np.ndarray:
    """``(N,)`` how many usable rows the row's subject has (all of its videos and images).

    The evidence behind :func:`subject_stick_length`: a subject seen in few frames may never
    have shown its stick unforeshortened, so its length is then a low estimate.

    Args:
        usable: ``(N,)`` rows that count.
        group: ``(N,)`` group labels (``subject`` or ``subject|vN``), when ``coded`` is None.
        coded: ``(codes, labels)`` of the groups (see :func:`group_codes`).
    """
    _, s_codes, s_uniq = _group_and_subject_codes(group, coded)
    if not len(s_codes):
        return np.zeros(0, np.int64)
    counts = np.bincount(s_codes, weights=np.asarray(usable, bool), minlength=len(s_uniq))
    return counts[s_codes].astype(np.int64)


def subject_stick_length(
    length: np.ndarray,
    group: np.ndarray,
    usable: np.ndarray,
    quantile: float = 0.9,
    min_count: int = 5,
    band: float = 1.25,
    coded: tuple[np.ndarray, np.ndarray] | None = None,
    with_own: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """``(N,)`` the stick length (torso sizes) per subject and video, robustly.

    ``coded``: ``(codes, labels)`` of ``group`` when known (see :func:`group_codes`).
    ``with_own``: also return ``(N,)`` whether the row's length is its own video's or subject's
    level (False where the data set's level, or its floor, stands in).

    1. Levels per video (``subject|vN`` groups) and per subject (all of the subject's frames)
       with :func:`_robust_level`.
    2. The data set's level ``D``: the median of the subjects' levels (the stick-to-torso ratio
       varies little between adults holding the same kind of stick).
    3. A group level above ``band * D`` is not trusted (a long drift episode of too-long labels
       can fill a video's upper quartile); the subject's level stands in, then the data set's:
       ``band * D``, the longest length it trusts, where the subject's own level lies above
       that (its sticks all look longer: a build or a stick of its own, or its errors; the
       median subject's ``D`` would call every one of its clean labels too long), else ``D``.
    4. The larger of the trusted video and subject levels is used (a video that keeps the stick
       pointing at the camera underestimates the length; only shortening is legitimate), and
       never less than ``D / band``.
    """
    g_codes, s_codes, s_uniq, s_of_g = _group_and_subject_codes(group, coded, with_map=True)
    g_level, _ = _robust_level(length, g_codes, usable, quantile, min_count)
    if len(s_uniq) == len(s_of_g) == len(g_level):
        # Every group is its own subject (no videos): the same rows, in the same order, so the
        # same levels.
        s_level = np.empty(len(s_uniq))
        s_level[s_of_g] = g_level
    else:
        s_level, _ = _robust_level(length, s_codes, usable, quantile, min_count)
    per_group, per_subject = g_level[g_codes], s_level[s_codes]
    # One level per subject that has one (as ``groupby(subject).first().dropna()``).
    present = np.bincount(s_codes, minlength=len(s_uniq)) > 0 if len(s_codes) else []
    levels = pd.Series(s_level[present]).dropna()
    d = float(levels.median()) if len(levels) else _overall_level(length, usable, quantile)
    if not np.isfinite(d):
        out = np.full(len(length), np.nan)
        return (out, np.zeros(len(length), bool)) if with_own else out
    with np.errstate(invalid="ignore"):
        g = np.where(per_group <= band * d, per_group, np.nan)
        sj = np.where(per_subject <= band * d, per_subject, np.nan)
        above = per_subject > band * d
    out = np.fmax(g, sj)
    own = np.isfinite(out) & (out >= d / band)
    out = np.maximum(np.where(np.isfinite(out), out, np.where(above, band * d, d)), d / band)
    return (out, own) if with_own else out


def _overall_level(length: np.ndarray, usable: np.ndarray, quantile: float) -> float:
    """The data set's level of :func:`_robust_level` over all rows (NaN without one).

    :func:`subject_stick_length`'s fallback where no subject has a level (read only then).
    """
    everyone = [np.arange(len(length))]  # one group: the rows in order (no sort)
    o_level, _ = _robust_level(
        length, np.zeros(len(length), np.int64), usable, quantile, 1, chunks=everyone
    )
    overall = o_level[np.zeros(len(length), np.int64)]
    fin = overall[np.isfinite(overall)]
    return float(fin.max()) if len(fin) else np.nan


def circular_group_stats(
    angles_deg: np.ndarray,
    keys: np.ndarray,
    usable: np.ndarray,
    min_count: int = 5,
    codes: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: robust centre and spread (degrees) of an angle within its group.

    The centre is the circular mean refined by a median of the wrapped residuals; the spread is
    1.4826 * the median absolute residual. Rows of groups with fewer than ``min_count`` usable
    values get NaN.

    ``codes``: integer codes of ``keys`` when known (equal keys, equal codes).

    Returns:
        ``(centre, spread, count)``, each ``(N,)``.
    """
    a = np.where(usable & np.isfinite(angles_deg), angles_deg, np.nan)
    k = pd.factorize(keys)[0] if codes is None else np.asarray(codes)
    if not len(k):
        z = np.zeros(0)
        return z, z, z
    rad = np.radians(a)
    ok = np.isfinite(rad)
    count = np.bincount(k, weights=ok, minlength=k.max() + 1)
    sc = np.bincount(k, weights=np.where(ok, np.cos(rad), 0.0), minlength=k.max() + 1)
    ss = np.bincount(k, weights=np.where(ok, np.sin(rad), 0.0), minlength=k.max() + 1)
    first = np.degrees(np.arctan2(ss, sc))
    # Per group (its finite angles, gathered once): the median residual refines the centre,
    # then the median absolute residual is the spread. The same element-wise operations as on
    # full columns, on the group's values only.
    g_centre = np.full(len(first), np.nan)
    g_spread = np.full(len(first), np.nan)
    for chunk in _group_chunks(k):  # one pass per group
        x = a[chunk]
        x = x[np.isfinite(x)]
        if not len(x):
            continue
        g = k[chunk[0]]
        c0 = first[g : g + 1]  # 1-element arrays: the array ufuncs, as on the full columns
        med = median_of(geo.wrap_degrees(x - c0), overwrite_input=True)
        c1 = geo.wrap_degrees(c0 + med)
        g_centre[g] = c1[0]
        g_spread[g] = median_of(np.abs(geo.wrap_degrees(x - c1)), overwrite_input=True)
    centre = g_centre[k]
    spread = 1.4826 * g_spread[k]
    count = count[k]
    bad = count < min_count
    centre[bad] = np.nan
    spread[bad] = np.nan
    return centre, spread, count


def _image_rows(image_ids: np.ndarray, ann_image_ids: np.ndarray) -> np.ndarray | None:
    """``arange(N)`` when annotation ``i`` is on image ``i`` (ids strictly increasing), else None.

    What ``Index.get_indexer`` returns then (the ids unique), without its hash table.
    """
    if (
        len(image_ids) == len(ann_image_ids)
        and image_ids.dtype.kind in "iu"
        and ann_image_ids.dtype.kind in "iu"
        and bool(np.all(image_ids[1:] > image_ids[:-1]))
        and np.array_equal(image_ids, ann_image_ids)
    ):
        return np.arange(len(image_ids))
    return None


def video_frame(ds) -> tuple[np.ndarray, np.ndarray]:
    """Per annotation: ``(video_id, frame_index)`` as floats (NaN for single images)."""
    img = ds.images
    ann_img = ds.annotations["image_id"].to_numpy()
    row_of = _image_rows(img["id"].to_numpy(), ann_img)
    if row_of is not None:  # one to one, in order: no lookup
        cols = [img["video_id"], img["frame_index"]]
        out = [c.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan) for c in cols]
        return out[0], out[1]
    index = pd.Index(img["id"].to_numpy())
    if not index.is_unique:  # not a valid data set; keep the historical lookup
        ft = img.set_index("id").loc[ann_img]
        cols = [ft["video_id"], ft["frame_index"]]
    else:
        row_of = index.get_indexer(ann_img)
        if (row_of < 0).any():
            raise KeyError(f"Annotations refer to unknown image ids: {ann_img[row_of < 0][:5]}")
        cols = [img["video_id"], img["frame_index"]]
    out = [c.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan) for c in cols]
    if index.is_unique:
        out = [o[row_of] for o in out]
    return out[0], out[1]
