"""Image evidence for the stick that assumes no colour, thickness or renderer.

A stick is a thin straight ridge or valley in the image: whatever its colour (dark wood, light
wood, metal) it differs from what lies on either side of it. :func:`ridge_map` measures that with
the Hessian of the grey image at several scales (scale-normalised, polarity-agnostic: dark and
light sticks alike), divided by the local contrast, and keeps the ridge's direction. The support
of a segment is the mean ridge strength along it, counted only where the ridge runs along the
segment.

Every decision is relative to the image itself: from the grip, a fan of rays in all directions
is scored, and a segment's support is expressed as a robust z-score against that fan (most rays
miss the stick, so the fan is the image's own background, clutter included). A label whose
segment stands out of its fan is confirmed; a label that does not, next to another ray that
stands out far (and that starts at the grip rather than passing through it, and is not the
forearm), is a mismatch. Data-set-level calibration (:func:`visibility`) decides whether the
images show sticks at all; when they do not, image evidence abstains.
"""

from __future__ import annotations

import numpy as np

from toolkit import geometry as geo
from toolkit.media import iter_pixels

#: Ridge scales (Gaussian sigma, pixels) relative to the image's short side / 320: a 1280-px
#: image is searched at 4x the scales of a 320-px one.
SIGMAS = (1.0, 1.8, 3.0)
#: The image places a line's end no finer than its widest ridge filter (two sigmas, pixels): a
#: label's end differs from the line's only by more than this.
END_PRECISION = 2.0 * max(SIGMAS)
#: Labels shorter than this (pixels) are too short for the image to judge where they end.
MIN_LABEL_PX = 15.0
#: Rays in the fan around the grip (every 2 degrees; each ray is a tube a few pixels wide).
N_RAYS = 180
#: Perpendicular offsets (pixels) of the tube sampled along each ray: a thin line between two
#: rays is still caught.
TUBE = (-1.5, 0.0, 1.5)
#: Scale the ridge sigmas with the image size (False: sticks are a few pixels thick at any size).
SCALE_WITH_SIZE = False
#: A line ends where its support falls below this fraction of its own typical support (the
#: median along the label, or along the best ray's first part): a ratio of the line to itself, free of colour and contrast.
END_FRACTION = 0.3
#: A line continues the same stick where its support is at least this fraction of the label's
#: own (a stick keeps its contrast along its length; background texture beyond it does not).
SAME_LINE = 0.7


def iter_frames(ds, rows: np.ndarray, color: bool = False):
    """Yield ``(rows of one image, pixels)`` for annotation ``rows`` (grayscale, or BGR).

    The pixels come from :func:`toolkit.media.iter_pixels` (each image or video frame decoded
    once); a picture that cannot be read is left out: no image evidence for its rows.
    """
    import cv2

    rows = np.asarray(rows, dtype=np.int64)
    code = cv2.COLOR_RGB2BGR if color else cv2.COLOR_RGB2GRAY
    for pos, rgb in iter_pixels(ds, rows, skip_missing=True):  # one iteration per picture
        yield rows[pos], cv2.cvtColor(np.ascontiguousarray(rgb), code)


