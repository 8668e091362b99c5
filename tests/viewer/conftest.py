"""Small real datasets for the viewer tests (all under ``tmp_path``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from toolkit import layout
from toolkit.dataset import Dataset

STANCES = ("forward_high", "forward_low", "back_high")
#: A standing person facing the camera, stick in the right hand (x, y in a 160 px frame).
POSE = np.array(
    [
        [80, 30],
        [76, 27],
        [84, 27],
        [72, 29],
        [88, 29],
        [66, 48],
        [94, 48],
        [60, 68],
        [100, 68],
        [58, 88],
        [104, 86],
        [70, 92],
        [90, 92],
        [68, 118],
        [92, 118],
        [66, 145],
        [94, 145],
        [106, 84],
        [130, 40],
    ],
    dtype=np.float64,
)


def make_dataset(
    root: Path,
    n: int = 6,
    size: int = 160,
    corrected: tuple[int, ...] = (2,),
    finding_frames: tuple[int, ...] = (4,),
) -> Path:
    """Write ``root/media/img_XX.png`` frames and ``root/ds`` (``n`` images, one person each).

    Frame ``k``'s pose is :data:`POSE` shifted right by ``k`` px; frames in ``corrected`` have
    grip/tip with provenance ``corrected`` (tip moved 6 px from the raw import); frames in
    ``finding_frames`` get a ``stick.length`` warning in ``validation.json``.
    """
    import cv2

    media = root / "media"
    media.mkdir(parents=True, exist_ok=True)
    images, anns, kps = [], [], []
    for k in range(n):
        img = np.full((size, size, 3), 90 + 10 * k, np.uint8)
        cv2.imwrite(str(media / f"img_{k:02d}.png"), img)
        images.append(
            {
                "id": 100 + k,
                "file_name": f"img_{k:02d}.png",
                "width": size,
                "height": size,
                "stance": STANCES[k % len(STANCES)],
                "subject": "s01",
            }
        )
        anns.append({"id": 500 + k, "image_id": 100 + k, "category_id": 1})
        pts = np.column_stack([POSE + [k, 0], np.full(len(POSE), 2.0)])
        kps.append(pts)
    kp = np.stack(kps)
    scores = np.linspace(0.2, 1.0, n * layout.NUM_KEYPOINTS).reshape(n, -1)
    ds = Dataset.from_records(
        images,
        anns,
        kp,
        scores=scores,
        media_root=str(media),
        taxonomy={
            "stances": [
                {"name": s, "family": s.split("_")[0], "chamber": s.split("_")[1]} for s in STANCES
            ]
        },
    )
    for k in corrected:
        ds.keypoints[k, layout.TIP, 0] += 6.0
        ds.source[k, [layout.GRIP, layout.TIP]] = layout.CORRECTED
    out = root / "ds"
    ds.save(out)
    findings = [
        {
            "code": "stick.length",
            "category": "stick",
            "severity": "warning",
            "ann_id": 500 + k,
            "image_id": 100 + k,
            "file_name": f"img_{k:02d}.png",
            "video": None,
            "frame_index": None,
            "keypoints": ["stick_grip", "stick_tip"],
            "value": 0.2,
            "threshold": 0.5,
            "message": "stick too short",
        }
        for k in finding_frames
    ]
    (out / "validation.json").write_bytes(orjson.dumps({"version": 1, "findings": findings}))
    return out


@pytest.fixture
def small_dataset(tmp_path: Path) -> Path:
    """A 6-frame dataset: frame 2 has a pending correction, frame 4 a validate finding."""
    return make_dataset(tmp_path)


#: The clean stick of :func:`make_video_dataset`: grip offset from the right wrist, tip angle
#: (degrees, turning 5 per frame) and length.
GRIP_OFFSET = np.array([3.0, -2.0])
STICK_LEN = 40.0


def clean_stick(kp: np.ndarray, f: int) -> np.ndarray:
    """``(2, 2)`` the true grip and tip of frame ``f`` of :func:`make_video_dataset`."""
    grip = kp[layout.R_WRIST, :2] + GRIP_OFFSET
    a = np.radians(-60.0 + 5.0 * f)
    return np.stack([grip, grip + STICK_LEN * np.array([np.cos(a), np.sin(a)])])


def make_video_dataset(root: Path, n: int = 12, drift: tuple[int, int] = (4, 8)) -> Path:
    """A one-person clip of ``n`` frames (``root/clip.mp4``, 160x160) and ``root/ds``.

    The person walks right 2 px per frame with the stick in the right hand; the stick turns 5
    degrees per frame about the grip (:func:`clean_stick`). Frames ``drift[0] .. drift[1] - 1``
    have the tip drifted 40 degrees off (imported labels, like a detector's). The frames carry
    ``subject`` s01 and no ``track_id``.
    """
    import cv2

    root.mkdir(parents=True, exist_ok=True)
    vw = cv2.VideoWriter(str(root / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (160, 160))
    for f in range(n):
        vw.write(np.full((160, 160, 3), 60 + 10 * (f % 10), np.uint8))
    vw.release()
    images, anns, kps = [], [], []
    for f in range(n):
        images.append(
            {
                "id": 1 + f,
                "file_name": f"clip/{f:06d}.jpg",
                "width": 160,
                "height": 160,
                "video_id": 1,
                "frame_index": f,
                "stance": "forward_high",
                "subject": "s01",
            }
        )
        anns.append({"id": 1000 + f, "image_id": 1 + f, "category_id": 1})
        pts = np.column_stack([POSE - [40, 0] + [2 * f, 0], np.full(len(POSE), 2.0)])
        pts[[layout.GRIP, layout.TIP], :2] = clean_stick(pts, f)
        if drift[0] <= f < drift[1]:
            g, tip = pts[layout.GRIP, :2], pts[layout.TIP, :2]
            c, s = np.cos(np.radians(40)), np.sin(np.radians(40))
            d = tip - g
            pts[layout.TIP, :2] = g + [c * d[0] - s * d[1], s * d[0] + c * d[1]]
        kps.append(pts)
    ds = Dataset.from_records(
        images,
        anns,
        np.stack(kps),
        media_root=str(root),
        videos=[
            {
                "id": 1,
                "file_name": "clip.mp4",
                "fps": 10.0,
                "frame_count": n,
                "width": 160,
                "height": 160,
            }
        ],
        taxonomy={
            "stances": [
                {"name": s, "family": s.split("_")[0], "chamber": s.split("_")[1]} for s in STANCES
            ]
        },
    )
    out = root / "ds"
    ds.save(out)
    return out


@pytest.fixture
def stick_truth():
    """:func:`clean_stick`: the true grip and tip of a frame of :func:`make_video_dataset`."""
    return clean_stick


@pytest.fixture
def video_dataset(tmp_path: Path) -> Path:
    """A 12-frame one-person clip whose tip drifts on frames 4-7 (see make_video_dataset)."""
    return make_video_dataset(tmp_path)
