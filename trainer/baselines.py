"""Strong simple baselines every model is compared with, on the same folds.

* ``angles-rf``, ``angles-gbm``: the users' current approach: random forest / gradient boosting
  on joint-angle features (:func:`trainer.features.angle_features`, or an existing CSV of angle
  features read by :func:`read_angles_csv`).
* ``coords-rf``, ``coords-mlp``: random forest / a scikit-learn MLP on hip-centred, torso-scaled
  coordinates with everyone mirrored to face right (:func:`trainer.data.coordinate_features`).

Each is a scikit-learn pipeline (median imputation with missingness indicators, then the
classifier)::

    X, y_names, groups, names = read_angles_csv("angles.csv", "stance", group_column="subject")
    classes, y = np.unique(y_names, return_inverse=True)
    proba = fit_predict_baseline("angles-rf", X[tr], y[tr], X[te], seed=0, n_classes=len(classes))
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from toolkit.errors import InputError, expected

BASELINES: tuple[str, ...] = ("angles-rf", "angles-gbm", "coords-rf", "coords-mlp")
#: Baselines that can run on an angle-feature CSV (no keypoints).
ANGLE_BASELINES: tuple[str, ...] = ("angles-rf", "angles-gbm")


def make_baseline(name: str, seed: int = 0, *, n_jobs: int | None = 1):
    """A fresh, unfitted baseline pipeline.

    Args:
        name: ``"angles-rf"``/``"coords-rf"`` (SimpleImputer + RandomForestClassifier, 300
            trees), ``"angles-gbm"`` (SimpleImputer + HistGradientBoostingClassifier) or
            ``"coords-mlp"`` (SimpleImputer + StandardScaler + MLPClassifier 256-128, L2 1e-3,
            at most 300 epochs of Adam).
        seed: ``random_state`` of the classifier.
        n_jobs: Random-forest worker count (1 by default: the test suite already runs 2 workers).

    Returns:
        An ``sklearn.pipeline.Pipeline``.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # Median imputation plus a 0/1 indicator per feature that had gaps in training: "this point
    # was missing" is itself information (an occluded wrist, a stick out of frame).
    imputer = SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)
    if name in ("angles-rf", "coords-rf"):
        clf = RandomForestClassifier(n_estimators=300, random_state=seed, n_jobs=n_jobs)
    elif name == "angles-gbm":
        clf = HistGradientBoostingClassifier(random_state=seed)
    elif name == "coords-mlp":
        clf = MLPClassifier(
            hidden_layer_sizes=(256, 128), alpha=1e-3, max_iter=300, random_state=seed
        )
        return make_pipeline(imputer, StandardScaler(), clf)
    else:
        raise ValueError(expected("baseline", f"one of {list(BASELINES)}", name))
    return make_pipeline(imputer, clf)


def fit_predict_baseline(
    name: str,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    seed: int,
    n_classes: int,
    *,
    n_jobs: int = 1,
) -> np.ndarray:
    """Fit a baseline on one fold and return its class probabilities on the test rows.

    Args:
        name: One of :data:`BASELINES`.
        X_train: ``(n_train, F)`` features, NaN = missing.
        y_train: ``(n_train,)`` integer class indices in ``0..n_classes-1``.
        X_test: ``(n_test, F)``.
        seed: Random seed.
        n_classes: Total number of classes.
        n_jobs: Threads for the fit (random-forest workers and the OpenMP pool of gradient
            boosting). 1 by default: on a busy 2-core machine OpenMP's spinning threads made one
            gradient-boosting fit ~25x slower (267 s vs 9.5 s measured here).

    Returns:
        ``(n_test, n_classes)`` float64 probabilities; column ``k`` is class ``k`` even when class
        ``k`` is absent from the training fold (its column is then 0).
    """
    X_train = np.asarray(X_train, dtype=np.float64)
    X_test = np.asarray(X_test, dtype=np.float64)
    y_train = np.asarray(y_train)
    if X_train.ndim != 2 or X_test.ndim != 2 or X_train.shape[1] != X_test.shape[1]:
        raise ValueError(
            expected(
                "X_train, X_test", "2-D with the same column count", (X_train.shape, X_test.shape)
            )
        )
    if y_train.shape != (X_train.shape[0],) or len(y_train) == 0:
        raise ValueError(
            expected("y_train", f"a non-empty ({X_train.shape[0]},) array", y_train.shape)
        )
    if (
        not np.issubdtype(y_train.dtype, np.integer)
        or y_train.min() < 0
        or y_train.max() >= n_classes
    ):
        raise ValueError(
            expected("y_train", f"integer class indices in 0..{n_classes - 1}", y_train)
        )
    proba = np.zeros((X_test.shape[0], n_classes), dtype=np.float64)
    present = np.unique(y_train)
    if len(present) == 1:  # sklearn refuses one class; the answer is certain anyway
        proba[:, present[0]] = 1.0
        return proba
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    model = make_baseline(name, seed, n_jobs=n_jobs)
    with threadpool_limits(limits=n_jobs), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the MLP's iteration cap
        model.fit(X_train, y_train)
        if X_test.shape[0]:
            proba[:, model.classes_.astype(int)] = model.predict_proba(X_test)
    return proba


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
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Angle-feature CSV not found: {path}")
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
    columns = [c.strip() for c in header]
    for what, col in (("label column", label_column), ("group column", group_column)):
        if col is not None and col not in columns:
            raise InputError(expected(what, f"one of the header's columns {columns}", col), path, 1)
    if not rows:
        raise InputError(
            expected("file", "at least one data row after the header", "none"), path, 2
        )
    if feature_columns is not None:
        chosen = [c.strip() for c in feature_columns if c.strip()]
        missing = [c for c in chosen if c not in columns]
        if missing or not chosen:
            raise InputError(
                expected("--feature-columns", f"columns of the header {columns}", missing or []),
                path,
                1,
            )
        feature_idx = [columns.index(c) for c in chosen]
    else:
        feature_idx = [i for i, c in enumerate(columns) if c not in (label_column, group_column)]
    feature_names = [columns[i] for i in feature_idx]
    if not feature_names:
        raise InputError(
            expected("header", "at least one feature column besides label/group", columns), path, 1
        )
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

    cells = text[:, feature_idx]
    numeric = (
        pd.to_numeric(pd.Series(cells.ravel(), dtype=object), errors="coerce")
        .to_numpy(dtype=np.float64, na_value=np.nan)
        .reshape(cells.shape)
        .copy()
    )
    is_missing = np.isin(np.char.lower(cells), ("", "nan", "na", "n/a", "null", "none"))
    bad = ~np.isfinite(numeric) & ~is_missing
    if bad.any() and feature_columns is None:
        drop = bad.any(0)
        dropped = [n for n, d in zip(feature_names, drop, strict=True) if d]
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
    return numeric, y_names, groups, feature_names


def prepare_angles_csv(
    path: str | Path,
    label_column: str = "stance",
    group_column: str | None = None,
    *,
    taxonomy=None,
    group: str = "subject",
    feature_columns: list[str] | None = None,
):
    """A :class:`trainer.data.Prepared` from an existing CSV of angle features.

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
    from toolkit.taxonomy import Taxonomy
    from trainer.data import Prepared

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


def baseline_features(name: str, prep) -> np.ndarray:
    """The feature matrix a baseline trains on (cached on the :class:`Prepared`).

    ``angles-*``: the angle features (or the CSV's columns); ``coords-*``: the normalised
    coordinates.
    """
    if name.startswith("coords-"):
        if np.isnan(prep.keypoints).all():
            raise ValueError(
                f"Expected keypoints for {name!r}, but this data has none (an angle CSV); use "
                f"one of {list(ANGLE_BASELINES)}."
            )
        if prep.coords is None:
            from trainer.data import coordinate_features

            prep.coords, _ = coordinate_features(prep.keypoints)
        return prep.coords
    if prep.angles is None:
        from trainer.features import angle_features

        prep.angles, _ = angle_features(prep.keypoints, groups=prep.subject)
    return prep.angles
