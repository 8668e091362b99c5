"""The synthetic Arnis sample generator (toolkit/synth.py) and the committed sample set."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from toolkit import layout, synth
from toolkit.dataset import Dataset
from toolkit.schema import validate

TINY = {
    "per_class": 1,
    "subjects": 2,
    "videos": 1,
    "frames_per_video": 40,
    "seed": 3,
    "image_size": 160,
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return synth.generate(tmp_path_factory.mktemp("tiny") / "s", **TINY)


@pytest.fixture(scope="module")
def medium(tmp_path_factory) -> Path:
    return synth.generate(
        tmp_path_factory.mktemp("medium") / "s",
        per_class=5,
        subjects=4,
        videos=3,
        frames_per_video=120,
        seed=11,
    )


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _read_label(path: Path) -> np.ndarray:
    vals = np.array(path.read_text().split(), dtype=float)
    assert len(vals) == 5 + 3 * layout.NUM_KEYPOINTS, path
    return vals


def _stick_len(kp: np.ndarray) -> np.ndarray:
    return np.linalg.norm(kp[..., layout.TIP, :2] - kp[..., layout.GRIP, :2], axis=-1)


# ------------------------------------------------------------------------------ generation
def test_generation_is_deterministic_and_complete(tiny, tmp_path):
    again = synth.generate(tmp_path / "again", **TINY)
    assert _digest(again) == _digest(tiny)
    other = synth.generate(tmp_path / "other", **{**TINY, "seed": 4})
    assert _digest(other)["truth.csv"] != _digest(tiny)["truth.csv"]
    images = sorted((tiny / "images").rglob("*.jpg"))
    assert len(images) == 12 * 2
    assert {p.parent.name for p in images} == set(synth.STANCES)
    assert {p.name for p in images} == {"s01_000.jpg", "s02_000.jpg"}
    for img in images:
        assert (tiny / "labels" / img.parent.name / f"{img.stem}.txt").is_file()
        assert cv2.imread(str(img)).shape == (160, 160, 3)
    cap = cv2.VideoCapture(str(tiny / "videos" / "s01_drill.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 40
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(15)
    ok, frame = cap.read()
    cap.release()
    assert ok and frame.shape == (160, 160, 3)


def test_label_files_parse_with_values_in_range(tiny):
    truth = synth.load_truth(tiny)
    still = truth[truth["video"] == ""]
    for _, row in still.iterrows():
        vals = _read_label(tiny / "labels" / row["file_name"].replace(".jpg", ".txt"))
        assert vals[0] == 0
        assert np.all((vals[1:5] > 0) & (vals[1:5] <= 1))
        kp = vals[5:].reshape(19, 3)
        assert np.all((kp[:, :2] >= 0) & (kp[:, :2] <= 1))
        assert set(np.unique(kp[:, 2])) <= {0.0, 1.0, 2.0}
        assert (kp[layout.TIP] == 0).all() == (row["error_kind"] == "tip_missing")
        # the flags are written the way users' files have them
        text = (tiny / "labels" / row["file_name"].replace(".jpg", ".txt")).read_text()
        assert " 2.000000" in text
    video = truth[truth["video"] == "s01_drill"]
    files = sorted((tiny / "videos" / "s01_drill_labels").glob("*.txt"))
    present = {int(p.stem.rsplit("_", 1)[1]) - 1 for p in files}
    assert present == set(video.loc[video["error_kind"] != "no_detection", "frame_index"])
    assert 0 < len(video) - len(present) < 5
    for p in files:
        kp = _read_label(p)[5:].reshape(19, 3)
        assert np.all((kp >= 0) & (kp <= 1))
        body_conf = kp[:17, 2]
        assert np.all((body_conf > 0) & (body_conf < 1))  # confidences, not flags
    stances = (tiny / "videos" / "s01_drill_stances.csv").read_text().splitlines()
    assert stances[0] == "file,stance,subject"
    assert stances[1].startswith("s01_drill/000000.jpg,")
    assert len(stances) == 41
    labels = (tiny / "labels.csv").read_text().splitlines()
    assert labels[0] == "file,stance,subject" and len(labels) == 25
    assert "forward_high/s01_000.jpg,forward_high,s01" in labels


def test_taxonomy_and_data_yaml(tiny):
    import json

    import yaml

    doc = json.loads((tiny / "taxonomy.json").read_text())
    validate(doc, "taxonomy")
    assert [s["name"] for s in doc["stances"]] == list(synth.STANCES)
    assert len(doc["stances"]) == 12
    assert {(s["family"], s["chamber"]) for s in doc["stances"]} == {
        (f, c) for f in synth.FAMILIES for c in synth.CHAMBERS
    }
    data = yaml.safe_load((tiny / "data.yaml").read_text())
    assert data["kpt_shape"] == [19, 3]
    assert data["flip_idx"] == list(layout.FLIP_IDX)
    assert data["kpt_names"][0] == list(layout.KEYPOINT_NAMES)
    assert data["names"] == {0: "person"} and data["path"] is None


def test_subjects_proportions_and_handedness():
    subs = synth.make_subjects(8)
    assert [s.name for s in subs] == [f"s{i:02d}" for i in range(1, 9)]
    assert sum(s.handedness == "left" for s in subs) >= 2
    ratios = [s.stick_length / s.forearm for s in subs]
    assert all(2.5 - 1e-9 <= r <= 3.0 + 1e-9 for r in ratios)
    heights = [s.height for s in subs]
    assert max(heights) - min(heights) > 0.2
    assert len({round(s.thigh / s.shin, 4) for s in subs}) == 8


# ------------------------------------------------------------------------------ errors
def test_error_rates_and_geometry(medium):
    truth = synth.load_truth(medium)
    still = truth[truth["video"] == ""].reset_index(drop=True)
    n = len(still)
    assert n == 5 * 4 * 12
    counts = Counter(still["error_kind"])
    for kind, rate in synth.ERROR_RATES.items():
        assert abs(counts[kind] - rate * n) <= 1, (kind, counts[kind])
    assert abs(sum(counts[k] for k in synth.ERROR_RATES) / n - 0.30) < 0.01
    clean = synth.truth_array(still)
    size = 320
    lab = np.stack(
        [_read_label(medium / "labels" / f.replace(".jpg", ".txt"))[5:] for f in still["file_name"]]
    ).reshape(n, 19, 3)
    lab[..., :2] *= size
    kinds = still["error_kind"].to_numpy()
    # every label is the truth plus 1-2 px jitter, except the stick points of an error
    body = np.linalg.norm(lab[:, :17, :2] - clean[:, :17, :2], axis=-1)
    assert 1.0 < body.mean() < 2.5 and body.max() < 12
    stick_dev = np.linalg.norm(lab[:, 17:, :2] - clean[:, 17:, :2], axis=-1)
    assert stick_dev[kinds == "none"].max() < 12
    ratio = _stick_len(lab) / _stick_len(clean)
    long_enough = _stick_len(clean) > 20  # angle and ratio need a visible stick
    assert np.all(ratio[(kinds == "too_short") & long_enough] < 0.72)
    assert np.all(ratio[(kinds == "too_long") & long_enough] > 1.3)
    assert np.all(
        (ratio[(kinds == "none") & long_enough] > 0.8)
        & (ratio[(kinds == "none") & long_enough] < 1.25)
    )
    v_lab = lab[:, layout.TIP, :2] - lab[:, layout.GRIP, :2]
    v_true = clean[:, layout.TIP, :2] - clean[:, layout.GRIP, :2]
    cos = (v_lab * v_true).sum(-1) / (np.linalg.norm(v_lab, axis=-1) * _stick_len(clean))
    angle = np.degrees(np.arccos(np.clip(cos, -1, 1)))
    assert np.all(angle[(kinds == "wrong_angle") & long_enough] > 25)
    swap = kinds == "swap"
    assert np.allclose(lab[swap, layout.GRIP, :2], clean[swap, layout.TIP, :2], atol=10)
    assert np.allclose(lab[swap, layout.TIP, :2], clean[swap, layout.GRIP, :2], atol=10)
    assert np.all(lab[kinds == "tip_missing", layout.TIP] == 0)
    assert np.all(stick_dev[kinds == "grip_off", 0] > 10)


def test_grip_off_moves_the_grip_away_from_the_hand():
    subs = synth.make_subjects(8)
    for i in range(40):
        sj = subs[i % 8]
        rng = np.random.default_rng(i)
        scene = synth.sample_image(sj, synth.STANCES[i % 12], "grip_off", rng)
        wrist = layout.L_WRIST if sj.handedness == "left" else layout.R_WRIST
        forearm_px = sj.forearm * scene.camera.scale
        dist = np.linalg.norm(scene.label[layout.GRIP, :2] - scene.truth[wrist, :2])
        assert dist > 0.5 * forearm_px, (i, dist, forearm_px)
        assert np.allclose(scene.label[layout.TIP, :2], scene.truth[layout.TIP, :2], atol=8)


def test_video_errors_persist_as_drift_episodes_and_spikes(medium):
    truth = synth.load_truth(medium)
    for stem, clip in truth[truth["video"] != ""].groupby("video"):
        kinds = clip.sort_values("frame_index")["error_kind"].to_numpy()
        runs, start = [], 0
        for f in range(1, len(kinds) + 1):
            if f == len(kinds) or kinds[f] != kinds[start]:
                runs.append((kinds[start], f - start))
                start = f
        err_runs = [(k, n) for k, n in runs if k not in ("none", "no_detection")]
        assert any(n >= 5 for _, n in err_runs), stem  # at least one drift episode
        assert all(n <= 20 for _, n in err_runs), stem
        assert any(n == 1 for _, n in err_runs), stem  # and isolated spikes
        assert 1 <= int((kinds == "no_detection").sum()) <= 6
        rows = clip.sort_values("frame_index").reset_index(drop=True)
        stances = (medium / "videos" / f"{stem}_stances.csv").read_text().splitlines()[1:]
        visited = [s.split(",")[1] for s in stances]
        changes = sum(a != b for a, b in zip(visited, visited[1:], strict=False))
        assert 2 <= changes <= 3
        assert rows["stance"].tolist() == visited


def test_drift_tip_moves_gradually(medium):
    truth = synth.load_truth(medium)
    clip = truth[truth["video"] != ""]
    stem = clip["video"].iloc[0]
    clip = clip[clip["video"] == stem].sort_values("frame_index")
    files = {
        int(p.stem.rsplit("_", 1)[1]) - 1: p
        for p in (medium / "videos" / f"{stem}_labels").glob("*.txt")
    }
    lab = np.full((len(clip), 19, 3), np.nan)
    for f, p in files.items():
        lab[f] = _read_label(p)[5:].reshape(19, 3)
    lab[..., :2] *= 320
    clean = synth.truth_array(clip)
    kinds = clip["error_kind"].to_numpy()
    dev = np.linalg.norm(lab[:, layout.TIP, :2] - clean[:, layout.TIP, :2], axis=-1)
    drift = np.flatnonzero(np.isin(kinds, ["wrong_angle", "too_short", "too_long"]))
    assert len(drift) >= 5
    assert np.nanmedian(dev[drift]) > 15
    assert np.nanmedian(dev[kinds == "none"]) < 4


# ------------------------------------------------------------------------------ geometry
def test_stick_is_rigid_and_never_longer_than_its_true_projection():
    subs = synth.make_subjects(8)
    for sj in subs:
        lengths, forearms = [], []
        for i, stance in enumerate(synth.STANCES):
            scene = synth.sample_image(sj, stance, "none", np.random.default_rng([7, i]))
            lengths.append(np.linalg.norm(scene.kp3d[layout.TIP] - scene.kp3d[layout.GRIP]))
            w, e = (
                (layout.L_WRIST, layout.L_ELBOW)
                if sj.handedness == "left"
                else (layout.R_WRIST, layout.R_ELBOW)
            )
            forearms.append(np.linalg.norm(scene.kp3d[w] - scene.kp3d[e]))
            proj = float(_stick_len(scene.truth))
            assert proj <= sj.stick_length * scene.camera.scale + 1e-6
            assert scene.foreshortened == (proj < 0.6 * sj.stick_length * scene.camera.scale)
            assert np.all((scene.truth[:, :2] >= 0) & (scene.truth[:, :2] < 320))
            # the weapon hand holds the grip
            assert np.linalg.norm(scene.kp3d[layout.GRIP] - scene.kp3d[w]) == pytest.approx(sj.hand)
        assert np.allclose(lengths, synth.STICK_LENGTH)
        assert np.allclose(forearms, sj.forearm)


def test_some_sticks_are_legitimately_foreshortened(medium):
    truth = synth.load_truth(medium)
    still = truth[truth["video"] == ""]
    rate = (still["foreshortened"] == 1).mean()
    assert 0.03 < rate < 0.4
    # foreshortening depends on the view, not on the label errors
    by_error = still.groupby(still["error_kind"] == "none")["foreshortened"].mean()
    assert abs(by_error[True] - by_error[False]) < 0.2


def test_left_handed_subjects_hold_the_stick_in_the_left_hand():
    subs = synth.make_subjects(8)
    for sj in subs:
        scene = synth.sample_image(sj, "horse_middle", "none", np.random.default_rng(0))
        g = scene.kp3d[layout.GRIP]
        d_left = np.linalg.norm(g - scene.kp3d[layout.L_WRIST])
        d_right = np.linalg.norm(g - scene.kp3d[layout.R_WRIST])
        assert (d_left < d_right) == (sj.handedness == "left")


def test_rendered_stick_is_dark_along_the_true_segment(tiny):
    truth = synth.load_truth(tiny)
    still = truth[truth["video"] == ""]
    clean = synth.truth_array(still)
    for (_, row), kp in zip(still.iterrows(), clean, strict=True):
        gray = cv2.imread(str(tiny / "images" / row["file_name"]), cv2.IMREAD_GRAYSCALE)
        g, t = kp[layout.GRIP, :2], kp[layout.TIP, :2]
        ts = np.linspace(0.1, 0.95, 25)[:, None]
        pts = np.round(g + (t - g) * ts).astype(int)
        on = gray[pts[:, 1], pts[:, 0]]
        assert np.mean(on < 100) >= 0.9, row["file_name"]
        # the stick is the only dark thing: dark pixels away from it are rare
        yy, xx = np.mgrid[0:160, 0:160]
        p = np.stack([xx, yy], -1).astype(float) - g
        seg = t - g
        u = np.clip((p @ seg) / max(seg @ seg, 1e-9), 0, 1)
        dist = np.linalg.norm(p - u[..., None] * seg, axis=-1)
        assert np.mean((gray < 100) & (dist > 4)) < 0.002, row["file_name"]


def test_stances_are_separable_but_not_trivially(medium):
    """A random forest on normalised clean 2D poses, leaving one subject out: far above chance
    (1/12), yet well short of perfect (within-class variation, unseen subjects, handedness).
    """
    from sklearn.ensemble import RandomForestClassifier

    truth = synth.load_truth(medium)
    still = truth[truth["video"] == ""]
    kp = synth.truth_array(still)[..., :2]
    centre = kp[:, [11, 12]].mean(1, keepdims=True)
    scale = np.linalg.norm(kp[:, [5, 6]].mean(1) - kp[:, [11, 12]].mean(1), axis=-1)
    x = ((kp - centre) / scale[:, None, None]).reshape(len(kp), -1)
    stance = still["stance"].to_numpy()
    subj = still["subject"].to_numpy()
    acc = {}
    for name, y in (
        ("stance", stance),
        ("family", np.array([s.split("_")[0] for s in stance])),
        ("chamber", np.array([s.split("_")[1] for s in stance])),
    ):
        pred = np.empty(len(y), dtype=object)
        for s in np.unique(subj):
            tr, te = subj != s, subj == s
            model = RandomForestClassifier(40, random_state=0).fit(x[tr], y[tr])
            pred[te] = model.predict(x[te])
        acc[name] = float((pred == y).mean())
    assert 0.45 < acc["stance"] < 0.95, acc
    assert 0.55 < acc["family"] < 0.97, acc
    assert acc["chamber"] > 0.85, acc


# ------------------------------------------------------------------------------ truth API
def test_truth_keypoints_align_to_a_dataset(tiny):
    truth = synth.load_truth(tiny)
    clean = synth.truth_array(truth)
    kinds_all = truth["error_kind"].to_numpy()
    det = np.flatnonzero(kinds_all != "no_detection")
    order = np.random.default_rng(0).permutation(det)
    images, anns = [], []
    for i, r in enumerate(order):
        row = truth.iloc[r]
        im = {"id": i + 1, "file_name": row["file_name"], "width": 160, "height": 160}
        if row["video"]:
            im |= {"video_id": 1, "frame_index": int(row["frame_index"])}
        images.append(im)
        anns.append({"id": i + 1, "image_id": i + 1})
    ds = Dataset.from_records(
        images,
        anns,
        np.zeros((len(order), 19, 3)),
        videos=[
            {
                "id": 1,
                "file_name": "videos/s01_drill.mp4",
                "fps": 15,
                "frame_count": 40,
                "width": 160,
                "height": 160,
            }
        ],
    )
    kp, kinds = synth.truth_keypoints(ds, tiny)
    assert kp.shape == (len(order), 19, 3) and kinds.shape == (len(order),)
    np.testing.assert_array_equal(kp, clean[order])
    np.testing.assert_array_equal(kinds, kinds_all[order])

    # video frames named otherwise still match on the video stem + frame index
    images2 = [
        dict(im, file_name=f"frame_{im['id']}.jpg") if "video_id" in im else im for im in images
    ]
    ds2 = Dataset.from_records(images2, anns, np.zeros((len(order), 19, 3)), videos=ds.videos)
    kp2, _ = synth.truth_keypoints(ds2, tiny)
    np.testing.assert_array_equal(kp2, kp)

    bad = Dataset.from_records(
        [{"id": 1, "file_name": "nope/x.jpg", "width": 1, "height": 1}],
        [{"id": 1, "image_id": 1}],
        np.zeros((1, 19, 3)),
    )
    with pytest.raises(ValueError, match="nope/x.jpg"):
        synth.truth_keypoints(bad, tiny)
    kp3, kinds3 = synth.truth_keypoints(bad, tiny, strict=False)
    assert np.isnan(kp3[..., :2]).all() and kinds3.tolist() == ["unknown"]


def test_apply_error_kinds():
    xy = np.zeros((19, 2))
    xy[layout.R_WRIST] = [0, 0]
    xy[layout.L_WRIST] = [50, 50]
    xy[layout.GRIP] = [3, 0]
    xy[layout.TIP] = [103, 0]
    out = synth.apply_error(xy, "too_short", 0.5, 30)
    assert out[layout.TIP].tolist() == [53, 0]
    out = synth.apply_error(xy, "wrong_angle", 90, 30)
    assert np.allclose(out[layout.TIP], [3, 100])
    out = synth.apply_error(xy, "grip_off", 1.0, 30, spread=0.0)
    assert np.allclose(out[layout.GRIP], [33, 0])
    out = synth.apply_error(xy, "swap", 0, 30)
    assert out[layout.GRIP].tolist() == [103, 0] and out[layout.TIP].tolist() == [3, 0]
    assert np.isnan(synth.apply_error(xy, "tip_missing", 0, 30)[layout.TIP]).all()
    with pytest.raises(ValueError, match="error kind"):
        synth.apply_error(xy, "bent", 0, 30)
    assert math.isclose(sum(synth.ERROR_RATES.values()), 0.30)


# ------------------------------------------------------------------------------ CLI + set
def test_samples_command_is_staged_and_refuses_overwrite(tmp_path):
    from toolkit.cli import main

    out = tmp_path / "set"
    args = [
        "samples",
        "--out",
        str(out),
        "--per-class",
        "1",
        "--subjects",
        "1",
        "--videos",
        "0",
        "--image-size",
        "96",
    ]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert len(list((out / "images").rglob("*.jpg"))) == 12
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2 and "--overwrite" in res.output
    res = CliRunner().invoke(main, [*args, "--overwrite", "--seed", "5"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["samples", "--out", str(tmp_path / "x"), "--per-class", "-1"])
    assert res.exit_code == 2
    assert not (tmp_path / "x").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["set"]  # no staging leftovers


def test_committed_sample_set(samples_root):
    truth = synth.load_truth(samples_root)
    still = truth[truth["video"] == ""]
    assert len(still) == 288
    assert sorted(truth.loc[truth["video"] != "", "video"].unique()) == [
        "s01_drill",
        "s03_drill",
        "s06_drill",
        "s07_drill",
    ]
    assert len(list((samples_root / "images").rglob("*.jpg"))) == 288
    assert len(list((samples_root / "labels").rglob("*.txt"))) == 288
    assert set(still["handedness"][still["subject"].isin(["s03", "s07"])]) == {"left"}
    size = sum(p.stat().st_size for p in samples_root.rglob("*") if p.is_file())
    assert size < 12e6


def test_committed_samples_import_and_align(samples_root):
    yolo = pytest.importorskip("toolkit.io.yolo")
    res = yolo.read_yolo(samples_root / "data.yaml", labels=samples_root / "labels.csv")
    ds = res.dataset
    assert len(ds) == 288 and set(ds.images["stance"]) == set(synth.STANCES)
    kp, kinds = synth.truth_keypoints(ds, samples_root)
    body = np.linalg.norm(ds.keypoints[:, :17, :2] - kp[:, :17, :2], axis=-1)
    assert np.nanmean(body) < 3
    tip_missing = kinds == "tip_missing"
    assert tip_missing.any() and np.isnan(ds.keypoints[tip_missing, layout.TIP, :2]).all()
    assert not np.isnan(ds.keypoints[~tip_missing, layout.TIP, :2]).any()
    vid = yolo.read_yolo(
        samples_root / "videos" / "s01_drill_labels",
        video=samples_root / "videos" / "s01_drill.mp4",
        labels=samples_root / "videos" / "s01_drill_stances.csv",
    ).dataset
    kp_v, kinds_v = synth.truth_keypoints(vid, samples_root)
    assert len(vid) == len(kp_v) and "no_detection" not in set(kinds_v)
    body = np.linalg.norm(vid.keypoints[:, :17, :2] - kp_v[:, :17, :2], axis=-1)
    assert np.nanmean(body) < 3


# ------------------------------------------------------------------------- randomised mode
RTINY = {
    "per_class": 1,
    "subjects": 2,
    "videos": 1,
    "frames_per_video": 20,
    "seed": 5,
    "randomise": True,
}


@pytest.fixture(scope="module")
def rtiny(tmp_path_factory) -> Path:
    return synth.generate(tmp_path_factory.mktemp("rtiny") / "s", **RTINY)


def test_randomised_is_deterministic_and_varies_image_size(rtiny, tmp_path):
    again = synth.generate(tmp_path / "again", **RTINY)
    assert _digest(again) == _digest(rtiny)
    other = synth.generate(tmp_path / "other", **{**RTINY, "seed": 6, "videos": 0})
    assert _digest(other)["labels.csv"] == _digest(rtiny)["labels.csv"]
    assert _digest(other)["truth.csv"] != _digest(rtiny)["truth.csv"]
    sizes = []
    for img in sorted((rtiny / "images").rglob("*.jpg")):
        h, w = cv2.imread(str(img)).shape[:2]
        assert h == w and h in synth.RANDOM_IMAGE_SIZES
        sizes.append(h)
    assert len(sizes) == 24 and len(set(sizes)) >= 3
    cap = cv2.VideoCapture(str(rtiny / "videos" / "s01_drill.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 20
    ok, frame = cap.read()
    cap.release()
    assert ok and frame.shape[0] == frame.shape[1] <= synth.RANDOM_VIDEO_MAX_SIZE


def test_randomised_truth_columns_errors_and_ranges(rtiny):
    truth = synth.load_truth(rtiny)
    assert list(truth.columns) == [*synth.TRUTH_COLUMNS, *synth.RANDOM_TRUTH_COLUMNS]
    assert (truth["randomised"] == 1).all()
    still = truth[truth["video"] == ""]
    # the exact quota of the randomised rates, in job order
    expect = synth.error_quota(24, RTINY["seed"], synth.RANDOM_ERROR_RATES)
    assert still["error_kind"].tolist() == expect.tolist()
    assert 8 <= (expect != "none").sum() <= 10  # 38 % of 24
    sized = truth["error_kind"].isin(list(synth.RANDOM_ERROR_RANGES))
    assert truth.loc[~sized, "error_magnitude"].isna().all()
    assert sized.any()
    for kind, (lo, hi) in synth.RANDOM_ERROR_RANGES.items():
        mag = truth.loc[truth["error_kind"] == kind, "error_magnitude"]
        assert mag.notna().all() and mag.between(lo - 1e-3, hi + 1e-3).all(), kind
    assert truth["body_noise"].between(0, synth.RANDOM_BODY_NOISE).all()
    assert truth["stick_ratio"].between(0, 1.001).all()
    clear = (truth["stick_ratio"] - synth.FORESHORTENED_RATIO).abs() > 2e-3
    np.testing.assert_array_equal(
        truth.loc[clear, "foreshortened"], truth.loc[clear, "stick_ratio"] < 0.6
    )
    # a clip keeps one style: one noise level for all its frames
    video = truth[truth["video"] == "s01_drill"]
    assert len(video) == 20 and video["body_noise"].nunique() == 1


def test_randomised_error_geometry_covers_the_documented_ranges():
    """Error sizes over many draws span their ranges, and the labels show them."""
    sj = synth.make_subjects(2, seed=1, randomise=True)[1]
    seen: dict[str, list[float]] = {k: [] for k in synth.RANDOM_ERROR_RANGES}
    for i in range(240):
        kind = list(synth.RANDOM_ERROR_RANGES)[i % 4]
        rng = np.random.default_rng([9, i])
        scene = synth.sample_image(sj, synth.STANCES[i % 12], kind, rng, 640, randomise=True)
        mag = scene.error_magnitude
        seen[kind].append(mag)
        t, lab = scene.truth, scene.label
        # 5 sigma of the label jitter (3 px per axis at 640 px, on two points)
        tol = 5 * math.sqrt(2) * synth.LABEL_JITTER_PX * 2
        if kind in ("too_short", "too_long"):
            ratio = _stick_len(lab) / _stick_len(t)
            assert ratio == pytest.approx(mag, abs=tol / _stick_len(t))
        elif kind == "wrong_angle" and _stick_len(t) > 60:
            a = lab[layout.TIP, :2] - lab[layout.GRIP, :2]
            b = t[layout.TIP, :2] - t[layout.GRIP, :2]
            cos = a @ b / np.linalg.norm(a) / np.linalg.norm(b)
            angle = math.degrees(math.acos(np.clip(cos, -1, 1)))
            assert angle == pytest.approx(mag, abs=math.degrees(tol / _stick_len(t)))
        elif kind == "grip_off":
            moved = np.linalg.norm(lab[layout.GRIP, :2] - t[layout.GRIP, :2])
            forearm = sj.forearm * scene.camera.scale
            assert moved / forearm == pytest.approx(mag, abs=tol / forearm)
    for kind, (lo, hi) in synth.RANDOM_ERROR_RANGES.items():
        v = np.array(seen[kind])
        assert v.min() >= lo and v.max() <= hi
        # mild and gross ones both occur
        assert v.min() < lo + 0.2 * (hi - lo) and v.max() > hi - 0.2 * (hi - lo), kind


def test_randomised_subjects_and_camera_spread():
    subs = synth.make_subjects(40, seed=2, randomise=True)
    ratio = np.array([s.upper_arm / s.height for s in subs])
    assert ratio.min() < 0.172 * 0.93 and ratio.max() > 0.172 * 1.07
    assert ratio.min() >= 0.172 * 0.88 - 1e-9 and ratio.max() <= 0.172 * 1.12 + 1e-9
    grey = np.array([np.mean(s.shirt) for s in subs] + [np.mean(s.pants) for s in subs])
    assert (grey < 60).any() and (grey > 190).any()  # dark clothing too
    assert {s.handedness for s in subs} == {"left", "right"}
    assert subs[0] != synth.make_subjects(40, seed=2)[0]
    rng = np.random.default_rng(0)
    cams = [synth.random_camera(rng, wide=True) for _ in range(400)]
    yaw = np.degrees([c.yaw for c in cams])
    pitch = np.degrees([c.pitch for c in cams])
    assert np.abs(yaw).max() <= 80 and np.abs(yaw).max() > 70
    assert (yaw < -40).any() and (yaw > 40).any()
    assert pitch.min() >= -10 and pitch.max() <= 35 and (pitch < 0).any()


def test_detector_noise_worst_on_wrists_and_confidence_falls_with_it():
    rng = np.random.default_rng(1)
    label = np.zeros((19, 3))
    label[:, :2] = rng.uniform(200, 440, (19, 2))
    label[:, 2] = 2
    before = label.copy()
    moved, confs = [], []
    for _ in range(300):
        noisy, conf = synth.detector_noise(label, 0.15, 100.0, "none", rng, 640)
        moved.append(np.linalg.norm(noisy[:, :2] - label[:, :2], axis=1))
        confs.append(conf)
        np.testing.assert_array_equal(noisy[17:], label[17:])  # stick points untouched
    np.testing.assert_array_equal(label, before)  # the input (the truth side) is not modified
    moved, confs = np.array(moved), np.array(confs)
    wrist = moved[:, [layout.L_WRIST, layout.R_WRIST]]
    assert np.median(wrist) > 2 * np.median(moved[:, [layout.L_SHOULDER, layout.R_HIP]])
    assert np.median(wrist) == pytest.approx(0.15 * 100 * 1.18, rel=0.35)  # Rayleigh median
    body_m, body_c = moved[:, :17].ravel(), confs[:, :17].ravel()
    assert np.corrcoef(body_m, body_c)[0, 1] < -0.8
    assert ((confs > 0) & (confs < 1)).all()
    quiet, qconf = synth.detector_noise(label, 0.0, 100.0, "swap", rng, 640)
    np.testing.assert_array_equal(quiet, label)
    assert (qconf[:17] > 0.85).all() and qconf[layout.TIP] <= 0.8 and qconf[layout.GRIP] <= 0.8


def _style(**kw) -> synth.Style:
    base = dict(
        stick_kind="black",
        stick_color=(0, 0, 255),
        stick_px=5,
        shoes=(0, 0, 0),
        grain=0.0,
        blur_sigma=0.0,
        jpeg_quality=90,
        body_noise=0.0,
    )
    return synth.Style(**{**base, **kw})


def test_randomised_render_fist_and_body_hide_the_stick():
    """Fist over the grip; a stick behind the torso is hidden by it, one in front is not."""
    sj = synth.make_subjects(1)[0]
    sj = dataclasses.replace(sj, shirt=(0, 255, 0), skin=(255, 0, 0), pants=(255, 255, 0))
    pts = np.zeros((19, 2))
    pts[[layout.L_SHOULDER, layout.R_SHOULDER]] = [[130, 80], [70, 80]]
    pts[[layout.L_HIP, layout.R_HIP]] = [[120, 160], [80, 160]]
    pts[[layout.L_KNEE, layout.R_KNEE]] = [[120, 200], [80, 200]]
    pts[[layout.L_ANKLE, layout.R_ANKLE]] = [[120, 240], [80, 240]]
    pts[[layout.L_ELBOW, layout.R_ELBOW]] = [[150, 120], [40, 120]]
    pts[[layout.L_WRIST, layout.R_WRIST]] = [[160, 150], [20, 120]]
    pts[:5] = [100, 50]
    pts[layout.GRIP], pts[layout.TIP] = [28, 120], [190, 120]
    extra = np.array([[100, 50], [125, 245], [85, 245]], float)
    bg = np.full((260, 260, 3), 128.0, np.float32)

    def draw(stick_depth: float) -> np.ndarray:
        depth = np.zeros(19)
        depth[[layout.GRIP, layout.TIP]] = stick_depth
        rng = np.random.default_rng(0)
        return synth.render(pts, depth, extra, np.zeros(3), sj, 300.0, bg, rng, style=_style())

    front, behind = draw(1.0), draw(-1.0)
    red, green = [0, 0, 255], [0, 255, 0]
    assert front[120, 100].tolist() == red and behind[120, 100].tolist() == green
    assert front[120, 180].tolist() == red and behind[120, 180].tolist() == red
    for img in (front, behind):  # the fist closes over the grip
        assert img[120, 28].tolist() == [255, 0, 0]


def test_randomised_set_imports_with_the_cli_and_aligns(rtiny, tmp_path):
    from toolkit.cli import main

    out = tmp_path / "ds"
    args = ["import", str(rtiny / "data.yaml"), "--out", str(out)]
    res = CliRunner().invoke(main, [*args, "--labels", str(rtiny / "labels.csv")])
    assert res.exit_code == 0, res.output
    ds = Dataset.load(out)
    assert len(ds) == 24
    kp, kinds = synth.truth_keypoints(ds, rtiny)
    truth = synth.load_truth(rtiny)
    rows = synth.truth_index(ds, rtiny)
    assert (rows >= 0).all() and len(set(rows.tolist())) == 24
    np.testing.assert_array_equal(kinds, truth["error_kind"].to_numpy(object)[rows])
    # stored image sizes follow the varied files
    assert len(set(ds.images["width"].tolist())) >= 3
    # body noise: relative to the torso, follows each image's documented level
    torso = np.linalg.norm(
        kp[:, [layout.L_SHOULDER, layout.R_SHOULDER], :2].mean(1)
        - kp[:, [layout.L_HIP, layout.R_HIP], :2].mean(1),
        axis=1,
    )
    wrists = [layout.L_WRIST, layout.R_WRIST]
    err = np.linalg.norm(ds.keypoints[:, wrists, :2] - kp[:, wrists, :2], axis=-1)
    noisy = truth["body_noise"].to_numpy()[rows] > 0.08
    quiet = truth["body_noise"].to_numpy()[rows] < 0.02
    assert noisy.any() and quiet.any()
    assert np.median(err[noisy] / torso[noisy, None]) > 2 * np.median(
        err[quiet] / torso[quiet, None]
    )
    # confidences were read as scores and drop with the error
    scores = ds.scores[:, :17]
    assert np.isfinite(scores).all() and ((scores > 0) & (scores < 1)).all()
    body_err = np.linalg.norm(ds.keypoints[:, :17, :2] - kp[:, :17, :2], axis=-1)
    assert np.corrcoef(body_err.ravel(), scores.ravel())[0, 1] < -0.3
    # stick points: clean rows stay within the jitter of the truth
    clean = kinds == "none"
    tip_err = np.linalg.norm(
        ds.keypoints[clean, layout.TIP, :2] - kp[clean, layout.TIP, :2], axis=1
    )
    scale = ds.frame_table()["width"].to_numpy(float) / 320
    assert (tip_err < 6 * 1.5 * scale[clean]).all()
    missing = kinds == "tip_missing"
    assert np.isnan(ds.keypoints[missing, layout.TIP, :2]).all()

    yolo = pytest.importorskip("toolkit.io.yolo")
    vid = yolo.read_yolo(
        rtiny / "videos" / "s01_drill_labels",
        video=rtiny / "videos" / "s01_drill.mp4",
        labels=rtiny / "videos" / "s01_drill_stances.csv",
    ).dataset
    kp_v, kinds_v = synth.truth_keypoints(vid, rtiny)
    assert len(vid) == len(kp_v) and "no_detection" not in set(kinds_v)
    mag = truth["error_magnitude"].to_numpy()[synth.truth_index(vid, rtiny)]
    sized = np.isin(kinds_v, list(synth.RANDOM_ERROR_RANGES))
    assert np.isfinite(mag[sized]).all() and np.isnan(mag[~sized]).all()


def test_samples_command_randomise(tmp_path):
    from toolkit.cli import main

    out = tmp_path / "r"
    args = ["samples", "--out", str(out), "--per-class", "1", "--subjects", "1"]
    res = CliRunner().invoke(main, [*args, "--videos", "0", "--randomise"])
    assert res.exit_code == 0, res.output
    truth = synth.load_truth(out)
    assert len(truth) == 12 and (truth["randomised"] == 1).all()
    res = CliRunner().invoke(main, ["samples", "--help"])
    assert "--randomise" in res.output


def test_default_mode_still_writes_the_committed_set(samples_root, tmp_path):
    """randomise=False is unchanged: regenerating samples/arnis gives the same truth and labels
    (images and videos are compared by their truth only: their bytes depend on OpenCV's
    encoders).
    """
    from samples.generate import COMMITTED

    out = synth.generate(tmp_path / "arnis", **COMMITTED)
    assert (out / "truth.csv").read_bytes() == (samples_root / "truth.csv").read_bytes()
    assert (out / "labels.csv").read_bytes() == (samples_root / "labels.csv").read_bytes()
    labels = sorted((samples_root / "labels").rglob("*.txt"))
    labels += sorted((samples_root / "videos").rglob("*.txt"))
    assert len(labels) > 288
    for p in labels[::7]:
        rel = p.relative_to(samples_root)
        assert (out / rel).read_bytes() == p.read_bytes(), rel
    truth = synth.load_truth(out)
    assert (truth["randomised"] == 0).all() and truth["error_magnitude"].isna().all()
