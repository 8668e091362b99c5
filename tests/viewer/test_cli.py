"""``viewer DATASET [--queue] [--screenshot OUT.png [--frame N]]``."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from viewer.cli import main


def test_frame_needs_screenshot(small_dataset):
    res = CliRunner().invoke(main, [str(small_dataset), "--frame", "2"])
    assert res.exit_code == 2 and "--screenshot" in res.output


def test_window_needs_screenshot_and_help_has_examples(small_dataset):
    res = CliRunner().invoke(main, [str(small_dataset), "--window"])
    assert res.exit_code == 2 and "--screenshot" in res.output
    res = CliRunner().invoke(main, ["--help"])
    assert res.exit_code == 0 and "Examples:" in res.output and "--window" in res.output


def test_no_display_says_how_to_run_it(small_dataset, tmp_path, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    res = CliRunner().invoke(main, [str(small_dataset), "--screenshot", str(tmp_path / "a.png")])
    assert res.exit_code == 2 and "xvfb-run" in res.output


def test_missing_dataset_is_a_usage_error(tmp_path):
    res = CliRunner().invoke(main, [str(tmp_path / "nope")])
    assert res.exit_code == 2


@pytest.mark.gui
def test_screenshot_draws_skeleton_and_stick(small_dataset, tmp_path, qtbot):
    import cv2

    out = tmp_path / "shot.png"
    res = CliRunner().invoke(main, [str(small_dataset), "--screenshot", str(out)])
    assert res.exit_code == 0, res.output
    print(f"screenshot artifact: {out}")  # default frame: the first flagged one (2)
    img = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB).astype(int)
    assert img.shape[0] > 200 and img.shape[1] > 200
    assert img.mean() > 20  # not black
    stick = (np.abs(img - (255, 217, 0)) < 40).all(-1)  # convert.STICK_COLOR
    bone = (np.abs(img - (204, 230, 255)) < 40).all(-1)  # convert.SKELETON_COLOR
    frame = (np.abs(img - (110, 110, 110)) < 3).all(-1)  # frame 2's grey pixels
    assert stick.sum() > 30, "stick line not drawn"
    assert bone.sum() > 30, "skeleton not drawn"
    assert frame.sum() > 1000, "frame 2 not shown"
    res = CliRunner().invoke(main, [str(small_dataset), "--screenshot", str(out), "--frame", "99"])
    assert res.exit_code == 2 and "0..5" in res.output


@pytest.mark.gui
def test_screenshot_canvas_fills_the_width_and_window_shows_the_dock(small_dataset, tmp_path):
    import cv2

    canvas, window = tmp_path / "canvas.png", tmp_path / "window.png"
    for out, extra in ((canvas, []), (window, ["--window"])):
        res = CliRunner().invoke(main, [str(small_dataset), "--screenshot", str(out), *extra])
        assert res.exit_code == 0, res.output
    c = cv2.imread(str(canvas))
    w = cv2.imread(str(window))
    assert c.shape[1] >= 1200  # the canvas alone, as wide as the 1280-px window
    caption = (c[:40, :, 2] > 150) & (c[:40, :, 1] < 120)  # red "FLAGGED" caption, top left
    cols = np.flatnonzero(caption.any(0))
    assert len(cols) and cols.max() < c.shape[1] - 20  # drawn and not cut at the edge
    assert w.shape[1] >= 1200 and w.shape[0] > c.shape[0]  # menus, slider, dock around it
    right = w[:, -300:]
    assert right.std() > 20  # the dock's text and buttons, not a black canvas


@pytest.mark.gui
def test_screenshot_of_a_frame_with_fewer_points_than_the_first(tmp_path):
    """Regression: stepping to a frame with fewer points used to raise an IndexError (napari
    drew the new colours through the previous frame's point indices).
    """
    import json
    import shutil
    from pathlib import Path

    import cv2

    data = tmp_path / "coco"  # a copy: opening a dataset may leave a journal beside it
    shutil.copytree(Path(__file__).parents[1] / "data" / "realsticks" / "coco", data)
    doc = json.loads((data / "dataset.json").read_text())
    assert len(doc["images"]) >= 2
    out = tmp_path / "frame1.png"
    res = CliRunner().invoke(main, [str(data), "--screenshot", str(out), "--frame", "1"])
    assert res.exit_code == 0, res.output
    img = cv2.imread(str(out))
    assert img is not None and img.std() > 20
