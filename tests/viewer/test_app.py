"""The viewer in a real napari window (Xvfb): drags, keys, saving, the dock, the queue."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from qtpy.QtCore import QPoint, Qt
from qtpy.QtWidgets import QComboBox, QLabel, QListWidget, QPushButton

from toolkit import layout
from toolkit.dataset import JOURNAL_FILE, Dataset, read_journal
from viewer import convert
from viewer.launch import dock_for, open_dataset

pytestmark = pytest.mark.gui

CTRL = Qt.KeyboardModifier.ControlModifier
SHIFT = Qt.KeyboardModifier.ShiftModifier


def _open(make_napari_viewer, path, **kw):
    viewer = make_napari_viewer(show=True)
    app = open_dataset(viewer, path, autosave_s=0, **kw)
    return viewer, app


def _canvas(viewer):
    return viewer.window._qt_viewer.canvas.native


def _press(qtbot, viewer, key, mod=Qt.KeyboardModifier.NoModifier):
    qtbot.keyClick(_canvas(viewer), key, mod)
    qtbot.wait(5)


def _to_canvas(viewer, xy) -> QPoint:
    """Dataset ``x, y`` -> canvas pixel (2D camera: centre and zoom)."""
    qtbot_canvas = _canvas(viewer)
    cy, cx = viewer.camera.center[-2:]
    z = viewer.camera.zoom
    px = (xy[0] - cx) * z + qtbot_canvas.width() / 2
    py = (xy[1] - cy) * z + qtbot_canvas.height() / 2
    return QPoint(round(px), round(py))


def _tip_index(app) -> int:
    return int(np.flatnonzero(app.points_layer.features["kp"].to_numpy() == layout.TIP)[0])


def test_opens_on_first_flagged_frame_with_layers_and_dock(make_napari_viewer, small_dataset):
    ds = Dataset.load(small_dataset)
    ds.annotations.at[ds.annotations.index[2], "predictions"] = {
        "stance": "forward_low",
        "confidence": 0.87,
    }
    ds.save()
    viewer, app = _open(make_napari_viewer, small_dataset)
    assert [layer.name for layer in viewer.layers] == ["frames", "lines", "keypoints"]
    assert app.frame == 2 and viewer.dims.current_step[0] == 2  # pending correction
    assert viewer.layers["frames"].data.shape == (6, 160, 160, 4)  # RGBA
    pts = app.points_layer
    assert len(pts.data) == 19 and (pts.data[:, 0] == 2).all()
    # (t, y, x) in napari: the nose at x = 80 + 2, y = 30
    np.testing.assert_allclose(pts.data[0], [2, 30, 82])
    assert pts.features["keypoint"].iat[18] == "stick_tip"
    assert len(app.line_segments("stick")[0]) == 2 and len(app.line_segments("skeleton")[0]) == 19
    # one layer draws them: the bones, then each stick line twice (side by side, wider)
    assert len(app.lines_layer.data) == 19 + 2 * 2
    assert "FLAGGED" in viewer.canvas.overlays.text.text
    dock = dock_for(app.viewer)
    findings = dock.findChild(QListWidget, "findings_list")
    assert "corrected" in findings.item(0).text()
    assert dock.findChild(QComboBox, "stance_combo").currentText() == "back_high"
    prediction = dock.findChild(QLabel, "prediction_label").text()
    assert "forward_low (0.87)" in prediction and "disagrees" in prediction
    queue = dock.findChild(QListWidget, "queue_list")
    assert queue.count() == 1 and "stick.length" in queue.item(0).text()


def test_mouse_drag_moves_tip_and_lines_follow_then_save(make_napari_viewer, small_dataset, qtbot):
    viewer, app = _open(make_napari_viewer, small_dataset)
    app.goto(4)
    viewer.reset_view()
    qtbot.wait(50)
    canvas = _canvas(viewer)
    tip = app.ds.keypoints[4, layout.TIP, :2].copy()
    start = _to_canvas(viewer, tip)
    target_xy = tip + [-12.0, 10.0]
    end = _to_canvas(viewer, target_xy)
    qtbot.mouseMove(canvas, start)
    qtbot.wait(30)
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=start)
    qtbot.wait(30)
    for f in (0.3, 0.6, 1.0):
        p = start + (end - start) * f
        qtbot.mouseMove(canvas, p)
        qtbot.wait(30)
        if f == 0.6:  # mid-drag: the stick line already follows the point
            stick_end = app.line_segments("stick")[1][1]
            assert np.linalg.norm(stick_end - tip) > 3
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=end)
    qtbot.wait(30)
    moved = app.ds.keypoints[4, layout.TIP, :2]
    assert np.linalg.norm(moved - target_xy) < 2.5 / viewer.camera.zoom + 0.5
    assert app.ds.source[4, layout.TIP] == layout.HUMAN
    assert app.ds.source[4, layout.GRIP] == layout.IMPORTED  # only the tip moved
    stick_end = app.line_segments("stick")[1][1]
    np.testing.assert_allclose(stick_end, moved, atol=1e-6)
    assert app.ds.pending_edits() == 1  # journalled before acknowledged
    _press(qtbot, viewer, Qt.Key.Key_S, CTRL)
    assert not read_journal(small_dataset / JOURNAL_FILE).entries  # folded
    back = Dataset.load(small_dataset)
    np.testing.assert_allclose(back.keypoints[4, layout.TIP, :2], np.round(moved, 3), atol=1e-3)
    assert back.source[4, layout.TIP] == layout.HUMAN

    # A locked body point does not move when dragged ...
    wrist = app.ds.keypoints[4, layout.L_WRIST, :2].copy()
    _drag(qtbot, viewer, wrist, wrist + [15.0, 15.0])
    np.testing.assert_array_equal(app.ds.keypoints[4, layout.L_WRIST, :2], wrist)
    # ... and in rigid mode a tip drag rotates the stick about the grip at the same length.
    _press(qtbot, viewer, Qt.Key.Key_K)
    grip = app.ds.keypoints[4, layout.GRIP, :2].copy()
    length = np.linalg.norm(moved - grip)
    _drag(qtbot, viewer, moved.copy(), grip + [length * 1.5, 0.0])
    tip = app.ds.keypoints[4, layout.TIP, :2]
    assert abs(np.linalg.norm(tip - grip) - length) < 1e-6
    assert abs(tip[1] - grip[1]) < 0.2 * length  # now pointing right (along +x)


def _drag(qtbot, viewer, src_xy, dst_xy, steps=3):
    canvas = _canvas(viewer)
    start, end = _to_canvas(viewer, src_xy), _to_canvas(viewer, dst_xy)
    qtbot.mouseMove(canvas, start)
    qtbot.wait(20)
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=start)
    qtbot.wait(20)
    for i in range(1, steps + 1):
        qtbot.mouseMove(canvas, start + (end - start) * (i / steps))
        qtbot.wait(20)
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=end)
    qtbot.wait(20)


def test_layer_data_edit_lock_and_rigid(make_napari_viewer, small_dataset, qtbot):
    viewer, app = _open(make_napari_viewer, small_dataset)
    app.goto(0)
    pts = app.points_layer
    body = app.ds.keypoints[0, layout.L_WRIST, :2].copy()
    data = pts.data.copy()
    data[layout.L_WRIST, 1:] += [5, 5]  # body point: locked by default
    pts.data = data
    np.testing.assert_array_equal(app.ds.keypoints[0, layout.L_WRIST, :2], body)
    np.testing.assert_allclose(pts.data[layout.L_WRIST, 1:], body[::-1])  # snapped back
    assert "locked" in app.message
    _press(qtbot, viewer, Qt.Key.Key_L)
    assert app.unlocked
    pts.data = data
    np.testing.assert_allclose(app.ds.keypoints[0, layout.L_WRIST, :2], body + 5)

    _press(qtbot, viewer, Qt.Key.Key_K)
    assert app.rigid
    grip = app.ds.keypoints[0, layout.GRIP, :2].copy()
    length = np.linalg.norm(app.ds.keypoints[0, layout.TIP, :2] - grip)
    data = pts.data.copy()
    data[_tip_index(app), 1:] = [grip[1] + 100.0, grip[0]]  # straight down, too far
    pts.data = data
    tip = app.ds.keypoints[0, layout.TIP, :2]
    np.testing.assert_allclose(tip, grip + [0, length], atol=1e-6)  # rotated, same length
    assert app.ds.source[0, layout.TIP] == layout.HUMAN


def test_keys_flagged_accept_undo_missing_stance_save(make_napari_viewer, small_dataset, qtbot):
    viewer, app = _open(make_napari_viewer, small_dataset)
    raw_tip = app.ds.keypoints_raw[2, layout.TIP].copy()
    _press(qtbot, viewer, Qt.Key.Key_N)
    assert app.frame == 4
    _press(qtbot, viewer, Qt.Key.Key_N, SHIFT)
    assert app.frame == 2
    _press(qtbot, viewer, Qt.Key.Key_Right)
    assert app.frame == 3
    _press(qtbot, viewer, Qt.Key.Key_Left)
    assert app.frame == 2
    _press(qtbot, viewer, Qt.Key.Key_Return)  # accept the correction
    assert (app.ds.source[2, [layout.GRIP, layout.TIP]] == layout.HUMAN).all()
    assert not app.session.flagged_frames()[2]
    _press(qtbot, viewer, Qt.Key.Key_Z, CTRL)  # undo restores provenance "corrected"
    assert (app.ds.source[2, [layout.GRIP, layout.TIP]] == layout.CORRECTED).all()
    _press(qtbot, viewer, Qt.Key.Key_Z, CTRL | SHIFT)  # redo
    assert (app.ds.source[2, [layout.GRIP, layout.TIP]] == layout.HUMAN).all()
    _press(qtbot, viewer, Qt.Key.Key_R)  # revert stick to raw
    np.testing.assert_allclose(app.ds.keypoints[2, layout.TIP], raw_tip)
    app.points_layer.selected_data = {_tip_index(app)}
    _press(qtbot, viewer, Qt.Key.Key_M)
    assert np.isnan(app.ds.keypoints[2, layout.TIP, :2]).all()
    assert app.ds.keypoints[2, layout.TIP, 2] == 0
    assert len(app.points_layer.data) == 18
    _press(qtbot, viewer, Qt.Key.Key_BracketRight)  # back_high -> forward_high (wraps)
    assert app.session.stance(2) == "forward_high"
    assert dock_for(app.viewer).findChild(QComboBox, "stance_combo").currentText() == "forward_high"
    _press(qtbot, viewer, Qt.Key.Key_S, CTRL)
    assert "saved" in app.message
    back = Dataset.load(small_dataset)
    assert back.images["stance"].iat[2] == "forward_high"
    assert np.isnan(back.keypoints[2, layout.TIP, :2]).all()
    assert back.source[2, layout.TIP] == layout.HUMAN
    np.testing.assert_allclose(back.keypoints[2, layout.GRIP], app.ds.keypoints_raw[2, layout.GRIP])
    assert back.pending_edits() == 0


def test_save_conflict_is_reported_not_overwritten(make_napari_viewer, small_dataset, qtbot):
    viewer, app = _open(make_napari_viewer, small_dataset)
    t = app.frame
    app.set_stance("forward_low")
    other = Dataset.load(small_dataset)  # another program loads (replaying our edit) and saves
    other.images.at[other.images.index[0], "subject"] = "s99"
    other.save(small_dataset)
    tip = app.ds.keypoints[t, layout.TIP].copy()
    app.session.move_points(
        t, int(app.session.ann_rows(t)[0]), [layout.TIP], [tip[:2] + [3.0, 4.0]]
    )  # an edit after their save
    if not app.save():  # refused (or merged at once, when the dataset can fold both)
        assert "changed on disk" in app.message
        assert Dataset.load(small_dataset, replay=False).images["subject"].iat[0] == "s99"
        app.reload()  # merge: their file + our journalled edits
        assert app.save()
    back = Dataset.load(small_dataset)
    assert back.images["subject"].iat[0] == "s99"
    assert back.images["stance"].iat[t] == "forward_low"
    np.testing.assert_allclose(back.keypoints[t, layout.TIP, :2], tip[:2] + [3.0, 4.0])


def test_unmergeable_save_shows_the_conflict_and_reload(
    make_napari_viewer, small_dataset, qtbot, monkeypatch
):
    from toolkit.errors import SaveConflictError

    viewer, app = _open(make_napari_viewer, small_dataset)
    app.set_stance("forward_low")

    def refuse(*_a, **_k):
        raise SaveConflictError("dataset.json changed on disk since it was loaded", small_dataset)

    monkeypatch.setattr(app.session.ds, "save", refuse)
    assert app.save() is False
    assert "changed on disk" in app.message
    assert "changed on disk" in dock_for(app.viewer).findChild(QLabel, "status_label").text()
    assert (
        dock_for(app.viewer)
        .findChild(QPushButton, "reload_button")
        .isVisibleTo(dock_for(app.viewer))
    )
    app.autosave()  # paused while a conflict is pending
    assert app.ds.pending_edits() == 1
    monkeypatch.undo()
    app.reload()  # a fresh dataset object: its journalled edit replayed
    assert app.session.stance(app.frame) == "forward_low" and app.save()
    assert (
        not dock_for(app.viewer)
        .findChild(QPushButton, "reload_button")
        .isVisibleTo(dock_for(app.viewer))
    )


def test_queue_click_jumps_and_done_is_saved(make_napari_viewer, small_dataset, qtbot):
    qfile = small_dataset / "queue.json"
    doc = {
        "version": 1,
        "dataset": str(small_dataset),
        "items": [
            {
                "rank": 1,
                "file_name": "img_05.png",
                "reason": "label_disagreement",
                "score": 0.9,
                "details": {"predicted": "forward_low"},
                "done": False,
            },
            {
                "rank": 2,
                "video": "missing.mp4",
                "frame_index": 3,
                "reason": "low_confidence",
                "score": 0.5,
                "done": False,
            },
        ],
    }
    qfile.write_bytes(orjson.dumps(doc))
    viewer, app = _open(make_napari_viewer, small_dataset, queue=qfile)
    qlist = dock_for(app.viewer).findChild(QListWidget, "queue_list")
    assert qlist.count() == 2 and "not in dataset" in qlist.item(1).text()
    rect = qlist.visualItemRect(qlist.item(0))
    qtbot.mouseClick(qlist.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert app.frame == 5
    _press(qtbot, viewer, Qt.Key.Key_D)
    saved = orjson.loads(qfile.read_bytes())
    assert saved["items"][0]["done"] is True and saved["items"][1]["done"] is False
    assert saved["items"][0]["details"] == {"predicted": "forward_low"}  # kept as is
    assert qlist.item(0).checkState() == Qt.CheckState.Checked
    qlist.item(0).setCheckState(Qt.CheckState.Unchecked)  # the checkbox saves too
    assert orjson.loads(qfile.read_bytes())["items"][0]["done"] is False


def test_samples_import_and_open(make_napari_viewer, samples_root, tmp_path, qtbot):
    from toolkit.io.yolo import read_yolo

    result = read_yolo(
        samples_root / "data.yaml", labels=samples_root / "labels.csv", subject_regex=r"^(s\d+)_"
    )
    ds = result.dataset
    ds.media_root = str(result.media_root or samples_root)
    ds.save(tmp_path / "samples_ds")
    viewer, app = _open(make_napari_viewer, tmp_path / "samples_ds")
    assert app.session.n_frames == len(ds.images)
    assert viewer.layers["frames"].data[app.frame][..., :3].mean() > 5
    assert len(app.points_layer.data) > 0
    _press(qtbot, viewer, Qt.Key.Key_Right)
    assert app.frame >= 1


def test_real_video_opens_and_scrubs(make_napari_viewer, realdata, tmp_path, qtbot):
    video = realdata / "tfjs-models" / "pose_1.mp4"
    poses = orjson.loads((realdata / "tfjs-models" / "pose_1.json").read_bytes())
    n = 120
    images, anns, kps = [], [], []
    for f in range(n):
        images.append(
            {
                "id": f + 1,
                "file_name": f"pose_1/{f:06d}.jpg",
                "width": 576,
                "height": 576,
                "video_id": 1,
                "frame_index": f,
            }
        )
        anns.append({"id": f + 1, "image_id": f + 1})
        kp = np.full((layout.NUM_KEYPOINTS, 3), np.nan)
        entry = poses[f] if isinstance(poses, list) and f < len(poses) else {}
        for name, p in entry.items() if isinstance(entry, dict) else []:
            if name in layout.KEYPOINT_NAMES and isinstance(p, dict) and "x" in p:
                kp[layout.KEYPOINT_NAMES.index(name)] = [p["x"], p["y"], 2]
        kps.append(kp)
    ds = Dataset.from_records(
        images,
        anns,
        np.stack(kps),
        media_root=str(video.parent),
        videos=[
            {
                "id": 1,
                "file_name": video.name,
                "fps": 30.0,
                "frame_count": n,
                "width": 576,
                "height": 576,
            }
        ],
    )
    ds.save(tmp_path / "video_ds")
    viewer, app = _open(make_napari_viewer, tmp_path / "video_ds")
    frames = viewer.layers["frames"]
    assert frames.data.shape == (n, 576, 576, 4)
    for t in (0, 1, 2, 60, 59, 119):
        app.goto(t)
        frame = np.asarray(frames.data[t])
        assert frame.shape[:2] == (576, 576) and frame[..., :3].mean() > 10
    assert app.frame == 119
    assert len(app.points_layer.data) == int(np.isfinite(ds.keypoints[119, :, 0]).sum())


def test_napari_reader_opens_a_dataset_folder(make_napari_viewer, small_dataset, tmp_path):
    from viewer.launch import app_for
    from viewer.plugin import get_reader

    assert get_reader(str(tmp_path)) is None  # no dataset.json: not ours
    assert get_reader(str(small_dataset)) is not None
    viewer = make_napari_viewer(show=True)
    viewer.open(str(small_dataset), plugin="arnis-suite")
    app = app_for(viewer)
    assert app is not None and app.frame == 2
    assert "keypoints" in [layer.name for layer in viewer.layers]
    assert dock_for(app.viewer).findChild(QListWidget, "queue_list") is not None
    app.close()


def test_dock_before_a_dataset_offers_to_open_one(make_napari_viewer, small_dataset, monkeypatch):
    from qtpy.QtWidgets import QFileDialog

    from viewer.launch import app_for, make_dock

    viewer = make_napari_viewer()
    dock = make_dock(viewer)  # what napari's Plugins menu builds (napari.yaml)
    assert dock.app is None
    assert dock.findChild(QPushButton, "open_button").isVisibleTo(dock)
    assert not dock.findChild(QPushButton, "save_button").isEnabled()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a: str(small_dataset))
    dock.findChild(QPushButton, "open_button").click()
    app = app_for(viewer)
    assert app is not None and dock.app is app and dock_for(viewer) is dock
    assert not dock.findChild(QPushButton, "open_button").isVisibleTo(dock)
    assert "Frame 3" in dock.findChild(QLabel, "frame_label").text()
    app.close()
    dock.deleteLater()


def test_napari_manifest_reader_claims_only_dataset_folders(small_dataset, tmp_path):
    from pathlib import Path

    from npe2 import PluginManager, PluginManifest

    import viewer

    manifest = PluginManifest.from_file(Path(viewer.__file__).parent / "napari.yaml")
    (reader,) = manifest.contributions.readers
    assert "*" not in reader.filename_patterns and reader.accepts_directories
    pm = PluginManager()
    pm.register(manifest)

    def claims(path) -> bool:
        return any(r.command == reader.command for r in pm.iter_compatible_readers(str(path)))

    image = tmp_path / "frame.png"
    image.write_bytes(b"")
    assert claims(small_dataset) and claims(small_dataset / "dataset.json")
    assert not claims(image) and not claims(tmp_path / "clip.mp4")


def test_autosave_folds_the_journal(make_napari_viewer, small_dataset, qtbot):
    viewer = make_napari_viewer(show=True)
    app = open_dataset(viewer, small_dataset, autosave_s=0.2)
    app.set_stance("forward_low")
    assert app.ds.pending_edits() == 1
    qtbot.waitUntil(lambda: app.ds.pending_edits() == 0, timeout=5000)
    assert Dataset.load(small_dataset, replay=False).images["stance"].iat[2] == "forward_low"
    app.close()


def test_keyframes_interpolate_then_accept_range_and_save(
    make_napari_viewer, video_dataset, stick_truth, qtbot
):
    viewer, app = _open(make_napari_viewer, video_dataset)
    assert viewer.layers["frames"].data.shape == (12, 160, 160, 4)
    app.goto(3)
    _press(qtbot, viewer, Qt.Key.Key_I)  # keyframe 1: the stick before the drift is right
    assert "press I" in app.message and "keyframe @4" in viewer.canvas.overlays.text.text
    app.goto(8)
    _press(qtbot, viewer, Qt.Key.Key_I)  # keyframe 2: fills frames 4-7
    assert "4 frames" in app.message
    kp = app.ds.keypoints
    for f in range(4, 8):
        np.testing.assert_allclose(kp[f, [layout.GRIP, layout.TIP], :2], stick_truth(kp[f], f))
    app.goto(5)  # shown violet until accepted
    np.testing.assert_allclose(
        app.line_segments("stick")[2][-1], convert.STICK_INTERPOLATED_COLOR, atol=1e-6
    )
    # the layer draws it so (the stick's lines come last)
    np.testing.assert_allclose(
        np.asarray(app.lines_layer.edge_color)[-1], convert.STICK_INTERPOLATED_COLOR, atol=1e-6
    )
    tip = int(np.flatnonzero(app.points_layer.features["kp"].to_numpy() == layout.TIP)[0])
    np.testing.assert_allclose(
        app.points_layer.border_color[tip], convert.BORDER_INTERPOLATED, atol=1e-6
    )
    assert app.points_layer.features["source"].iat[tip] == "interpolated"
    _press(qtbot, viewer, Qt.Key.Key_A)  # accept the whole range
    assert (app.ds.source[3:9, layout.TIP] == layout.HUMAN).all()
    np.testing.assert_allclose(
        np.asarray(app.lines_layer.edge_color)[-1], convert.STICK_COLOR, atol=1e-6
    )
    _press(qtbot, viewer, Qt.Key.Key_Z, CTRL)  # one undo: back to interpolated
    assert (app.ds.source[4:8, layout.TIP] == layout.INTERPOLATED).all()
    _press(qtbot, viewer, Qt.Key.Key_Z, CTRL)  # a second: the drift is back
    assert (app.ds.source[4:8, layout.TIP] == layout.IMPORTED).all()
    assert np.linalg.norm(kp[5, layout.TIP, :2] - stick_truth(kp[5], 5)[1]) > 10
    _press(qtbot, viewer, Qt.Key.Key_Z, CTRL | SHIFT)
    _press(qtbot, viewer, Qt.Key.Key_Z, CTRL | SHIFT)
    assert (app.ds.source[3:9, layout.TIP] == layout.HUMAN).all()
    entries = read_journal(video_dataset / JOURNAL_FILE).entries
    sources = [e["source"] for e in entries if e["op"] == "set_points"]
    # fill, accept, undo accept (back to interpolated), undo fill, redo fill, redo accept
    assert sources.count("interpolated") == 12 and sources[-4:] == ["human"] * 4
    _press(qtbot, viewer, Qt.Key.Key_S, CTRL)
    assert not read_journal(video_dataset / JOURNAL_FILE).entries
    back = Dataset.load(video_dataset)
    assert (back.source[3:9, [layout.GRIP, layout.TIP]] == layout.HUMAN).all()
    assert (back.source[[2, 9], layout.TIP] == layout.IMPORTED).all()
    for f in range(4, 8):
        np.testing.assert_allclose(
            back.keypoints[f, [layout.GRIP, layout.TIP], :2],
            stick_truth(back.keypoints[f], f),
            atol=2e-3,
        )


def test_copy_stick_and_accept_listed_frames_from_the_dock(
    make_napari_viewer, video_dataset, stick_truth, qtbot
):
    findings = [
        {
            "code": code,
            "severity": "warning",
            "ann_id": 1000 + f,
            "keypoints": ["stick_tip"],
            "proposal": {"keypoints": [[18, 60.0 + f, 25.0]], "method": "temporal"},
        }
        for f, code in ((2, "stick.angle"), (6, "stick.length"), (10, "stick.angle"))
    ]
    (video_dataset / "validation.json").write_bytes(orjson.dumps({"findings": findings}))
    viewer, app = _open(make_napari_viewer, video_dataset)
    assert app.frame == 2
    combo = dock_for(app.viewer).findChild(QComboBox, "queue_filter")
    combo.setCurrentText("stick.angle")
    qlist = dock_for(app.viewer).findChild(QListWidget, "queue_list")
    assert [qlist.item(i).isHidden() for i in range(3)] == [False, True, False]
    _press(qtbot, viewer, Qt.Key.Key_A, SHIFT)  # accept every listed frame's proposal
    np.testing.assert_allclose(app.ds.keypoints[[2, 10], layout.TIP, :2], [[62, 25], [70, 25]])
    assert app.ds.source[6, layout.TIP] == layout.IMPORTED  # not listed
    assert "2 frames" in app.message
    app.goto(4)
    qtbot.mouseClick(
        dock_for(app.viewer).findChild(QPushButton, "copy_stick_button"), Qt.MouseButton.LeftButton
    )
    kp = app.ds.keypoints
    np.testing.assert_allclose(kp[4, layout.GRIP, :2], stick_truth(kp[4], 4)[0])
    assert app.ds.source[4, layout.TIP] == layout.HUMAN
    app.goto(5)
    _press(qtbot, viewer, Qt.Key.Key_C)  # and the key, from the frame just fixed
    np.testing.assert_allclose(kp[5, layout.GRIP, :2], stick_truth(kp[5], 5)[0])
    _press(qtbot, viewer, Qt.Key.Key_Z, CTRL)
    assert app.ds.source[5, layout.TIP] == layout.IMPORTED
    app.save()
    back = Dataset.load(video_dataset)
    np.testing.assert_allclose(back.keypoints[10, layout.TIP, :2], [70, 25])
    assert back.source[4, layout.GRIP] == layout.HUMAN and back.source[5, layout.GRIP] == 0


# ---------------------------------------------------------------------- napari internals
# viewer/app.py reaches into napari / vispy internals in nine places, each to skip work a frame
# step does not need. Each has a fallback for a napari that no longer has them; these tests run
# both paths.


def test_internals_in_place_on_a_real_viewer(make_napari_viewer, small_dataset):
    from napari.utils.events import EventEmitter

    from viewer import app as app_mod

    viewer, app = _open(make_napari_viewer, small_dataset)
    assert app_mod._reuse_color_shader(viewer, app.lines_layer)
    assert app_mod._freeze_thumbnail(app.lines_layer)
    assert app_mod._quiet_layer_list(viewer)
    model = viewer.window._qt_viewer.layers.model().sourceModel()
    changed = []
    model.dataChanged.connect(lambda *a: changed.append(a))
    app.lines_layer.events.set_data()  # nothing a layer-list row shows
    assert not changed
    app.lines_layer.events.thumbnail()  # the row's icon: repainted
    assert changed
    assert app_mod._light_points_reset(viewer, app.points_layer)
    assert app_mod._steady_text(viewer, app.points_layer)
    assert app_mod._slice_once(viewer) is app._sliced_at  # one per viewer
    for layer in (app.image_layer, app.lines_layer):
        assert app_mod._steady_transform(viewer, layer)
    node = viewer.window._qt_viewer.canvas.layer_to_visual[app.image_layer].node
    app.image_layer.translate = (0, 5, 7)  # a changed transform is still applied
    np.testing.assert_allclose(node.transform.matrix[-1, :2], [6.5, 4.5])  # + half a pixel
    app.goto(app.frame + 1, scrub=True)  # and kept over a frame step
    np.testing.assert_allclose(node.transform.matrix[-1, :2], [6.5, 4.5])
    app.image_layer.translate = (0, 0, 0)
    text = viewer.window._qt_viewer.canvas.layer_to_visual[app.points_layer].node.text
    text._vertices = "laid out"  # a marker: the same strings are not laid out again
    text.text = list(text.text)
    assert text._vertices == "laid out"
    text.text = ["other"]
    assert text._vertices is None
    sliced = []
    for layer in viewer.layers:
        layer.events.set_data.connect(lambda e, n=layer.name: sliced.append(n))
    app.goto(app.frame + 1, scrub=True)  # one frame step: each layer sliced (drawn) once
    assert sorted(sliced) == ["frames", "keypoints", "lines"]
    assert (app.points_layer.data[:, 0] == app.frame).all()
    order = []
    emitter = EventEmitter(source=None, type_name="probe")
    emitter.connect(lambda e: order.append("napari"))
    assert app_mod._connect_first(emitter, lambda e: order.append("ours"))
    emitter()
    assert order == ["ours", "napari"]
    app.close()


def test_internals_fall_back_when_napari_lacks_them():
    from types import SimpleNamespace

    from viewer import app as app_mod

    bare = SimpleNamespace()  # no window, no _qt_viewer, no thumbnail, no emitter lists
    assert not app_mod._reuse_color_shader(bare, bare)
    assert not app_mod._quiet_layer_list(bare)
    assert not app_mod._freeze_thumbnail(bare) and not hasattr(bare, "_update_thumbnail")
    assert not app_mod._light_points_reset(bare, bare)
    assert not app_mod._steady_text(bare, bare)
    assert not app_mod._steady_transform(bare, bare)
    assert app_mod._slice_once(SimpleNamespace(dims=bare)) is None
    calls = []

    class PlainEmitter:  # an emitter without napari's callback lists
        def connect(self, cb):
            calls.append(cb)

    cb = lambda e: None  # noqa: E731
    assert not app_mod._connect_first(PlainEmitter(), cb) and calls == [cb]
    viewer = SimpleNamespace(window=SimpleNamespace(_qt_viewer=SimpleNamespace(layers=bare)))
    assert not app_mod._quiet_layer_list(viewer)  # a layer list without a model


def test_frames_render_without_napari_refresh_blocking(
    make_napari_viewer, small_dataset, monkeypatch
):
    """Without ``Layer._block_refresh`` every setter refreshes the layer: slower, same result."""
    from viewer import app as app_mod

    monkeypatch.setattr(app_mod, "_REFRESH_BLOCKER", "_not_in_this_napari")
    viewer, app = _open(make_napari_viewer, small_dataset)
    for t in range(app.session.n_frames):
        app.goto(t)
        rows = app.session.ann_rows(t)
        shown = int(np.isfinite(app.ds.keypoints[rows][..., 0]).sum())
        assert len(app.points_layer.data) == shown
        assert len(app.points_layer.face_color) == shown
    app.close()


def test_feature_columns_are_written_only_where_they_changed():
    """A step writes the changed columns into the layer's own table; anything else resets it."""
    from napari.layers import Points

    from viewer import app as app_mod

    def cols(n, conf, label="tip"):
        return {
            "kp": np.arange(n, dtype=np.int64),
            "label": np.array([label] + [""] * (n - 1), dtype=object),
            "confidence": np.full(n, conf),
        }

    layer = Points(np.zeros((3, 2)))
    shown = app_mod._set_features(layer, cols(3, 0.5))  # a new table: through the setter
    table = layer.features
    assert shown[0] is table and table["confidence"].tolist() == [0.5] * 3
    shown = app_mod._set_features(layer, cols(3, 0.7, "grip"), shown)  # same rows: in place
    assert layer.features is table
    assert table["confidence"].tolist() == [0.7] * 3 and table["label"].tolist()[0] == "grip"
    shown = app_mod._set_features(layer, cols(3, 0.7, "grip"), shown)  # nothing changed
    assert layer.features is table and table["kp"].tolist() == [0, 1, 2]
    layer.data = np.zeros((2, 2))  # napari replaces the table: what was shown is stale
    layer.features = {"kp": [0, 1], "label": ["", ""], "confidence": [0.1, 0.1]}
    shown = app_mod._set_features(layer, cols(2, 0.9), shown)
    assert layer.features["confidence"].tolist() == [0.9, 0.9]
    assert layer.features["label"].tolist() == ["tip", ""]
