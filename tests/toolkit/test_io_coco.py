"""COCO keypoints import/export: exact round trips on real files, 17 vs 19 points, results files,
stances and subjects, and bad input named by file, field path and line.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import orjson
import pytest

from toolkit import io, layout
from toolkit.dataset import Dataset
from toolkit.errors import InputError
from toolkit.io.coco import coco_document, detect_coco, read_coco, write_coco


def strict(obj):
    """A type-aware canonical form: 2 and 2.0 differ, key order does not."""
    if isinstance(obj, dict):
        return {k: strict(v) for k, v in sorted(obj.items())}
    if isinstance(obj, list):
        return [strict(v) for v in obj]
    return (type(obj).__name__, obj)


@pytest.fixture(params=["coco/test_coco.json", "ochuman/test_ochuman.json"])
def mmpose(request, realdata, tmp_path) -> Path:
    """A copy of an mmpose COCO-17 file with its images."""
    src = realdata / "mmpose" / request.param
    dst = tmp_path / "src"
    shutil.copytree(src.parent, dst)
    return dst / src.name


@pytest.fixture
def coco_dir(realdata, tmp_path) -> Path:
    dst = tmp_path / "coco"
    shutil.copytree(realdata / "mmpose" / "coco", dst)
    return dst


def test_detect(mmpose, tmp_path):
    assert detect_coco(mmpose)
    results = tmp_path / "res.json"
    results.write_text(json.dumps([{"image_id": 1, "keypoints": [0] * 51, "score": 1}]))
    assert detect_coco(results)
    (tmp_path / "x.json").write_text('{"a": 1}')
    assert not detect_coco(tmp_path / "x.json")
    assert not detect_coco(tmp_path)
    assert io.detect_format(mmpose) == "coco"


def test_import_export_17_round_trips_exactly(mmpose, tmp_path):
    original = json.loads(mmpose.read_text())
    io.import_dataset(mmpose, tmp_path / "ds")
    ds = Dataset.load(tmp_path / "ds")  # through dataset.json, not just in memory
    out = write_coco(ds, tmp_path / "out17.json", keypoints=17)
    assert strict(json.loads(out.read_text())) == strict(original)
    zero = [a for a in original["annotations"] if a["num_keypoints"] == 0]
    if "ochuman" not in mmpose.name:
        assert zero, "the mmpose COCO file has people with num_keypoints 0"


def test_export_19_differs_only_by_the_stick(mmpose, tmp_path):
    original = json.loads(mmpose.read_text())
    io.import_dataset(mmpose, tmp_path / "ds")
    ds = Dataset.load(tmp_path / "ds")
    doc = json.loads(write_coco(ds, tmp_path / "out19.json").read_text())
    assert strict(doc["images"]) == strict(original["images"])
    for a, b in zip(original["annotations"], doc["annotations"], strict=True):
        assert b["keypoints"][:51] == a["keypoints"] and b["keypoints"][51:] == [0] * 6
        assert strict({k: v for k, v in b.items() if k != "keypoints"}) == strict(
            {k: v for k, v in a.items() if k != "keypoints"}
        )
    cat, ocat = doc["categories"][0], original["categories"][0]
    assert cat["keypoints"] == list(layout.KEYPOINT_NAMES)
    assert cat["skeleton"][: len(ocat["skeleton"])] == ocat["skeleton"]
    assert {k: v for k, v in cat.items() if k not in ("keypoints", "skeleton")} == {
        k: v for k, v in ocat.items() if k not in ("keypoints", "skeleton")
    }


def test_17_point_import_marks_the_stick_missing(mmpose):
    res = read_coco(mmpose)
    ds = res.dataset
    assert np.isnan(ds.keypoints[:, [layout.GRIP, layout.TIP], :2]).all()
    assert (ds.keypoints[:, [layout.GRIP, layout.TIP], 2] == 0).all()
    assert (ds.source == layout.IMPORTED).all()
    assert any("stick" in n for n in res.notes)
    original = json.loads(mmpose.read_text())
    vis = np.array([a["num_keypoints"] for a in original["annotations"]])
    np.testing.assert_array_equal((ds.keypoints[..., 2] > 0).sum(1), vis)
    assert res.media_root == mmpose.parent.absolute()


def test_pycocotools_loads_exports_and_results(coco_dir, tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    io.import_dataset(coco_dir / "test_coco.json", tmp_path / "ds")
    ds = Dataset.load(tmp_path / "ds")
    gt_path = write_coco(ds, tmp_path / "gt17.json", keypoints=17)
    gt = COCO(str(gt_path))
    dets = [
        {"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 0.9}
        for a in json.loads(gt_path.read_text())["annotations"]
    ]
    ev = COCOeval(gt, gt.loadRes(dets), "keypoints")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ev.stats[0] > 0.5  # the ground truth scored against itself (crowd/empty ignored)
    COCO(str(write_coco(ds, tmp_path / "gt19")))  # a folder -> annotations.json
    assert (tmp_path / "gt19" / "annotations.json").exists()


def test_19_point_coco_round_trip(samples_root, tmp_path):
    res = io.import_dataset(samples_root / "data.yaml", tmp_path / "y", subject_regex=r"^(s\d+)_")
    ds = Dataset.load(tmp_path / "y")
    out = write_coco(ds, tmp_path / "c.json")
    back = read_coco(out, images=samples_root / "images").dataset
    np.testing.assert_allclose(back.keypoints, ds.keypoints, equal_nan=True, atol=1e-6)
    assert back.images["stance"].tolist() == ds.images["stance"].tolist()
    assert back.images["subject"].tolist() == ds.images["subject"].tolist()
    assert len(res.dataset) == len(back)


def test_keypoints_mapped_by_name_and_other_layouts_rejected(coco_dir):
    path = coco_dir / "test_coco.json"
    doc = json.loads(path.read_text())
    # Reorder the names (swap nose and left_eye) and the values accordingly.
    names = doc["categories"][0]["keypoints"]
    names[0], names[1] = names[1], names[0]
    for a in doc["annotations"]:
        k = a["keypoints"]
        k[0:3], k[3:6] = k[3:6], k[0:3]
    path.write_text(json.dumps(doc))
    ds = read_coco(path).dataset
    original = json.loads(json.dumps(doc))
    first = original["annotations"][0]["keypoints"]
    assert ds.keypoints[0, layout.NOSE, :2].tolist() == first[3:5]
    assert ds.categories[0]["source_keypoints"] == names
    doc["categories"][0]["keypoints"] = [f"p{i}" for i in range(17)]
    path.write_text(json.dumps(doc, indent=1))
    with pytest.raises(InputError, match=r"categories\[0\]\.keypoints.*unknown") as exc:
        read_coco(path)
    assert exc.value.line is not None


def test_results_file_imports_as_predictions(coco_dir, tmp_path):
    gt = json.loads((coco_dir / "test_coco.json").read_text())
    rng = np.random.default_rng(1)
    results = []
    for a in gt["annotations"][:5]:
        k = np.array(a["keypoints"], float).reshape(17, 3)
        k[:, 2] = rng.uniform(0.05, 1.0, 17).round(3)
        k[0, 2] = 0.2
        results.append(
            {
                "image_id": a["image_id"],
                "category_id": 1,
                "keypoints": k.ravel().tolist(),
                "score": 0.8,
            }
        )
    res_path = tmp_path / "results.json"
    res_path.write_text(json.dumps(results))
    with pytest.raises(InputError, match="--images-from"):
        read_coco(res_path)
    res = io.import_dataset(res_path, tmp_path / "pred", images_from=coco_dir / "test_coco.json")
    ds = Dataset.load(tmp_path / "pred")
    assert len(ds) == 5 and len(ds.images) == len(gt["images"])
    # What the model gave is 'predicted'; the stick a 17-point model lacks stays 'imported'.
    given = ds.keypoints[..., 2] > 0
    assert (ds.source[given] == layout.PREDICTED).all()
    assert (ds.source[:, 17:] == layout.IMPORTED).all()
    np.testing.assert_allclose(
        ds.scores[:, :17], [np.array(r["keypoints"][2::3]) for r in results], atol=1e-4
    )
    assert np.isnan(ds.scores[:, 17:]).all()
    assert ds.keypoints[0, 0, 2] == 1  # conf 0.2 -> occluded
    assert ds.annotations["score"].tolist() == [0.8] * 5
    assert any("confidence" in n for n in res.notes)
    # A dataset directory works as the images source too.
    io.import_dataset(coco_dir / "test_coco.json", tmp_path / "gtds")
    res2 = read_coco(res_path, images_from=tmp_path / "gtds")
    assert len(res2.dataset) == 5


def test_stance_subject_from_fields_csv_and_regex(coco_dir, tmp_path):
    path = coco_dir / "test_coco.json"
    doc = json.loads(path.read_text())
    doc["images"][0]["stance"] = "forward_high"
    doc["images"][0]["subject"] = "s09"
    path.write_text(json.dumps(doc))
    csv = tmp_path / "labels.csv"
    csv.write_text("file,stance,subject\n000000040083.jpg,back_low,s02\n")
    ds = read_coco(path, labels=csv, subject_regex=r"^0+(\d{3})").dataset
    by_name = dict(zip(ds.images["file_name"], ds.images["stance"], strict=True))
    subj = dict(zip(ds.images["file_name"], ds.images["subject"], strict=True))
    assert by_name["000000000785.jpg"] == "forward_high" and subj["000000000785.jpg"] == "s09"
    assert by_name["000000040083.jpg"] == "back_low" and subj["000000040083.jpg"] == "s02"
    assert by_name["000000196141.jpg"] is None and subj["000000196141.jpg"] == "196"


def test_images_option_and_missing_images(coco_dir, tmp_path):
    moved = tmp_path / "elsewhere" / "val"
    moved.mkdir(parents=True)
    (coco_dir / "ann").mkdir()
    shutil.move(str(coco_dir / "test_coco.json"), coco_dir / "ann" / "test_coco.json")
    for jpg in coco_dir.glob("*.jpg"):
        shutil.move(str(jpg), moved / jpg.name)
    src = coco_dir / "ann" / "test_coco.json"
    with pytest.raises(InputError, match=r"images\[0\]\.file_name.*--images DIR") as exc:
        read_coco(src)
    assert exc.value.line is not None
    res = read_coco(src, images=moved)
    assert res.media_root == moved.absolute() and len(res.dataset.images) == 4
    # images/ beside the JSON is found by itself.
    shutil.move(str(moved), coco_dir / "ann" / "images")
    assert read_coco(src).media_root == (coco_dir / "ann" / "images").absolute()


def _bad(coco_dir: Path, mutate) -> Path:
    path = coco_dir / "test_coco.json"
    doc = json.loads(path.read_text())
    mutate(doc)
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    return path


BAD_DOCS = {
    "annotations[3].keypoints": lambda d: d["annotations"][3].__setitem__(
        "keypoints", [1, 2, 2] * 16
    ),
    "annotations[2].keypoints[4]": lambda d: d["annotations"][2]["keypoints"].__setitem__(4, "x"),
    "annotations[1].image_id": lambda d: d["annotations"][1].__setitem__("image_id", 42),
    "annotations[5].id": lambda d: d["annotations"][5].__setitem__("id", d["annotations"][4]["id"]),
    "annotations[0].bbox": lambda d: d["annotations"][0].__setitem__("bbox", [1, 2]),
    "images[1].file_name": lambda d: d["images"][1].__setitem__("file_name", "../x.jpg"),
    "images[2].id": lambda d: d["images"][2].__setitem__("id", d["images"][0]["id"]),
    "images[3].width": lambda d: d["images"][3].pop("width"),
    "categories[0].keypoints": lambda d: d["categories"][0]["keypoints"].append("tail"),
}


@pytest.mark.parametrize("where", list(BAD_DOCS))
def test_bad_input_names_file_field_and_line(coco_dir, where):
    path = _bad(coco_dir, BAD_DOCS[where])
    with pytest.raises(InputError) as exc:
        read_coco(path)
    field = "images[3]" if where == "images[3].width" else where
    assert field in str(exc.value) and str(path) in str(exc.value)
    assert exc.value.line is not None and exc.value.line > 1


@pytest.mark.parametrize(
    "content,match",
    [
        (b"", "empty"),
        (b"\xff\xfe{}", "UTF-8"),
        (b'{"images": [], "annotations": [ NaN ]}', "NaN"),
        (b'{"images": [}', "valid JSON"),
        (b'"just a string"', "top level"),
    ],
)
def test_bad_files(tmp_path, content, match):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(InputError, match=match) as exc:
        read_coco(path)
    assert exc.value.path == path


def test_skip_bad_leaves_out_the_whole_image(coco_dir):
    doc = json.loads((coco_dir / "test_coco.json").read_text())
    bad_image = doc["annotations"][3]["image_id"]
    path = _bad(coco_dir, BAD_DOCS["annotations[3].keypoints"])
    res = read_coco(path, skip_bad=True)
    ds = res.dataset
    assert bad_image not in ds.images["id"].tolist()
    assert bad_image not in ds.annotations["image_id"].tolist()
    n_same = sum(a["image_id"] == bad_image for a in doc["annotations"])
    assert len(ds) == len(doc["annotations"]) - n_same
    assert len(res.skipped) == 1 and "annotations[3].keypoints" in res.skipped[0].reason
    assert res.skipped[0].line is not None


def test_coco_document_keeps_meta_but_not_the_import_record(coco_dir, tmp_path):
    io.import_dataset(coco_dir / "test_coco.json", tmp_path / "ds")
    ds = Dataset.load(tmp_path / "ds")
    assert "import" in ds.meta
    doc = orjson.loads(orjson.dumps(coco_document(ds), option=orjson.OPT_SERIALIZE_NUMPY))
    assert "import" not in doc and doc["info"]["year"] == 2020
    with pytest.raises(FileExistsError):
        write_coco(ds, tmp_path / "ds" / "dataset.json")


# ---------------------------------------------------------------------- reliability (issue 11/12)
def _tiny_coco(tmp_path: Path, n: int = 3) -> tuple[Path, dict]:
    (tmp_path / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    images, anns = [], []
    for i in range(n):
        (tmp_path / "images" / f"s01_{i}.jpg").write_bytes(b"jpeg")
        images.append({"id": i + 1, "file_name": f"s01_{i}.jpg", "width": 64, "height": 64})
        kp = rng.uniform(1, 60, (19, 3)).round(2)
        kp[:, 2] = 2
        anns.append({"id": 10 + i, "image_id": i + 1, "keypoints": kp.ravel().tolist()})
    doc = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": 1, "name": "person", "keypoints": list(layout.KEYPOINT_NAMES)}],
    }
    path = tmp_path / "gt.json"
    path.write_bytes(orjson.dumps(doc))
    return path, doc


def test_box_only_results_get_a_clear_message(tmp_path):
    gt, doc = _tiny_coco(tmp_path)
    boxes = [{"image_id": 1, "category_id": 1, "bbox": [1, 2, 30, 40], "score": 0.9}]
    (tmp_path / "boxes.json").write_bytes(orjson.dumps(boxes))
    with pytest.raises(InputError, match="only a box") as exc:
        read_coco(tmp_path / "boxes.json", images_from=gt)
    assert "NoneType" not in str(exc.value)


def test_scores_and_provenance_survive_save_export_and_reimport(tmp_path):
    gt, _ = _tiny_coco(tmp_path)
    ds = read_coco(gt).dataset
    ds.scores[0, :5] = [0.123456, 0.9, 0.33333334, 1.0, 0.0]
    ds.source[1, 17:] = layout.HUMAN
    ds.source[2, 3] = layout.PREDICTED
    ds.save(tmp_path / "ds")
    back = Dataset.load(tmp_path / "ds")
    np.testing.assert_array_equal(back.scores, ds.scores)  # float32 exact, not 4 decimals
    out = write_coco(back, tmp_path / "export.json")
    doc = orjson.loads(out.read_bytes())
    assert "keypoint_source" not in doc["annotations"][0]  # untouched rows stay plain COCO
    again = read_coco(out, images=tmp_path / "images").dataset
    np.testing.assert_array_equal(again.source, ds.source)
    np.testing.assert_array_equal(again.scores, ds.scores)


def test_untouched_import_exports_as_plain_coco(tmp_path):
    gt, doc = _tiny_coco(tmp_path)
    ds = read_coco(gt).dataset
    exported = orjson.loads(orjson.dumps(coco_document(ds)))
    for a in exported["annotations"]:
        assert not {"keypoint_source", "keypoint_scores", "keypoints_raw"} & set(a)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d["images"][0].__setitem__("frame_index", 2.5), "frame_index"),
        (lambda d: d["images"][0].__setitem__("id", 2**60), r"images\[0\]"),
        (lambda d: d["annotations"][0]["keypoints"].__setitem__(2, 0.5), "visibility"),
        (lambda d: d["annotations"][0]["keypoints"].__setitem__(0, 1e300), "1e\\+06"),
        (lambda d: d["annotations"][0].__setitem__("custom", [[[[[[[[1]]]]]]]] * 1), None),
        (lambda d: d["categories"][0].__setitem__("skeleton", [[1, 99]]), "skeleton"),
        (lambda d: d.__setitem__("info", "text"), "info"),
        (
            lambda d: d.__setitem__(
                "videos", [{"id": 1, "file_name": "../../outside.mp4", "fps": 15}]
            ),
            r"videos\[0\]",
        ),
        (lambda d: d["images"][0].__setitem__("file_name", "é" * 200 + ".jpg"), "bytes"),
    ],
)
def test_import_refuses_what_load_refuses(tmp_path, mutate, match):
    gt, doc = _tiny_coco(tmp_path)
    mutate(doc)
    gt.write_bytes(orjson.dumps(doc))
    if match is None:  # shallow enough: imported, and the dataset loads
        io.import_dataset(gt, tmp_path / "ok")
        Dataset.load(tmp_path / "ok")
        return
    with pytest.raises(InputError, match=match) as exc:
        io.import_dataset(gt, tmp_path / "ds")
    assert exc.value.path == gt
    assert not (tmp_path / "ds").exists()


def _set(where, key, value):
    return lambda d: where(d).__setitem__(key, value)


@pytest.mark.parametrize(
    "mutate, field, match",
    [
        # categories (_category_problem)
        (_set(lambda d: d["categories"], 0, 7), "categories[0]", "an object with an 'id'"),
        (
            _set(lambda d: d["categories"][0], "keypoints", ["nose", "left_paw"]),
            "categories[0].keypoints",
            "cannot be imported",
        ),
        (
            _set(lambda d: d["categories"][0], "supercategory", 3),
            "categories[0].supercategory",
            "a string",
        ),
        (_set(lambda d: d["categories"][0], "id", "1"), "categories[0].id", "an integer"),
        # images (_image_name, _check_image_links)
        (_set(lambda d: d["images"][1], "width", 0), "images[1].width", "a positive integer"),
        (
            _set(lambda d: d["images"][1], "file_name", "s01_0.jpg"),
            "images[1].file_name",
            "unique",
        ),
        (_set(lambda d: d["images"][1], "video_id", 4), "images[1].video_id", "a videos"),
        (_set(lambda d: d["images"][1], "stance", 5), "images[1].stance", "a string or null"),
        (lambda d: d["images"][1].pop("height"), "images[1]", "'height'"),
        # annotations (_person_keypoints, _check_per_keypoint)
        (
            lambda d: d["annotations"][1]["keypoints"].__setitem__(5, 3),
            "annotations[1].keypoints[5]",
            "0, 1 or 2",
        ),
        (
            lambda d: d["annotations"][1]["keypoints"].__setitem__(4, "x"),
            "annotations[1].keypoints[4]",
            "a finite number",
        ),
        (
            _set(lambda d: d["annotations"][1], "keypoint_scores", [1.5] * 19),
            "annotations[1].keypoint_scores",
            "0..1",
        ),
        (
            _set(lambda d: d["annotations"][1], "keypoint_source", "ii"),
            "annotations[1].keypoint_source",
            "19 letters",
        ),
        (_set(lambda d: d["annotations"][1], "bbox", [1, 2]), "annotations[1].bbox", "4 finite"),
    ],
)
def test_every_record_check_names_its_field(tmp_path, mutate, field, match):
    gt, doc = _tiny_coco(tmp_path)
    mutate(doc)
    gt.write_bytes(orjson.dumps(doc))
    with pytest.raises(InputError, match=match) as exc:
        read_coco(gt)
    assert exc.value.path == gt and exc.value.line is not None
    assert f"'{field}'" in str(exc.value)
