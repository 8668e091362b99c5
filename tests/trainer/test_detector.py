"""trainer detector: a tiny 19-keypoint YOLO pose fine-tune, offline, and its run folder."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import orjson
import pytest
import yaml
from click.testing import CliRunner

from toolkit import layout
from toolkit.dataset import Dataset
from trainer.commands.detector_cmd import detector_cmd


def _tiny_dataset(root: Path, n: int = 6, size: int = 96) -> Path:
    """``n`` drawn stick figures with all 19 points labelled."""
    media = root / "media"
    media.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images, anns, kps = [], [], []
    for i in range(n):
        img = np.full((size, size, 3), 40, np.uint8)
        kp = np.zeros((layout.NUM_KEYPOINTS, 3))
        kp[:, 0] = rng.uniform(20, 76, layout.NUM_KEYPOINTS)
        kp[:, 1] = rng.uniform(10, 86, layout.NUM_KEYPOINTS)
        kp[:, 2] = 2
        for a, b in layout.SKELETON:
            cv2.line(
                img, tuple(map(int, kp[a, :2])), tuple(map(int, kp[b, :2])), (200, 200, 200), 2
            )
        cv2.imwrite(str(media / f"im{i}.jpg"), img)
        images.append({"id": i + 1, "file_name": f"im{i}.jpg", "width": size, "height": size})
        anns.append({"id": i + 1, "image_id": i + 1})
        kps.append(kp)
    ds = Dataset.from_records(images, anns, np.array(kps), media_root=str(media.absolute()))
    return ds.save(root / "ds")


def test_missing_weights_is_a_clear_usage_error(tmp_path):
    ds = _tiny_dataset(tmp_path, n=1)
    res = CliRunner().invoke(
        detector_cmd,
        [str(ds), "--out", str(tmp_path / "run"), "--weights", str(tmp_path / "none.pt")],
    )
    assert res.exit_code == 2
    assert "none.pt does not exist" in res.output and "Nothing is downloaded" in res.output
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_one_epoch_run_writes_a_19_keypoint_model_and_report(tmp_path):
    from toolkit import ultra
    from toolkit.detect import DetectOptions, detect

    ds = _tiny_dataset(tmp_path)
    run = tmp_path / "run"
    args = [
        str(ds),
        "--out",
        str(run),
        "--epochs",
        "1",
        "--imgsz",
        "64",
        "--batch",
        "6",
        "--device",
        "auto",
        "--no-plots",
    ]
    res = CliRunner().invoke(detector_cmd, args)
    assert res.exit_code == 0, res.output
    for name in (
        "best.pt",
        "config.yaml",
        "metrics.json",
        "metrics.csv",
        "evaluate.json",
        "train/weights/last.pt",
    ):
        assert (run / name).is_file(), name
    assert not list(tmp_path.glob(".run*"))  # the staging folder was renamed into place
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["epochs"] == 1 and cfg["imgsz"] == 64 and cfg["start"] == "yolo11n-pose.yaml"
    assert cfg["device_used"] in ("cpu", "0")
    metrics = orjson.loads((run / "metrics.json").read_bytes())
    assert metrics["ultralytics"]["epoch"] == 1
    assert set(metrics["evaluate"]["oks"]) >= {"AP", "AR"}
    rep = orjson.loads((run / "evaluate.json").read_bytes())
    assert rep["keypoints"] == 19 and rep["frames"]["matched"] == 6
    model = ultra.yolo(run / "best.pt")
    assert list(model.model.yaml["kpt_shape"]) == [19, 3]
    # the trained 19-keypoint model drives `toolkit detect` directly (stick from the model)
    pred = detect(
        tmp_path / "media",
        run / "best.pt",
        options=DetectOptions(imgsz=64, conf=0.0001),
        progress=False,
    )
    assert len(pred) > 0
    assert set(a["stick"] for a in pred.annotations["extra"]) == {"model"}
    assert np.nanmin(pred.scores) >= 0 and np.nanmax(pred.scores) <= 1
    assert np.isfinite(pred.scores[:, layout.TIP]).all()
    # an existing run is refused without --overwrite
    res = CliRunner().invoke(detector_cmd, args)
    assert res.exit_code == 2 and "already exists" in res.output
