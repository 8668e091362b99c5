"""Folds, metrics, the CV loop and the run folder, on tiny synthetic data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from toolkit.errors import InputError
from toolkit.taxonomy import Taxonomy
from trainer.cv import classification_metrics, confusion, inner_split, make_folds
from trainer.data import featurise, prepare
from trainer.runs import load_checkpoint, load_members, run_experiment, summary_table
from trainer.train import TrainConfig

FAST = {"epochs": 2, "patience": 5, "batch_size": 8, "members": 2}


@pytest.fixture(scope="module")
def toy(tmp_path_factory, toy_dataset):
    return toy_dataset(tmp_path_factory.mktemp("toy"), n_subjects=4, per_class=2, image_size=64)


def test_folds_never_share_a_subject():
    rng = np.random.default_rng(0)
    groups = np.repeat([f"s{i}" for i in range(8)], 36)
    y = rng.integers(0, 12, len(groups))
    folds = make_folds(y, groups, 5, seed=0)
    assert len(folds) == 5
    seen = np.concatenate([f.test for f in folds])
    assert sorted(seen.tolist()) == list(range(len(y)))  # every row tested exactly once
    for f in folds:
        assert not set(groups[f.train]) & set(groups[f.test])
        assert set(f.test_groups) == set(groups[f.test])
        fit, val = inner_split(y, groups, f.train, seed=1)
        assert not set(groups[fit]) & set(groups[val])
        assert set(fit) | set(val) == set(f.train) and len(val)
    with pytest.raises(InputError, match="at least 5 groups"):
        make_folds(y[:72], groups[:72], 5)


def test_metrics():
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([0, 0, 1, 2, 2, 2])
    fam = np.array([0, 0, 1])
    m = classification_metrics(y, p, 3, fam, np.array([0, 1, 0]))
    assert m["accuracy"] == pytest.approx(5 / 6)
    assert m["family_accuracy"] == pytest.approx(5 / 6)
    assert 0 < m["kappa"] < 1 and 0 < m["macro_f1"] < 1
    assert np.isnan(classification_metrics(y, p, 3)["family_accuracy"])
    assert confusion(y, p, 3).tolist() == [[2, 0, 0], [0, 1, 1], [0, 0, 2]]


def test_prepare_targets_and_errors(toy):
    prep = prepare(toy)
    assert len(prep) == len(toy) and prep.taxonomy.hierarchical
    assert prep.taxonomy.classes == toy.stances
    np.testing.assert_array_equal(prep.family, prep.taxonomy.family_of[prep.y])
    assert set(prep.groups) == {"s01", "s02", "s03", "s04"}
    bad = toy.copy()
    bad.images.loc[0, "stance"] = "crane_high"
    with pytest.raises(InputError, match="crane_high"):
        prepare(bad)
    nosub = toy.copy()
    nosub.images["subject"] = None
    with pytest.raises(InputError, match="--group none"):
        prepare(nosub)
    assert len(np.unique(prepare(nosub, group="none").groups)) == len(toy)
    with pytest.raises(InputError, match="family"):
        Taxonomy.from_dict(
            {"stances": [{"name": "a", "family": "f", "chamber": "c"}, {"name": "b"}]}
        )
    with pytest.raises(InputError, match="taxonomy schema"):
        Taxonomy.from_dict({"stances": []})
    with pytest.raises(InputError, match="unique"):
        Taxonomy.from_dict({"stances": [{"name": "a"}, {"name": "a"}]})


def test_two_epoch_fit_writes_run_folder(toy, tmp_path):
    prep = prepare(toy)
    cfg = TrainConfig(model="graph", **FAST)
    run = tmp_path / "run"
    res = run_experiment(prep, cfg, run, n_folds=2)
    for name in (
        "config.yaml",
        "metrics.json",
        "metrics.csv",
        "folds.csv",
        "oof_probabilities.csv",
        "confusion_matrix.csv",
        "confusion_matrix.png",
        "training_curves.png",
    ):
        assert (run / name).stat().st_size > 0, name
    m = json.loads((run / "metrics.json").read_text())
    assert m["model"] == "graph" and len(m["folds"]) == 2
    for f in m["folds"]:
        assert {"fold", "accuracy", "macro_f1", "kappa", "n_test", "test_groups"} <= set(f)
    for k in ("accuracy_mean", "accuracy_std", "macro_f1_mean", "kappa_mean"):
        assert np.isfinite(m[k])
    assert sum(f["n_test"] for f in m["folds"]) == len(prep)
    oof = pd.read_csv(run / "oof_probabilities.csv")
    assert len(oof) == len(prep)
    assert list(oof.columns[:6]) == [
        "ann_id",
        "image_id",
        "file_name",
        "fold",
        "label",
        "predicted",
    ]
    p = oof[[f"p_{c}" for c in prep.taxonomy.classes]].to_numpy()
    np.testing.assert_allclose(p.sum(1), 1, atol=1e-4)
    assert (oof["predicted"] == np.array(prep.taxonomy.classes)[p.argmax(1)]).all()
    assert len(pd.read_csv(run / "metrics.csv")) == 4  # 2 folds + mean + std
    # the checkpoint reloads with weights_only=True and reproduces the out-of-fold numbers: the
    # mean of the members' calibrated probabilities (each member divides by its temperature)
    models, ckpt = load_members(run / "folds" / "fold_1" / "model.pt")
    assert len(models) == cfg.members == len(m["folds"][1]["temperatures"])
    assert load_checkpoint(run / "folds" / "fold_1" / "model.pt")[1]["fold"] == 1
    test = res.outputs[1].fold.test
    nodes, edges = featurise(prep.keypoints[test], prep.conf[test], groups=prep.subject[test])
    with torch.no_grad():
        proba = torch.stack(
            [
                (mm(torch.from_numpy(nodes), torch.from_numpy(edges))["stance"] / mm.temperature)
                .double()
                .softmax(-1)
                for mm in models
            ]
        ).mean(0)
    np.testing.assert_allclose(proba.numpy(), res.oof[test], atol=1e-5)
    assert ckpt["classes"] == prep.taxonomy.classes
    assert 0 <= m["ece_mean"] <= 1 and np.isfinite(m["accuracy_worst"])
    assert "graph" in summary_table([m], baseline=None)
    # an existing run is refused; --resume keeps finished folds
    with pytest.raises(FileExistsError, match="--overwrite"):
        run_experiment(prep, cfg, run, n_folds=2)
    again = run_experiment(prep, cfg, run, n_folds=2, resume=True)
    assert again.outputs == [] and again.metrics["accuracy_mean"] == m["accuracy_mean"]


def test_geopose_fit_with_cached_features_and_finetune(toy, tmp_path):
    prep = prepare(toy, crops=True)
    assert prep.crops.shape == (len(toy), 128, 128, 3) and prep.crops.max() > 0
    cfg = TrainConfig(
        model="geopose",
        epochs=1,
        finetune_epochs=1,
        batch_size=8,
        aug_views=2,
        visual="mobilenet",
        members=1,
    )
    with pytest.warns(UserWarning, match="RANDOM"):
        res = run_experiment(prep, cfg, tmp_path / "run", n_folds=2)
    assert res.metrics["crop_feature_seconds"] > 0
    hist = pd.read_csv(tmp_path / "run" / "folds" / "fold_0" / "history.csv")
    # the calibration model first, then the member (trained on every training row)
    assert hist["member"].astype(str).tolist() == ["calibration"] * 2 + ["0"] * 2
    assert hist["phase"].tolist() == ["frozen", "finetune"] * 2
    assert np.isfinite(res.oof).all()


def test_fit_on_17_keypoints_marks_stick_missing(tmp_path, toy_dataset):
    ds = toy_dataset(tmp_path, n_subjects=3, per_class=2, image_size=64, with_stick=False)
    prep = prepare(ds, crops=True)  # crops centre on the weapon wrist instead
    nodes, _ = featurise(prep.keypoints, prep.conf)
    assert (nodes[:, 17:, :4] == 0).all()
    res = run_experiment(
        prep,
        TrainConfig(model="no-aux", epochs=1, batch_size=8, aug_views=1),
        tmp_path / "run",
        n_folds=3,
    )
    assert np.isfinite(res.oof).all() and len(res.metrics["folds"]) == 3


def test_angle_baseline_uses_the_same_folds(toy, tmp_path):
    pytest.importorskip("trainer.baselines")
    prep = prepare(toy)
    res = run_experiment(prep, TrainConfig(model="angles-rf"), tmp_path / "rf", n_folds=2)
    folds = pd.read_csv(tmp_path / "rf" / "folds.csv")
    assert folds["fold"].nunique() == 2 and np.isfinite(res.oof).all()
    assert not (tmp_path / "rf" / "folds" / "fold_0" / "model.pt").exists()


def test_random_backbone_features_are_alive(toy):
    """A random MobileNetV3 in eval mode would map every crop to ~0; calibration prevents it."""
    from trainer.train import CropCache

    prep = prepare(toy, crops=True)
    with pytest.warns(UserWarning, match="RANDOM"):
        cache = CropCache(prep, TrainConfig(aug_views=1))
    feats = cache.compute()
    assert feats.shape == (1, len(prep), 576)
    assert float(feats[0].std(0).mean()) > 1e-3


def test_member_splits_hold_out_different_subjects():
    from trainer.train import member_splits

    groups = np.repeat(np.array(["a", "b", "c", "d"]), 5)
    y = np.tile(np.arange(5), 4)
    rows = np.arange(20)
    splits = member_splits(y, groups, rows, members=3, seed=1, fraction=0.25)
    assert len(splits) == 3
    held = []
    for fit, val in splits:
        assert len(np.intersect1d(fit, val)) == 0 and len(fit) + len(val) == 20
        vg = set(groups[val])
        assert len(vg) == 1 and not vg & set(groups[fit])
        held.append(vg.pop())
    assert len(set(held)) == 3  # three different validation subjects
    # one group only: row splits, still disjoint
    fit, val = member_splits(y, np.zeros(20), rows, members=1)[0]
    assert len(val) and not len(np.intersect1d(fit, val))


def test_fit_temperature_and_ece():
    from trainer.runs import expected_calibration_error
    from trainer.train import _nll, fit_temperature

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400)
    logits = rng.normal(0, 1, (400, 4))
    logits[np.arange(400), y] += 1.0
    hot = logits * 6  # overconfident copy of the same predictions
    t = fit_temperature(hot, y)
    assert 3 < t < 12  # undoes most of the inflation
    assert _nll(hot, y, t) < _nll(hot, y, 1.0)
    assert fit_temperature(hot[:1], y[:1]) == 1.0
    p_hot = np.exp(hot - hot.max(1, keepdims=True))
    p_hot /= p_hot.sum(1, keepdims=True)
    p_cal = np.exp(hot / t - (hot / t).max(1, keepdims=True))
    p_cal /= p_cal.sum(1, keepdims=True)
    assert expected_calibration_error(y, p_cal) < expected_calibration_error(y, p_hot)
    onehot = np.eye(4)[y]
    assert expected_calibration_error(y, onehot) == 0.0
    assert np.isnan(expected_calibration_error(y[:0], onehot[:0]))


def test_body_augmentation_changes_proportions_view_and_hand(toy):
    from trainer.data import KeypointAugment, _scale_bones

    kp = toy.keypoints[:8].copy()
    aug = KeypointAugment(bone_scale=0.0, yaw_min=1.0, rotate_deg=0.0, mirror=0.0)
    np.testing.assert_allclose(aug.body(kp, np.random.default_rng(0)), kp, atol=1e-9)
    # bone scaling: forearm length follows its factor, the stick moves with the weapon wrist
    f = np.ones((8, 5))
    f[:, 2] = 1.5
    xy = _scale_bones(kp[..., :2], f)
    fore = np.linalg.norm(kp[:, 10, :2] - kp[:, 8, :2], axis=-1)
    np.testing.assert_allclose(np.linalg.norm(xy[:, 10] - xy[:, 8], axis=-1), 1.5 * fore)
    np.testing.assert_allclose(xy[:, 17] - xy[:, 10], kp[:, 17, :2] - kp[:, 10, :2], atol=1e-9)
    np.testing.assert_allclose(xy[:, 15], kp[:, 15, :2], atol=1e-9)  # legs untouched (f = 1)
    # mirroring swaps left and right points in place (FLIP_IDX) and keeps the facing
    mir = KeypointAugment(bone_scale=0.0, yaw_min=1.0, rotate_deg=0.0, mirror=1.0)
    out = mir.body(kp, np.random.default_rng(0))
    np.testing.assert_allclose(out[:, 9], kp[:, 10])
    np.testing.assert_allclose(out[:, 17], kp[:, 17])
    # yaw shrinks widths only, rotation keeps lengths; missing points stay missing
    kp2 = kp.copy()
    kp2[0, 3] = [np.nan, np.nan, 0]
    full = KeypointAugment(mirror=0.0).body(kp2, np.random.default_rng(1))
    assert np.isnan(full[0, 3, :2]).all() and full[0, 3, 2] == 0
    assert np.isfinite(full[1:, :, :2]).all()


def test_refit_trains_members_on_every_training_row_and_shares_the_temperature(toy):
    from trainer.cv import make_folds
    from trainer.train import member_splits, train_fold

    prep = prepare(toy)
    fold = make_folds(prep.y, prep.groups, 2, seed=0)[0]
    cfg = TrainConfig(epochs=2, batch_size=8, members=2)
    out = train_fold(prep, fold, cfg)
    assert out.n_fit == len(fold.train) and out.n_val == 0
    assert len(out.members) == 2 and out.temperatures[0] == out.temperatures[1]
    assert out.model_config["refit"] is True
    calib = [h for h in out.history if h["member"] == "calibration"]
    assert len(calib) == 2 and np.isfinite(calib[-1]["val_loss"])
    assert np.isfinite(out.best_val_loss)
    np.testing.assert_allclose(out.proba.sum(1), 1.0, atol=1e-6)
    # the same fold again gives the same numbers (seeded from seed, fold and member alone)
    torch.manual_seed(123)
    np.random.seed(7)
    again = train_fold(prep, fold, cfg)
    np.testing.assert_allclose(again.proba, out.proba, atol=1e-6)
    # refit off (or a stop that needs validation rows): members hold out their own groups
    for other in (TrainConfig(**{**FAST, "refit": False}), TrainConfig(**FAST, stop="smoothed")):
        held = train_fold(prep, fold, other)
        fit0, val0 = member_splits(
            prep.y, prep.groups, fold.train, other.members, seed=fold.index, fraction=0.2
        )[0]
        assert held.n_fit == len(fit0) and held.n_val == len(val0) > 0
        assert held.model_config["refit"] is False
        assert not any(h["member"] == "calibration" for h in held.history)
    # no calibration: no calibration model, temperature 1
    plain = train_fold(prep, fold, TrainConfig(epochs=1, batch_size=8, calibrate=False))
    assert plain.temperatures == [1.0] and not any(
        h["member"] == "calibration" for h in plain.history
    )
