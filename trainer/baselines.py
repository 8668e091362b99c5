"""The users' current approach as baselines: angle features + random forest / gradient boosting.

``angles-rf`` and ``angles-gbm`` are scikit-learn pipelines (median imputation with missingness
indicators, then the classifier) over :func:`trainer.features.angle_features`, or over an existing
CSV of angle features read by :func:`read_angles_csv` (what users have today)::

    X, y_names, groups, names = read_angles_csv("angles.csv", "stance", group_column="subject")
    classes, y = np.unique(y_names, return_inverse=True)
    proba = fit_predict_baseline("angles-rf", X[tr], y[tr], X[te], seed=0, n_classes=len(classes))
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from toolkit.errors import InputError, expected

BASELINES: tuple[str, ...] = ("angles-rf", "angles-gbm")


def make_baseline(name: str, seed: int = 0, *, n_jobs: int | None = 1):
    """A fresh, unfitted baseline pipeline.

    Args:
        name: ``"angles-rf"`` (SimpleImputer + RandomForestClassifier, 300 trees) or
            ``"angles-gbm"`` (SimpleImputer + HistGradientBoostingClassifier).
        seed: ``random_state`` of the classifier.
        n_jobs: Random-forest worker count (1 by default: the test suite already runs 2 workers).

    Returns:
        An ``sklearn.pipeline.Pipeline``.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline

    # Median imputation plus a 0/1 indicator per feature that had gaps in training: "this point
    # was missing" is itself information (an occluded wrist, a stick out of frame).
    imputer = SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)
    if name == "angles-rf":
        clf = RandomForestClassifier(n_estimators=300, random_state=seed, n_jobs=n_jobs)
    elif name == "angles-gbm":
        clf = HistGradientBoostingClassifier(random_state=seed)
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
    from threadpoolctl import threadpool_limits

    model = make_baseline(name, seed, n_jobs=n_jobs)
    with threadpool_limits(limits=n_jobs):
        model.fit(X_train, y_train)
        if X_test.shape[0]:
            proba[:, model.classes_.astype(int)] = model.predict_proba(X_test)
    return proba


def read_angles_csv(
    path: str | Path, label_column: str, group_column: str | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, list[str]]:
    """Read an existing CSV of angle features (one row per frame).

    Every column other than the label and group columns is a feature and must be numeric (empty
    cells and ``nan`` are missing values, imputed later).

    Args:
        path: The CSV file (header row first).
        label_column: Column holding the class name of each row.
        group_column: Optional column holding the group (subject, video) for grouped CV.

    Returns:
        ``(X, y_names, groups, feature_names)``: ``X`` float64 ``(N, F)``, ``y_names`` ``(N,)`` str,
        ``groups`` ``(N,)`` str or None, and the ``F`` feature column names.

    Raises:
        FileNotFoundError: The file does not exist.
        InputError: Empty file, no data rows, a missing column, a ragged row, an empty label or
            group, or a non-numeric feature value (with its line and column).
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
