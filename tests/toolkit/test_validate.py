"""Validation checks: each fires on a constructed case and stays silent on its clean twin; real
17-keypoint COCO data reports the stick as missing once; the samples' injected errors are found.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from toolkit import geometry as geo
from toolkit import layout
from toolkit import validate as V
from toolkit.dataset import Dataset

_spec = importlib.util.spec_from_file_location(
    "_correct_helpers", Path(__file__).with_name("test_correct.py")
)
H = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(H)

FAST = {"use_vae": False, "use_images": False}


@pytest.fixture(scope="module")
def base():
    kp, stance, short = H.make_poses(240, seed=7)
    return kp, stance, short


def codes_at(report: V.Report, row: int | None = None) -> set[str]:
    f = report.findings
    if row is not None:
        f = f[f["row"] == row]
    return set(f["code"])


def run(kp, stance, **kw):
    opts = {**FAST, **kw.pop("opts", {})}
    return V.validate(H.make_dataset(kp, stance, **kw), **opts)


def test_clean_twin_has_no_warnings_or_errors(base):
    kp, stance, _ = base
    rep = run(kp, stance)
    bad = rep.findings[rep.findings["severity"] != "info"]
    assert len(bad) == 0, bad[["code", "row", "value", "threshold"]].to_string()
    assert not rep.fails("warning")


def _row(base, k=0):
    """A row whose stick is not foreshortened (so stick checks are unambiguous)."""
    return int(np.flatnonzero(~base[2])[k])


_BODY_CASES = (
    "few_keypoints",
    "visibility",
    "out_of_image",
    "missing_points",
    "bone_length",
    "symmetry",
    "joint_angle",
    "lr_swap",
)


def _corrupt_body(case, kp, r, g, v, s):
    if case == "few_keypoints":
        kp[r, 2:17] = (np.nan, np.nan, 0)
    elif case == "visibility":
        kp[r, layout.NOSE, 2] = 3
    elif case == "out_of_image":
        kp[r, layout.NOSE, 0] = 850  # images are 800 wide
    elif case == "missing_points":
        kp[r, layout.L_EAR] = (np.nan, np.nan, 0)
    elif case == "bone_length":
        kp[r, layout.L_ANKLE, 1] += 2.5 * s
    elif case == "symmetry":
        kp[r, layout.L_ANKLE, :2] = kp[r, layout.L_KNEE, :2] + (0, 0.3 * s)  # short left shin
        kp[r, layout.R_ANKLE, :2] = kp[r, layout.R_KNEE, :2] + (0, 1.4 * s)  # long right shin
    elif case == "joint_angle":
        kp[r, layout.R_WRIST, :2] = kp[r, layout.R_SHOULDER, :2] + 0.02 * s
        kp[r, layout.GRIP, :2] = kp[r, layout.R_WRIST, :2]
        kp[r, layout.TIP, :2] = kp[r, layout.GRIP, :2] + v
    elif case == "lr_swap":
        kp[r, [layout.L_SHOULDER, layout.R_SHOULDER]] = kp[
            r, [layout.R_SHOULDER, layout.L_SHOULDER]
        ]


def _corrupt_stick(case, kp, r, g, v, s):
    if case == "too_long":
        kp[r, layout.TIP, :2] = g + 1.7 * v
    elif case == "grip_far":
        kp[r, layout.GRIP, :2] = g + 0.6 * s * geo.unit(np.array([-v[1], v[0]]))
    elif case == "swap":
        kp[r, [layout.GRIP, layout.TIP]] = kp[r, [layout.TIP, layout.GRIP]]
    elif case == "tip_missing":
        kp[r, layout.TIP] = (np.nan, np.nan, 0)
    elif case == "grip_missing":
        kp[r, layout.GRIP] = (np.nan, np.nan, 0)
    elif case == "forearm_angle":
        kp[r, layout.TIP, :2] = g + geo.rotate(v[None], np.array([110.0]))[0]
    elif case == "duplicate_pose":
        kp[r] = kp[r + 1]


@pytest.mark.parametrize(
    "case",
    [
        *_BODY_CASES,
        "too_long",
        "grip_far",
        "swap",
        "tip_missing",
        "grip_missing",
        "forearm_angle",
        "duplicate_pose",
    ],
)
def test_each_row_check_fires_on_its_case_only(base, case):
    kp0, stance, _ = base
    kp = kp0.copy()
    r = _row(base)
    g = kp[r, layout.GRIP, :2].copy()
    v = kp[r, layout.TIP, :2] - g
    s = geo.body_scale(kp0[[r]])[0]
    code, severity = {
        "few_keypoints": ("structure.few_keypoints", "warning"),
        "visibility": ("structure.visibility", "error"),
        "out_of_image": ("structure.out_of_image", "error"),
        "missing_points": ("structure.missing_points", "info"),
        "bone_length": ("anatomy.bone_length", "warning"),
        "symmetry": ("anatomy.symmetry", "warning"),
        "joint_angle": ("anatomy.joint_angle", "warning"),
        "lr_swap": ("anatomy.lr_swap", "warning"),
        "too_long": ("stick.too_long", "error"),
        "grip_far": ("stick.grip_far", "error"),
        "swap": ("stick.swap", "error"),
        "tip_missing": ("stick.tip_missing", "error"),
        "grip_missing": ("stick.grip_missing", "error"),
        "forearm_angle": ("stick.forearm_angle", "info"),
        "duplicate_pose": ("structure.duplicate_pose", "warning"),
    }[case]
    (_corrupt_body if case in _BODY_CASES else _corrupt_stick)(case, kp, r, g, v, s)
    if case == "duplicate_pose":
        r += 1  # the later copy is the one flagged
    rep = run(kp, stance)
    hit = rep.findings[rep.findings["code"] == code]
    assert r in set(hit["row"]), rep.findings[["code", "row"]].to_string()
    assert (hit.loc[hit["row"] == r, "severity"] == severity).all()
    rec = V.findings_records(hit[hit["row"] == r])[0]
    assert rec["file_name"] == f"img/{r:05d}.jpg" and rec["ann_id"] == r + 1
    if case not in ("duplicate_pose", "few_keypoints"):
        assert rec["keypoints"], rec
    # the clean twin stays silent for this code
    assert code not in codes_at(run(kp0, stance))


def test_dataset_level_structure_checks():
    kp, stance, _ = H.make_poses(120, seed=3)
    ds = H.make_dataset(kp, stance)
    rep = V.validate(ds, **FAST)
    assert not {
        "structure.class_balance",
        "structure.subjects_per_class",
        "structure.duplicate_image",
        "structure.unlabelled",
    } & codes_at(rep)
    unbalanced = np.where(np.arange(120) < 100, 0, stance)
    rep = run(kp, unbalanced)
    assert "structure.class_balance" in codes_at(rep, -1)
    one_subject = H.make_dataset(
        kp, stance, subjects=np.where(stance == 2, "s1", np.array(["s1", "s2"] * 60))
    )
    rep = V.validate(one_subject, **FAST)
    hit = rep.findings[rep.findings["code"] == "structure.subjects_per_class"]
    assert len(hit) == 1 and "st2" in hit["message"].iloc[0]
    ds = H.make_dataset(kp, stance)
    ds.images.loc[3, "file_name"] = ds.images.loc[2, "file_name"]
    ds.images.loc[5, "stance"] = None
    rep = V.validate(ds, **FAST)
    assert {3} == set(rep.findings.loc[rep.findings["code"] == "structure.duplicate_image", "row"])
    assert "structure.unlabelled" in codes_at(rep, -1)


def test_low_confidence_uses_scores_when_present(base):
    kp, stance, _ = base
    ds = H.make_dataset(kp, stance)
    ds.scores[:] = 0.9
    assert "structure.low_confidence" not in codes_at(V.validate(ds, **FAST))
    ds.scores[4, layout.NOSE] = 0.1
    assert "structure.low_confidence" in codes_at(V.validate(ds, **FAST), 4)


def test_image_mismatch_fires_when_the_image_shows_the_stick_elsewhere(tmp_path):
    kp0, stance, short = H.make_poses(40, seed=5)
    for i in range(len(kp0)):
        H._draw(tmp_path, f"{i:05d}.jpg", kp0[[i]], kp0[[i], layout.TIP, :2])
    kp = kp0.copy()
    r = int(np.flatnonzero(~short)[0])
    g = kp[r, layout.GRIP, :2]
    kp[r, layout.TIP, :2] = g + geo.rotate((kp0[r, layout.TIP, :2] - g)[None], np.array([40.0]))[0]
    rep = V.validate(H.make_dataset(kp, stance, media_root=str(tmp_path)), use_vae=False)
    assert "stick.image_mismatch" in codes_at(rep, r)
    twin = V.validate(H.make_dataset(kp0, stance, media_root=str(tmp_path)), use_vae=False)
    assert "stick.image_mismatch" not in codes_at(twin)
    assert twin.summary["stick_calibration"]["images_read"] == 40


def test_temporal_jump_and_drift_in_video():
    clean, stance = H._video(60)
    subj = np.array(["s1"] * 60)
    rep = V.validate(H.make_dataset(clean, stance, subjects=subj, video=True), **FAST)
    assert not {"temporal.jump", "temporal.drift"} & codes_at(rep)
    kp = clean.copy()
    s = geo.body_scale(clean[:1])[0]
    kp[15, layout.L_KNEE, :2] += (0.8 * s, 0)  # a body point spikes away for one frame
    g = kp[:, layout.GRIP, :2]
    v = clean[:, layout.TIP, :2] - g
    ep = np.arange(35, 42)
    kp[ep, layout.TIP, :2] = g[ep] + geo.rotate(v[ep], np.linspace(30, 45, len(ep)))
    rep = V.validate(H.make_dataset(kp, stance, subjects=subj, video=True), **FAST)
    jump = rep.findings[rep.findings["code"] == "temporal.jump"]
    assert 15 in set(jump["row"])
    assert "left_knee" in jump.loc[jump["row"] == 15, "keypoints"].iloc[0]
    rec = V.findings_records(jump[jump["row"] == 15])[0]
    assert rec["video"] == "clip" and rec["frame_index"] == 15
    drift = set(rep.findings.loc[rep.findings["code"] == "temporal.drift", "row"])
    assert set(ep) <= drift | set(rep.findings.loc[rep.findings["category"] == "stick", "row"])
    assert len(drift) >= 3


def test_plausibility_vae_flags_an_impossible_pose(base):
    pytest.importorskip("torch")
    kp0, stance, _ = base
    kp = kp0.copy()
    r = 10
    # Legs above the head: every point is present and the stick is fine, but no body does this.
    for j in (layout.L_KNEE, layout.R_KNEE, layout.L_ANKLE, layout.R_ANKLE):
        kp[r, j, 1] = kp[r, layout.NOSE, 1] - (kp[r, j, 1] - kp[r, layout.L_HIP, 1])
    rep = V.validate(H.make_dataset(kp, stance), use_images=False, use_vae=True)
    assert "plausibility.vae" in codes_at(rep, r)
    assert rep.summary["plausibility"]["train_seconds"] < 30
    vae = rep.findings[rep.findings["code"] == "plausibility.vae"]
    assert len(vae) <= 0.05 * len(kp)


def test_no_vae_is_noted(base):
    kp, stance, _ = base
    rep = run(kp, stance)
    assert any("VAE" in n for n in rep.summary["notes"])


def test_fail_on_levels(base):
    kp0, stance, _ = base
    clean = run(kp0, stance)
    assert not clean.fails("error") and not clean.fails("warning") and not clean.fails("never")
    kp = kp0.copy()
    kp[_row(base), layout.TIP, :2] = kp[_row(base), layout.GRIP, :2] + 3 * (
        kp0[_row(base), layout.TIP, :2] - kp0[_row(base), layout.GRIP, :2]
    )
    bad = run(kp, stance)
    assert bad.fails("error") and bad.fails("warning") and not bad.fails("never")
    with pytest.raises(ValueError, match="fail_on"):
        bad.fails("sometimes")


def test_schema_failure_is_a_structure_finding(tmp_path):
    d = tmp_path / "ds"
    d.mkdir()
    (d / "dataset.json").write_text(json.dumps({"version": 1, "images": []}))
    rep, ds = V.validate_dir(d)
    assert ds is None
    assert list(rep.findings["code"]) == ["structure.schema"]
    assert rep.fails("error")


def _coco_dataset(realdata: Path) -> Dataset:
    path = realdata / "mmpose" / "coco" / "test_coco.json"
    try:
        from toolkit import io

        return io.read(path, format="coco").dataset
    except (ImportError, ModuleNotFoundError, ValueError):
        doc = json.loads(path.read_text())
        kp = np.zeros((len(doc["annotations"]), 19, 3))
        kp[:, :17] = np.array([a["keypoints"] for a in doc["annotations"]]).reshape(-1, 17, 3)
        return Dataset.from_records(
            doc["images"], doc["annotations"], kp, media_root=str(path.parent)
        )


def test_real_coco17_reports_the_stick_missing_once_not_an_error_storm(realdata):
    ds = _coco_dataset(realdata)
    rep = V.validate(ds, use_vae=True)
    stick = rep.findings[rep.findings["category"] == "stick"]
    assert len(stick) == 1
    rec = V.findings_records(stick)[0]
    assert rec["code"] == "stick.missing" and rec["file_name"] is None
    assert rec["severity"] == "info"
    assert not rep.fails("error")
    assert rep.summary["n_annotations"] == len(ds)
    from toolkit.schema import validate as schema_validate

    schema_validate(rep.to_dict(), "validation_report")


def test_tips_missing_everywhere_is_one_finding_not_a_storm(base):
    kp, stance, _ = base
    kp = kp.copy()
    kp[:, layout.TIP] = (np.nan, np.nan, 0)  # what a 17-keypoint detector leaves
    rep = run(kp, stance)
    stick = rep.findings[rep.findings["category"] == "stick"]
    assert list(stick["code"]) == ["stick.missing"] and stick["row"].iloc[0] == -1
    assert not V.flagged_rows(rep.findings, len(kp)).any()


def test_samples_injected_errors_are_found_with_few_false_flags(samples_root):
    from toolkit import synth
    from toolkit.io.yolo import read_yolo

    ds = read_yolo(samples_root / "data.yaml", labels=samples_root / "labels.csv").dataset
    _, kinds = synth.truth_keypoints(ds, samples_root)
    rep = V.validate(ds, use_vae=False)
    flagged = V.flagged_rows(rep.findings, len(ds))
    # Precision first: clean frames; recall on the kinds visible in principle.
    assert flagged[kinds == "none"].mean() <= 0.05
    for kind, bound in (("too_long", 0.6), ("swap", 0.8), ("tip_missing", 0.9), ("grip_off", 0.6)):
        assert flagged[kinds == kind].mean() >= bound, (kind, flagged[kinds == kind].mean())


def test_vae_shapes_and_masking():
    torch = pytest.importorskip("torch")
    from toolkit import plausibility as P

    kp, _, _ = H.make_poses(20, seed=4)
    kp[0, layout.NOSE] = (np.nan, np.nan, 0)
    x, mask, usable = P.prepare(kp)
    assert x.shape == (20, 38) and mask.shape == (20, 38) and usable.all()
    assert mask[0, 2 * layout.NOSE] == 0 and x[0, 2 * layout.NOSE] == 0
    model = P.build_model()
    rec, mu, logvar = model(torch.from_numpy(x), torch.from_numpy(mask))
    assert rec.shape == (20, 38) and mu.shape == (20, 6) and logvar.shape == (20, 6)
    assert "PoseVAE" in repr(model)
    res = P.score(kp, epochs=5)
    assert res.errors.shape == (20,) and np.isfinite(res.errors).all()


def test_two_threads_report_as_one_thread(samples_root):
    """``validate`` judges the stick beside the other checks on a second thread.

    Its report is the one of the checks run one after another on one thread (findings, summary
    and measures, in order).
    """
    import pandas as pd

    from toolkit.io.yolo import read_yolo
    from toolkit.stick.stats import sharing_group_codes

    ds = read_yolo(samples_root / "data.yaml", labels=samples_root / "labels.csv").dataset
    # Structure and anatomy findings beside the stick's: a bad visibility flag, a wrist far out
    # of the image (a bone too long), a missing knee.
    ds.keypoints[0, layout.NOSE, 2] = 3
    ds.keypoints[1, layout.L_WRIST, :2] = -900.0
    ds.keypoints[2, layout.L_KNEE] = (np.nan, np.nan, 0)
    o = V.ValidateOptions(use_vae=False)
    rep = V.validate(ds, o)
    c = V._Collector(ds)
    summary = {"n_images": len(ds.images), "n_annotations": len(ds), "n_videos": len(ds.videos),
               "notes": []}  # fmt: skip
    measures: dict = {"anatomy.torso_px": None}
    pts = geo.Points(ds.keypoints)
    with sharing_group_codes(ds):
        V.check_structure(ds, c, o, summary, measures, pts)
        scale = geo.body_scale(pts)
        measures["anatomy.torso_px"] = (scale, None)
        V.check_anatomy(ds, c, o, summary, measures, scale, pts)
        V.check_stick(ds, c, o, summary, measures, pts)
    V.check_temporal(ds, c, o, scale)
    summary["notes"].append("plausibility: VAE check disabled (--no-vae).")
    V._summarise(c.parts, summary)
    cats = rep.findings["category"].unique().tolist()
    assert {"structure", "anatomy", "stick"} <= set(cats), cats
    pd.testing.assert_frame_equal(rep.findings, c.table())
    assert json.dumps(rep.summary, default=str) == json.dumps(summary, default=str)
    assert list(rep.measures) == list(measures)
    for k, (v, thr) in measures.items():
        np.testing.assert_array_equal(rep.measures[k][0], v)
        assert rep.measures[k][1] == thr or (
            thr != thr and rep.measures[k][1] != rep.measures[k][1]
        )
