"""Baselines: pipelines, aligned probabilities, the angle CSV reader and its Prepared."""

from __future__ import annotations

import numpy as np
import pytest

from toolkit.errors import InputError
from trainer.baselines import (
    BASELINES,
    baseline_features,
    fit_predict_baseline,
    make_baseline,
    prepare_angles_csv,
    read_angles_csv,
)


def separable(n: int = 80, seed: int = 0, classes=(0, 2, 3)):
    """Well-separated blobs, one per class in ``classes``, with some NaNs."""
    rng = np.random.default_rng(seed)
    y = np.asarray(classes)[rng.integers(0, len(classes), n)]
    X = rng.normal(0, 0.3, (n, 4)) + y[:, None] * np.array([3.0, -2.0, 1.0, 0.0])
    X[rng.random(X.shape) < 0.05] = np.nan
    return X, y


def test_make_baseline_pipelines():
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.impute import SimpleImputer

    rf = make_baseline("angles-rf", 3)
    assert isinstance(rf.steps[0][1], SimpleImputer)
    clf = rf.steps[-1][1]
    assert isinstance(clf, RandomForestClassifier)
    assert clf.n_estimators == 300 and clf.random_state == 3
    gbm = make_baseline("angles-gbm", 4)
    assert isinstance(gbm.steps[-1][1], HistGradientBoostingClassifier)
    assert gbm.steps[-1][1].random_state == 4
    assert BASELINES == ("angles-rf", "angles-gbm", "coords-rf", "coords-mlp")
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    mlp = make_baseline("coords-mlp", 5)
    assert isinstance(mlp.steps[1][1], StandardScaler)
    assert isinstance(mlp.steps[-1][1], MLPClassifier) and mlp.steps[-1][1].random_state == 5
    assert isinstance(make_baseline("coords-rf", 1).steps[-1][1], RandomForestClassifier)
    with pytest.raises(ValueError, match="Expected 'baseline'"):
        make_baseline("geopose", 0)


@pytest.mark.parametrize("name", BASELINES)
def test_proba_columns_aligned_when_classes_missing(name):
    X, y = separable()  # classes 1 and 4 never appear in training
    Xt, yt = separable(30, seed=1)
    proba = fit_predict_baseline(name, X, y, Xt, seed=0, n_classes=5)
    assert proba.shape == (30, 5)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    assert (proba[:, [1, 4]] == 0).all()
    assert (proba.argmax(1) == yt).mean() > 0.9  # columns mean the right classes


def test_deterministic_and_single_class():
    X, y = separable()
    a = fit_predict_baseline("angles-rf", X, y, X[:5], seed=7, n_classes=4)
    b = fit_predict_baseline("angles-rf", X, y, X[:5], seed=7, n_classes=4)
    np.testing.assert_array_equal(a, b)
    one = fit_predict_baseline("angles-gbm", X, np.full(len(X), 2), X[:3], seed=0, n_classes=4)
    np.testing.assert_array_equal(one, np.tile([0.0, 0.0, 1.0, 0.0], (3, 1)))
    # An all-NaN feature column (stick features on 17-keypoint data) is fine.
    Xn = X.copy()
    Xn[:, 1] = np.nan
    assert fit_predict_baseline("angles-gbm", Xn, y, Xn[:4], 0, 4).shape == (4, 4)


def test_bad_labels_raise():
    X, y = separable()
    with pytest.raises(ValueError, match="y_train"):
        fit_predict_baseline("angles-rf", X, y, X, seed=0, n_classes=3)  # label 3 out of range
    with pytest.raises(ValueError, match="y_train"):
        fit_predict_baseline("angles-rf", X, y.astype(float), X, seed=0, n_classes=4)
    with pytest.raises(ValueError, match="X_train"):
        fit_predict_baseline("angles-rf", X, y, X[:, :2], seed=0, n_classes=4)


