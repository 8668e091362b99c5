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
