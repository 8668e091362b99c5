"""YOLO layouts people come from (split folders without a yaml, ultralytics predict output),
natural frame order, and the same checks with or without a data.yaml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from toolkit import io as tio
from toolkit.errors import InputError
from toolkit.io.yolo import read_yolo

from .test_io_yolo import line, person, px, tree, write_image, write_label, yaml_file


def roboflow_from_coco8(realdata, dst: Path) -> Path:
    """The real coco8-pose files arranged as Roboflow exports them, without the yaml."""
    src = realdata / "ultralytics-hub" / "coco8-pose"
    for split, ours in (("train", "train"), ("val", "valid")):
        shutil.copytree(src / "images" / split, dst / ours / "images")
        shutil.copytree(src / "labels" / split, dst / ours / "labels")
    (dst / "README.roboflow.txt").write_text("Exported from roboflow.com\n")
    return dst


def test_split_folders_without_a_yaml_match_the_yaml_import(realdata, tmp_path):
    root = roboflow_from_coco8(realdata, tmp_path / "rf")
    assert tio.detect_format(root) == "yolo"
    flat = tio.read(root).dataset
    via_yaml = read_yolo(realdata / "ultralytics-hub" / "coco8-pose" / "coco8-pose.yaml").dataset
    assert len(flat.images) == len(via_yaml.images) == 8
    assert len(flat) == len(via_yaml) == 21
    assert flat.images["file_name"].tolist()[0].startswith("train/images/")
    assert set(flat.images["stance"].dropna()) == set()  # 'images' is not a stance folder
    splits = [e["split"] for e in flat.images["extra"]]
    assert splits.count("train") == 4 and splits.count("val") == 4
    # Same people, same pixels, whichever way the tree was read.
    a = {Path(f).name: i for i, f in enumerate(flat.images["file_name"])}
    b = {Path(f).name: i for i, f in enumerate(via_yaml.images["file_name"])}
    for name in a:
        ka = flat.keypoints[flat.annotations["image_id"].to_numpy() == a[name] + 1]
        kb = via_yaml.keypoints[via_yaml.annotations["image_id"].to_numpy() == b[name] + 1]
        np.testing.assert_allclose(np.nan_to_num(ka), np.nan_to_num(kb))


def test_split_folder_label_without_image_is_named(realdata, tmp_path):
    root = roboflow_from_coco8(realdata, tmp_path / "rf")
    (root / "valid" / "images" / "000000000110.jpg").unlink()
    with pytest.raises(InputError, match="Expected an image for this label file") as err:
        tio.read(root)
    assert err.value.path.name == "000000000110.txt"


def test_label_without_image_is_refused_the_same_with_a_yaml(realdata, tmp_path):
    src = tmp_path / "coco8"
    shutil.copytree(realdata / "ultralytics-hub" / "coco8-pose", src)
    (src / "images" / "val" / "000000000113.jpg").unlink()
    with pytest.raises(InputError) as with_yaml:
        tio.read(src / "coco8-pose.yaml")
    (src / "coco8-pose.yaml").unlink()
    with pytest.raises(InputError) as without:
        tio.read(src)
    assert with_yaml.value.reason == without.value.reason
    assert with_yaml.value.path == without.value.path
    assert with_yaml.value.path.name == "000000000113.txt"
    res = tio.read(src, skip_bad=True)  # --skip-bad lists it instead
    assert [Path(s.path).name for s in res.skipped] == ["000000000113.txt"]


def test_yaml_syntax_error_is_reported_as_such(tmp_path):
    root = tree(tmp_path / "ds", {"a.jpg": [line(person(0.5, 0.5))]})
    bad = yaml_file(root / "data.yaml", "train: images\nkpt_shape: [19, 3\nnames: {0: person}\n")
    with pytest.raises(InputError, match="Expected valid YAML") as err:
        tio.detect_format(bad)
    assert err.value.path == bad and err.value.line is not None
    # The folder that holds it is refused too, not imported with the yaml ignored.
    with pytest.raises(InputError, match="Expected valid YAML") as err:
        tio.read(root)
    assert err.value.path == bad


def test_ultralytics_predict_folder_with_source_images(tmp_path):
    photos = tmp_path / "photos"
    for n in ("image0.jpg", "image1.jpg", "image2.jpg"):
        write_image(photos / n)
    run = tmp_path / "runs" / "pose" / "predict"
    for n in ("image0.jpg", "image2.jpg"):  # predict draws on copies of the images
        write_image(run / n)
    conf = np.full(19, 0.8)
    write_label(run / "labels" / "image0.txt", [line(person(0.5, 0.5), conf)])
    write_label(
        run / "labels" / "image2.txt", [line(person(0.3, 0.5), conf), line(person(0.7, 0.5), conf)]
    )
    # Without --images: the drawings are used, and the notes say how to use the originals.
    res = tio.read(run)
    assert res.dataset.images["file_name"].tolist() == ["image0.jpg", "image2.jpg"]
    assert any("--images DIR" in n for n in res.notes)
    # With --images: every source image (image1 had nobody), labels matched by stem.
    for src in (run, run / "labels"):
        res = tio.read(src, images=photos)
        ds = res.dataset
        assert ds.images["file_name"].tolist() == ["image0.jpg", "image1.jpg", "image2.jpg"]
        assert len(ds) == 3 and res.media_root == photos
        np.testing.assert_allclose(ds.keypoints[0, :, :2], px(person(0.5, 0.5)), atol=1e-3)
        np.testing.assert_allclose(ds.scores[0], 0.8)
    # A label whose image is not in DIR says where it looked.
    (photos / "image2.jpg").unlink()
    with pytest.raises(InputError, match=f"in {photos}") as err:
        tio.read(run / "labels", images=photos)
    assert err.value.path.name == "image2.txt"


def test_labels_only_folder_says_where_it_looked(tmp_path):
    labels = tmp_path / "predict" / "labels"
    write_label(labels / "image0.txt", [line(person(0.5, 0.5))])
    with pytest.raises(InputError) as err:
        tio.read(labels)
    msg = str(err.value)
    assert f"in {labels}" in msg and "--images DIR" in msg and "--video FILE" in msg


def test_frames_in_natural_order(tmp_path):
    names = [f"frame_{i}.jpg" for i in (10, 2, 1, 100, 11)]
    root = tree(tmp_path / "ds", {n: [line(person(0.5, 0.5))] for n in names})
    ds = read_yolo(root).dataset
    assert ds.images["file_name"].tolist() == [
        "frame_1.jpg",
        "frame_2.jpg",
        "frame_10.jpg",
        "frame_11.jpg",
        "frame_100.jpg",
    ]
    assert ds.images["id"].tolist() == [1, 2, 3, 4, 5]


def test_kpt_shape_is_printed_in_full(tmp_path):
    root = tree(tmp_path / "ds", {"a.jpg": [line(person(0.5, 0.5))]})
    yml = yaml_file(root / "data.yaml", "train: images\nkpt_shape: [12, 2]\nnames: [person]\n")
    with pytest.raises(InputError, match=r"but got \[12, 2\]") as err:
        read_yolo(yml)
    assert err.value.line == 2


def test_person_written_twice_is_imported_once_with_a_note(tmp_path):
    one = line(person(0.5, 0.5))
    root = tree(tmp_path / "ds", {"a.jpg": [one, line(person(0.2, 0.5)), one]})
    res = read_yolo(root)
    assert len(res.dataset) == 2
    note = next(n for n in res.notes if "written twice" in n)
    assert "a.txt:3" in note


def test_export_of_an_empty_dataset_is_refused_clearly(tmp_path):
    from toolkit.dataset import Dataset

    ds = Dataset.from_records([], [], np.zeros((0, 19, 3)))
    with pytest.raises(InputError, match="at least one image"):
        tio.write(ds, "yolo", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_export_of_images_without_people(tmp_path):
    root = tree(tmp_path / "ds", {"a.jpg": [], "b.jpg": []})
    ds = read_yolo(root).dataset
    out = tio.write(ds, "yolo", tmp_path / "out")
    assert (out / "labels" / "a.txt").read_text() == ""
    assert (out / "images" / "b.jpg").is_file()


def test_two_images_one_label_is_worded_the_same_with_or_without_a_yaml(tmp_path):
    root = tree(tmp_path / "ds", {"a.jpg": [line(person(0.5, 0.5))]})
    write_image(root / "images" / "a.png")
    with pytest.raises(InputError, match="Expected one image per label file") as without:
        tio.read(root)
    yaml_file(root / "data.yaml", "train: images\nval: images\nkpt_shape: [19, 3]\n")
    with pytest.raises(InputError, match="Expected one image per label file") as with_yaml:
        tio.read(root / "data.yaml")
    assert without.value.reason == with_yaml.value.reason
    assert "'a.jpg' and 'a.png' both map to a.txt" in with_yaml.value.reason
