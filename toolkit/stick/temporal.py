"""The stick over time: Hampel outliers of its angle and length along a track.

A video holds the strongest evidence the suite has about a stick: the frames before and after.
A tip that leaves the course its neighbours agree on for a frame or an episode is an outlier of the
track's own motion (robust rolling statistics, floors calibrated on the track's frame-to-frame
changes), and the neighbours say where it should be.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from toolkit import geometry as geo


def hampel(
    x: np.ndarray,
    half_window: int = 10,
    n_sigmas: float = 3.0,
    min_scale: float = 0.0,
    iterations: int = 3,
) -> tuple[np.ndarray, np.ndarray]:
    """Iterated Hampel filter: points farther than ``n_sigmas`` robust SDs from the rolling median.

    A drift episode of several frames biases the rolling median toward itself, so the filter is
    iterated: flagged samples are left out and the median and MAD are recomputed from the rest,
    which lets the flags grow over the whole episode.

    Args:
        x: ``(T,)`` series (NaN allowed: ignored, never flagged).
        half_window: Frames on each side.
        n_sigmas: Threshold in robust standard deviations (1.4826 * rolling MAD).
        min_scale: Floor on the robust SD (so a perfectly still series does not flag noise).
        iterations: Passes (1 = the classic filter).

    Returns:
        ``(outlier mask, rolling median of the inliers)``.
    """
    x = np.asarray(x, dtype=np.float64)
    w = 2 * half_window + 1
    out = np.zeros(len(x), bool)
    med = x.copy()
    for _ in range(max(1, iterations)):
        s = pd.Series(np.where(out, np.nan, x))
        med = s.rolling(w, center=True, min_periods=1).median().to_numpy()
        mad = (s - med).abs().rolling(w, center=True, min_periods=1).median().to_numpy()
        sd = np.maximum(1.4826 * np.nan_to_num(mad, nan=0.0), min_scale)
        with np.errstate(invalid="ignore"):
            new = (np.abs(x - med) > n_sigmas * sd) & np.isfinite(x)
        if np.array_equal(new, out):
            break
        out = new
    return out, med


def _fill_savgol(
    t: np.ndarray, x: np.ndarray, bad: np.ndarray, window: int = 9, order: int = 2
) -> np.ndarray:
    """Values for the ``bad`` samples: interpolate the good ones, then a Savitzky-Golay fit.

    Only the returned values at ``bad`` positions are meant to be used; good samples keep their
    own values, so real motion is never smoothed away or lagged.
    """
    from scipy.signal import savgol_filter

    good = ~bad & np.isfinite(x)
    if good.sum() < 2:
        return x.copy()
    filled = np.interp(t, t[good], x[good])
    if len(filled) >= window:
        filled = savgol_filter(filled, window, order, mode="interp")
    return filled


def _runs(mask: np.ndarray):
    """Yield ``(start, stop)`` of each run of consecutive True samples of ``mask``."""
    if not mask.any():
        return
    edges = np.diff(np.r_[0, mask.astype(np.int8), 0])
    yield from zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True)


def _track_rows(track: np.ndarray, frame: np.ndarray, codes: np.ndarray):
    """Yield each track code of ``codes`` with its rows in frame order."""
    for code in codes:  # one iteration per track
        rows = np.flatnonzero(track == code)
        yield code, rows[np.argsort(frame[rows], kind="stable")]


def _runs_at_least(mask: np.ndarray, k: int) -> np.ndarray:
    """``mask`` where it holds in runs of at least ``k`` consecutive samples."""
    out = np.zeros_like(mask)
    for a, b in _runs(mask):  # one iteration per run
        if b - a >= k:
            out[a:b] = True
    return out


#: The smallest label errors worth a person's time (a stick 15 % off in length, 12 degrees off
#: in angle): a step-bracketed episode must sit at least this far off its flanks. These are the
#: sizes of an error, not of any renderer's noise; the noise floors come from each track.
STEP_LOG_LENGTH = float(np.log(1.15))
STEP_ANGLE = 12.0


def step_episodes(
    y: np.ndarray,
    ok: np.ndarray,
    min_step: float,
    k: float = 4.0,
    min_len: int = 3,
    max_len: int = 25,
    flank: int = 5,
    witness: np.ndarray | None = None,
    min_move: float = 0.0,
) -> np.ndarray:
    """Samples inside episodes that a step opens and an opposite step closes.

    A label that drifts off the stick for a while starts and ends with a jump the stick's own
    motion does not make: the series steps away, stays off (its level may ramp), and steps back.
    A segment qualifies when both steps exceed ``k`` robust SDs of the series' frame-to-frame
    changes (and ``min_step``), the flanks' medians lie closer together than the smaller step
    (the series comes back: a stick that moves from one stance to a second and then a third
    steps twice without an episode), and every sample inside sits off the line between the
    flanks' medians, in the first step's direction, by more than ``min_step`` and by more than
    ``k`` robust SDs of the local frame-to-frame changes (so a fast swing is not an episode).
    Rolling medians miss such episodes when they fill much of the window.

    A ``witness`` (the weapon wrist, a body point the label does not move) that leaves its own
    course with the series says the body moved (a stance held, then left): no episode. It
    leaves its course when its median over the segment lies further from each of its flanks'
    medians than ``k`` standard errors (of its own noise) of their difference and than
    ``min_move`` (a wrist that stays with one flank, the body moving on only as the episode
    ends, holds its course).

    Args:
        y: ``(T,)`` series in frame order (log length, or unwrapped angle in degrees).
        ok: ``(T,)`` usable samples (others are skipped: NaN, known outliers).
        min_step: The smallest step (and offset) that counts, in ``y``'s units.
        k: Steps and offsets in robust SDs.
        min_len: Fewest usable samples in an episode.
        max_len: Most usable samples in an episode.
        flank: Samples on each side that define the course.
        witness: ``(T, 2)`` positions in the same frames (NaN where unknown), or None.
        min_move: The least distance (the witness's units) that counts as the witness moving.

    Returns:
        ``(T,)`` bool.
    """
    out = np.zeros(len(y), bool)
    idx = np.flatnonzero(ok)
    if len(idx) < 2 * flank + min_len:
        return out
    v = y[idx]
    d = np.diff(v)
    moved = _witness_moved(witness, idx, flank, k, min_move)
    thr = max(k * 1.4826 * float(np.median(np.abs(d))), min_step)
    cand = np.flatnonzero(np.abs(d) > thr)
    closed = -1  # the closing step of the last episode found
    for a in cand:  # a handful of steps per track
        if a <= closed:
            continue  # an episode's closing step opens none (its left flank is the episode)
        for b in cand[cand > a]:
            if b - a > max_len:
                break
            if np.sign(d[b]) == np.sign(d[a]) or b - a < min_len:
                continue
            left, right = v[max(0, a - flank + 1) : a + 1], v[b + 1 : b + 1 + flank]
            if len(left) < 2 or len(right) < 2:
                break
            # The steps leave a course and come back to it: flanks further apart than the smaller
            # step are two places the stick moved between (one stance, then another), not one.
            if abs(np.median(right) - np.median(left)) >= min(abs(d[a]), abs(d[b])):
                break
            pos = np.arange(a + 1, b + 1)
            base = np.interp(pos, [a, b + 1], [np.median(left), np.median(right)])
            shift = np.sign(d[a]) * (v[a + 1 : b + 1] - base)
            lo, hi = max(0, a - flank), min(len(d), b + flank + 1)
            local = np.r_[d[lo:a], d[a + 1 : b], d[b + 1 : hi]]
            local_sd = 1.4826 * float(np.median(np.abs(local))) if len(local) else np.inf
            if (shift > max(min_step, k * local_sd)).all() and not moved(a, b):
                out[idx[a + 1 : b + 1]] = True
                closed = b
            break
    return out


def _witness_moved(
    witness: np.ndarray | None, idx: np.ndarray, flank: int, k: float, min_move: float = 0.0
):
    """``moved(a, b)``: the witness leaves its course over samples ``a+1..b`` of ``idx``.

    Its median over the segment lies further from each flank's median than ``k`` standard
    errors of their difference, and than ``min_move`` (a body swaying a few pixels has not
    changed stance, however smooth its sway). The noise is the witness's own: its per-axis SD
    from the median length of its frame-to-frame steps (a Rayleigh's median is ``1.665`` SDs
    per axis; motion only inflates it), and a median's standard error is ``1.2533 SD /
    sqrt(n)``. Without a witness, or with too few of its points, nothing moved. See
    :func:`step_episodes`.
    """
    if witness is None:
        return lambda a, b: False
    w = np.asarray(witness, dtype=np.float64)[idx]
    seen = np.isfinite(w).all(1)
    steps = geo.norm(np.diff(w[seen], axis=0))
    if len(steps) < 2 * flank:
        return lambda a, b: False
    sd = max(float(np.median(steps)) / 1.665, 1e-6)

    def moved(a: int, b: int) -> bool:
        parts = (w[max(0, a - flank + 1) : a + 1], w[a + 1 : b + 1], w[b + 1 : b + 1 + flank])
        left, inside, right = [p[np.isfinite(p).all(1)] for p in parts]
        if min(len(left), len(inside), len(right)) < 2:
            return False
        m_in = np.median(inside, 0)
        for fl in (left, right):
            se = 1.2533 * sd * np.sqrt(1 / len(inside) + 1 / len(fl))
            if not geo.norm(m_in - np.median(fl, 0)) > max(k * se, min_move):
                return False  # the wrist stays with this flank
        return True

    return moved


#: A wrist that changes stance with the stick moves by a good part of the stick's length (a
#: quarter of the track's median stick length); a body swaying a few pixels has not.
WITNESS_MOVE = 0.25


#: Chow test of one line through both flanks of a ramp episode: F(2, 6) at the 99 % level. Above
#: it, the flanks do not lie on one line (the course bends, or a flank is itself off), and the
#: line between them is no course to judge the episode by.
CHOW_F99 = 10.92


def _abrupt(d: np.ndarray, flank: int, k: float, floor: float) -> np.ndarray:
    """``(len(d),)`` steps beyond ``k`` robust SDs of the ``flank`` changes on each side of them.

    The spread is of the changes themselves, not about their median, so a step in the middle of
    a fast move (every change large, in one direction) is not called abrupt. Steps with fewer
    than two changes on either side are not judged.
    """
    m = len(d)
    out = np.zeros(m, bool)
    if m < 2 * flank + 1:
        return out
    pad = np.pad(np.abs(d), flank, constant_values=np.nan)
    win = np.lib.stride_tricks.sliding_window_view(pad, 2 * flank + 1)  # (m, 2 flank + 1)
    around = np.delete(win, flank, axis=1)  # without the step itself
    seen = np.isfinite(around)
    enough = (seen[:, :flank].sum(1) >= 2) & (seen[:, flank:].sum(1) >= 2)
    sd = 1.4826 * np.nanmedian(np.where(enough[:, None], around, 0.0), axis=1)
    out[enough] = (np.abs(d) >= np.maximum(k * sd, floor))[enough]
    return out


def _line(t: np.ndarray, v: np.ndarray) -> tuple[float, float, float]:
    """Least-squares line through ``(t, v)``: ``(mean t, intercept at it, slope)``."""
    mu = float(t.mean())
    dt = t - mu
    den = float(dt @ dt)
    slope = float(dt @ (v - v.mean())) / den if den > 0 else 0.0
    return mu, float(v.mean()), slope


def _rss(t: np.ndarray, v: np.ndarray, line: tuple[float, float, float]) -> float:
    mu, c, slope = line
    r = v - (c + slope * (t - mu))
    return float(r @ r)


def _ramp_score(v, t, a, b, flank, min_step, chow) -> float | None:
    """Score of ``v[a+1 : b+1]`` as an episode above the line through its flanks (None: not one).

    The flanks (``flank`` samples each side) must share one line (Chow test against a line per
    flank); every sample must sit above it, their median by ``min_step`` and by 5 standard
    errors of the flanks' own noise; and both ends must show the offset (the first and last
    three samples at least half the median offset above the flank beside them).
    """
    left, right = slice(max(0, a - flank + 1), a + 1), slice(b + 1, b + 1 + flank)
    if right.stop > len(v) or a + 1 - left.start < 3:
        return None
    opens = np.median(v[a + 1 : a + 4]) - np.median(v[left])
    closes = np.median(v[max(a + 1, b - 2) : b + 1]) - np.median(v[right])
    if min(opens, closes) <= 0.5 * min_step:  # (the offset's median must exceed min_step)
        return None
    ft, fv = np.r_[t[left], t[right]], np.r_[v[left], v[right]]
    joint = _line(ft, fv)
    rss_joint = _rss(ft, fv, joint)
    rss_sep = sum(_rss(t[sl], v[sl], _line(t[sl], v[sl])) for sl in (left, right))
    # The flanks' noise, floored at a quarter of the smallest error worth finding (a clean
    # synthetic track has none, and a perfect fit must not make any offset significant).
    s2 = max(rss_sep / max(len(fv) - 4, 1), (0.25 * min_step) ** 2)
    if (rss_joint - rss_sep) / 2.0 / s2 > chow:
        return None
    seg = slice(a + 1, b + 1)
    shift = v[seg] - (joint[1] + joint[2] * (t[seg] - joint[0]))
    med = float(np.median(shift))
    # The standard error from the flanks' frame-to-frame changes (robust: one spiked frame in a
    # flank must not hide the episode beside it).
    fd = np.r_[np.diff(v[left]), np.diff(v[right])]
    sig = max(1.4826 * float(np.median(np.abs(fd))) / np.sqrt(2.0), 0.25 * min_step)
    se = sig * np.sqrt(1.0 / len(shift) + 1.0 / len(fv))
    if med <= max(min_step, 5.0 * se) or shift.min() <= 0:
        return None
    if min(opens, closes) < 0.5 * med:
        return None
    # Samples count toward the episode by how far past half its offset they sit: the episode
    # ends where the label is back near the course, not where a bend of the course lets it run on.
    return float(np.sum(shift - 0.5 * med))


def ramp_episodes(
    y: np.ndarray,
    ok: np.ndarray,
    t: np.ndarray,
    still: np.ndarray,
    min_step: float,
    k: float = 2.5,
    chow: float = CHOW_F99,
    min_len: int = 3,
    max_len: int = 25,
    flank: int = 5,
) -> np.ndarray:
    """Samples inside episodes that one abrupt step *up* opens and that ramp back down.

    A label that drifts off the stick often opens with a jump and returns gradually, so no step
    closes it (:func:`step_episodes` needs both). Here an abrupt rise (``k`` robust SDs of the
    changes around it, :func:`_abrupt`) opens a candidate, and its end is the one that best
    separates it from the line through its flanks (:func:`_ramp_score`). Only rises are judged:
    a stick turning toward the camera shortens abruptly and often, so a dip is as often the pose
    as the label, and the sticks detectors stretch are the ones that need finding. Frames where
    the stick turns fast (``still`` False) neither open, hold nor flank an episode: a line
    through a fast move is no course. Found episodes are weaker evidence than step-bracketed
    ones (the course is a line, and a bend of it can lengthen an episode by a few frames).

    Args:
        y: ``(T,)`` log length in frame order.
        ok: ``(T,)`` usable samples.
        t: ``(T,)`` frame numbers.
        still: ``(T,)`` samples where the stick is not turning fast.
        min_step: The smallest offset that counts (log units).
        k: The opening step in robust SDs of the neighbouring changes.
        chow: Largest Chow F of the flanks against one line.
        min_len: Fewest usable samples in an episode.
        max_len: Most usable samples in an episode.
        flank: Samples on each side that define the course.

    Returns:
        ``(T,)`` bool.
    """
    out = np.zeros(len(y), bool)
    idx = np.flatnonzero(ok)
    if len(idx) < 2 * flank + min_len:
        return out
    v, tt, st = y[idx], np.asarray(t, np.float64)[idx], still[idx]
    d = np.diff(v)
    opens = np.flatnonzero((d > 0) & st[1:] & _abrupt(d, flank, k, 0.5 * min_step))
    last = -1  # the end of the last episode found (no step inside it opens another)
    for a in opens[opens >= flank - 1]:  # a handful of candidate steps per track
        if a <= last:
            continue
        best, best_b = -np.inf, -1
        for b in range(a + min_len, min(a + max_len, len(v) - 3) + 1):
            if not st[max(0, a - flank + 1) : b + 1 + flank].all():
                break  # a fast turn inside or beside: no line to judge by
            score = _ramp_score(v, tt, a, b, flank, min_step, chow)
            if score is not None and score > best:
                best, best_b = score, b
        if best_b >= 0:
            out[idx[a + 1 : best_b + 1]] = True
            last = best_b
    return out


def turning_fast(a: np.ndarray, ok: np.ndarray, k: float = 3.0) -> np.ndarray:
    """``(T,)`` samples at either end of a fast turn of the angle series ``a`` (degrees).

    Fast: a change beyond ``k`` robust SDs of the series' changes and beyond ``STEP_ANGLE``.
    """
    out = np.zeros(len(a), bool)
    idx = np.flatnonzero(ok)
    if len(idx) < 3:
        return out
    da = np.abs(np.diff(a[idx]))
    fast = da > max(k * 1.4826 * float(np.median(da)), STEP_ANGLE)
    out[idx[1:][fast]] = True
    out[idx[:-1][fast]] = True
    return out


def track_codes(ds, video: np.ndarray) -> np.ndarray:
    """``(N,)`` integer code per (video, track) for video rows, -1 for still images.

    Several people in one video are told apart by ``track_id`` when the importer or detector
    assigned one; without it, all of a video's annotations form one track.
    """
    n = len(video)
    out = np.full(n, -1, np.int64)
    isv = np.isfinite(video)
    if not isv.any():
        return out
    track = ds.annotations.get("track_id")
    tr = (
        np.zeros(n)
        if track is None
        else pd.to_numeric(track, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    )
    tr = np.where(np.isfinite(tr), tr, -1.0)
    codes, _ = pd.factorize(pd.MultiIndex.from_arrays([video[isv], tr[isv]]))
    out[isv] = codes
    return out


def unwrap_degrees(deg: np.ndarray, memory: int = 3) -> np.ndarray:
    """Unwrap a series of angles (degrees), each against the median of the previous few.

    ``np.unwrap`` steps from one sample to the next, so a single flipped sample (a swapped
    grip and tip: 180 degrees off) shifts everything after it by 360 degrees, and a track's
    course looks broken from there on. Here each sample is unwrapped against the median of the
    ``memory`` samples before it, which a single flip does not move.
    """
    x = np.asarray(deg, dtype=np.float64)
    out = np.empty(len(x))
    if not len(x):
        return out
    out[0] = x[0]
    for i in range(1, len(x)):  # sequential by nature; tracks are hundreds of frames
        ref = float(np.median(out[max(0, i - memory) : i]))
        out[i] = ref + (x[i] - ref + 180.0) % 360.0 - 180.0
    return out


def _course_outliers(
    a: np.ndarray,
    ln: np.ndarray,
    ok: np.ndarray,
    t: np.ndarray,
    half_window: int,
    n_sigmas: float,
    scale_a: float,
    scale_l: float,
    episode_frames: int,
    witness: np.ndarray | None = None,
    min_move: float = 0.0,
) -> tuple[np.ndarray, ...]:
    """One track's outliers of its angle and length course (see :func:`tip_outliers`).

    First the one- and two-frame outliers of the rolling course (spikes); then the episodes that
    steps open and close, on the series without the spikes; then, with those episodes left out
    of the course, the rolling filters at both scales (an episode that fills a window would
    otherwise drag the window's median and make the clean frames beside it look off); last the
    lengthening episodes that one step opens or closes (:func:`ramp_episodes`, forward and
    backward), marked but left in the course, and the spikes beside them (found on the course
    without them).

    Returns:
        ``(outliers, episodes, outliers off in angle, off in length, rolling median of the
        angle, of the length, ramp episodes found by nothing else)``. An outlier off in length
        only keeps its label's angle when it is fixed (and one off in angle only, its length):
        the evidence says which of the two is wrong, and a course interpolated across a fast
        swing would turn a stick whose angle was right.
    """
    out_a, med_a = hampel(a, half_window, n_sigmas, min_scale=scale_a)
    out_l, med_l = hampel(ln, half_window, n_sigmas, min_scale=scale_l)
    steady = ok & ~(out_a | out_l)
    with np.errstate(invalid="ignore", divide="ignore"):
        log_len = np.log(ln)
    step_a = step_episodes(a, steady, STEP_ANGLE, witness=witness, min_move=min_move) & steady
    step_l = step_episodes(log_len, steady, STEP_LOG_LENGTH, witness=witness, min_move=min_move)
    step_l &= steady
    stepped = step_a | step_l
    a_c, ln_c = a, ln
    if stepped.any():  # the course without the episodes (else the first pass stands)
        a_c, ln_c = np.where(stepped, np.nan, a), np.where(stepped, np.nan, ln)
        out_a, med_a = hampel(a_c, half_window, n_sigmas, min_scale=scale_a)
        out_l, med_l = hampel(ln_c, half_window, n_sigmas, min_scale=scale_l)
    bad = ((out_a | out_l) & ok) | stepped
    off_a, off_l = out_a | step_a, out_l | step_l
    if len(a) > 4 * half_window:  # the wide scale needs room on both sides of an episode
        wide_a, wmed_a = hampel(a_c, 2 * half_window, n_sigmas, min_scale=scale_a)
        wide_l, wmed_l = hampel(ln_c, 2 * half_window, n_sigmas, min_scale=scale_l)
        # An episode leaves the course on one side, and beyond the calm frames on both sides
        # of it: a run of the wide scale's outliers that is level with a flank (the start of a
        # track that then turns, measured against the turned part) is the stick's own motion.
        # A frame at either end of a fast turn is no calm reference (it may be a drift's own
        # start, or the stick in motion).
        calm = ok & ~(wide_a | wide_l) & ~stepped & ~turning_fast(a, ok)
        runs = np.zeros_like(ok)
        with np.errstate(invalid="ignore"):
            for wide, y, med in ((wide_l, ln, wmed_l), (wide_a, a, wmed_a)):
                for sign in (1.0, -1.0):
                    side = _runs_at_least(wide & (sign * (y - med) > 0) & ok, episode_frames)
                    runs |= _off_both_flanks(side, y, calm, sign)
        bad |= runs
        off_a |= runs & wide_a
        off_l |= runs & wide_l
    # Ramp episodes among what is left are marked, but stay in the rolling course: they rest on
    # a line through their flanks, weaker evidence than a step pair, and must not reshape the
    # course the other frames are judged by.
    # The same run backwards finds the mirror image: a label that lengthens gradually and snaps
    # back in one step. An abrupt shortening is as often the stick turning as the label, so
    # those episodes count only where the stick's angle holds the course through its flanks.
    ramp = steady & ~bad
    still = ~turning_fast(a, steady)
    fwd = ramp_episodes(log_len, ramp, t, still, STEP_LOG_LENGTH)
    rev = ramp_episodes(log_len[::-1], ramp[::-1], -t[::-1], still[::-1], STEP_LOG_LENGTH)[::-1]
    ramp &= fwd | _steady_angle(rev, a, t, ramp)
    bad |= ramp
    off_l |= ramp
    if ramp.any():
        # A spike beside a ramp episode hides in the episode's spread (the rolling MAD grows
        # with it): the one- and two-frame outliers of the course without the episode. Only
        # spikes are added; the other frames keep their verdicts.
        sp_a, _ = hampel(np.where(ramp, np.nan, a_c), half_window, n_sigmas, min_scale=scale_a)
        sp_l, _ = hampel(np.where(ramp, np.nan, ln_c), half_window, n_sigmas, min_scale=scale_l)
        spikes = (sp_a | sp_l) & ok & ~bad
        spikes &= ~_runs_at_least(spikes, 3)
        bad |= spikes
        off_a |= spikes & sp_a
        off_l |= spikes & sp_l
    return bad, stepped, bad & off_a, bad & off_l, med_a, med_l, ramp


def _off_both_flanks(
    ep: np.ndarray, y: np.ndarray, calm: np.ndarray, sign: float, flank: int = 5
) -> np.ndarray:
    """``ep`` without the runs whose median is not beyond both flanks' on their side (``sign``).

    The flanks are up to ``flank`` ``calm`` samples on each side (their median). A run with
    fewer than two calm samples on a side (a track's start or end, or one frame before a
    swing the wide window spans) is not shown to come back, and a stick that moves once looks
    the same: no episode.
    """
    out = ep.copy()
    for s0, e0, left, right in _run_flanks(ep, calm, flank):
        level = float(np.nanmedian(y[s0:e0]))
        for fl in (left, right):
            if len(fl) < 2 or not sign * (level - float(np.nanmedian(y[fl]))) > 0:
                out[s0:e0] = False
    return out


def _run_flanks(ep: np.ndarray, usable: np.ndarray, flank: int):
    """Yield each run of ``ep`` as ``(start, stop, left flank, right flank)``.

    The flanks are the indices of up to ``flank`` ``usable`` samples on each side of the run.
    """
    idx = np.flatnonzero(usable)
    for s0, e0 in _runs(ep):
        yield s0, e0, idx[idx < s0][-flank:], idx[idx >= e0][:flank]


def _steady_angle(
    ep: np.ndarray, a: np.ndarray, t: np.ndarray, ok: np.ndarray, flank: int = 5
) -> np.ndarray:
    """``ep`` without the episodes whose angle leaves the course through their flanks.

    The course is the line between the medians of ``flank`` usable samples (``ok``) on each
    side; an episode whose angles sit further than ``STEP_ANGLE`` from it (median) is the stick
    turning, not a label drifting along it. Episodes without two usable samples on each side
    stay as they are.
    """
    out = ep.copy()
    for s0, e0, left, right in _run_flanks(ep, ok, flank):
        ins = np.arange(s0, e0)[ok[s0:e0]]
        if len(left) < 2 or len(right) < 2 or not len(ins):
            continue
        course = np.interp(
            t[ins], [np.median(t[left]), np.median(t[right])],
            [np.median(a[left]), np.median(a[right])],
        )  # fmt: skip
        if np.median(np.abs(a[ins] - course)) > STEP_ANGLE:
            out[s0:e0] = False
    return out


def tip_outliers(
    grip: np.ndarray,
    tip: np.ndarray,
    track: np.ndarray,
    frame: np.ndarray,
    half_window: int = 10,
    n_sigmas: float = 3.0,
    min_frames: int = 8,
    min_coverage: float = 0.6,
    episode_frames: int = 5,
    wrist: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Per track: frames whose stick angle or length leaves the track's course, and the fix.

    Two scales: the rolling window of ``half_window`` frames each side catches jumps and short
    episodes; a drift episode as long as that half-window pulls the rolling median along with
    it, so a second window twice as wide catches episodes of ``episode_frames`` or more
    consecutive frames (shorter deviations at the wide scale are the course's own bends).
    Episodes longer still, which fill much of either window, are found by the steps that open
    and close them (:func:`step_episodes`).

    The noise floors are the track's own: the robust spread of its frame-to-frame changes of
    angle and length (so a fast swing is not an outlier, and a still stick's label jitter is
    not either). A track is judged only with ``min_frames`` frames of which ``min_coverage`` have
    both stick points: a video without a stick (a 17-keypoint detector's output) is never
    "repaired".

    Args:
        grip: ``(N, 2)`` pixels (NaN where missing).
        tip: ``(N, 2)`` pixels (NaN where missing).
        track: ``(N,)`` track codes (:func:`track_codes`; -1 = not in a video).
        frame: ``(N,)`` frame index.
        half_window: Frames either side in the rolling median.
        n_sigmas: Threshold in robust SDs of the track's frame-to-frame changes.
        min_frames: Fewest frames a judged track has.
        min_coverage: Smallest share of a judged track's frames with both stick points.
        episode_frames: Fewest consecutive frames of an episode found at the wide scale.
        wrist: ``(N, 2)`` the weapon wrist (NaN where unknown), or None: a step episode the
            wrist moves with is the body's motion (:func:`step_episodes`' witness).

    Returns:
        Dict of ``(N,)`` ``outlier`` (bool), ``deviation`` (how far past the threshold, in units
        of it), ``fit_tip`` ``(N, 2)`` (the course's tip for outliers and missing tips, NaN
        elsewhere), ``judged`` (the row's track was judged), ``missing`` (tip missing inside a
        judged track, with labelled neighbours on both sides), ``weak`` (outliers found by a
        ramp episode, :func:`ramp_episodes`: the weaker evidence, to propose rather than apply).
    """
    n = len(grip)
    out = {
        "outlier": np.zeros(n, bool),
        "deviation": np.full(n, np.nan),
        "fit_tip": np.full((n, 2), np.nan),
        "judged": np.zeros(n, bool),
        "missing": np.zeros(n, bool),
        "weak": np.zeros(n, bool),
    }
    tracks = np.unique(track[track >= 0])
    if not len(tracks):  # no video rows: nothing to judge
        return out
    vec = tip - grip
    length = geo.norm(vec)
    ang = geo.angle(vec)
    for _, rows in _track_rows(track, frame, tracks):
        ok = np.isfinite(ang[rows]) & (length[rows] > 0)
        if len(rows) < min_frames or ok.mean() < min_coverage or ok.sum() < min_frames:
            continue
        out["judged"][rows] = True
        t = frame[rows].astype(np.float64)
        a = ang[rows].copy()
        a[ok] = unwrap_degrees(a[ok])
        ln = np.where(ok, length[rows], np.nan)
        # Floors from the track's own frame-to-frame changes (natural motion + label jitter).
        da = np.abs(np.diff(a[ok]))
        dl = np.abs(np.diff(ln[ok]))
        floor_a = max(1.0, 1.4826 * float(np.median(da))) if len(da) else 1.0
        med_len = float(np.nanmedian(ln))
        floor_l = max(0.01 * med_len, 1.4826 * float(np.median(dl))) if len(dl) else 1.0
        bad, stepped, bad_a, bad_l, med_a, med_l, ramp = _course_outliers(
            a, ln, ok, t, half_window, n_sigmas, 2.0 * floor_a, 2.0 * floor_l, episode_frames,
            None if wrist is None else wrist[rows], WITNESS_MOVE * med_len,
        )  # fmt: skip
        with np.errstate(invalid="ignore", divide="ignore"):
            dev = np.fmax(
                np.abs(a - med_a) / (n_sigmas * 2.0 * floor_a),
                np.abs(ln - med_l) / (n_sigmas * 2.0 * floor_l),
            )
        out["deviation"][rows] = np.where(stepped, np.fmax(dev, 1.0), dev)
        gaps = ~ok & np.isfinite(grip[rows]).all(1)
        # Only gaps with labelled frames on both sides: interpolation, never extrapolation.
        idx = np.flatnonzero(ok)
        inside = (np.arange(len(rows)) > idx.min()) & (np.arange(len(rows)) < idx.max())
        gaps &= inside
        # Too many outliers of the rolling course: the track has none; judge nothing in it.
        # (Episodes are not counted: their flanks, not a rolling median, are their course.)
        if (bad & ~stepped & ~ramp).sum() > 0.35 * ok.sum():
            out["judged"][rows] = False
            continue
        # The shoulders of a length episode (its ramps in and out, short of the threshold) are
        # no course for it: left in, they anchor its fix a ramp's height off. They are marked,
        # as the weaker evidence.
        with np.errstate(invalid="ignore", divide="ignore"):
            y = np.log(ln)
            calm = ok & ~bad
            # One label's scatter about its neighbours (robust SD of the frame-to-frame changes
            # of the calm frames, over sqrt 2).
            d_calm = np.abs(np.diff(y[calm]))
            sd = 1.4826 * float(np.median(d_calm)) / np.sqrt(2) if len(d_calm) else np.inf
            sh = _shoulders(y, calm, bad_l, 4.0 * sd)
        bad |= sh
        bad_l = bad_l | sh
        ramp = ramp | sh
        need = bad | gaps
        if not need.any():
            continue
        # The length of an outlier off in angle only, and the angle of one off in length only,
        # stay the label's (a length outlier is not evidence against its angle).
        need_a = gaps | bad_a | (bad & ~bad_l)
        need_l = gaps | bad_l | (bad & ~bad_a)
        a_fit = np.where(need_a, _fill_savgol(t, np.where(ok, a, np.nan), need_a), a)
        l_fit = np.where(need_l, _fill_savgol(t, ln, need_l), ln)
        th = np.radians(a_fit)
        cand = grip[rows] + l_fit[:, None] * np.stack([np.cos(th), np.sin(th)], 1)
        out["outlier"][rows[bad]] = True
        out["weak"][rows[ramp]] = True
        out["missing"][rows[gaps]] = True
        sel = need & np.isfinite(cand).all(1)
        out["fit_tip"][rows[sel]] = cand[sel]
    return out


def image_chains(
    off: np.ndarray,
    line: np.ndarray,
    anchor: np.ndarray,
    best_angle: np.ndarray,
    label_angle: np.ndarray,
    track: np.ndarray,
    frame: np.ndarray,
    min_frames: int = 3,
    max_gap: int = 2,
) -> np.ndarray:
    """``(N,)`` video frames where the image's line carries on the stick of the frames beside.

    The image alone cannot tell a wrong label from a stick it does not show beside another line
    (a limb, a background edge). In video a second witness settles it: the image's line is
    followed, frame by frame, from a pair of consecutive frames whose labels lie on it (the
    stick, seen and labelled twice over), for as long as each frame's line continues the
    direction of the last; the frames on the way whose label lies off that line are the chain.
    The stick seen in the anchoring frames and the line in the chain are then one object, and
    the label has left it (a drift too gradual for the track's rolling course to see). A frame
    without a continuing line is passed over (up to ``max_gap`` in a row); an anchoring frame
    ends the walk. A single frame whose label happens to cross a line (a stick turning past a
    limb) anchors nothing.

    Calibrated on the data set: the step tolerance is four robust SDs of the image's angle
    against anchoring labels (the image's own noise), plus three times the track's median
    frame-to-frame turn per frame elapsed (its own motion). Abstains without enough anchoring
    frames to measure either.

    Args:
        off: ``(N,)`` the image shows a line from the grip and the label lies off it.
        line: ``(N,)`` the image shows a strong line from the grip (the walk follows it).
        anchor: ``(N,)`` the label lies on the image's strong line.
        best_angle: ``(N,)`` degrees, the image's line from the grip.
        label_angle: ``(N,)`` degrees, the label's grip-to-tip direction.
        track: ``(N,)`` track codes (-1 = not in a video).
        frame: ``(N,)`` frame index.
        min_frames: Fewest frames of a chain.
        max_gap: Most frames in a row a walk passes over.

    Returns:
        ``(N,)`` bool.
    """
    n = len(off)
    out = np.zeros(n, bool)
    both = anchor & np.isfinite(best_angle) & np.isfinite(label_angle)
    if both.sum() < 8 or not (off & (track >= 0)).any():
        return out
    d = geo.wrap_degrees(best_angle[both] - label_angle[both])
    noise = 1.4826 * float(np.median(np.abs(d - np.median(d))))
    tol = max(4.0 * noise, 3.0)
    for _, rows in _track_rows(track, frame, np.unique(track[off & (track >= 0)])):
        f = frame[rows].astype(np.float64)
        a, lab = both[rows], label_angle[rows]
        pairs = np.flatnonzero(a[:-1] & a[1:] & (np.diff(f) == 1))
        if len(pairs) < 5:  # too few anchoring neighbours to know the track's motion
            continue
        speed = 3.0 * max(float(np.median(np.abs(geo.wrap_degrees(np.diff(lab)[pairs])))), 1.0)
        walk = _Walk(a, off[rows], line[rows], lab, best_angle[rows], f, tol, speed, max_gap)
        for order in (np.arange(len(rows)), np.arange(len(rows))[::-1]):
            for chain in walk.chains(order):
                if len(chain) >= min_frames:
                    out[rows[chain]] = True
    return out


@dataclass(frozen=True)
class _Walk:
    """One track's frames for :func:`image_chains`' walks (see there)."""

    anchor: np.ndarray
    off: np.ndarray
    line: np.ndarray
    lab: np.ndarray
    best: np.ndarray
    f: np.ndarray
    tol: float
    speed: float
    max_gap: int

    def chains(self, order: np.ndarray):
        """The chains walked along ``order`` (one direction of the track), one per anchor pair."""
        a, f = self.anchor, self.f
        p = 1
        while p < len(order):
            i, prev = order[p], order[p - 1]
            if a[i] and a[prev] and abs(f[i] - f[prev]) == 1:
                chain, p = self._follow(order, p)
                yield chain
            else:
                p += 1

    def _follow(self, order: np.ndarray, p: int) -> tuple[list[int], int]:
        """Follow the line from the anchor at ``order[p]``: ``(chain, where the walk stopped)``."""
        i = order[p]
        ang, fa, chain, miss, q = self.lab[i], self.f[i], [], 0, p + 1
        while q < len(order):
            k = order[q]
            if self.anchor[k]:
                break
            df = abs(self.f[k] - fa)
            if (
                self.line[k]
                and df <= self.max_gap + 1
                and abs(geo.wrap_degrees(self.best[k] - ang)) <= self.tol + self.speed * df
            ):
                if self.off[k]:
                    chain.append(k)
                ang, fa, miss = self.best[k], self.f[k], 0
            elif miss >= self.max_gap:
                break
            else:
                miss += 1
            q += 1
        return chain, q


def _shoulders(
    y: np.ndarray,
    calm: np.ndarray,
    run: np.ndarray,
    level: float,
    flank: int = 5,
    max_frames: int = 4,
    min_run: int = 3,
) -> np.ndarray:
    """``(T,)`` the samples beside each run of ``run`` that are off on the run's side.

    Walking out from a run of ``min_run`` samples or more (an episode: a one- or two-frame
    spike has no ramps), up to ``max_frames`` samples, a sample belongs to it while it lies
    more than ``level`` beyond the median of the next ``flank`` ``calm`` samples further out,
    on the side the run lies of them. Runs with fewer than two calm samples beyond them on a
    side are not walked on that side.
    """
    out = np.zeros(len(y), bool)
    if not np.isfinite(level) or not run.any():
        return out
    for a, b in _runs(run):
        if b - a < min_run:
            continue
        run_level = float(np.nanmedian(y[a:b]))
        for start, step in ((a - 1, -1), (b, 1)):
            for j in range(start, start + step * max_frames, step):
                if not (0 <= j < len(y) and calm[j] and not run[j]):
                    break
                beyond = np.arange(j + step, -1 if step < 0 else len(y), step)
                beyond = beyond[calm[beyond]][:flank]
                if len(beyond) < 2:
                    break
                ref = float(np.median(y[beyond]))
                if not np.sign(run_level - ref) * (y[j] - ref) > level:
                    break
                out[j] = True
    return out


def seen_again(
    seen: np.ndarray,
    value: np.ndarray,
    track: np.ndarray,
    frame: np.ndarray,
    max_gap: int = 2,
    tol: float = STEP_LOG_LENGTH,
) -> np.ndarray:
    """``(N,)`` frames of ``seen`` that another frame of ``seen`` in their track repeats.

    The other frame lies at most ``max_gap`` frames away, and its ``value`` (a positive
    measurement: a length the image reads) agrees within ``tol`` in log units: the same finding
    about the same stick, made twice in a row (a label's drift persists; a line the image
    mistakes for the stick in one frame seldom lies at the same place in the next).
    """
    out = np.zeros(len(seen), bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        logv = np.log(value)
    for _, rows in _track_rows(track, frame, np.unique(track[seen & (track >= 0)])):
        r = rows[seen[rows] & np.isfinite(logv[rows])]
        f, v = frame[r], logv[r]
        near = (np.abs(f[:, None] - f[None, :]) <= max_gap) & (
            np.abs(v[:, None] - v[None, :]) < tol
        )
        np.fill_diagonal(near, False)
        out[r] = near.any(1)
    return out


def walk_out(
    seed: np.ndarray,
    eligible: np.ndarray,
    track: np.ndarray,
    frame: np.ndarray,
    max_frames: int = 4,
    max_gap: int = 2,
) -> np.ndarray:
    """``(N,)`` the ``eligible`` frames next to runs of ``seed`` in their track, walking out.

    From each end of each run, frame by frame, while the next frame of the track is eligible,
    not a seed, at most ``max_gap`` frames on, and at most ``max_frames`` from the run.
    """
    out = np.zeros(len(seed), bool)
    for _, rows in _track_rows(track, frame, np.unique(track[seed & (track >= 0)])):
        s, e, f = seed[rows], eligible[rows], frame[rows]
        for i in np.flatnonzero(s):
            for step in (-1, 1):
                j = i
                for _ in range(max_frames):
                    k = j + step
                    if not 0 <= k < len(rows) or s[k] or not e[k] or abs(f[k] - f[j]) > max_gap:
                        break
                    out[rows[k]] = True
                    j = k
    return out


def extend_runs(
    seed: np.ndarray,
    value: np.ndarray,
    eligible: np.ndarray,
    track: np.ndarray,
    frame: np.ndarray,
    k: float = 2.0,
    max_frames: int = 4,
    min_rows: int = 8,
) -> np.ndarray:
    """``(N,)`` the frames beside runs of ``seed`` that carry the run on (its ramps).

    An error that drifts in and out is caught by a fixed threshold only at its peak. Next to
    such a run, in the same track, a frame belongs to it while its ``value`` stays above the
    track's usual level: the median of the track's other ``eligible`` frames plus ``k`` robust
    SDs of them. The walk outward stops at the first frame that is not eligible or not above,
    after ``max_frames`` frames, or at another run. Tracks with fewer than ``min_rows`` frames
    to measure their level abstain.
    """
    n = len(seed)
    out = np.zeros(n, bool)
    for _, rows in _track_rows(track, frame, np.unique(track[seed & (track >= 0)])):
        x, s, e = value[rows], seed[rows], eligible[rows] & np.isfinite(value[rows])
        ref = x[e & ~s]
        if len(ref) < min_rows:
            continue
        med = float(np.median(ref))
        level = med + k * 1.4826 * float(np.median(np.abs(ref - med)))
        above = e & ~s & (x > level)
        for a, b in _runs(above):  # a run of the track's frames above its level
            if a > 0 and s[a - 1]:  # just after a run of ``seed``
                out[rows[a : min(b, a + max_frames)]] = True
            if b < len(rows) and s[b]:  # just before one
                out[rows[max(a, b - max_frames) : b]] = True
    return out


def turned_runs(
    grip: np.ndarray,
    tip: np.ndarray,
    track: np.ndarray,
    frame: np.ndarray,
    max_run: int = 5,
    max_gap: int = 2,
    margin: float = 0.6,
) -> np.ndarray:
    """``(N,)`` short runs of frames whose label is turned end for end against both flanks.

    Between two consecutive frames of a track, the label's ends either follow on (the grip to
    the grip, the tip to the tip) or cross (each end to where the other end was). A held stick
    turns about the hand: in one frame its ends cross only if it turns past half a turn, so a
    pair whose crossed match is under ``margin`` of the straight one, with the ends moving at
    least a stick's length between them, is a turn of the label, not of the stick. A run of at
    most ``max_run`` frames cut off by such turns (at a track's start or end, by one), shorter
    than the frames on either side (save those the clip cuts short), with the clear majority of
    the track's frames the other way round, is a swap seen in time. Works on any track, judged
    or not: a swing too fast for the course (:func:`tip_outliers`) does not turn a stick end for
    end either.

    Args:
        grip: ``(N, 2)`` pixels (NaN where missing).
        tip: ``(N, 2)`` pixels (NaN where missing).
        track: ``(N,)`` track codes (:func:`track_codes`; -1 = not in a video).
        frame: ``(N,)`` frame index.
        max_run: Longest run of turned frames.
        max_gap: Largest frame step between two frames compared.
        margin: The crossed match over the straight one below which a pair turned.

    Returns:
        ``(N,)`` degrees between each turned label, reversed, and the label of the frame before
        its run (NaN outside the runs).
    """
    n = len(grip)
    out = np.full(n, np.nan)
    ok = np.isfinite(grip).all(1) & np.isfinite(tip).all(1)
    for _, rows in _track_rows(track, frame, np.unique(track[track >= 0])):
        rows = rows[ok[rows]]
        if len(rows) < 3:
            continue
        g, t, f = grip[rows], tip[rows], frame[rows]
        straight = geo.norm(g[1:] - g[:-1]) + geo.norm(t[1:] - t[:-1])
        crossed = geo.norm(g[1:] - t[:-1]) + geo.norm(t[1:] - g[:-1])
        length = geo.norm(t - g)
        mean_len = 0.5 * (length[1:] + length[:-1])
        # Both labels of the pair well clear of the label's own jitter (a stick pointing at the
        # camera is a few pixels long, and its direction is the jitter's): the grip's scatter
        # about its course, from its second differences (of a still point, sqrt 6 noise SDs)
        # away from the pairs that cross.
        cross = crossed < margin * straight
        d2 = geo.norm(g[2:] - 2 * g[1:-1] + g[:-2])[~(cross[1:] | cross[:-1])]
        jitter = np.median(d2) / np.sqrt(6) if len(d2) else np.inf
        long = length > 6 * jitter
        turn = (
            (np.diff(f) <= max_gap) & cross & (straight > mean_len) & long[1:] & long[:-1]
        )  # fmt: skip
        cuts = np.flatnonzero(turn)  # a turn between frames c and c + 1
        if not len(cuts):
            continue
        # The turns cut the track into segments, turned and not in turn: the clear majority of
        # its frames (twice the rest) are the right way round, and a minority segment of at most
        # ``max_run`` frames, shorter than each segment beside it, is turned.
        bounds = np.concatenate([[-1], cuts, [len(rows) - 1]])
        seg = np.diff(bounds)
        odd = np.arange(len(seg)) % 2
        n_odd = int(seg[odd == 1].sum())
        n_even = int(seg.sum()) - n_odd
        if max(n_odd, n_even) < 2 * min(n_odd, n_even):
            continue
        wrong = 1 if n_odd < n_even else 0
        for j in np.flatnonzero((odd == wrong) & (seg <= max_run)):
            # (A segment at the track's start or end is cut short by the clip, not by a turn.)
            beside = np.r_[seg[j - 1 : j] if j > 1 else [], seg[j + 1 : j + 2]]
            if j + 2 == len(seg):
                beside = beside[:-1]
            if (beside <= seg[j]).any():
                continue
            run = rows[bounds[j] + 1 : bounds[j + 1] + 1]
            ref = bounds[j] if j > 0 else bounds[j + 1] + 1  # a frame beside the run
            out[run] = np.abs(
                geo.wrap_degrees(geo.angle(grip[run] - tip[run]) - geo.angle(t[ref] - g[ref]))
            )
    return out
