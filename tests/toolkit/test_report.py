"""Report outputs: JSON and CSV against the schema, self-contained HTML, the findings file."""

from __future__ import annotations

import base64
import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest

from toolkit import layout
from toolkit import report as R
from toolkit import validate as V
from toolkit.schema import validate as schema_validate

_spec = importlib.util.spec_from_file_location(
    "_correct_helpers", Path(__file__).with_name("test_correct.py")
)
H = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(H)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """A small dataset with real images, some stick errors, and its report."""
    tmp = tmp_path_factory.mktemp("media")
    kp0, stance, short = H.make_poses(40, seed=11)
    for i in range(len(kp0)):
        H._draw(tmp, f"{i:05d}.jpg", kp0[[i]], kp0[[i], layout.TIP, :2])
    kp = kp0.copy()
    rows = np.flatnonzero(~short)[:3]
    g = kp[rows, layout.GRIP, :2]
    kp[rows, layout.TIP, :2] = g + 1.8 * (kp0[rows, layout.TIP, :2] - g)
    kp[5, layout.NOSE, 2] = 0
    kp[5, layout.NOSE, :2] = np.nan
    ds = H.make_dataset(kp, stance, media_root=str(tmp))
    return ds, V.validate(ds, use_vae=False)


def test_json_document_validates_against_the_schema(case):
    _, rep = case
    doc = json.loads(R.to_json_bytes(rep))
    schema_validate(doc, "validation_report")
    assert set(doc) == {"version", "summary", "findings"}
    assert doc["summary"]["by_severity"]["error"] >= 3
    f = next(x for x in doc["findings"] if x["code"] == "stick.too_long")
    assert f["keypoints"] == ["stick_grip", "stick_tip"]
    assert f["value"] > f["threshold"] and f["file_name"].startswith("img/")


def test_schema_rejects_a_malformed_finding(case):
    from toolkit.errors import InputError

    _, rep = case
    doc = rep.to_dict()
    doc["findings"][0]["code"] = "stick"  # no check part
    with pytest.raises(InputError):
        schema_validate(doc, "validation_report")


def test_csv_round_trips_to_schema_valid_records(case, tmp_path):
    _, rep = case
    p = tmp_path / "f.csv"
    p.write_text(R.to_csv_text(rep))
    recs = R.read_csv_records(p)
    assert len(recs) == len(rep.findings)
    schema_validate({"version": 1, "summary": rep.summary, "findings": recs}, "validation_report")
    assert recs == V.findings_records(rep.findings)


def test_html_is_self_contained_with_plots_and_thumbnails(case):
    ds, rep = case
    html = R.to_html(rep, ds)
    assert "<style>" in html and "stick.too_long" in html
    assert not re.search(r"(src|href)=['\"]https?://", html)
    pngs = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
    assert len(pngs) >= 4  # counts plot, histograms, thumbnails
    import cv2

    thumb = cv2.imdecode(np.frombuffer(base64.b64decode(pngs[-1]), np.uint8), cv2.IMREAD_COLOR)
    assert thumb is not None and thumb.std() > 5  # real pixels, not a blank tile
    assert "Worst frames" in html


def test_text_summary_and_write_report(case, tmp_path):
    ds, rep = case
    text = R.text_summary(rep, "error")
    assert "stick.too_long" in text and "FAIL" in text
    assert R.text_summary(rep, "never").endswith("ok")
    paths = R.write_report(rep, tmp_path / "qa", R.FORMATS, ds)
    assert sorted(p.name for p in paths) == [
        "findings.csv",
        "report.html",
        "report.json",
        "report.txt",
    ]
    schema_validate(json.loads((tmp_path / "qa" / "report.json").read_text()), "validation_report")
    with pytest.raises(ValueError, match="format"):
        R.write_report(rep, tmp_path / "qa2", ("pdf",))


def test_findings_file_for_the_viewer(case, tmp_path):
    _, rep = case
    p = R.write_findings_file(rep, tmp_path)
    assert p == tmp_path / V.FINDINGS_FILE
    doc = json.loads(p.read_text())
    schema_validate(doc, "validation_report")
    assert len(doc["findings"]) == len(rep.findings)


def test_empty_report_is_valid(tmp_path):
    kp, stance, _ = H.make_poses(30, seed=2, foreshortened=0.0)
    rep = V.validate(H.make_dataset(kp, stance), use_vae=False, use_images=False)
    schema_validate(json.loads(R.to_json_bytes(rep)), "validation_report")
    assert "findings" in R.to_html(rep)


def test_proposed_fix_is_drawn_in_cyan_over_the_labelled_stick():
    img = np.zeros((100, 100, 3), np.uint8)
    kp = np.full((19, 3), np.nan)
    kp[layout.GRIP] = (10, 10, 2)
    kp[layout.TIP] = (90, 10, 2)
    prop = {"keypoints": [[layout.TIP, 10.0, 90.0]], "method": "image_evidence"}
    out = R.draw_proposal(img, prop, kp)
    cyan = (out[..., 0] > 200) & (out[..., 1] > 200) & (out[..., 2] < 50)
    assert cyan[50, 8:13].any()  # along the proposed stick (grip kept, tip moved down)
    assert not cyan[10, 40:60].any()  # not along the labelled one
    # A proposal that leaves no complete stick draws nothing.
    kp[layout.GRIP] = (np.nan, np.nan, 0)
    assert not R.draw_proposal(np.zeros_like(img), prop, kp).any()


def test_read_findings_file_is_the_one_reader(case, tmp_path):
    _, rep = case
    assert R.read_findings_file(tmp_path) == ([], None)
    R.write_findings_file(rep, tmp_path)
    found, path = R.read_findings_file(tmp_path)
    assert path == tmp_path / V.FINDINGS_FILE
    assert len(found) == len(rep.findings)
    (tmp_path / V.FINDINGS_FILE).write_text("{not json")
    with pytest.warns(UserWarning, match="not readable JSON"):
        assert R.read_findings_file(tmp_path) == ([], None)
