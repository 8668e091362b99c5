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

import numpy as np

from toolkit.errors import expected

# The angle-CSV reader lives with the other dataset -> arrays code; it is re-exported here, where
# users of the baselines have always found it.
from trainer.data import coordinate_features, prepare_angles_csv, read_angles_csv

__all__ = [
    "ANGLE_BASELINES",
    "BASELINES",
    "baseline_features",
    "fit_predict_baseline",
    "make_baseline",
    "prepare_angles_csv",
    "read_angles_csv",
]

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
            prep.coords, _ = coordinate_features(prep.keypoints)
        return prep.coords
    if prep.angles is None:
        from trainer.features import angle_features

        prep.angles, _ = angle_features(prep.keypoints, groups=prep.subject)
    return prep.angles
