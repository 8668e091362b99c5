"""toolkit evaluate: OKS AP/AR through pycocotools, pixel error and PCK."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from click.testing import CliRunner

from toolkit import layout
from toolkit.commands.evaluate_cmd import evaluate_cmd
from toolkit.dataset import Dataset
from toolkit.evaluate import evaluate, format_report, oks


def _people(n_images=6, per_image=2, stick=True, seed=0, video=False):
    """Images with people ~100 px tall, side by side, all points labelled."""
    rng = np.random.default_rng(seed)
    images, anns, kps = [], [], []
    for i in range(n_images):
        rec = {"id": i + 1, "file_name": f"img_{i:02d}.jpg", "width": 640, "height": 480}
        if video:
            rec.update(file_name=f"clip/{i * 5:06d}.jpg", video_id=1, frame_index=i * 5)
        images.append(rec)
        for p in range(per_image):
            kp = np.zeros((layout.NUM_KEYPOINTS, 3))
            kp[:, 0] = 100 + 250 * p + rng.uniform(0, 60, layout.NUM_KEYPOINTS)
            kp[:, 1] = 150 + rng.uniform(0, 100, layout.NUM_KEYPOINTS)
            kp[:, 2] = 2
            if not stick:
                kp[layout.GRIP :] = 0
            kps.append(kp)
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "score": 0.9})
    videos = [{"id": 1, "file_name": "clip.mp4", "fps": 30, "frame_count": 40}] if video else []
    return Dataset.from_records(images, anns, np.array(kps), videos=videos)


def _shifted(ds, dx, dy):
    out = ds.copy()
    out.keypoints[..., 0] += dx
    out.keypoints[..., 1] += dy
    return out


def test_identical_datasets_score_perfectly():
    gt = _people()
    rep = evaluate(gt, gt.copy())
    assert rep["keypoints"] == 19
    assert rep["oks"]["AP"] == pytest.approx(1.0)
    assert rep["oks"]["AR"] == pytest.approx(1.0)
    assert rep["overall"]["median_px"] == 0 and rep["overall"]["mean_px"] == 0
    assert rep["overall"]["pck_bbox"] == 1.0
    assert rep["people"] == {
        "gt": 12,
        "pred": 12,
        "matched": 12,
        "gt_unmatched": 0,
        "pred_unmatched": 0,
    }
    assert [r["name"] for r in rep["per_keypoint"]] == list(layout.KEYPOINT_NAMES)
    assert rep["per_keypoint"][layout.TIP]["sigma"] == pytest.approx(layout.OKS_SIGMAS[layout.TIP])


def test_perturbed_copy_lowers_ap_and_measures_the_shift():
    gt = _people()
    rep = evaluate(gt, _shifted(gt, 3.0, 4.0))  # every point 5 px off
    assert rep["oks"]["AP"] < 0.9
    for row in rep["per_keypoint"]:
        assert row["median_px"] == pytest.approx(5.0)
        assert row["mean_px"] == pytest.approx(5.0)
    assert rep["overall"]["median_px"] == pytest.approx(5.0)
    # PCK: 5 px is inside 0.1 of a ~110 px box, outside 0.02 of it
    assert evaluate(gt, _shifted(gt, 3.0, 4.0), pck=0.1)["overall"]["pck_bbox"] == 1.0
    assert evaluate(gt, _shifted(gt, 3.0, 4.0), pck=0.02)["overall"]["pck_bbox"] == 0.0
    far = evaluate(gt, _shifted(gt, 12.0, 16.0))
    assert far["oks"]["AP"] < rep["oks"]["AP"]
    assert far["overall"]["mean_px"] == pytest.approx(20.0)


def test_oks_matches_the_coco_formula():
    gt = np.zeros((1, 2, 2))
    pred = np.array([[[3.0, 4.0], [0.0, 0.0]]])
    sig = np.array([0.05, 0.1])
    area = np.array([400.0])
    expect = (np.exp(-25 / (2 * 400 * (2 * 0.05) ** 2)) + 1.0) / 2
    assert oks(gt, np.ones((1, 2), bool), pred, area, sig)[0] == pytest.approx(expect)


def test_missing_predictions_and_people_count_as_misses():
    gt = _people()
    pred = gt.copy()
    pred.keypoints[:, layout.TIP] = [np.nan, np.nan, 0]
    rep = evaluate(gt, pred)
    tip = rep["per_keypoint"][layout.TIP]
    assert tip["missed"] == tip["n"] == 12 and tip["pck_bbox"] == 0.0
    assert rep["oks"]["AP"] < 1.0
    # drop one person's prediction entirely
    keep = np.arange(1, len(gt))
    fewer = Dataset.from_records(
        gt.images.drop(columns="extra").to_dict("records"),
        gt.annotations.iloc[keep][["id", "image_id", "score"]].to_dict("records"),
        gt.keypoints[keep],
    )
    rep2 = evaluate(gt, fewer)
    assert rep2["people"]["gt_unmatched"] == 1
    assert rep2["oks"]["AR"] < 1.0


def test_body_only_when_neither_has_a_stick():
    gt = _people(stick=False)
    rep = evaluate(gt, _shifted(gt, 1.0, 0.0))
    assert rep["keypoints"] == 17 and len(rep["per_keypoint"]) == 17
    assert evaluate(gt, gt, keypoints="all")["keypoints"] == 19
    assert evaluate(_people(), _people(), keypoints="body")["keypoints"] == 17
    with pytest.raises(ValueError, match="keypoints"):
        evaluate(gt, gt, keypoints="some")


def test_video_frames_match_by_video_and_frame_not_ids():
    gt = _people(video=True)
    pred = gt.copy()
    pred.videos = [{"id": 9, "file_name": "clip.mp4", "fps": 30, "frame_count": 40}]
    pred.images["video_id"] = 9
    pred.images["file_name"] = [f"other/{i}.jpg" for i in range(len(pred.images))]
    pred.images["id"] = pred.images["id"] + 100
    pred.annotations["image_id"] = pred.annotations["image_id"] + 100
    pred = pred.copy()
    rep = evaluate(gt, pred.copy())
    assert rep["frames"]["matched"] == 6
    assert rep["oks"]["AP"] == pytest.approx(1.0)
    # a prediction run over every 2nd frame only is judged on those frames
    half = Dataset.from_records(
        gt.images.drop(columns="extra").iloc[::2].to_dict("records"),
        gt.annotations[gt.annotations["image_id"] % 2 == 1][["id", "image_id", "score"]].to_dict(
            "records"
        ),
        gt.keypoints[(gt.annotations["image_id"] % 2 == 1).to_numpy()],
        videos=gt.videos,
    )
    rep = evaluate(gt, half)
    assert rep["frames"]["matched"] == 3 and rep["oks"]["AP"] == pytest.approx(1.0)


def test_cli_json_and_table(tmp_path):
    gt = _people()
    gt.save(tmp_path / "gt")
    _shifted(gt, 3.0, 4.0).save(tmp_path / "pred")
    runner = CliRunner()
    res = runner.invoke(
        evaluate_cmd,
        [
            str(tmp_path / "gt"),
            str(tmp_path / "pred"),
            "--json",
            "--out",
            str(tmp_path / "eval.json"),
        ],
    )
    assert res.exit_code == 0, res.output
    rep = orjson.loads(res.stdout)
    assert rep["overall"]["median_px"] == pytest.approx(5.0)
    assert orjson.loads((tmp_path / "eval.json").read_bytes()) == rep
    res = runner.invoke(evaluate_cmd, [str(tmp_path / "gt"), str(tmp_path / "pred")])
    assert res.exit_code == 0 and "stick_tip" in res.output and "AP" in res.output
    assert format_report(rep).splitlines()[0].startswith("frames: 6 matched")
    res = runner.invoke(evaluate_cmd, [str(tmp_path / "gt"), str(tmp_path / "nope")])
    assert res.exit_code == 2 and "dataset.json" in res.output
