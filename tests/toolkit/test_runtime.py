"""toolkit.runtime: OpenVINO/ONNX exports of the real yolo11n-pose, the cache, and their errors."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from toolkit import runtime, ultra
from toolkit.detect import DetectOptions, Detector, detect
from toolkit.errors import InputError

pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def pose_weights() -> Path:
    try:
        return ultra.resolve_weights("yolo11n-pose.pt")
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def cache(tmp_path_factory, pose_weights) -> Path:
    """A fresh export cache holding the OpenVINO export of yolo11n-pose (made once here)."""
    d = tmp_path_factory.mktemp("exports")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ARNIS_EXPORT_CACHE", str(d))
        runtime.exported(pose_weights, "openvino")
    return d


@pytest.fixture
def use_cache(cache, monkeypatch) -> Path:
    monkeypatch.setenv("ARNIS_EXPORT_CACHE", str(cache))
    return cache


@pytest.fixture(scope="module")
def frames(realdata) -> list[np.ndarray]:
    """Four BGR frames of the real pose_1.mp4 (576x576, one person)."""
    import cv2

    cap = cv2.VideoCapture(str(realdata / "tfjs-models" / "pose_1.mp4"))
    out = []
    for i in range(40):
        ok, img = cap.read()
        assert ok
        if i % 10 == 0:
            out.append(img)
    cap.release()
    return out


def _kpts(det: Detector, images: list[np.ndarray]) -> np.ndarray:
    res = det.predict(images)
    assert all(len(p.conf) == 1 for p, _ in res), [len(p.conf) for p, _ in res]
    return np.concatenate([p.kpts for p, _ in res])


def test_export_is_cached_whole_and_reused(use_cache, pose_weights):
    entries = [p for p in use_cache.iterdir()]
    assert len(entries) == 1 and entries[0].name.endswith("_openvino_model")
    assert entries[0].name.startswith("yolo11n-pose-")
    assert {p.suffix for p in entries[0].iterdir()} >= {".xml", ".bin", ".yaml"}
    xml = runtime.exported(pose_weights, "openvino")
    assert xml.parent == entries[0] and xml.suffix == ".xml"
    before = xml.stat().st_mtime_ns
    assert runtime.exported(pose_weights, "openvino") == xml
    assert xml.stat().st_mtime_ns == before  # not exported again
    info = runtime.read_info(xml)
    assert info.dynamic and info.kpt_shape == (17, 3) and info.task == "pose"


def test_a_failed_export_leaves_nothing(tmp_path, monkeypatch, pose_weights):
    """An export that dies half way leaves neither a model nor a staging folder."""
    monkeypatch.setenv("ARNIS_EXPORT_CACHE", str(tmp_path))

    class Dying:
        def __init__(self, weights):
            self.weights = Path(weights)

        def export(self, **kwargs):
            half = self.weights.parent / f"{self.weights.stem}_openvino_model"
            half.mkdir()
            (half / "model.xml").write_text("<net")  # half written, then killed
            raise KeyboardInterrupt

    monkeypatch.setattr(ultra, "yolo", lambda w, **kw: Dying(w))
    with pytest.raises(KeyboardInterrupt):
        runtime.exported(pose_weights, "openvino")
    assert list(tmp_path.iterdir()) == []


def test_openvino_detects_like_torch(use_cache, pose_weights, frames):
    torch_det = Detector(pose_weights, options=DetectOptions(imgsz=320, runtime="torch"))
    ov_det = Detector(pose_weights, options=DetectOptions(imgsz=320, runtime="openvino"))
    auto = Detector(pose_weights, options=DetectOptions(imgsz=320, device="cpu"))
    assert (torch_det.runtime, ov_det.runtime, auto.runtime) == ("torch", "openvino", "openvino")
    a, b = _kpts(torch_det, frames), _kpts(ov_det, frames)
    d = np.linalg.norm(a[..., :2] - b[..., :2], axis=-1)
    assert np.median(d) < 2.0, d
    assert np.abs(a[..., 2] - b[..., 2]).max() < 0.1


def test_a_frame_without_people(use_cache, pose_weights):
    det = Detector(pose_weights, options=DetectOptions(imgsz=320, runtime="openvino"))
    ((people, sticks),) = det.predict([np.full((240, 320, 3), 114, np.uint8)])
    assert people.kpts.shape == (0, 17, 3) and people.boxes.shape == (0, 4) and sticks is None


def test_six_candidates_are_not_read_as_an_end_to_end_output(use_cache, pose_weights):
    """The NMS of ultralytics takes a six-column input for an end-to-end model: six people stay six."""
    det = Detector(pose_weights, options=DetectOptions(imgsz=320, runtime="openvino"))
    raw = np.zeros((1, 56, 6), np.float32)
    raw[0, 0] = 20 + 50 * np.arange(6)  # box centres 50 px apart, 10 px boxes: no overlap
    raw[0, 1] = 20
    raw[0, 2:4] = 10
    raw[0, 4] = 0.9
    (poses,) = det.model._decode(raw, (320, 320), [np.zeros((320, 320, 3), np.uint8)])
    assert poses.kpts.shape == (6, 17, 3)
    np.testing.assert_allclose(poses.boxes[:, 0], 15 + 50 * np.arange(6))


def test_exported_folder_and_xml_as_weights(use_cache, frames):
    folder = next(use_cache.iterdir())
    by_folder = Detector(folder, options=DetectOptions(imgsz=320))
    by_xml = Detector(next(folder.glob("*.xml")), options=DetectOptions(imgsz=320))
    assert by_folder.runtime == by_xml.runtime == "openvino"
    assert by_folder.weights == by_xml.weights
    np.testing.assert_array_equal(_kpts(by_folder, frames[:2]), _kpts(by_xml, frames[:2]))
    with pytest.raises(ValueError, match="openvino or auto"):
        Detector(folder, options=DetectOptions(imgsz=320, runtime="torch"))


def test_batches_give_the_frames_own_results(use_cache, pose_weights, frames):
    """Batched inference matches frame-by-frame; a short last chunk is padded or run singly."""
    five = [*frames, frames[0]]
    one = Detector(pose_weights, options=DetectOptions(imgsz=320, runtime="openvino"))
    single = _kpts(one, five)
    three = Detector(pose_weights, options=DetectOptions(imgsz=320, runtime="openvino", batch=3))
    np.testing.assert_allclose(_kpts(three, five), single, atol=1e-3)
    assert set(three.model._compiled) == {(3, 320, 320)}  # 3 + 2 padded to 3
    four = Detector(pose_weights, options=DetectOptions(imgsz=320, runtime="openvino", batch=4))
    np.testing.assert_allclose(_kpts(four, five), single, atol=1e-3)
    assert set(four.model._compiled) == {(4, 320, 320), (1, 320, 320)}  # 4 + 1 alone


def test_detect_writes_the_runtime(use_cache, tmp_path, realdata):
    video = realdata / "tfjs-models" / "pose_1.mp4"
    ds = detect(
        video,
        "yolo11n-pose.pt",
        tmp_path / "ds",
        options=DetectOptions(imgsz=320, every=30, batch=2),
        progress=False,
    )
    assert ds.meta["detect"]["runtime"] == "openvino"
    assert ds.images["frame_index"].tolist() == [0, 30, 60, 90]
    assert len(ds) == 4


def test_onnx_runtime_exports_and_matches_torch(tmp_path, monkeypatch, pose_weights, frames):
    monkeypatch.setenv("ARNIS_EXPORT_CACHE", str(tmp_path))
    onnx_det = Detector(pose_weights, options=DetectOptions(imgsz=320, runtime="onnx", batch=2))
    assert onnx_det.weights == pose_weights and onnx_det.model.path.suffix == ".onnx"
    assert onnx_det.model.path.parent == tmp_path
    torch_det = Detector(pose_weights, options=DetectOptions(imgsz=320, runtime="torch"))
    np.testing.assert_allclose(_kpts(onnx_det, frames), _kpts(torch_det, frames), atol=0.05)


def test_runtime_choice_and_missing_openvino(monkeypatch):
    assert runtime.choose_runtime("onnx") == "onnx"
    assert runtime.choose_runtime("openvino") == "openvino"
    with pytest.raises(ValueError, match="one of auto, torch, openvino, onnx"):
        runtime.choose_runtime("pt", "tensorrt")
    with pytest.raises(ValueError, match="onnx or auto for a .onnx"):
        runtime.choose_runtime("onnx", "openvino")
    monkeypatch.setattr(runtime, "openvino_available", lambda: False)
    assert runtime.choose_runtime("pt") == "torch"
    with pytest.raises(InputError, match=r"arnis-suite\[openvino\]"):
        runtime.choose_runtime("pt", "openvino")


def test_bad_openvino_folders_are_named(tmp_path, use_cache, realdata):
    from toolkit.commands.detect_cmd import detect_cmd

    empty = tmp_path / "empty_openvino_model"
    empty.mkdir()
    with pytest.raises(InputError, match="one .xml") as exc:
        ultra.resolve_weights(empty)
    assert exc.value.path == empty
    half = tmp_path / "half_openvino_model"
    shutil.copytree(next(use_cache.iterdir()), half)
    next(half.glob("*.bin")).unlink()
    with pytest.raises(InputError, match=r"\.bin") as exc:
        ultra.resolve_weights(half)
    assert exc.value.path == half
    with pytest.raises(FileNotFoundError, match="absent_openvino_model"):
        ultra.resolve_weights(tmp_path / "absent_openvino_model")
    photo = realdata / "tfjs-models" / "pose.jpg"
    res = CliRunner().invoke(
        detect_cmd, [str(photo), "--weights", str(half), "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 2 and str(half) in res.output, res.output
    assert not (tmp_path / "o").exists()


def test_a_fixed_size_export_runs_only_at_its_size(use_cache, tmp_path, monkeypatch):
    """A static export's metadata is honoured: its size is required, its batch is padded to."""
    folder = tmp_path / "fixed_openvino_model"
    shutil.copytree(next(use_cache.iterdir()), folder)
    meta = folder / "metadata.yaml"
    meta.write_text(meta.read_text().replace("dynamic: true", "dynamic: false"))
    assert not runtime.read_info(next(folder.glob("*.xml"))).dynamic
    with pytest.raises(ValueError, match="exported at"):
        Detector(folder, options=DetectOptions(imgsz=320))
    det = Detector(folder, options=DetectOptions(imgsz=640, batch=4))
    assert det.model.batch == 1  # the exported batch, whatever was asked
    assert os.path.basename(str(det.weights)).endswith(".xml")