def ridge_map(
    gray: np.ndarray, sigmas: tuple[float, ...] = SIGMAS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contrast-normalised ridge strength of both polarities, and the ridge direction.

    Dark lines (valleys) and light lines (ridges) are kept apart: the flanks of a dark line are
    light "ridges" of the second derivative, and scoring both polarities in one map would let
    a ray beside a stick score like the stick itself. Callers score each map and keep the
    stronger (polarity-agnostic in the result, not in the map).

    Returns:
        ``(dark (H, W), light (H, W), along (H, W))``: the best scale's ``|lambda_across| -
        |lambda_along|`` of the scale-normalised Hessian where the across-curvature is positive
        (dark line) or negative (light line), divided by the local contrast (float32 >= 0);
        ``along`` is the ridge's direction in radians (image coordinates, y down).
    """
    import cv2

    g = gray.astype(np.float32)
    h, w = g.shape
    k = max(1.0, min(h, w) / 320.0) if SCALE_WITH_SIZE else 1.0
    best = np.zeros_like(g)
    sign = np.zeros_like(g)
    along = np.zeros_like(g)
    for s0 in sigmas:  # a few scales
        s = s0 * k
        b = cv2.GaussianBlur(g, (0, 0), s)
        dxx = cv2.Sobel(b, cv2.CV_32F, 2, 0, ksize=3) * s * s
        dyy = cv2.Sobel(b, cv2.CV_32F, 0, 2, ksize=3) * s * s
        dxy = cv2.Sobel(b, cv2.CV_32F, 1, 1, ksize=3) * s * s
        half = 0.5 * (dxx - dyy)
        root = np.sqrt(half * half + dxy * dxy)
        mean = 0.5 * (dxx + dyy)
        l1, l2 = mean + root, mean - root  # l1 >= l2
        big_is_l1 = np.abs(l1) >= np.abs(l2)
        strength = np.abs(np.abs(l1) - np.abs(l2))
        # Direction of l1's eigenvector; the ridge runs perpendicular to the big eigenvalue's.
        phi1 = 0.5 * np.arctan2(2 * dxy, dxx - dyy)
        across = np.where(big_is_l1, phi1, phi1 + np.pi / 2)
        lam = np.where(big_is_l1, l1, l2)
        better = strength > best
        best = np.where(better, strength, best)
        sign = np.where(better, np.sign(lam), sign)
        along = np.where(better, across + np.pi / 2, along)
    # Local contrast: the standard deviation in a window as wide as the largest filter's support
    # (so a line's own contrast is in the window wherever its response is), floored by the
    # image's typical contrast (flat regions must not blow noise up).
    win = 2 * int(6 * max(sigmas) * k) + 1
    m = cv2.blur(g, (win, win))
    v = np.maximum(cv2.blur(g * g, (win, win)) - m * m, 0)
    sd = np.sqrt(v)
    floor = max(float(np.median(sd)), 1.0)
    norm = (best / np.maximum(sd, floor)).astype(np.float32)
    dark = np.where(sign > 0, norm, 0).astype(np.float32)
    light = np.where(sign < 0, norm, 0).astype(np.float32)
    # A line's flanks answer in the other polarity, a few sigma beside it and weaker: keep a
    # pixel of one polarity only where no stronger one of the other lies that close.
    size = 2 * int(np.ceil(2 * max(sigmas) * k)) + 1
    ker = np.ones((size, size), np.uint8)
    dark_near, light_near = cv2.dilate(dark, ker), cv2.dilate(light, ker)
    dark = np.where(dark >= light_near, dark, 0).astype(np.float32)
    light = np.where(light >= dark_near, light, 0).astype(np.float32)
    return dark, light, along.astype(np.float32)


def _bilinear(img: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear samples of ``img`` at ``(..., 2)`` points; ``(values, inside mask)``."""
    h, w = img.shape
    x, y = pts[..., 0], pts[..., 1]
    inside = np.isfinite(x) & np.isfinite(y) & (x >= 0) & (y >= 0) & (x <= w - 1) & (y <= h - 1)
    x = np.clip(np.nan_to_num(x), 0, w - 1.001)
    y = np.clip(np.nan_to_num(y), 0, h - 1.001)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    fx, fy = x - x0, y - y0
    v = (
        img[y0, x0] * (1 - fx) * (1 - fy)
        + img[y0, x0 + 1] * fx * (1 - fy)
        + img[y0 + 1, x0] * (1 - fx) * fy
        + img[y0 + 1, x0 + 1] * fx * fy
    )
    return np.where(inside, v, 0.0), inside


def _nearest(img: np.ndarray, pts: np.ndarray) -> np.ndarray:
    h, w = img.shape
    x = np.clip(np.nan_to_num(np.round(pts[..., 0])), 0, w - 1).astype(np.int64)
    y = np.clip(np.nan_to_num(np.round(pts[..., 1])), 0, h - 1).astype(np.int64)
    return img[y, x]


def oriented_samples(
    strength: np.ndarray, along: np.ndarray, start: np.ndarray, theta: np.ndarray, r: np.ndarray
) -> np.ndarray:
    """Ridge support along rays: ``strength * cos^2(ridge direction - ray direction)``.

    Args:
        strength: Ridge strength map (:func:`ridge_map`).
        along: The ridge direction at each pixel (radians).
        start: ``(..., 2)`` ray origins.
        theta: ``(...)`` ray directions (radians).
        r: ``(..., R)`` distances along each ray (pixels).

    Returns:
        ``(..., R)`` support samples (0 outside the image).
    """
    d = np.stack([np.cos(theta), np.sin(theta)], -1)
    nrm = np.stack([-np.sin(theta), np.cos(theta)], -1)
    out = None
    for off in TUBE:  # the max over a narrow tube across the ray
        pts = start[..., None, :] + d[..., None, :] * r[..., None] + off * nrm[..., None, :]
        s, inside = _bilinear(strength, pts)
        a = _nearest(along, pts)
        c = np.cos(a - theta[..., None])
        v = np.where(inside, s * c * c, 0.0)
        out = v if out is None else np.maximum(out, v)
    return out


def _robust_z(x: np.ndarray, fan: np.ndarray) -> np.ndarray:
    """``(x - median(fan)) / (1.4826 MAD(fan))`` per row (fan: ``(M, A)``)."""
    med = np.median(fan, 1)
    mad = 1.4826 * np.median(np.abs(fan - med[:, None]), 1)
    # Floors: a nearly empty fan (a plain background) must not turn any support into a huge z.
    scale = np.maximum(np.maximum(mad, 0.05 * med), 0.05)
    return (x - med) / scale


def evidence_in_image(
    gray: np.ndarray,
    grip: np.ndarray,
    tip: np.ndarray,
    reach: np.ndarray,
    elbow: np.ndarray,
    n_rays: int = N_RAYS,
    n_samples: int = 48,
    wrist: np.ndarray | None = None,
    window: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Score the labelled stick and every direction from the grip in one image.

    Args:
        gray: Grey image.
        grip: ``(M, 2)`` labelled grips.
        tip: ``(M, 2)`` labelled tips (NaN when missing).
        reach: ``(M,)`` longest plausible stick (pixels).
        elbow: ``(M, 2)`` the weapon elbow (rays toward the forearm are not candidates).
        n_rays: Directions in the fan.
        n_samples: Samples along each ray.
        wrist: ``(M, 2)`` the weapon wrists, for :func:`tip_fan` (with ``window``).
        window: ``(M,)`` :func:`tip_fan`'s window (pixels; NaN: row not scored).

    Returns:
        Dict of ``(M,)`` arrays: ``z_label`` (the labelled segment's support as a z-score in
        its fan; NaN without a tip), ``z_best`` and ``best_angle`` (the best candidate ray),
        ``z_opposite`` (the ray opposite the best: high when a line passes through the grip),
        ``best_end`` (where the best ray's line ends, pixels from the grip), ``label_end`` (where
        the line along the labelled direction ends), ``label_len``, ``at_border`` (the line
        runs out of the picture), ``thin`` (centre/side support of the label's extension).
        With ``wrist`` and ``window``, also :func:`tip_fan`'s keys (``window`` NaN: not read).
    """
    dark, light, along = ridge_map(gray)
    extra = {}
    if wrist is not None and window is not None:
        extra = tip_fan(dark, light, along, tip, grip, wrist, window, n_rays)
    a = _evidence(dark, along, grip, tip, reach, elbow, n_rays, n_samples)
    b = _evidence(light, along, grip, tip, reach, elbow, n_rays, n_samples)

    # Per row, one polarity. Where the label lies on a line (z >= 3 in the polarity with the more
    # raw support along it), that line's polarity: the stick is dark or light, and a strong line
    # of the other polarity beside it (a dark limb next to a light stick) must not hide it.
    # Otherwise the polarity whose best candidate has the more support (raw support is on one
    # scale in both maps; z-scores are not, where a fan is nearly empty).
    def raw(d: dict, k: str) -> np.ndarray:
        return np.nan_to_num(d[k], nan=-np.inf)

    lab_b = raw(b, "s_label") > raw(a, "s_label")
    on_line = np.where(lab_b, b["z_label"], a["z_label"]) >= 3.0
    use_b = np.where(on_line, lab_b, raw(b, "s_best") > raw(a, "s_best"))
    out = {k: np.where(use_b, b[k], a[k]) for k in a if k not in ("s_best", "s_label")}
    out.update(extra)
    return out


#: Keys of :func:`tip_fan`.
TIP_FAN_KEYS = ("tip_z_best", "tip_z_label", "tip_off_grip", "tip_off_wrist")


def tip_fan(dark, light, along, tip, grip, wrist, window, n_rays: int = N_RAYS) -> dict:
    """From the labelled tip, the strongest line back toward the hand, and where the grip lies.

    A grip label off the hand leaves the tip right: the stick still runs from the tip to the
    hand. From the tip, a fan of rays (out to the wrist's distance, the part near the tip and
    the part at the hand left out) is scored on each polarity's ridge map; the candidates are
    the rays that pass within ``window`` pixels of the wrist (the wrist's own noise). Values are
    against the whole fan (robust z), as from the grip. Rows whose tip lies within twice the
    window of the wrist are not scored.

    Args:
        dark: The dark-line map of :func:`ridge_map`.
        light: The light-line map.
        along: The ridge direction map.
        tip: ``(M, 2)`` labelled tips.
        grip: ``(M, 2)`` labelled grips.
        wrist: ``(M, 2)`` the weapon wrists.
        window: ``(M,)`` pixels; NaN for rows not to score.
        n_rays: Directions in the fan.

    Returns:
        Dict of ``(M,)`` arrays, NaN where not scored: ``tip_z_best`` (the best candidate, on
        the polarity where it is stronger), ``tip_z_label`` (the ray from the tip through the
        labelled grip, the larger of the two polarities: weak only if weak on both),
        ``tip_off_grip`` and ``tip_off_wrist`` (pixels from the best candidate's line to the
        labelled grip and to the wrist).
    """
    m = len(tip)
    out = {k: np.full(m, np.nan) for k in TIP_FAN_KEYS}
    with np.errstate(invalid="ignore"):
        dist = geo.norm(wrist - tip)
        # A tip nearer the wrist than twice the window (a stick toward the camera) leaves no
        # direction to judge: the window would take in half the fan.
        r = np.flatnonzero(
            np.isfinite(window) & (window > 0) & (dist > np.maximum(8, 2 * window))
            & np.isfinite(grip).all(1)
        )  # fmt: skip
    if not len(r):
        return out
    tp, gp, wv, d, win = tip[r], grip[r], wrist[r] - tip[r], dist[r], window[r]
    k = len(r)
    thetas = np.linspace(-np.pi, np.pi, n_rays, endpoint=False)
    th = np.broadcast_to(thetas, (k, n_rays))
    frac = np.linspace(0.15, 0.85, 32)
    rr = np.broadcast_to((frac[None, :] * d[:, None])[:, None, :], (k, n_rays, len(frac)))
    off = np.abs(geo.wrap_degrees(np.degrees(thetas)[None, :] - geo.angle(wv)[:, None]))
    within = off <= np.degrees(np.arcsin(np.clip(win / d, 0, 1)))[:, None]
    lab = gp - tp
    lab_len = geo.norm(lab)
    lab_t = np.arctan2(lab[:, 1], lab[:, 0])
    rows = np.arange(k)
    best = []
    z_lab = []
    for strength in (dark, light):
        fan = oriented_samples(strength, along, np.repeat(tp[:, None, :], n_rays, 1), th, rr)
        fan = fan.mean(-1)
        cand = np.where(within, fan, -np.inf)
        b = np.argmax(cand, 1)
        best.append((cand[rows, b], _robust_z(cand[rows, b], fan), thetas[b]))
        lab_s = oriented_samples(strength, along, tp, lab_t, frac[None, :] * lab_len[:, None])
        z_lab.append(_robust_z(lab_s.mean(1), fan))
    use = best[1][0] > best[0][0]
    z_best = np.where(use, best[1][1], best[0][1])
    bt = np.where(use, best[1][2], best[0][2])
    c, s_ = np.cos(bt), np.sin(bt)
    out["tip_z_best"][r] = z_best
    out["tip_z_label"][r] = np.fmax(z_lab[0], z_lab[1])
    out["tip_off_grip"][r] = np.abs(c * lab[:, 1] - s_ * lab[:, 0])
    out["tip_off_wrist"][r] = np.abs(c * wv[:, 1] - s_ * wv[:, 0])
    return out


def _evidence(strength, along, grip, tip, reach, elbow, n_rays, n_samples) -> dict:
    """:func:`evidence_in_image` on one polarity's ridge map."""
    h, w = strength.shape
    m = len(grip)
    reach = np.where(np.isfinite(reach) & (reach > 8), reach, 0.35 * max(h, w))
    frac = np.linspace(0.2, 1.0, n_samples)
    # The fan: n_rays directions, each sampled out to the reach.
    thetas = np.linspace(-np.pi, np.pi, n_rays, endpoint=False)
    th = np.broadcast_to(thetas, (m, n_rays))
    r_fan = np.broadcast_to((frac[None, :] * reach[:, None])[:, None, :], (m, n_rays, n_samples))
    fan_s = oriented_samples(strength, along, np.repeat(grip[:, None, :], n_rays, 1), th, r_fan)
    # Support of a ray = mean over its first 60 % (a stick shorter than the reach still scores).
    fan_score = fan_s[..., : int(0.6 * n_samples)].mean(-1)
    # Candidates: not toward the forearm (a limb from the grip is a ridge too).
    fore = geo.angle(elbow - grip)
    dfore = np.abs(geo.wrap_degrees(np.degrees(thetas)[None, :] - fore[:, None]))
    cand = np.where(np.isfinite(fore)[:, None] & (dfore < 25), -np.inf, fan_score)
    best = np.argmax(cand, 1)
    rows = np.arange(m)
    z_fan = _robust_z(cand[rows, best], fan_score)
    opp = (best + n_rays // 2) % n_rays
    z_opp = _robust_z(fan_score[rows, opp], fan_score)
    best_theta = _refine_angle(strength, along, grip, thetas[best], reach, frac, n_rays)
    # The labelled segment (and its direction out to the reach).
    lab = tip - grip
    lab_len = geo.norm(lab)
    lab_theta = np.arctan2(lab[:, 1], lab[:, 0])
    has = np.isfinite(lab_len) & (lab_len > 2)
    lt = np.where(has, lab_theta, 0.0)
    r_lab = frac[None, :] * np.where(has, lab_len, 1.0)[:, None]
    lab_s = oriented_samples(strength, along, grip, lt, r_lab)
    z_label = np.where(has, _robust_z(lab_s.mean(1), fan_score), np.nan)
    # The outer part of the label (is its far end on the line?) and the part beyond its tip
    # (does the line run on?), each against the same fan.
    L1 = np.where(has, lab_len, 1.0)
    outer = oriented_samples(
        strength, along, grip, lt, np.linspace(0.7, 0.97, 16)[None, :] * L1[:, None]
    )
    beyond = oriented_samples(
        strength, along, grip, lt, np.linspace(1.08, 1.35, 16)[None, :] * L1[:, None]
    )
    inner = oriented_samples(
        strength, along, grip, lt, np.linspace(0.2, 0.6, 16)[None, :] * L1[:, None]
    )
    z_inner = np.where(has, _robust_z(inner.mean(1), fan_score), np.nan)
    z_outer = np.where(has, _robust_z(outer.mean(1), fan_score), np.nan)
    z_beyond = np.where(has, _robust_z(beyond.mean(1), fan_score), np.nan)
    # Where lines end: along a ray, the last point of the longest run of on-line samples
    # (on = above the fan's typical level by a margin), bridging short gaps.
    fan_level = np.median(fan_s.reshape(m, -1), 1)
    fan_mad = 1.4826 * np.median(np.abs(fan_s.reshape(m, -1) - fan_level[:, None]), 1)
    tau = fan_level + 3.0 * np.maximum(fan_mad, 1e-3)
    far = np.linspace(0.05, 1.6, 96)  # out to 1.6 x the reach / label length
    r_best = far[None, :] * reach[:, None]
    best_prof = oriented_samples(strength, along, grip, best_theta, r_best)
    # A line ends where its support drops well below its own level, not merely to the level of
    # an empty fan (on a textured background every faint ridge beats an empty fan's level).
    own_best = np.median(fan_s[rows, best, : int(0.6 * n_samples)], 1)
    best_end = _line_end(best_prof, np.maximum(tau, END_FRACTION * own_best), r_best)
    r_lab_far = far[None, :] * np.maximum(np.where(has, lab_len, 0), 0.5 * reach)[:, None]
    lab_prof = oriented_samples(strength, along, grip, lt, r_lab_far)
    within = r_lab_far <= np.where(has, lab_len, 0)[:, None]
    # Rows without a labelled tip have no samples within the label (NaN: no level of their own).
    lab_in = np.where(within, lab_prof, np.nan)
    own_lab = np.full(len(lab_in), np.nan)
    some = within.any(1)
    if some.any():
        own_lab[some] = np.nanmedian(lab_in[some], 1)
    tau_lab = np.maximum(tau, END_FRACTION * np.nan_to_num(own_lab))
    label_end = np.where(has, _line_end(lab_prof, tau_lab, r_lab_far), np.nan)
    # Thinness of the part beyond the labelled tip (a limb lying along it is not thin).
    u = np.stack([np.cos(lt), np.sin(lt)], 1)
    nrm = np.stack([-u[:, 1], u[:, 0]], 1)
    t0 = np.where(has, lab_len, 0.0)
    t1 = np.where(np.isfinite(label_end), np.maximum(label_end, t0), t0)
    tt = t0[:, None] + (t1 - t0)[:, None] * np.linspace(0.1, 0.9, 12)[None, :]
    axis = grip[:, None, :] + u[:, None, :] * tt[..., None]
    width = 4.0 * max(1.0, min(h, w) / 320.0)
    centre = _bilinear(strength, axis)[0].mean(1)
    side = np.maximum(
        _bilinear(strength, axis + width * nrm[:, None, :])[0].mean(1),
        _bilinear(strength, axis - width * nrm[:, None, :])[0].mean(1),
    )
    thin = np.where(t1 - t0 > 2, centre / np.maximum(side, 1e-3), np.nan)
    # The part beyond the labelled tip against the label's own level (1: as strong as the label).
    beyond_rel = np.where(has, beyond.mean(1) / np.maximum(np.nan_to_num(own_lab), 1e-6), np.nan)
    end_pts = grip + np.stack([np.cos(lt), np.sin(lt)], 1) * np.nan_to_num(label_end)[:, None]
    best_pts = grip + np.stack([np.cos(best_theta), np.sin(best_theta)], 1) * best_end[:, None]
    margin = 3.0
    at_border = np.zeros(m, bool)
    for p in (end_pts, best_pts):
        at_border |= (p[:, 0] < margin) | (p[:, 1] < margin) | (p[:, 0] > w - 1 - margin)
        at_border |= p[:, 1] > h - 1 - margin
    return {
        "s_best": cand[rows, best],
        "s_label": np.where(has, lab_s.mean(1), np.nan),
        "z_label": z_label,
        "z_inner": z_inner,
        "z_outer": z_outer,
        "z_beyond": z_beyond,
        "z_best": z_fan,
        "z_opposite": z_opp,
        "best_angle": np.degrees(best_theta),
        "best_end": best_end,
        "label_end": label_end,
        "label_len": np.where(has, lab_len, np.nan),
        "at_border": at_border,
        "thin": thin,
        "beyond_rel": beyond_rel,
    }


def _refine_angle(strength, along, grip, theta, reach, frac, n_rays) -> np.ndarray:
    """Sub-step direction: the best mean support within one fan step either side."""
    step = 2 * np.pi / n_rays
    offs = np.linspace(-step, step, 17)
    m = len(grip)
    th = theta[:, None] + offs[None, :]  # (M, 17)
    r = np.broadcast_to((frac[None, :] * reach[:, None])[:, None, :], (m, len(offs), len(frac)))
    s = oriented_samples(strength, along, np.repeat(grip[:, None, :], len(offs), 1), th, r)
    score = s[..., : int(0.6 * len(frac))].mean(-1)
    return th[np.arange(m), np.argmax(score, 1)]


def _line_end(profile: np.ndarray, tau: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Distance where the line along each profile ends (NaN when there is no line).

    The cumulative on(+1)/off(-1) evidence peaks where the line ends: a short gap (the stick
    crossing a limb) is bridged, open background past the end is not.
    """
    on = np.where(profile >= tau[:, None], 1.0, -1.0)
    cum = np.cumsum(on, -1)
    end = np.argmax(cum, -1)
    peak = cum[np.arange(len(cum)), end]
    return np.where(peak > 0, r[np.arange(len(r)), end], np.nan)


EVIDENCE_KEYS = (
    "z_label", "z_inner", "z_outer", "z_beyond", "z_best", "z_opposite", "best_angle", "best_end", "label_end", "label_len", "thin", "beyond_rel", "t_inner", "t_outer", "colour_change",
)  # fmt: skip


def image_evidence(
    ds,
    grip: np.ndarray,
    tip: np.ndarray,
    reach: np.ndarray,
    elbow: np.ndarray,
    rows: np.ndarray,
    wrist: np.ndarray | None = None,
    window: np.ndarray | None = None,
) -> tuple[dict[str, np.ndarray], int]:
    """:func:`evidence_in_image` for the given annotation rows, one image or video frame at a time.

    With ``wrist`` and ``window`` (``(N, 2)``, ``(N,)``: NaN for rows not to score), also the
    :func:`tip_fan` keys.

    Returns:
        ``(dict of (N,) arrays, NaN where no image was read; images read)``.
    """
    n = len(grip)
    fan = wrist is not None and window is not None
    out = {k: np.full(n, np.nan) for k in EVIDENCE_KEYS + (TIP_FAN_KEYS if fan else ())}
    out["at_border"] = np.zeros(n, bool)
    out["read"] = np.zeros(n, bool)
    n_read = 0
    if not len(rows):
        return out, 0
    import cv2

    for chunk, bgr in iter_frames(ds, np.asarray(rows), color=True):
        n_read += 1
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        extra = dict(wrist=wrist[chunk], window=window[chunk]) if fan else {}
        ev = evidence_in_image(gray, grip[chunk], tip[chunk], reach[chunk], elbow[chunk], **extra)
        ev.update(line_t(bgr, grip[chunk], tip[chunk]))
        for k, v in ev.items():
            out[k][chunk] = v
        out["read"][chunk] = True
    return out, n_read


#: Parts of the labelled segment (fractions of grip -> tip) whose line :func:`line_t` measures:
#: the inner part (clear of the hand and of the tip) and the last stretch before the tip.
INNER_PART = (0.3, 0.65)
OUTER_PART = (0.84, 0.98)
#: Half-widths (pixels) of the line tried; the best counts (sticks are 1-10 px thick).
LINE_HALF_WIDTHS = (1.0, 2.0, 4.0)
#: A line is clear at t > 6 and absent at t < 3 (significance levels, not a renderer's
#: contrast); the last stretch must also hold under a fifth of the inner part's t.
LINE_T_CLEAR, LINE_T_NONE, LINE_T_RATIO = 6.0, 3.0, 0.2
#: A last stretch whose colour changes by more than the stick's own contrast with its sides
#: (``colour_change`` of :func:`line_t`) lies on something other than the stick.
COLOUR_CHANGE_OTHER = 1.0


def line_t(img: np.ndarray, grip: np.ndarray, tip: np.ndarray, n_along: int = 16) -> dict:
    """How clearly a line runs along the inner part and along the last stretch of each label.

    At ``n_along`` points along a part, the colour on the segment (5 samples across its
    half-width) minus the colour on both sides of it (3 samples each, beyond the half-width):
    a stick differs from its surroundings in the same way all along, background does not. The
    statistic is the norm over colour channels of the mean difference over its standard error
    (a t statistic, +1 grey level in the error so a flat image is not a line), at the best of
    :data:`LINE_HALF_WIDTHS`. Any colour, any polarity, no renderer's constant.

    Returns:
        ``{"t_inner", "t_outer", "colour_change"}`` of ``(M,)`` arrays: the t of each part, and
        how far the colour on the segment (at the part's best half-width) changes from the
        inner part (its median) along three quarters of the last stretch, beyond what the change
        of the sides' colour explains, over the inner part's contrast with its sides. A stick
        keeps its colour whatever lies behind it; a thin one blends with what lies behind it,
        so the share of the sides' change that best explains the segment's (0-1, least
        squares) is taken out. Above 1 the last stretch lies on something else. NaN where a label is
        shorter than 15 px or has no tip, or the part (with its sides) leaves the picture.
    """
    m = len(grip)
    vec = tip - grip
    length = geo.norm(vec)
    ok = np.isfinite(length) & (length >= MIN_LABEL_PX)
    out = {k: np.full(m, np.nan) for k in ("t_inner", "t_outer", "colour_change")}
    if not ok.any():
        return out
    g, L = grip[ok], length[ok]
    u = vec[ok] / L[:, None]
    nrm = np.stack([-u[:, 1], u[:, 0]], 1)
    chans = (
        [img[..., c].astype(np.float32) for c in range(img.shape[-1])]
        if img.ndim == 3
        else [img.astype(np.float32)]
    )
    parts = {}
    for key, (f0, f1) in (("t_inner", INNER_PART), ("t_outer", OUTER_PART)):
        s = np.linspace(f0, f1, n_along)[None, :] * L[:, None]  # (K, n_along)
        axis = g[:, None, :] + s[..., None] * u[:, None, :]
        best = np.zeros(len(g))
        centre = np.full((len(g), n_along, 2, len(chans)), np.nan)  # on the segment, sides
        contrast = np.full(len(g), np.nan)
        for w in LINE_HALF_WIDTHS:
            offs = np.r_[np.linspace(-w, w, 5), -(w + 2) - np.arange(3) * w / 2,
                         (w + 2) + np.arange(3) * w / 2]  # fmt: skip
            pts = axis[:, :, None, :] + offs[None, None, :, None] * nrm[:, None, None, :]
            t2 = np.zeros(len(g))
            seen = np.ones(len(g), bool)
            band = np.empty((len(g), n_along, 6, len(chans)))  # 5 across the segment, sides
            dmean = np.empty((len(g), len(chans)))
            for c, ch in enumerate(chans):
                v, inside = _bilinear(ch, pts)  # (K, n_along, 11)
                seen &= inside.all((1, 2))
                d = v[..., :5].mean(-1) - 0.5 * (v[..., 5:8].mean(-1) + v[..., 8:].mean(-1))
                se = d.std(-1, ddof=1) / np.sqrt(n_along) + 1.0
                dmean[:, c] = d.mean(-1)
                band[..., :5, c], band[..., 5, c] = v[..., :5], v[..., 5:].mean(-1)
                t2 += (dmean[:, c] / se) ** 2
            t = np.sqrt(t2)
            # The stick's colour: along the part, the offset across the segment that differs
            # most from the sides (a label a pixel or two off the stick's axis still finds it).
            away = ((band[..., :5, :] - band[..., 5:, :]) ** 2).sum(-1).mean(1).argmax(-1)
            col = np.stack([band[np.arange(len(g)), :, away], band[:, :, 5]], 2)
            better = t > best
            centre[better], contrast[better] = col[better], np.sqrt((dmean[better] ** 2).sum(1))
            # A part that leaves the picture is not judged (outside reads as 0, not as a stick).
            best = np.where(seen, np.maximum(best, t), np.nan)
        out[key][ok] = best
        parts[key] = (centre, contrast)
    (c_in, contrast_in), (c_out, _) = parts["t_inner"], parts["t_outer"]
    c_in = np.median(c_in, 1)  # (K, 2, C): the stick's colour and its sides' along the inner part
    d_all = c_out - c_in[:, None]  # (K, n_along, 2, C) at each point of the last stretch
    d_seg, d_side = np.moveaxis(np.median(d_all, 1), 1, 0)  # (K, C) each
    with np.errstate(invalid="ignore", divide="ignore"):
        blend = np.nan_to_num(np.clip((d_seg * d_side).sum(1) / (d_side**2).sum(1), 0.0, 1.0))
        left = d_all[:, :, 0] - blend[:, None, None] * d_all[:, :, 1]
        # Most of the last stretch (three quarters of it) differs: not a cap or a mark at the
        # stick's end.
        change = np.quantile(np.sqrt((left**2).sum(-1)), 0.25, axis=1) / contrast_in
    out["colour_change"][ok] = np.where(np.isfinite(out["t_outer"][ok]), change, np.nan)
    return out


def visibility(z_label: np.ndarray, min_rows: int = 8, level: float = 2.0) -> dict:
    """Data-set calibration: do these images show the labelled sticks at all?

    Most labels in a data set are right, so when the images show sticks, the labelled segments'
    z-scores sit well above their fans (the median label stands ``level`` robust SDs out). When
    they do not (sticks too thin, blurred, hidden, or no stick in the pictures), or there are
    fewer than ``min_rows`` labelled sticks to calibrate on, image evidence abstains.

    Returns:
        ``{"usable": bool, "median_z": float | None, "n": int}``.
    """
    z = z_label[np.isfinite(z_label)]
    med = float(np.median(z)) if len(z) else None
    usable = len(z) >= min_rows and med >= level
    return {"usable": bool(usable), "median_z": med, "n": int(len(z))}


def segment_z(
    ds, start: np.ndarray, end: np.ndarray, rows: np.ndarray, elbow: np.ndarray
) -> np.ndarray:
    """``(N,)`` how far the segment ``start`` -> ``end`` stands out of its fan (robust z).

    NaN outside ``rows`` and where no image was read.
    """
    out = np.full(len(start), np.nan)
    if not len(rows):
        return out
    reach = 1.3 * geo.norm(end - start)
    ev, _ = image_evidence(ds, start, end, reach, elbow, rows)
    out[rows] = ev["z_label"][rows]
    return out


def segment_confirms(
    ds, start: np.ndarray, end: np.ndarray, rows: np.ndarray, elbow: np.ndarray, level: float = 3.0
) -> np.ndarray:
    """``(N,)`` True where the image shows a line from ``start`` to ``end`` (z >= ``level``)."""
    z = segment_z(ds, start, end, rows, elbow)
    with np.errstate(invalid="ignore"):
        return z >= level
