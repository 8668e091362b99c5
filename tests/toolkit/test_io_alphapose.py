"""AlphaPose / OpenPifPaf / mmpose results (``toolkit.io.results``): counts and coordinates
against the source files, frames of a video or an image folder, no ground truth.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from toolkit import io as tio
from toolkit import layout
from toolkit.dataset import Dataset
from toolkit.errors import InputError
from toolkit.io.results import read_results

FORMATS = Path(__file__).resolve().parents[1] / "data" / "formats"
W, H = 64, 48


def write_image(path: Path, w: int = W, h: int = H) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((h, w, 3), 80, np.uint8))


def make_video(path: Path, n: int = 12) -> Path:
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (W, H))
    assert vw.isOpened()
    for i in range(n):
        img = np.zeros((H, W, 3), np.uint8)
        cv2.rectangle(img, (2 + 3 * i, 10), (12 + 3 * i, 30), (255, 255, 255), -1)
        vw.write(img)
    vw.release()
    return path


@pytest.fixture
def alphapose() -> list[dict]:
    return json.loads((FORMATS / "alphapose" / "alphapose-results.json").read_text())


def test_format_is_detected_over_coco_results():
    assert tio.detect_format(FORMATS / "alphapose" / "alphapose-results.json") == "results"
    assert tio.detect_format(FORMATS / "openpifpaf") == "results"
    assert tio.detect_format(FORMATS / "mmpose" / "results_strike.json") == "results"


def test_alphapose_with_its_video(tmp_path, alphapose):
    video = make_video(tmp_path / "strike.mp4")
    res = read_results(FORMATS / "alphapose" / "alphapose-results.json", video=video)
    ds = res.dataset
    # 12 people on 11 frames; frames in natural order with the index from the name.
    assert len(ds) == len(alphapose) == 12
    assert ds.images["frame_index"].tolist() == list(range(11))
    assert ds.images["file_name"].tolist()[:3] == [
        "strike/000000.jpg",
        "strike/000001.jpg",
        "strike/000002.jpg",
    ]
    assert ds.videos[0]["frame_count"] == 12 and ds.videos[0]["width"] == W
    # Coordinates, person scores and tracks exactly as in the source.
    fi = {
        f"{int(fr)}.jpg": i for i, fr in zip(ds.images["id"], ds.images["frame_index"], strict=True)
    }
    for a in alphapose:
        rows = np.flatnonzero(ds.annotations["image_id"].to_numpy() == fi[a["image_id"]])
        src = np.array(a["keypoints"]).reshape(17, 3)
        row = next(r for r in rows if ds.annotations["score"].iat[r] == a["score"])
        seen = src[:, 2] > 0
        np.testing.assert_allclose(ds.keypoints[row, :17][seen, :2], src[seen, :2])
        np.testing.assert_allclose(ds.scores[row, :17], np.clip(src[:, 2], 0, 1).astype(np.float32))
        np.testing.assert_allclose(ds.bboxes[row], a["box"])
        assert ds.annotations["track_id"].iat[row] == a["idx"][0]
    # Scores above 1 are confidences, not refused: the originals are kept.
    assert np.nanmax(ds.scores) <= 1
    over = [a for a in alphapose if max(a["keypoints"][2::3]) > 1]
    assert over and any("keypoint scores range" in n for n in res.notes)
    # The stick is missing; points the tool did not see are missing and not 'predicted'.
    assert (ds.keypoints[:, layout.GRIP :, 2] == 0).all()
    assert (ds.source[:, layout.GRIP :] == layout.IMPORTED).all()
    unseen = ds.keypoints[:, :17, 2] == 0
    assert unseen.sum() == 2  # the second person's ankles
    assert (ds.source[:, :17][unseen] == layout.IMPORTED).all()
    assert (ds.source[:, :17][~unseen] == layout.PREDICTED).all()


def test_alphapose_with_an_image_folder_and_save(tmp_path, alphapose):
    frames = tmp_path / "frames"
    for a in alphapose:
        write_image(frames / a["image_id"])
    src = tmp_path / "out" / "alphapose-results.json"
    src.parent.mkdir()
    shutil.copy(FORMATS / "alphapose" / "alphapose-results.json", src)
    with pytest.raises(InputError, match=r"--images DIR") as err:
        tio.read(src)  # images are not beside the results
    assert "0.jpg" in str(err.value) and err.value.line == 1
    res = tio.import_dataset(src, tmp_path / "ds", images=frames)
    ds = Dataset.load(tmp_path / "ds")
    assert ds.images["file_name"].tolist() == [f"{i}.jpg" for i in range(11)]
    assert ds.image_path("10.jpg").is_file() and ds.images["width"].iat[0] == W
    assert len(ds) == 12 and res.skipped == []
    kept = ds.annotations["extra"].tolist()
    over = [e for e in kept if e and "source_keypoint_scores" in e]
    assert over and max(max(e["source_keypoint_scores"]) for e in over) > 1
    assert (ds.source[ds.keypoints[..., 2] > 0] == layout.PREDICTED).all()


def test_round_trip_through_coco_export(tmp_path, alphapose):
    """Export to COCO and read it back: the same points and boxes."""
    frames = tmp_path / "frames"
    for a in alphapose:
        write_image(frames / a["image_id"])
    ds = read_results(FORMATS / "alphapose" / "alphapose-results.json", images=frames).dataset
    out = tio.write(ds, "coco", tmp_path / "c.json")
    back = tio.read(out, "coco", images=frames).dataset
    assert len(back) == len(ds)
    np.testing.assert_allclose(
        np.nan_to_num(back.keypoints[:, :17]), np.nan_to_num(ds.keypoints[:, :17])
    )
    np.testing.assert_allclose(back.bboxes, ds.bboxes)


def test_integer_image_ids_are_frame_numbers(tmp_path, alphapose):
    video = make_video(tmp_path / "v.mp4")
    for a in alphapose:
        a["image_id"] = int(a["image_id"].split(".")[0])
    src = tmp_path / "r.json"
    src.write_text(json.dumps(alphapose))
    ds = read_results(src, video=video).dataset
    assert ds.images["frame_index"].tolist() == list(range(11))
    frames = tmp_path / "coco_named"
    for i in range(11):
        write_image(frames / f"{i:012d}.jpg")
    ds = read_results(src, images=frames).dataset
    assert ds.images["file_name"].tolist()[10] == f"{10:012d}.jpg"
    write_image(frames / "frame_3.png")  # two names now carry the number 3
    with pytest.raises(InputError, match="carries the number 3 in .*found several"):
        read_results(src, images=frames)


def test_frame_beyond_the_video_names_file_and_line(tmp_path, alphapose):
    video = make_video(tmp_path / "v.mp4", n=5)
    with pytest.raises(InputError, match=r"0\.\.4 of v\.mp4") as err:
        read_results(FORMATS / "alphapose" / "alphapose-results.json", video=video)
    assert err.value.path.name == "alphapose-results.json" and err.value.line == 1


def test_bad_entries(tmp_path, alphapose):
    alphapose[3]["keypoints"] = alphapose[3]["keypoints"][:-1]
    src = tmp_path / "r.json"
    src.write_text(json.dumps(alphapose, indent=1))
    video = make_video(tmp_path / "v.mp4")
    with pytest.raises(InputError, match=r"'\[3\]\.keypoints'.*multiple of 3") as err:
        read_results(src, video=video)
    assert err.value.line is not None and err.value.line > 1
    res = read_results(src, video=video, skip_bad=True)
    assert len(res.skipped) == 1 and len(res.dataset.images) == 10  # frame 3 left out
    alphapose[3]["keypoints"] = [0.0, 0.0, 0.5] * 33  # BlazePose-33
    src.write_text(json.dumps(alphapose))
    with pytest.raises(InputError, match="BlazePose"):
        read_results(src, video=video)


def test_halpe_26_keeps_the_coco_body(tmp_path, alphapose):
    for a in alphapose:
        a["keypoints"] = a["keypoints"] + [1.0, 2.0, 0.9] * 9
    src = tmp_path / "r.json"
    src.write_text(json.dumps(alphapose))
    res = read_results(src, video=make_video(tmp_path / "v.mp4"))
    assert any("Halpe-26" in n and "other 9 dropped" in n for n in res.notes)
    first = np.array(alphapose[0]["keypoints"][:51]).reshape(17, 3)
    np.testing.assert_allclose(res.dataset.keypoints[0, :17, :2], first[:, :2])


def test_openpifpaf_folder_in_natural_order(tmp_path):
    frames = tmp_path / "frames"
    for n in (1, 2, 10):
        write_image(frames / f"frame_{n}.jpg")
    res = read_results(FORMATS / "openpifpaf", images=frames)
    ds = res.dataset
    assert ds.images["file_name"].tolist() == ["frame_1.jpg", "frame_2.jpg", "frame_10.jpg"]
    per_image = [ds.annotations["image_id"].tolist().count(i) for i in ds.images["id"]]
    assert per_image == [0, 1, 2]
    src = json.loads((FORMATS / "openpifpaf" / "frame_10.jpg.predictions.json").read_text())
    rows = np.flatnonzero(ds.annotations["image_id"].to_numpy() == 3)
    for row, p in zip(rows, src, strict=True):
        k = np.array(p["keypoints"]).reshape(17, 3)
        seen = k[:, 2] > 0
        np.testing.assert_allclose(ds.keypoints[row, :17][seen, :2], k[seen, :2])
        assert not seen[1] and ds.keypoints[row, 1, 2] == 0  # 0, 0, 0: missing
        np.testing.assert_allclose(ds.bboxes[row], p["bbox"])
        assert ds.annotations["score"].iat[row] == p["score"]


def test_mmpose_video_predictions(tmp_path):
    src = FORMATS / "mmpose" / "results_strike.json"
    doc = json.loads(src.read_text())
    ds = read_results(src, video=make_video(tmp_path / "strike.mp4")).dataset
    assert ds.images["frame_index"].tolist() == [0, 1, 2]  # frame_id counts from 1
    inst = doc["instance_info"][1]["instances"][0]
    np.testing.assert_allclose(ds.keypoints[1, :17, :2], np.array(inst["keypoints"]))
    np.testing.assert_allclose(ds.scores[1, :17], np.array(inst["keypoint_scores"], np.float32))
    x1, y1, x2, y2 = inst["bbox"][0]
    np.testing.assert_allclose(ds.bboxes[1], [x1, y1, x2 - x1, y2 - y1])


def test_cli_import_results(tmp_path):
    from click.testing import CliRunner

    from toolkit.cli import main

    video = make_video(tmp_path / "strike.mp4")
    res = CliRunner().invoke(
        main,
        [
            "import",
            str(FORMATS / "alphapose" / "alphapose-results.json"),
            "--video",
            str(video),
            "--out",
            str(tmp_path / "ds"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "(results)" in res.output and "annotations: 12" in res.output
    res = CliRunner().invoke(
        main,
        [
            "import",
            str(FORMATS / "alphapose" / "alphapose-results.json"),
            "--out",
            str(tmp_path / "ds2"),
        ],
    )
    assert res.exit_code == 2
    assert "--images DIR" in res.output and "--out" not in res.output.split("Example:")[0]
    assert "Example: toolkit import alphapose-results.json --video" in res.output


def test_real_detector_output_on_a_real_video_in_alphapose_shape(realdata, tmp_path):
    """Tfjs' real per-frame keypoints of pose_1.mp4, written as AlphaPose writes a video's
    results (string ids in AlphaPose's file order 0, 1, 10, 100, ..., scores up to 1.02).
    """
    frames = json.loads((realdata / "tfjs-models" / "pose_1.json").read_text())
    names = list(layout.COCO_KEYPOINTS)
    rng = np.random.default_rng(1)
    results = []
    for i in sorted(range(len(frames)), key=str):
        flat = []
        for n in names:
            flat += [frames[i][n]["x"], frames[i][n]["y"], float(rng.uniform(0.63, 1.02))]
        results.append({"image_id": f"{i}.jpg", "category_id": 1, "keypoints": flat, "score": 2.7})
    src = tmp_path / "alphapose-results.json"
    src.write_text(json.dumps(results))
    video = realdata / "tfjs-models" / "pose_1.mp4"
    ds = tio.import_dataset(src, tmp_path / "ds", video=video).dataset
    assert len(ds.images) == len(ds) == 120
    assert ds.images["frame_index"].tolist() == list(range(120))
    want = np.array([[[f[n]["x"], f[n]["y"]] for n in names] for f in frames])
    np.testing.assert_allclose(ds.keypoints[:, :17, :2], want)
    # On disk, points a program made are kept to 1/1000 px (the dataset file's rule).
    saved = Dataset.load(tmp_path / "ds")
    np.testing.assert_allclose(saved.keypoints[:, :17, :2], want, atol=5e-4, rtol=0)
    assert ds.videos[0]["width"] == 576


def test_mmpose_pred_out_dir_files_name_their_image_by_stem(tmp_path):
    """Mmpose's Inferencer(pred_out_dir=...) writes <image stem>.json per image."""
    out = tmp_path / "preds"
    out.mkdir()
    kp = [[10.0 + k, 20.0 + k] for k in range(17)]
    person = {
        "keypoints": kp,
        "keypoint_scores": [0.9] * 16 + [0.2],
        "bbox": [[5.0, 6.0, 40.0, 44.0]],
        "bbox_score": 0.8,
    }
    (out / "shot_10.json").write_text(json.dumps([person]))
    (out / "shot_9.json").write_text("[]")
    images = tmp_path / "imgs"
    write_image(images / "shot_9.png")
    write_image(images / "shot_10.png")
    assert tio.detect_format(out) == "results"
    ds = tio.read(out, images=images).dataset
    assert ds.images["file_name"].tolist() == ["shot_9.png", "shot_10.png"]
    assert len(ds) == 1 and ds.annotations["image_id"].iat[0] == 2
    np.testing.assert_allclose(ds.keypoints[0, :17, :2], kp)
    assert ds.keypoints[0, 16, 2] == 1 and ds.keypoints[0, 0, 2] == 2  # 0.2 < 0.5: uncertain
    np.testing.assert_allclose(ds.bboxes[0], [5, 6, 35, 38])
    assert ds.annotations["score"].iat[0] == 0.8


def test_openpifpaf_video_json_lines(tmp_path):
    """openpifpaf.video --json-output: one {"frame", "predictions"} object a line."""
    src = FORMATS / "openpifpaf_video" / "strike.json"
    lines = [json.loads(x) for x in src.read_text().splitlines()]
    assert tio.detect_format(src) == "results"
    ds = read_results(src, video=make_video(tmp_path / "strike.mp4")).dataset
    assert ds.images["frame_index"].tolist() == [0, 1, 2, 10]
    assert len(ds) == sum(len(x["predictions"]) for x in lines) == 5
    for frame in lines:
        img = int(ds.images["id"][ds.images["frame_index"] == frame["frame"]].iloc[0])
        rows = np.flatnonzero(ds.annotations["image_id"].to_numpy() == img)
        for row, p in zip(rows, frame["predictions"], strict=True):
            k = np.array(p["keypoints"]).reshape(17, 3)
            np.testing.assert_allclose(ds.keypoints[row, :17, :2], k[:, :2])
            np.testing.assert_allclose(ds.scores[row, :17], k[:, 2].astype(np.float32))
    # An error names the line of the frame it is on.
    bad = tmp_path / "bad.json"
    text = src.read_text().splitlines()
    text[2] = text[2].replace('"keypoints":[', '"keypoints":["x",', 1)
    bad.write_text("\n".join(text) + "\n")
    with pytest.raises(InputError, match=r"'\[2\]\.predictions\[0\]\.keypoints\[0\]'") as err:
        read_results(bad, video=make_video(tmp_path / "v.mp4"))
    assert err.value.line == 3
