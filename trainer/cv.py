"""Cross-validation folds and the metrics every model is scored with.

Folds are :class:`sklearn.model_selection.StratifiedGroupKFold` over the group column (subject or
video), so no group is ever in both the training and the test part of a fold; the inner
validation split used for early stopping is taken from the training groups only.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from toolkit.errors import InputError


@dataclass(frozen=True)
class Fold:
    """One outer fold.

    Attributes:
        index: 0-based fold number.
        train: Row indices trained on (including the inner validation rows).
        test: Row indices held out.
        test_groups: Sorted group labels in the test part.
    """

    index: int
    train: np.ndarray
    test: np.ndarray
    test_groups: tuple[str, ...]

    def __repr__(self) -> str:
        return (
            f"Fold({self.index}, n_train={len(self.train)}, n_test={len(self.test)}, "
            f"test_groups={list(self.test_groups)})"
        )


def make_folds(y: np.ndarray, groups: np.ndarray, n_folds: int = 5, seed: int = 0) -> list[Fold]:
    """Stratified, grouped folds (no group in two parts of a fold).

    Raises:
        InputError: Fewer groups than folds.
    """
    groups = np.asarray(groups).astype(str)
    n_groups = len(np.unique(groups))
    if n_folds < 2:
        raise InputError(f"Expected '--folds' to be at least 2, but got {n_folds}.")
    if n_groups < n_folds:
        raise InputError(
            f"Expected at least {n_folds} groups for {n_folds}-fold cross-validation, but the data "
            f"has {n_groups} ({sorted(np.unique(groups))[:8]}); use --folds {max(n_groups, 2)}."
        )
    splits = _grouped_splits(y, groups, n_folds, seed)
    return [
        Fold(i, np.sort(tr), np.sort(te), tuple(str(g) for g in np.unique(groups[te])))
        for i, (tr, te) in enumerate(splits)
    ]


def inner_split(
    y: np.ndarray, groups: np.ndarray, rows: np.ndarray, seed: int = 0, fraction: float = 0.2
) -> tuple[np.ndarray, np.ndarray]:
    """Split a fold's training rows into fit and validation rows by group.

    About ``fraction`` of the training groups go to validation (at least one; when there is only
    one group, a stratified random split of rows is used instead).

    Returns:
        ``(fit_rows, val_rows)``, subsets of ``rows``.
    """
    from sklearn.model_selection import StratifiedShuffleSplit

    g = np.asarray(groups).astype(str)[rows]
    yy = np.asarray(y)[rows]
    n_groups = len(np.unique(g))
    if n_groups >= 2:
        k = int(min(max(2, round(1 / fraction)), n_groups))
        fit, val = _grouped_splits(yy, g, k, seed)[0]
        return rows[np.sort(fit)], rows[np.sort(val)]
    counts = np.bincount(yy)
    strat = yy if (counts[counts > 0] >= 2).all() else None
    sss = (
        StratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        if strat is not None
        else None
    )
    if sss is None:
        rng = np.random.default_rng(seed)
        perm = rng.permutation(len(rows))
        cut = max(1, int(round(fraction * len(rows))))
        return rows[np.sort(perm[cut:])], rows[np.sort(perm[:cut])]
    try:
        fit, val = next(sss.split(np.zeros(len(rows)), strat))
    except ValueError:  # too few rows to hold every class out once: split at random
        rng = np.random.default_rng(seed)
        perm = rng.permutation(len(rows))
        cut = max(1, int(round(fraction * len(rows))))
        fit, val = perm[cut:], perm[:cut]
    return rows[np.sort(fit)], rows[np.sort(val)]


def _grouped_splits(y: np.ndarray, groups: np.ndarray, k: int, seed: int) -> list:
    """StratifiedGroupKFold splits, or plain GroupKFold when every class is smaller than ``k``.

    sklearn refuses to stratify then; groups are still never split.
    """
    from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

    x = np.zeros(len(y))
    with warnings.catch_warnings():
        # sklearn warns when a class has fewer members than folds; the folds are still valid.
        warnings.simplefilter("ignore", UserWarning)
        try:
            skf = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
            return list(skf.split(x, y, groups))
        except ValueError:
            return list(GroupKFold(n_splits=k, shuffle=True, random_state=seed).split(x, y, groups))


def classification_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    n_classes: int,
    family_of: np.ndarray | None = None,
    chamber_of: np.ndarray | None = None,
) -> dict[str, float]:
    """Accuracy, macro-F1, Cohen's kappa, and family/chamber accuracy of the predicted stance.

    Family/chamber accuracy compare the family (chamber) of the predicted stance with the true
    one, so they apply to every model, hierarchical or not; NaN without a hierarchy.
    """
    from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score

    labels = np.arange(n_classes)
    out = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(
            f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        ),
        "kappa": _kappa(cohen_kappa_score, y_true, y_pred, labels),
    }
    if family_of is not None and len(family_of) and np.min(family_of) >= 0:
        out["family_accuracy"] = float(np.mean(family_of[y_true] == family_of[y_pred]))
        out["chamber_accuracy"] = float(np.mean(chamber_of[y_true] == chamber_of[y_pred]))
    else:
        out["family_accuracy"] = float("nan")
        out["chamber_accuracy"] = float("nan")
    return out


def _kappa(fn, y_true, y_pred, labels) -> float:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        k = float(fn(y_true, y_pred, labels=labels))
    # A test part with a single class and perfect predictions has undefined kappa: call it 1.
    if np.isnan(k) and np.array_equal(y_true, y_pred):
        return 1.0
    return k


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """``(C, C)`` counts, rows = true class, columns = predicted."""
    cm = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm
