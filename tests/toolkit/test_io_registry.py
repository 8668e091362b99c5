"""The format registry's shared behaviour: taxonomy pickup for every format."""

from __future__ import annotations

import json
import shutil

import pytest

from toolkit import io
from toolkit.errors import InputError


def test_taxonomy_beside_the_source_is_attached(samples_root):
    result = io.read(samples_root / "data.yaml", labels=samples_root / "labels.csv")
    ds = result.dataset
    assert ds.taxonomy is not None and len(ds.taxonomy["stances"]) == 12
    assert ds.stances[0] == ds.taxonomy["stances"][0]["name"]
    assert any(n.startswith("taxonomy: 12 stances") for n in result.notes)


def test_explicit_taxonomy_with_an_unknown_label_is_refused(samples_root, tmp_path):
    tax = json.loads((samples_root / "taxonomy.json").read_text())
    tax["stances"] = [s for s in tax["stances"] if s["name"] != "forward_high"]
    bad = tmp_path / "tax.json"
    bad.write_text(json.dumps(tax))
    with pytest.raises(InputError, match="forward_high") as err:
        io.read(samples_root / "data.yaml", labels=samples_root / "labels.csv", taxonomy=bad)
    assert str(bad) in str(err.value)


def test_invalid_taxonomy_names_the_field(tmp_path, samples_root):
    src = tmp_path / "src"
    shutil.copytree(samples_root / "images" / "cat_low", src / "images" / "cat_low")
    shutil.copytree(samples_root / "labels" / "cat_low", src / "labels" / "cat_low")
    (src / "taxonomy.json").write_text(json.dumps({"stances": [{"family": "cat"}]}))
    with pytest.raises(InputError, match=r"stances\[0\]"):
        io.read(src)


def test_natural_key_orders_frames_in_time():
    names = ["frame_10.jpg", "frame_2.jpg", "frame_1.jpg", "Frame_3.jpg", "a/10.png", "a/9.png"]
    assert sorted(names, key=io.natural_key) == [
        "a/9.png",
        "a/10.png",
        "frame_1.jpg",
        "frame_2.jpg",
        "Frame_3.jpg",
        "frame_10.jpg",
    ]
    assert sorted(["0.jpg", "100.jpg", "11.jpg", "2.jpg"], key=io.natural_key) == [
        "0.jpg",
        "2.jpg",
        "11.jpg",
        "100.jpg",
    ]


def test_a_more_specific_format_supersedes_a_general_one(tmp_path):
    """AlphaPose results are also a JSON list with image_id + keypoints (what COCO results
    detection accepts): the registry picks the format that declares it supersedes coco.
    """
    ap = tmp_path / "alphapose-results.json"
    ap.write_text(json.dumps([{"image_id": "0.jpg", "keypoints": [1, 2, 0.9] * 17}]))
    coco = tmp_path / "results.json"
    coco.write_text(json.dumps([{"image_id": 3, "keypoints": [1, 2, 0.9] * 17, "score": 1}]))
    fmts = io.formats()
    assert fmts["coco"].detect(ap) and fmts["results"].detect(ap)
    assert "coco" in fmts["results"].supersedes
    assert io.detect_format(ap) == "results"
    assert io.detect_format(coco) == "coco"


def test_unrecognised_source_lists_every_format(tmp_path):
    src = tmp_path / "notes.txt"
    src.write_text("hello")
    with pytest.raises(InputError, match=r"--format coco\|results\|yolo"):
        io.detect_format(src)


def test_frame_number_is_the_last_number_of_the_stem():
    assert io.frame_number("frame_000123.jpg") == 123
    assert io.frame_number("clip2/0.jpg") == 0
    assert io.frame_number("s01_take3_frame_45.png") == 45
    assert io.frame_number("notes.jpg") is None
    assert io.frame_number("v1.2/readme") is None
