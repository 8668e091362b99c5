"""The fast per-group statistics and helpers give exactly (bit for bit) what their plain
full-column formulations give: the speed work must not change any flag, threshold or fix.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from toolkit import geometry as geo
from toolkit import layout
from toolkit import validate as V
from toolkit.dataset import Dataset
from toolkit.stick import stats


def _same_bits(a, b) -> bool:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and np.array_equal(a.view(np.int64), b.view(np.int64))


def _values(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lengths with NaN, inf and gross outliers; group codes with an empty group; a usable mask."""
    rng = np.random.default_rng(seed)
    v = rng.lognormal(0.0, 0.3, n)
    v[rng.random(n) < 0.1] *= 1.8
    v[rng.random(n) < 0.05] = np.nan
    v[rng.random(n) < 0.01] = np.inf
    k = rng.integers(0, 7, n)
    k[k == 3] = 4  # code 3 has no rows
    return v, k, rng.random(n) < 0.8


def _robust_level_reference(values, k, usable, quantile, min_count, cut=1.3):
    """The full-column formulation of :func:`stats._robust_level`."""
    v = np.where(usable & np.isfinite(values), values, np.nan)
    n_groups = int(k.max()) + 1
    q75 = np.full(n_groups, np.nan)
    for g in range(n_groups):
        x = v[k == g]
        x = x[np.isfinite(x)]
        if len(x):
            q75[g] = np.quantile(x, 0.75)
    with np.errstate(invalid="ignore"):
        kept = np.where(v <= cut * q75[k], v, np.nan)
    level = np.full(n_groups, np.nan)
    for g in range(n_groups):
        x = kept[k == g]
        x = x[np.isfinite(x)]
        if len(x):
            level[g] = np.quantile(x, quantile)
    count = np.bincount(k, weights=np.isfinite(kept), minlength=n_groups)
    level[count < min_count] = np.nan
    return level, count


@pytest.mark.parametrize("n,seed", [(50, 0), (3000, 1), (40_000, 2)])
def test_robust_level_matches_the_full_column_formulation(n, seed):
    v, k, usable = _values(n, seed)
    for q, m in ((0.9, 5), (0.75, 1), (0.5, 400)):
        got = stats._robust_level(v, k, usable, q, m)
        want = _robust_level_reference(v, k, usable, q, m)
        assert _same_bits(got[0], want[0]) and _same_bits(got[1], want[1])


def test_subject_stick_length_is_the_same_whether_subjects_have_videos_or_not():
    v, k, usable = _values(5000, 3)
    labels = np.array([f"s{g}" for g in range(7)], dtype=object)
    in_videos = np.array([f"s{g % 3}|v{g}" for g in range(7)], dtype=object)
    for lab in (labels, in_videos):
        got = stats.subject_stick_length(v, lab[k], usable, 0.9, 5)
        again = stats.subject_stick_length(v, None, usable, 0.9, 5, coded=(k, lab))
        assert _same_bits(got, again)
        assert np.isfinite(got).all()
    # Each group its own subject: the subject levels are the group levels.
    g_level, _ = stats._robust_level(v, k, usable, 0.9, 5)
    d = float(pd.Series(g_level[np.bincount(k, minlength=7) > 0]).dropna().median())
    lv = g_level[k]
    want = np.maximum(np.where(np.isfinite(lv) & (lv <= 1.25 * d), lv,
                               np.where(lv > 1.25 * d, 1.25 * d, d)), d / 1.25)  # fmt: skip
    assert _same_bits(stats.subject_stick_length(v, labels[k], usable, 0.9, 5), want)


def test_a_subject_whose_sticks_all_look_longer_gets_the_longest_length_trusted():
    """Five subjects hold a stick of 1.0 torso, one a stick of 1.6 (a build or a stick of its
    own): its level is over the data set's ceiling (1.25 x the median subject's), so it is not
    its own, and the ceiling stands in for it, not the median subject's stick, which would
    call every one of its clean labels 60 % too long. A subject under the floor gets the floor.
    """
    rng = np.random.default_rng(0)
    true = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.6, 0.5])
    k = np.repeat(np.arange(7), 40)
    v = true[k] * rng.uniform(0.6, 1.0, len(k))  # foreshortening only shortens
    labels = np.array([f"s{g}" for g in range(7)], dtype=object)
    got, own = stats.subject_stick_length(v, labels[k], np.ones(len(k), bool), with_own=True)
    d = float(np.median(got[k < 5]))
    assert 0.9 < d <= 1.0 and own[k < 5].all()
    assert np.allclose(got[k == 5], 1.25 * d) and not own[k == 5].any()
    assert np.allclose(got[k == 6], d / 1.25) and not own[k == 6].any()


