"""YOLO pose import (every variant of issue 2) and export, on generated and real files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from toolkit import io as tio
from toolkit import layout
from toolkit.dataset import Dataset
from toolkit.errors import InputError
from toolkit.io.yolo import CONF_VISIBLE, read_yolo, write_yolo

W, H = 64, 48

# A standing person in a unit box (x right, y down), COCO order, then grip and tip at the right
# wrist (index 10) with the stick pointing up.
_BODY = np.array([
    [0.50, 0.08], [0.53, 0.06], [0.47, 0.06], [0.56, 0.08], [0.44, 0.08],
    [0.65, 0.22], [0.35, 0.22], [0.72, 0.38], [0.28, 0.38], [0.74, 0.52], [0.26, 0.52],
    [0.60, 0.55], [0.40, 0.55], [0.62, 0.75], [0.38, 0.75], [0.63, 0.95], [0.37, 0.95],
])  # fmt: skip


def person(cx: float, cy: float, s: float = 0.4, left_handed: bool = False) -> np.ndarray:
    """``(19, 2)`` normalised points of a person centred at ``cx, cy``, box side ``s``."""
    body = (_BODY - 0.5) * s + [cx, cy]
    wrist = body[layout.L_WRIST if left_handed else layout.R_WRIST]
    grip = wrist + [0.0, -0.01]
    tip = grip + [0.0, -0.3 * s]
    return np.clip(np.vstack([body, grip, tip]), 0, 1)


def line(kp: np.ndarray, third=None, cls: int = 0, d: int = 3, extra=()) -> str:
    """A YOLO pose label line for normalised ``kp`` (K, 2)."""
    third = np.full(len(kp), 2.0) if third is None else np.broadcast_to(third, len(kp))
    lo, hi = kp.min(0), kp.max(0)
    box = [*(lo + hi) / 2, *(hi - lo)]
    vals = np.column_stack([kp, third])[:, :d].ravel()
    return " ".join([str(cls)] + [f"{v:.6f}" for v in (*box, *vals)] + [f"{e:g}" for e in extra])


def write_image(path: Path, w: int = W, h: int = H) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((h, w, 3), 90, np.uint8)
    cv2.circle(img, (w // 2, h // 2), min(w, h) // 4, (0, 200, 255), -1)
    assert cv2.imwrite(str(path), img)


def write_label(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(x + "\n" for x in lines))


def tree(root: Path, files: dict[str, list[str] | None], w: int = W, h: int = H) -> Path:
    """``images/<rel>`` + ``labels/<rel>.txt`` (None: no label file)."""
    for rel, lines in files.items():
        write_image(root / "images" / rel, w, h)
        if lines is not None:
            write_label(root / "labels" / Path(rel).with_suffix(".txt"), lines)
    return root


def yaml_file(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    return path


YAML19 = "path:\ntrain: images\nval: images\nkpt_shape: [19, 3]\nnames:\n  0: person\n"


def px(kp_norm: np.ndarray, w: int = W, h: int = H) -> np.ndarray:
    return kp_norm * [w, h]


# ---------------------------------------------------------------------- real data
def test_coco8_pose_yaml_with_empty_path(realdata):
    yml = realdata / "ultralytics-hub" / "coco8-pose" / "coco8-pose.yaml"
    res = read_yolo(yml)
    ds = res.dataset
    assert len(ds.images) == 8 and len(ds) == 21
    assert res.media_root == yml.parent.absolute() / "images"
    assert ds.images["file_name"].iloc[0] == "train/000000000036.jpg"
    splits = [e["split"] for e in ds.images["extra"]]
    assert splits.count("train") == 4 and splits.count("val") == 4
    # The split folders are not stances.
    assert ds.images["stance"].isna().all()
    # Stick points are missing for COCO-17 data.
    assert (ds.keypoints[:, [layout.GRIP, layout.TIP], 2] == 0).all()
    assert np.isnan(ds.keypoints[:, [layout.GRIP, layout.TIP], :2]).all()
    # Size from the image file; pixel coordinates from the first label line.
    img = cv2.imread(str(res.media_root / "train/000000000036.jpg"))
    assert (ds.images["width"].iloc[0], ds.images["height"].iloc[0]) == (img.shape[1], img.shape[0])
    first = (yml.parent / "labels/train/000000000036.txt").read_text().split("\n")[0].split()
    nose = np.array([float(first[5]) * img.shape[1], float(first[6]) * img.shape[0]])
    np.testing.assert_allclose(ds.keypoints[0, 0, :2], nose, atol=1e-6)
    assert ds.keypoints[0, 0, 2] == 2
    assert any("subject unknown for 8 of 8 images" in n for n in res.notes)


def test_coco8_pose_folder_is_read_through_its_yaml(realdata):
    res = read_yolo(realdata / "ultralytics-hub" / "coco8-pose")
    assert len(res.dataset) == 21
    assert tio.detect_format(realdata / "ultralytics-hub" / "coco8-pose") == "yolo"


# ---------------------------------------------------------------------- dataset layouts
def test_images_labels_tree_with_class_folders_and_subject_regex(tmp_path):
    p1, p2 = person(0.5, 0.5), person(0.3, 0.5, left_handed=True)
    root = tree(tmp_path / "ds", {
        "forward_high/s01_001.jpg": [line(p1)],
        "forward_high/s02_001.jpg": [line(p1), line(p2)],
        "cat_low/s01_002.png": [line(p2)],
    })  # fmt: skip
    assert tio.detect_format(root) == "yolo"
    res = read_yolo(root, subject_regex=r"^(s\d+)_")
    ds = res.dataset
    assert ds.images["file_name"].tolist() == [
        "cat_low/s01_002.png",
        "forward_high/s01_001.jpg",
        "forward_high/s02_001.jpg",
    ]
    assert ds.images["stance"].tolist() == ["cat_low", "forward_high", "forward_high"]
    assert ds.images["subject"].tolist() == ["s01", "s01", "s02"]
    assert res.media_root == (root / "images").absolute()
    assert len(ds) == 4
    assert ds.annotations["image_id"].tolist() == [1, 2, 3, 3]
    np.testing.assert_allclose(ds.keypoints[1, :, :2], px(p1), atol=1e-4)
    np.testing.assert_allclose(ds.keypoints[3, :, :2], px(p2), atol=1e-4)
    assert (ds.keypoints[..., 2] == 2).all()
    assert (ds.images["width"] == W).all() and (ds.images["height"] == H).all()
    assert not any("subject unknown" in n for n in res.notes)
    # Box from the label line, in pixels.
    lo, hi = p1.min(0), p1.max(0)
    np.testing.assert_allclose(ds.bboxes[1], [*(lo * [W, H]), *((hi - lo) * [W, H])], atol=1e-3)


def test_no_stance_folders_and_no_subject_say_so(tmp_path):
    root = tree(tmp_path / "ds", {"a.jpg": [line(person(0.5, 0.5))], "b.jpg": []})
    res = read_yolo(root)
    assert res.dataset.images["stance"].isna().all()
    assert res.dataset.images["subject"].isna().all()
    assert (
        "subject unknown for 2 of 2 images (give it in the labels CSV or with --subject-regex RE)"
    ) in res.notes
    # An empty label file is an image without persons.
    assert len(res.dataset) == 1 and len(res.dataset.images) == 2
    res2 = read_yolo(root, stance_from_folders=False)
    assert res2.dataset.images["stance"].isna().all()


def test_labels_beside_images(tmp_path):
    src = tmp_path / "flat"
    for stance in ("horse_low", "back_high"):
        write_image(src / stance / "s03_000.jpg")
        write_label(src / stance / "s03_000.txt", [line(person(0.5, 0.5))])
    write_image(src / "back_high" / "s04_001.jpg")  # no label: an image without persons
    (src / "classes.txt").write_text("person\n")
    res = read_yolo(src, subject_regex=r"^(s\d+)")
    ds = res.dataset
    assert ds.images["file_name"].tolist() == [
        "back_high/s03_000.jpg",
        "back_high/s04_001.jpg",
        "horse_low/s03_000.jpg",
    ]
    assert ds.images["stance"].tolist() == ["back_high", "back_high", "horse_low"]
    assert ds.images["subject"].tolist() == ["s03", "s04", "s03"]
    assert len(ds) == 2 and res.media_root == src.absolute()
    assert any("1 images have no label file" in n for n in res.notes)


def test_yaml_with_txt_lists_relative_path_and_split_dirs(tmp_path):
    root = tmp_path / "data"
    tree(
        root,
        {
            "train/a.jpg": [line(person(0.5, 0.5))],
            "train/b.jpg": [line(person(0.4, 0.5))],
            "val/c.jpg": [line(person(0.6, 0.5))],
            "other/d.jpg": [line(person(0.5, 0.4))],
        },
    )
    (root / "train.txt").write_text("./images/train/a.jpg\nimages/train/b.jpg\n\n")
    yml = yaml_file(
        tmp_path / "cfg" / "pose.yaml",
        "path: ../data\ntrain: train.txt\nval: [images/val, images/other]\n"
        "kpt_shape: [19, 3]\nflip_idx: [0]\nnames: [person]\n",
    )
    res = read_yolo(yml)
    ds = res.dataset
    # Images in split order (train, val, test), each split as listed or walked.
    assert ds.images["file_name"].tolist() == [
        "train/a.jpg",
        "train/b.jpg",
        "val/c.jpg",
        "other/d.jpg",
    ]
    assert [e["split"] for e in ds.images["extra"]] == ["train", "train", "val", "val"]
    # Under a split dir a file is not in a class folder; in a list 'train/' is a split folder.
    assert ds.images["stance"].isna().all()
    assert res.media_root == (root / "images").absolute()


def test_labels_csv_gives_stance_and_subject(tmp_path):
    p = person(0.5, 0.5)
    root = tree(
        tmp_path / "ds",
        {
            "forward_high/x1.jpg": [line(p)],
            "forward_high/x2.jpg": [line(p)],
            "cat_low/x3.jpg": [line(p)],
        },
    )
    csv = tmp_path / "labels.csv"
    csv.write_text(
        "file,stance,subject\nforward_high/x1.jpg,back_low,s07\n"
        "cat_low/x3.jpg,cat_low,\nmissing/x9.jpg,cat_low,s01\n"
    )
    res = read_yolo(root, labels=csv, subject_regex=r"x(\d)")
    ds = res.dataset
    by = dict(
        zip(
            ds.images["file_name"],
            zip(ds.images["stance"], ds.images["subject"], strict=True),
            strict=True,
        )
    )
    assert by["forward_high/x1.jpg"] == ("back_low", "s07")  # the CSV wins over the folder
    assert by["cat_low/x3.jpg"] == ("cat_low", "3")  # empty CSV subject: the regex
    assert by["forward_high/x2.jpg"] == ("forward_high", "2")  # not in CSV: folder
    assert any("1 images are not in" in n for n in res.notes)
    assert any("1 rows of" in n and "missing/x9.jpg" in n for n in res.notes)


def test_bad_labels_csv(tmp_path):
    root = tree(tmp_path / "ds", {"a.jpg": [line(person(0.5, 0.5))]})
    bad = {
        "dup.csv": ("file,stance\na.jpg,x\na.jpg,y\n", 3),
        "escape.csv": ("file,stance\n../a.jpg,x\n", 2),
        "header.csv": ("name,label\na.jpg,x\n", 1),
    }
    for name, (text, lineno) in bad.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(InputError) as ei:
            read_yolo(root, labels=tmp_path / name)
        assert ei.value.path == tmp_path / name and ei.value.line == lineno, name


# ---------------------------------------------------------------------- third values
def test_flag_and_conf_decided_per_file(tmp_path):
    p = person(0.5, 0.5)
    flags = np.full(19, 2.0)
    flags[[3, 4]] = [1, 0]
    conf = np.round(np.linspace(0.05, 0.95, 19), 6)
    conf[5] = 0.0
    root = tree(tmp_path / "ds", {"flag.jpg": [line(p, flags)], "conf.jpg": [line(p, conf)]})
    ds = read_yolo(root).dataset
    k_conf, k_flag = ds.keypoints[0], ds.keypoints[1]
    assert ds.images["file_name"].tolist() == ["conf.jpg", "flag.jpg"]
    np.testing.assert_array_equal(k_flag[:, 2], flags)
    assert np.isnan(k_flag[4, :2]).all() and np.isnan(ds.scores[1]).all()
    expect_v = np.where(conf >= CONF_VISIBLE, 2, np.where(conf > 0, 1, 0))
    np.testing.assert_array_equal(k_conf[:, 2], expect_v)
    np.testing.assert_allclose(ds.scores[0], conf, atol=1e-6)
    assert np.isnan(k_conf[5, :2]).all()  # conf 0: missing


def test_ambiguous_zero_one_file(tmp_path):
    p = person(0.5, 0.5)
    zero_one = np.where(np.arange(19) % 3 == 0, 0.0, 1.0)
    root = tree(tmp_path / "ds", {"amb.jpg": [line(p, zero_one)]})
    auto = read_yolo(root)
    assert any("only 0 and 1" in n and "flags" in n for n in auto.notes)
    np.testing.assert_array_equal(auto.dataset.keypoints[0, :, 2], zero_one)  # flags: v=1
    as_conf = read_yolo(root, kpt_values="conf").dataset
    np.testing.assert_array_equal(as_conf.keypoints[0, :, 2], zero_one * 2)
    np.testing.assert_array_equal(as_conf.scores[0], zero_one)
    # In auto mode an ambiguous file follows the unambiguous ones.
    write_image(root / "images" / "c.jpg")
    write_label(root / "labels" / "c.txt", [line(p, np.full(19, 0.7))])
    mixed = read_yolo(root).dataset
    np.testing.assert_array_equal(mixed.keypoints[0, :, 2], zero_one * 2)
    # A forced interpretation that contradicts a file is an error naming the line.
    write_label(root / "labels" / "d.txt", ["", line(p)])
    write_image(root / "images" / "d.jpg")
    with pytest.raises(InputError) as ei:
        read_yolo(root, kpt_values="conf")
    assert ei.value.path.name == "d.txt" and ei.value.line == 2


def test_trailing_box_confidence_and_track_id(tmp_path):
    p, q = person(0.3, 0.5, 0.3), person(0.7, 0.5, 0.3)
    conf = np.full(19, 0.9)
    root = tree(
        tmp_path / "ds", {"a.jpg": [line(p, conf, extra=(0.87,)), line(q, conf, extra=(0.55, 7))]}
    )
    ds = read_yolo(root).dataset
    assert ds.annotations["score"].tolist() == pytest.approx([0.87, 0.55])
    assert ds.annotations["track_id"].iloc[0] is pd_na() and ds.annotations["track_id"].iloc[1] == 7
    np.testing.assert_allclose(ds.keypoints[1, :, :2], px(q), atol=1e-4)


def pd_na():
    import pandas as pd

    return pd.NA


def test_two_value_keypoints(tmp_path):
    p = person(0.5, 0.5)
    p[[1, 2]] = 0.0
    root = tree(tmp_path / "ds", {"a.jpg": [line(p, d=2)]})
    yaml_file(root / "data.yaml", YAML19.replace("[19, 3]", "[19, 2]"))
    ds = read_yolo(root / "data.yaml").dataset
    v = ds.keypoints[0, :, 2]
    assert (v[[1, 2]] == 0).all() and (np.delete(v, [1, 2]) == 2).all()
    # Without a yaml the dimension is inferred from the token count.
    shutil.move(root / "data.yaml", tmp_path / "aside.yaml")
    ds2 = read_yolo(root).dataset
    np.testing.assert_array_equal(ds2.keypoints[0, :, 2], v)


def test_seventeen_keypoints_without_sticks(tmp_path):
    root = tree(tmp_path / "ds", {"a.jpg": [line(person(0.5, 0.5)[:17])]})
    res = read_yolo(root)
    assert (res.dataset.keypoints[0, :17, 2] == 2).all()
    assert (res.dataset.keypoints[0, 17:, 2] == 0).all()
    assert any("the stick (stick_grip, stick_tip) is marked missing" in n for n in res.notes)


def test_kpt_names_map_other_orders_onto_the_layout(tmp_path):
    p = person(0.5, 0.5)
    order = [layout.GRIP, layout.TIP, *range(17)]  # stick first, then the body
    names = "\n".join(f"    - {layout.KEYPOINT_NAMES[i]}" for i in order)
    root = tree(tmp_path / "ds", {"a.jpg": [line(p[order])]})
    yaml_file(root / "data.yaml", YAML19 + f"kpt_names:\n  0:\n{names}\n")
    ds = read_yolo(root / "data.yaml").dataset
    np.testing.assert_allclose(ds.keypoints[0, :, :2], px(p), atol=1e-4)
    # A subset of our names: the rest are missing.
    sub = [layout.NOSE, layout.GRIP, layout.TIP]
    names = "\n".join(f"    - {layout.KEYPOINT_NAMES[i]}" for i in sub)
    write_label(root / "labels" / "a.txt", [line(p[sub])])
    yaml_file(
        root / "data.yaml",
        YAML19.replace("[19, 3]", "[3, 3]") + f"kpt_names:\n  0:\n{names}\n",
    )
    ds = read_yolo(root / "data.yaml").dataset
    np.testing.assert_allclose(ds.keypoints[0, sub, :2], px(p[sub]), atol=1e-4)
    assert (np.delete(ds.keypoints[0, :, 2], sub) == 0).all()


# ---------------------------------------------------------------------- sticks as objects
def _two_people(tmp_path: Path, where: str) -> tuple[Path, np.ndarray, np.ndarray, dict]:
    right = person(0.27, 0.5, 0.4)  # stick in the right hand
    left = person(0.73, 0.5, 0.4, left_handed=True)  # stick in the left hand
    stick_r = line(right[17:], cls=1)
    stick_l = line(left[17:], cls=1)
    far = line(np.array([[0.5, 0.02], [0.55, 0.02]]), cls=1)  # nobody's wrist is near
    people = [line(right[:17]), line(left[:17])]
    if where == "class":
        files = {"a.jpg": people + [stick_l, far, stick_r]}
        root = tree(tmp_path / "ds", files, w=200, h=100)
        yaml_file(
            root / "data.yaml",
            "path:\ntrain: images\nval: images\nkpt_shape: [17, 3]\n"
            "names:\n  0: person\n  1: stick\n",
        )
        return root / "data.yaml", right, left, {}
    root = tree(tmp_path / "ds", {"a.jpg": people}, w=200, h=100)
    write_label(tmp_path / "sticks" / "a.txt", [stick_l, far, stick_r])
    return root, right, left, {"stick_labels": tmp_path / "sticks"}


@pytest.mark.parametrize("where", ["class", "folder"])
def test_sticks_attach_to_the_nearest_wrist(tmp_path, where):
    src, right, left, opts = _two_people(tmp_path, where)
    res = read_yolo(src, **opts)
    ds = res.dataset
    assert len(ds) == 2  # sticks are not persons
    scale = np.array([200, 100])
    np.testing.assert_allclose(ds.keypoints[0, 17:, :2], right[17:] * scale, atol=1e-3)
    np.testing.assert_allclose(ds.keypoints[1, 17:, :2], left[17:] * scale, atol=1e-3)
    assert (ds.keypoints[:, 17:, 2] == 2).all()
    unmatched = [n for n in res.notes if "sticks were not attached" in n]
    assert len(unmatched) == 1 and unmatched[0].startswith("1 sticks")
    assert (":4" if where == "class" else ":2") in unmatched[0]


def test_stick_labels_folder_rejects_person_lines(tmp_path):
    root = tree(tmp_path / "ds", {"a.jpg": [line(person(0.5, 0.5)[:17])]})
    write_label(tmp_path / "sticks" / "a.txt", [line(person(0.5, 0.5)[:17])])
    with pytest.raises(InputError) as ei:
        read_yolo(root, stick_labels=tmp_path / "sticks")
    assert ei.value.path == tmp_path / "sticks" / "a.txt" and ei.value.line == 1


# ---------------------------------------------------------------------- video
def make_video(path: Path, n: int = 12, w: int = 64, h: int = 48, fps: float = 10.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert vw.isOpened()
    for i in range(n):
        img = np.zeros((h, w, 3), np.uint8)
        cv2.rectangle(img, (2 + 3 * i, 10), (12 + 3 * i, 30), (255, 255, 255), -1)
        vw.write(img)
    vw.release()
    return path


def test_video_with_save_txt_labels(tmp_path):
    video = make_video(tmp_path / "media" / "s05_clip.mp4")
    labels = tmp_path / "pred"
    conf = np.full(19, 0.8)
    write_label(labels / "s05_clip_1.txt", [line(person(0.5, 0.5), conf, extra=(0.9, 1))])
    write_label(
        labels / "s05_clip_4.txt",
        [
            line(person(0.4, 0.5), conf, extra=(0.8, 1)),
            line(person(0.6, 0.5), conf, extra=(0.7, 2)),
        ],
    )
    write_label(labels / "s05_clip_5.txt", [])  # a frame with the file but no detection
    write_label(labels / "other_3.txt", [line(person(0.5, 0.5))])
    csv = tmp_path / "stances.csv"
    csv.write_text("file,stance\ns05_clip/000003.jpg,horse_middle\n")
    res = read_yolo(labels, video=video, labels=csv, subject_regex=r"^(s\d+)_")
    ds = res.dataset
    assert ds.videos == [
        {
            "id": 1,
            "file_name": "s05_clip.mp4",
            "fps": 10.0,
            "frame_count": 12,
            "width": 64,
            "height": 48,
        }
    ]
    assert res.media_root == video.parent.absolute()
    assert ds.images["file_name"].tolist() == [
        "s05_clip/000000.jpg",
        "s05_clip/000003.jpg",
        "s05_clip/000004.jpg",
    ]
    assert ds.images["frame_index"].tolist() == [0, 3, 4]
    assert ds.images["video_id"].tolist() == [1, 1, 1]
    assert ds.images["stance"].tolist()[1] == "horse_middle"
    assert set(ds.images["subject"]) == {"s05"}
    assert ds.annotations["track_id"].tolist() == [1, 1, 2]
    assert ds.annotations["image_id"].tolist() == [1, 2, 2]
    np.testing.assert_allclose(ds.scores, 0.8, atol=1e-6)
    np.testing.assert_allclose(ds.keypoints[0, :, :2], px(person(0.5, 0.5)), atol=1e-4)
    assert any("do not match 's05_clip_<frame>.txt'" in n for n in res.notes)
    assert tio.detect_format(labels) == "yolo"


def test_video_frame_beyond_the_end_and_corrupt_video(tmp_path):
    video = make_video(tmp_path / "clip.mp4", n=5)
    write_label(tmp_path / "pred" / "clip_6.txt", [line(person(0.5, 0.5))])
    with pytest.raises(InputError) as ei:
        read_yolo(tmp_path / "pred", video=video)
    assert ei.value.path.name == "clip_6.txt"
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(video.read_bytes()[:300])
    write_label(tmp_path / "pred2" / "broken_1.txt", [line(person(0.5, 0.5))])
    with pytest.raises(InputError) as ei:
        read_yolo(tmp_path / "pred2", video=bad)
    assert ei.value.path == bad.absolute()


# ---------------------------------------------------------------------- bad input
GOOD = line(person(0.5, 0.5))


def _bad_line(tokens_edit) -> list[str]:
    toks = GOOD.split()
    tokens_edit(toks)
    return ["", GOOD, " ".join(toks)]  # the bad line is line 3


def _set(i, v):
    def edit(t):
        t[i] = v

    return edit


BAD_LINES = {
    "word": _bad_line(_set(7, "abc")),
    "nan": _bad_line(_set(9, "nan")),
    "inf": _bad_line(_set(3, "inf")),
    "outside": _bad_line(_set(8, "1.5")),
    "negative": _bad_line(_set(2, "-0.2")),
    "vis3": _bad_line(_set(7, "3")),
    "vis1.5": _bad_line(_set(10, "1.5")),
    "class": _bad_line(_set(0, "0.5")),
    "count": _bad_line(lambda t: t.pop()),
    "count_more": _bad_line(lambda t: t.extend(["1", "2", "3"])),
    "flag_then_conf": ["", GOOD, line(person(0.5, 0.5), np.full(19, 0.5))],
}


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_bad_label_lines_name_file_and_line(tmp_path, case):
    root = tree(tmp_path / "ds", {"ok.jpg": [GOOD], "z/bad.jpg": BAD_LINES[case]})
    with pytest.raises(InputError) as ei:
        read_yolo(root)
    assert ei.value.path == (root / "labels/z/bad.txt").absolute()
    assert ei.value.line == 3
    assert "Expected" in ei.value.reason and str(ei.value).startswith(f"{ei.value.path}:3: ")
    out = tmp_path / "out"
    with pytest.raises(InputError):
        tio.import_dataset(root, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # nothing left behind
    res = read_yolo(root, skip_bad=True)
    assert res.dataset.images["file_name"].tolist() == ["ok.jpg"]
    assert [(Path(s.path).name, s.line) for s in res.skipped] == [("bad.txt", 3)]


def _case_files(tmp_path: Path, case: str) -> tuple[Path, Path, int | None, dict]:
    """Source, the file the error must name, its line, options."""
    root = tmp_path / "ds"
    if case == "non_utf8":
        tree(root, {"a.jpg": [GOOD]})
        (root / "labels/a.txt").write_bytes(GOOD.encode() + b"\n\xff\xfe 0.1\n")
        return root, root / "labels/a.txt", 2, {}
    if case == "orphan_label":
        tree(root, {"a.jpg": [GOOD]})
        write_label(root / "labels/gone.txt", [GOOD])
        return root, root / "labels/gone.txt", None, {}
    if case == "unreadable_image":
        tree(root, {"a.jpg": [GOOD]})
        (root / "images/a.jpg").write_bytes(b"not a jpeg at all")
        return root, root / "images/a.jpg", None, {}
    if case == "zero_byte_image":
        tree(root, {"a.jpg": [GOOD]})
        (root / "images/a.jpg").write_bytes(b"")
        return root, root / "images/a.jpg", None, {}
    if case == "missing_listed_image":
        tree(root, {"a.jpg": [GOOD]})
        (root / "list.txt").write_text("images/a.jpg\nimages/nope.jpg\n")
        yaml_file(root / "data.yaml", YAML19.replace("train: images", "train: list.txt"))
        return root / "data.yaml", root / "images/nope.jpg", None, {}
    if case == "duplicate_names":
        tree(root, {"a.jpg": [GOOD], "a.png": None})
        return root, root / "images/a.png", None, {}
    if case == "duplicate_in_list":
        tree(root, {"a.jpg": [GOOD]})
        (root / "list.txt").write_text("images/a.jpg\n./images/a.jpg\n")
        yaml_file(root / "data.yaml", YAML19.replace("train: images", "train: list.txt"))
        return root / "data.yaml", root / "list.txt", 2, {}
    if case == "escape":
        tree(root, {"a.jpg": [GOOD]})
        write_image(tmp_path / "outside" / "x.jpg")
        (root / "list.txt").write_text("images/a.jpg\n../outside/x.jpg\n")
        yaml_file(root / "data.yaml", YAML19.replace("train: images", "train: list.txt"))
        return root / "data.yaml", root / "list.txt", 2, {}
    if case == "empty_yaml":
        tree(root, {"a.jpg": [GOOD]})
        yaml_file(root / "data.yaml", "")
        return root / "data.yaml", root / "data.yaml", 1, {}
    if case == "bad_yaml":
        tree(root, {"a.jpg": [GOOD]})
        yaml_file(root / "data.yaml", "train: images\nkpt_shape: [19, 3\nnames: {0: person}\n")
        return root / "data.yaml", root / "data.yaml", 3, {}
    if case == "bad_kpt_shape":
        tree(root, {"a.jpg": [GOOD]})
        yaml_file(root / "data.yaml", YAML19.replace("[19, 3]", "[5, 3]"))
        return root / "data.yaml", root / "data.yaml", 4, {}
    if case == "duplicate_frame":
        video = tmp_path / "v.mp4"
        vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5, (32, 32))
        for _ in range(4):
            vw.write(np.zeros((32, 32, 3), np.uint8))
        vw.release()
        write_label(root / "v_2.txt", [GOOD])
        write_label(root / "v_02.txt", [GOOD])
        return root, root / "v_2.txt", None, {"video": video}
    if case == "corrupt_video":
        (tmp_path / "v.mp4").write_bytes(os.urandom(2000))
        write_label(root / "v_1.txt", [GOOD])
        return root, tmp_path / "v.mp4", None, {"video": tmp_path / "v.mp4"}
    raise AssertionError(case)


FILE_CASES = [
    "non_utf8",
    "orphan_label",
    "unreadable_image",
    "zero_byte_image",
    "missing_listed_image",
    "duplicate_names",
    "duplicate_in_list",
    "escape",
    "empty_yaml",
    "bad_yaml",
    "bad_kpt_shape",
    "corrupt_video",
    "duplicate_frame",
]


@pytest.mark.parametrize("case", FILE_CASES)
def test_bad_files_raise_and_leave_nothing(tmp_path, case):
    src, named, lineno, opts = _case_files(tmp_path, case)
    with pytest.raises(InputError) as ei:
        read_yolo(src, **opts)
    assert ei.value.path is not None
    assert Path(os.path.abspath(ei.value.path)) == Path(os.path.abspath(named)), str(ei.value)
    assert ei.value.line == lineno, str(ei.value)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(InputError):
        tio.import_dataset(src, tmp_path / "out", format="yolo", **opts)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_skip_bad_lists_every_skipped_item(tmp_path):
    root = tree(tmp_path / "ds", {
        "good1.jpg": [GOOD], "good2.jpg": [GOOD, line(person(0.3, 0.5))],
        "two_bad.jpg": [GOOD, BAD_LINES["nan"][2], BAD_LINES["word"][2]],
        "count.jpg": BAD_LINES["count"],
        "img_broken.jpg": [GOOD],
    })  # fmt: skip
    (root / "images/img_broken.jpg").write_bytes(b"\x00" * 10)
    write_label(root / "labels/orphan.txt", [GOOD])
    (root / "labels/latin1.txt").write_bytes(b"caf\xe9\n")
    write_image(root / "images/latin1.jpg")
    res = tio.import_dataset(root, tmp_path / "out", skip_bad=True)
    got = sorted((Path(s.path).name, s.line) for s in res.skipped)
    assert got == [
        ("count.txt", 3),
        ("img_broken.jpg", None),
        ("latin1.txt", 1),
        ("orphan.txt", None),
        ("two_bad.txt", 2),
        ("two_bad.txt", 3),
    ]
    ds = Dataset.load(tmp_path / "out")
    assert ds.images["file_name"].tolist() == ["good1.jpg", "good2.jpg"]
    assert len(ds) == 3
    report = (tmp_path / "out" / "import_report.json").read_text()
    assert "two_bad.txt" in report and "orphan.txt" in report


def test_import_dataset_saves_a_valid_dataset(tmp_path):
    root = tree(tmp_path / "ds", {"forward_high/s01_1.jpg": [GOOD], "cat_low/s02_1.jpg": [GOOD]})
    tio.import_dataset(root, tmp_path / "out", subject_regex=r"^(s\d+)_")
    ds = Dataset.load(tmp_path / "out")
    assert len(ds) == 2 and ds.images["subject"].tolist() == ["s02", "s01"]
    assert ds.image_path("cat_low/s02_1.jpg").is_file()
    np.testing.assert_allclose(ds.keypoints[0, :, :2], px(person(0.5, 0.5)), atol=1e-3)


def test_import_of_many_files_keeps_every_person(tmp_path):
    # Speed is measured in benchmarks/bench_io.py; this checks correctness at scale.
    n = 1500
    img_dir, lab_dir = tmp_path / "ds" / "images", tmp_path / "ds" / "labels"
    img_dir.mkdir(parents=True)
    lab_dir.mkdir(parents=True)
    png = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    text = "\n".join(line(person(0.2 + 0.2 * k, 0.5)) for k in range(4)) + "\n"
    for i in range(n):
        (img_dir / f"{i:05d}.png").write_bytes(png)
        (lab_dir / f"{i:05d}.txt").write_text(text)
    ds = read_yolo(tmp_path / "ds").dataset
    assert len(ds) == 4 * n
    assert ds.images["file_name"].tolist()[:2] == ["00000.png", "00001.png"]
    assert np.isfinite(ds.keypoints[:, :17, :2]).all()


# ---------------------------------------------------------------------- export
def test_export_round_trip(tmp_path):
    conf = np.linspace(0.1, 1.0, 19)
    root = tree(tmp_path / "ds", {
        "forward_high/s01_1.jpg": [line(person(0.5, 0.5))],
        "cat_low/s02_1.jpg": [line(person(0.3, 0.5)), line(person(0.7, 0.5), conf)],
        "cat_low/s02_2.jpg": [],
    })  # fmt: skip
    # A file with confidences and flags would be an error; keep conf in its own file.
    write_label(
        root / "labels/cat_low/s02_1.txt",
        [line(person(0.3, 0.5), conf), line(person(0.7, 0.5), conf)],
    )
    first = read_yolo(root, subject_regex=r"^(s\d+)_").dataset
    first.media_root = str(root / "images")
    out = write_yolo(first, tmp_path / "export")
    doc = __import__("yaml").safe_load((out / "data.yaml").read_text())
    assert doc["kpt_shape"] == [19, 3] and doc["flip_idx"] == list(layout.FLIP_IDX)
    assert doc["names"] == {0: "person"} and doc["kpt_names"][0] == list(layout.KEYPOINT_NAMES)
    assert doc["path"] is None and doc["train"] == "images"
    assert (out / "labels/cat_low/s02_2.txt").read_text() == ""
    assert (
        os.path.samefile(out / "images/cat_low/s02_1.jpg", root / "images/cat_low/s02_1.jpg")
        or (out / "images/cat_low/s02_1.jpg").read_bytes()
        == (root / "images/cat_low/s02_1.jpg").read_bytes()
    )
    second = read_yolo(out / "data.yaml", labels=out / "labels.csv").dataset
    assert second.images["file_name"].tolist() == first.images["file_name"].tolist()
    assert second.images["stance"].tolist() == first.images["stance"].tolist()
    assert second.images["subject"].tolist() == first.images["subject"].tolist()
    wh = first.images.set_index("id").loc[first.annotations["image_id"], ["width", "height"]]
    scale = wh.to_numpy(float)[:, None, :]
    a = np.nan_to_num(first.keypoints[..., :2] / scale, nan=-1)
    b = np.nan_to_num(second.keypoints[..., :2] / scale, nan=-1)
    np.testing.assert_allclose(a, b, atol=1e-4)
    np.testing.assert_array_equal(first.keypoints[..., 2], second.keypoints[..., 2])
    with pytest.raises(FileExistsError):
        write_yolo(first, out)
    write_yolo(first, out, overwrite=True)
    assert tio.write(first, "yolo", tmp_path / "again") == tmp_path / "again"


def test_export_with_splits_writes_image_lists(tmp_path, realdata):
    ds = read_yolo(realdata / "ultralytics-hub" / "coco8-pose" / "coco8-pose.yaml")
    ds.dataset.media_root = str(ds.media_root)
    out = write_yolo(ds.dataset, tmp_path / "c8")
    doc = __import__("yaml").safe_load((out / "data.yaml").read_text())
    assert doc["train"] == "train.txt" and doc["val"] == "val.txt"
    assert (out / "train.txt").read_text().splitlines()[0] == "./images/train/000000000036.jpg"
    back = read_yolo(out / "data.yaml").dataset
    assert back.images["file_name"].tolist() == ds.dataset.images["file_name"].tolist()
    assert [e["split"] for e in back.images["extra"]] == [
        e["split"] for e in ds.dataset.images["extra"]
    ]
    np.testing.assert_allclose(
        np.nan_to_num(back.keypoints), np.nan_to_num(ds.dataset.keypoints), atol=1e-3
    )


def test_export_video_frames_as_images(tmp_path):
    video = make_video(tmp_path / "media" / "clip.mp4", n=6)
    write_label(tmp_path / "pred" / "clip_2.txt", [line(person(0.5, 0.5), np.full(19, 0.9))])
    write_label(tmp_path / "pred" / "clip_6.txt", [line(person(0.4, 0.5), np.full(19, 0.3))])
    res = read_yolo(tmp_path / "pred", video=video)
    res.dataset.media_root = str(res.media_root)
    out = write_yolo(res.dataset, tmp_path / "exp", image_ext="png")
    files = sorted(p.relative_to(out).as_posix() for p in (out / "images").rglob("*.*"))
    assert files == ["images/clip/000001.png", "images/clip/000005.png"]
    frame = cv2.imread(str(out / "images/clip/000001.png"))
    cap = cv2.VideoCapture(str(video))
    cap.read()
    ok, expect = cap.read()
    assert ok and np.array_equal(frame, expect)
    back = read_yolo(out).dataset
    assert back.images["file_name"].tolist() == ["clip/000001.png", "clip/000005.png"]
    # conf 0.3 became v = 1 (exported as a flag); conf 0.9 became v = 2
    assert (back.keypoints[0, :, 2] == 2).all() and (back.keypoints[1, :, 2] == 1).all()


def test_export_missing_image_is_an_error(tmp_path):
    root = tree(tmp_path / "ds", {"a.jpg": [GOOD]})
    ds = read_yolo(root).dataset
    ds.media_root = str(tmp_path / "elsewhere")
    with pytest.raises(InputError):
        write_yolo(ds, tmp_path / "exp")
    assert not (tmp_path / "exp").exists()


@pytest.mark.slow
def test_ultralytics_trains_one_epoch_on_an_export(tmp_path):
    import matplotlib

    cfg = Path(os.environ.get("YOLO_CONFIG_DIR", tmp_path / "ycfg"))
    font = cfg / "Ultralytics" / "Arial.ttf"
    if not font.exists():
        font.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(matplotlib.get_data_path()) / "fonts/ttf/DejaVuSans.ttf", font)
    files = {
        f"{s}/{i}.jpg": [line(person(0.3 + 0.1 * (i % 4), 0.5))]
        for s in ("forward_high", "cat_low")
        for i in range(4)
    }
    root = tree(tmp_path / "ds", files, w=96, h=96)
    res = read_yolo(root)
    res.dataset.media_root = str(res.media_root)
    out = write_yolo(res.dataset, tmp_path / "export")

    from ultralytics import YOLO

    model = YOLO("yolo11n-pose.yaml")
    model.train(
        data=str(out / "data.yaml"),
        epochs=1,
        imgsz=64,
        batch=4,
        workers=0,
        device="cpu",
        project=str(tmp_path / "runs"),
        name="t",
        exist_ok=True,
        plots=False,
        val=False,
        verbose=False,
        amp=False,
    )
    weights = list((tmp_path / "runs").rglob("last.pt"))
    assert weights, "training wrote no weights"
    assert model.model.kpt_shape == [19, 3] or tuple(model.model.kpt_shape) == (19, 3)


# ---------------------------------------------------------------------- committed samples
def test_samples_import_with_labels_csv(samples_root):
    import json

    import pandas as pd

    res = read_yolo(samples_root / "data.yaml", labels=samples_root / "labels.csv")
    ds = res.dataset
    csv = pd.read_csv(samples_root / "labels.csv")
    assert len(ds.images) == len(csv) and len(ds) == len(csv)  # one person per image
    assert res.media_root == (samples_root / "images").absolute()
    by_file = csv.set_index("file")
    assert ds.images["stance"].tolist() == by_file.loc[ds.images["file_name"], "stance"].tolist()
    assert ds.images["subject"].tolist() == by_file.loc[ds.images["file_name"], "subject"].tolist()
    # The stance is also the class folder.
    assert (ds.images["file_name"].str.split("/").str[0] == ds.images["stance"]).all()
    taxonomy = json.loads((samples_root / "taxonomy.json").read_text())
    assert set(ds.images["stance"]) == {s["name"] for s in taxonomy["stances"]}
    assert sorted(set(ds.images["subject"])) == [f"s{i:02d}" for i in range(1, 9)]
    assert not any("subject unknown" in n for n in res.notes)
    # Labels agree with the clean truth up to the injected label noise (body points).
    truth = pd.read_csv(samples_root / "truth.csv")
    truth = truth[truth["video"].isna()].set_index("file_name").loc[ds.images["file_name"]]
    cols = [f"{c}{i}" for i in range(19) for c in "xyv"]
    tk = truth[cols].to_numpy(float).reshape(-1, 19, 3)
    np.testing.assert_array_equal(ds.keypoints[:, :17, 2], tk[:, :17, 2])
    vis = tk[:, :17, 2] > 0
    err = np.linalg.norm(ds.keypoints[:, :17, :2][vis] - tk[:, :17, :2][vis], axis=-1)
    assert np.median(err) < 3.0
    # Most sticks are labelled (tip_missing is the only kind without a tip).
    assert (ds.keypoints[:, layout.GRIP, 2] > 0).mean() > 0.9


def test_samples_video_with_per_frame_labels(samples_root):
    import pandas as pd

    videos = sorted((samples_root / "videos").glob("*.mp4"))
    assert videos
    video = videos[0]
    label_dir = video.with_name(f"{video.stem}_labels")
    n_files = len(list(label_dir.glob(f"{video.stem}_*.txt")))
    res = read_yolo(
        label_dir,
        video=video,
        labels=video.with_name(f"{video.stem}_stances.csv"),
        subject_regex=r"^(s\d+)_",
    )
    ds = res.dataset
    assert len(ds.images) == n_files and len(ds.videos) == 1
    v = ds.videos[0]
    assert v["file_name"] == video.name and v["width"] == v["height"] == 320 and v["fps"] == 15
    truth = pd.read_csv(samples_root / "truth.csv")
    assert v["frame_count"] == (truth["video"] == video.stem).sum()
    fi = ds.images["frame_index"].to_numpy(int)
    assert (np.diff(fi) > 0).all() and fi.min() >= 0 and fi.max() < v["frame_count"]
    assert ds.images["file_name"].iloc[0] == f"{video.stem}/{fi[0]:06d}.jpg"
    assert ds.images["stance"].notna().all()
    assert set(ds.images["subject"]) == {video.stem.split("_")[0]}
    # save_txt files carry confidences: kept as scores.
    assert np.isfinite(ds.scores).any() and any("confidences" in n for n in res.notes)


def test_image_lists_name_repeats_escapes_and_images_in_two_splits(tmp_path):
    """The branches of the yaml discovery: a repeat in one list, an image in two splits, an
    image outside the dataset folder (each named with the list file and line).
    """
    root = tmp_path / "data"
    tree(root, {"a.jpg": [line(person(0.5, 0.5))], "b.jpg": [line(person(0.4, 0.5))]})
    write_image(tmp_path / "outside.jpg")
    (root / "train.txt").write_text("images/a.jpg\nimages/b.jpg\nimages/a.jpg\n")
    (root / "val.txt").write_text(f"images/b.jpg\n{tmp_path / 'outside.jpg'}\n")
    yml = yaml_file(
        root / "data.yaml", "path:\ntrain: train.txt\nval: val.txt\nkpt_shape: [19, 3]\n"
    )
    with pytest.raises(InputError, match="escapes it") as err:
        read_yolo(yml)
    assert err.value.path == root / "val.txt" and err.value.line == 2
    res = read_yolo(yml, skip_bad=True)
    reasons = {(Path(s.path).name, s.line): s.reason for s in res.skipped}
    assert "listed again" in reasons[("train.txt", 3)]
    assert "escapes it" in reasons[("val.txt", 2)]
    assert res.dataset.images["file_name"].tolist() == ["a.jpg", "b.jpg"]
    assert [e["split"] for e in res.dataset.images["extra"]] == ["train", "train"]
    assert any("1 images are in more than one split" in n for n in res.notes)