def write(tmp_path, text: str, name: str = "angles.csv"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_read_angles_csv_happy_path(tmp_path):
    p = write(
        tmp_path,
        "\ufeffelbow_r,knee_l,stance,subject\n"
        "120.5,170,forward_high,s01\n"
        ",nan,forward_low,s02\n"
        "\n"
        " 95 ,1e2,forward_high,s01\n",
    )
    X, y, groups, names = read_angles_csv(p, "stance", group_column="subject")
    assert names == ["elbow_r", "knee_l"]
    assert X.dtype == np.float64 and X.shape == (3, 2)
    np.testing.assert_array_equal(X[[0, 2]], [[120.5, 170.0], [95.0, 100.0]])
    assert np.isnan(X[1]).all()
    assert list(y) == ["forward_high", "forward_low", "forward_high"]
    assert list(groups) == ["s01", "s02", "s01"]
    # Without group_column the subject column would be a feature: it is text, so it is left out
    # with a note naming it (the CSV users have: camera names, frame ids).
    notes = []
    X2, _, _, names2 = read_angles_csv(p, "stance", notes=notes)
    assert names2 == ["elbow_r", "knee_l"] and np.array_equal(X2, X, equal_nan=True)
    assert len(notes) == 1 and "subject" in notes[0] and "--feature-columns" in notes[0]
    # Chosen columns: exactly those; a chosen text column is an error with its line.
    X3, _, _, names3 = read_angles_csv(p, "stance", "subject", feature_columns=["knee_l"])
    assert names3 == ["knee_l"] and X3.shape == (3, 1)
    with pytest.raises(InputError, match=r"angles.csv:2: Expected 'subject' to be a finite number"):
        read_angles_csv(p, "stance", feature_columns=["elbow_r", "subject"])
    with pytest.raises(InputError, match="--feature-columns"):
        read_angles_csv(p, "stance", feature_columns=["nope"])


def test_prepare_angles_csv_flat_taxonomy_and_plain_strings(tmp_path):
    p = write(
        tmp_path,
        "Camera_Angle,Frame_ID,elbow,knee,stance,video\n"
        "front,f_001,120,170,black,v1\n"
        "side,f_002,100,160,white,v2\n"
        "front,f_003,121,171,black,v3\n"
        "side,f_004,99,150,white,v4\n",
    )
    prep = prepare_angles_csv(p, "stance", "video")
    assert prep.taxonomy.classes == ["black", "white"] and not prep.taxonomy.hierarchical
    assert prep.angles.shape == (4, 2) and list(prep.y) == [0, 1, 0, 1]
    assert any("Camera_Angle, Frame_ID" in n for n in prep.notes)
    # plain Python strings, never numpy scalars (no "np.str_('black')" in messages or tables)
    assert all(type(c) is str for c in prep.taxonomy.classes)
    assert all(type(g) is str for g in prep.groups)
    with pytest.raises(InputError, match="--group-column"):
        prepare_angles_csv(p, "stance")
    assert len(prepare_angles_csv(p, "stance", group="none").groups) == 4
    with pytest.raises(ValueError, match="coords-mlp"):
        baseline_features("coords-mlp", prep)


def test_read_angles_csv_without_groups(tmp_path):
    p = write(tmp_path, "a,b,label\n1,2,x\n3,4,y\n")
    X, y, groups, names = read_angles_csv(p, "label")
    assert groups is None and names == ["a", "b"] and list(y) == ["x", "y"]
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])


@pytest.mark.parametrize(
    ("text", "kwargs", "line", "words"),
    [
        ("", {}, 1, ["empty file"]),
        ("a,b,label\n", {}, 2, ["data row"]),
        ("a,b,label\n1,2,x\n", {"label_column": "stance"}, 1, ["'label column'", "'stance'"]),
        ("a,b,label\n1,2,x\n", {"group_column": "subject"}, 1, ["'group column'", "'subject'"]),
        ("a,b,label\n1,2,x\n3,oops,y\n", {"feature_columns": ["a", "b"]}, 3, ["'b'", "'oops'"]),
        ("a,b,label\n1,2,x\n3,inf,y\n", {"feature_columns": ["b"]}, 3, ["'b'", "'inf'"]),
        ("a,b,label\nu,v,x\n", {}, 2, ["numeric feature column", "text"]),
        ("a,b,label\n1,2,x\n3,4,y,9\n", {}, 3, ["3 fields", "4"]),
        ("a,b,label\n1,2,x\n3,4,\n", {}, 3, ["'label'", "non-empty"]),
        ("label\nx\n", {}, 1, ["feature column"]),
    ],
)
def test_read_angles_csv_errors(tmp_path, text, kwargs, line, words):
    p = write(tmp_path, text)
    kwargs = {"label_column": "label", **kwargs}
    with pytest.raises(InputError) as info:
        read_angles_csv(p, **kwargs)
    err = info.value
    assert err.path == p and err.line == line
    msg = str(err)
    assert msg.startswith(f"{p}:{line}: Expected ")
    for w in words:
        assert w in msg, (w, msg)


def test_read_angles_csv_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_angles_csv(tmp_path / "nope.csv", "label")


def test_read_angles_csv_not_utf8(tmp_path):
    p = tmp_path / "bin.csv"
    p.write_bytes(b"a,label\n\xff\xfe,x\n")
    with pytest.raises(InputError, match="UTF-8"):
        read_angles_csv(p, "label")


def test_prepared_from_csv_warns_and_notes(tmp_path):
    from trainer.data import GROUP_NONE_WARNING, prepared_from_csv

    p = tmp_path / "a.csv"
    p.write_text("Frame_ID,elbow,knee,stance\nf_1,10,20,x\nf_2,11,21,y\nf_3,12,,x\nf_4,9,19,y\n")
    said, warned = [], []
    prep = prepared_from_csv(
        p, "stance", None, {"group": "none"}, echo=said.append, warn=warned.append
    )
    assert warned == [GROUP_NONE_WARNING]
    assert any("Frame_ID" in s and s.startswith("note:") for s in said)
    assert prep.angles.shape == (4, 2) and np.isnan(prep.angles[2, 1])
    chosen = prepared_from_csv(p, "stance", None, {"group": "none"}, ["knee"], echo=said.append)
    assert chosen.angles.shape == (4, 1)
    with pytest.raises(InputError, match="group-column"):
        prepared_from_csv(p, "stance", None, {"group": "subject"}, echo=said.append)