def _circular_reference(angles, k, usable, min_count):
    """The full-column formulation of :func:`stats.circular_group_stats`."""
    a = np.where(usable & np.isfinite(angles), angles, np.nan)
    rad = np.radians(a)
    ok = np.isfinite(rad)
    m = k.max() + 1
    count = np.bincount(k, weights=ok, minlength=m)
    sc = np.bincount(k, weights=np.where(ok, np.cos(rad), 0.0), minlength=m)
    ss = np.bincount(k, weights=np.where(ok, np.sin(rad), 0.0), minlength=m)
    centre = np.degrees(np.arctan2(ss, sc))[k]

    def per_group_median(x):
        out = np.full(m, np.nan)
        for g in range(m):
            y = x[k == g]
            y = y[np.isfinite(y)]
            if len(y):
                out[g] = np.median(y)
        return out[k]

    centre = geo.wrap_degrees(centre + per_group_median(geo.wrap_degrees(a - centre)))
    spread = 1.4826 * per_group_median(np.abs(geo.wrap_degrees(a - centre)))
    count = count[k]
    centre[count < min_count] = np.nan
    spread[count < min_count] = np.nan
    return centre, spread, count


def test_circular_group_stats_matches_the_full_column_formulation():
    rng = np.random.default_rng(4)
    n = 20_000
    k = rng.integers(0, 9, n)
    ang = geo.wrap_degrees(rng.normal(170.0, 25.0, n) + 40.0 * k)  # some groups straddle 180
    ang[rng.random(n) < 0.05] = np.nan
    usable = rng.random(n) < 0.9
    usable[k == 8] = False  # a group with nothing usable
    got = stats.circular_group_stats(ang, k, usable, min_count=10, codes=k)
    want = _circular_reference(ang, k, usable, 10)
    for g, w in zip(got, want, strict=True):
        assert _same_bits(g, w)


def test_median_and_mad_match_nanmedian_at_every_size():
    rng = np.random.default_rng(5)
    for n in (10, 599, 600, 5000):
        rows = [rng.lognormal(0, 0.2, n) for _ in range(6)]
        rows[1][rng.random(n) < 0.3] = np.nan
        rows[2][:] = np.nan
        rows[3][rng.random(n) < 0.02] = np.inf
        rows[4][: n // 2 + 2] = np.inf  # an infinite median
        with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning):
            med = V._column_nanmedian(rows, n)
            mad = V._column_nanmedian([np.abs(r - m) for r, m in zip(rows, med, strict=True)], n)
            got = V._median_and_mad(rows, n)
        assert _same_bits(got[0], med) and _same_bits(got[1], mad)
        both = np.concatenate([rows[0], rows[1]])
        t = np.nanmedian(both)
        assert _same_bits(V._median_mad_1d(both), [t, np.nanmedian(np.abs(both - t))])


def test_points_columns_and_pick_match_the_interleaved_array():
    rng = np.random.default_rng(6)
    kp = rng.uniform(0, 400, (5000, layout.NUM_KEYPOINTS, 3))
    kp[..., 2] = rng.choice([0.0, 1.0, 2.0, np.nan], size=kp.shape[:2], p=[0.2, 0.3, 0.4, 0.1])
    keys = [5, 6, 9, 10, 17, 18]
    p = geo.Points(kp, keys, keep_raw=False)
    xy = geo._xy(kp)
    for k in keys:
        x, y = p.xy(k)
        assert _same_bits(x, xy[:, k, 0]) and _same_bits(y, xy[:, k, 1])
    idx = rng.choice([-1, 9, 10], size=len(kp))
    x, y = p.pick(idx)
    want = geo.point(kp, idx)
    assert _same_bits(x, want[:, 0]) and _same_bits(y, want[:, 1])


def _dataset(stances, subjects) -> Dataset:
    n = len(stances)
    images = [
        {"id": i + 1, "file_name": f"{i}.jpg", "width": 100, "height": 100,
         "stance": stances[i], "subject": subjects[i]}
        for i in range(n)
    ]  # fmt: skip
    anns = [{"id": i + 1, "image_id": i + 1} for i in range(n)]
    kp = np.zeros((n, layout.NUM_KEYPOINTS, 3))
    return Dataset.from_records(images, anns, kp, bboxes=np.zeros((n, 4)))


def test_class_counts_and_subjects_per_stance_match_pandas():
    rng = np.random.default_rng(7)
    n = 700
    stances = [None if r < 0.05 else f"st{int(r * 9)}" for r in rng.random(n)]
    subjects = [None if r < 0.1 else f"s{int(r * 5)}" for r in rng.random(n)]
    stances[:40] = ["lonely"] * 40  # a stance seen with no subject at all
    subjects[:40] = [None] * 40
    ds = _dataset(stances, subjects)
    summary: dict = {"notes": []}
    c = V._Collector(ds)
    V._check_classes(ds, c, V.ValidateOptions(), summary)
    st = ds.images["stance"]
    counts = st.dropna().value_counts()  # ties keep their order of first appearance
    assert list(summary["stances"].items()) == [(str(k), int(v)) for k, v in counts.items()]
    sub = ds.images[["stance", "subject"]]
    per = sub[sub["stance"].notna()].groupby("stance")["subject"].nunique()
    assert list(summary["subjects_per_stance"].items()) == [
        (str(k), int(v)) for k, v in per.items()
    ]
    assert summary["subjects_per_stance"]["lonely"] == 0


def test_shared_group_codes_are_computed_once_and_only_inside_the_block():
    ds = _dataset([f"st{i % 3}" for i in range(30)], [f"s{i % 4}" for i in range(30)])
    with stats.sharing_group_codes(ds):
        a = stats.group_codes(ds)
        b = stats.group_codes(ds)
        assert all(x is y for x, y in zip(a, b, strict=True))
        assert not a[0].flags.writeable
    c = stats.group_codes(ds)
    assert c[0] is not a[0] and c[0].flags.writeable
    for x, y in zip(a, c, strict=True):
        assert np.array_equal(x, y)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy's own (inf - inf, all-NaN)
@pytest.mark.parametrize("n", [1, 2, 255, 256, 257, 1000, 1001])
def test_single_kth_median_and_quantile_match_numpy_bit_for_bit(n):
    """``median_of`` / ``quantile_of`` (one partition + a max) return numpy's values exactly:
    ties, infinities and NaN, even and odd sizes, every quantile the stick code asks for.
    """
    from toolkit.stick import stats as S

    rng = np.random.default_rng(n)
    for trial in range(20):
        x = rng.normal(0, 1, n)
        if trial % 3 == 1:
            x = np.round(x, 1)  # ties
        if trial % 5 == 2:
            x[rng.integers(0, n, max(1, n // 50))] = np.inf
        if trial % 7 == 3:
            x[rng.integers(0, n)] = np.nan
        assert np.array_equal(S.median_of(x.copy()), np.median(x), equal_nan=True)
        assert np.array_equal(S.nanmedian_of(x.copy()), np.nanmedian(x), equal_nan=True)
        for q in (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 1.0):
            assert np.array_equal(S.quantile_of(x.copy(), q), np.quantile(x, q), equal_nan=True)
            assert np.array_equal(
                S.nanquantile_of(x.copy(), q), np.nanquantile(x, q), equal_nan=True
            )


def test_duplicated_first_is_pandas_duplicated():
    """The hash pre-filter of the duplicate-file check marks what pandas marks.

    Missing values count as equal; unhashable values take pandas' own path.
    """
    rng = np.random.default_rng(3)
    names = np.array([f"f/{i}.jpg" for i in rng.integers(0, 300, 1000)], dtype=object)
    gaps = names.copy()
    gaps[::7] = None
    gaps[3::11] = np.nan
    for i in range(5, len(gaps), 13):  # distinct NaN objects hash apart, yet pandas calls
        gaps[i] = float("nan")  # them equal
    gaps[9::17] = pd.NA
    unique = np.array([f"u{i}" for i in range(500)], dtype=object)
    mixed = np.array([1, 1.0, True, "1", None, np.nan, (1, 2), (1, 2), "x", "x", 0.0], object)
    lists = np.empty(3, dtype=object)
    lists[:] = [[1], [1], "a"]
    for values in (names, gaps, unique, mixed, lists, np.array([], dtype=object)):
        want = pd.Series(values, dtype=object).duplicated(keep="first").to_numpy()
        assert np.array_equal(V._duplicated_first(values), want)
    assert V._duplicated_first(gaps)[18]  # a NaN after another NaN object (row 5)
