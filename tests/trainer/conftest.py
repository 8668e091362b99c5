"""Fixtures of the trainer tests: a tiny labelled dataset with images (``toy_dataset``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainer.export import STANDING_TEMPLATE


def make_toy_dataset(
    root: str | Path,
    *,
    n_subjects: int = 4,
    per_class: int = 3,
    image_size: int = 96,
    with_stick: bool = True,
    seed: int = 0,
):
    """A tiny labelled dataset with images, for tests and smoke runs (not a benchmark).

    Four stances (2 families x 2 chambers): the family sets the foot spread, the chamber the
    stick direction; subjects differ in size and position. Images are grey squares with the
    stick drawn, written under ``root/images``.

    Args:
        root: Directory for the images (becomes the dataset's ``media_root``).
        n_subjects: Subjects ``s01``...
        per_class: Frames per subject and stance.
        image_size: Image side in pixels.
        with_stick: False leaves grip and tip missing (17-keypoint data).
        seed: Random seed.

    Returns:
        A :class:`toolkit.dataset.Dataset` (not saved).
    """
    import cv2

    from toolkit.dataset import Dataset

    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    taxonomy = {
        "families": ["open", "closed"],
        "chambers": ["high", "low"],
        "stances": [
            {"name": f"{f}_{c}", "family": f, "chamber": c}
            for f in ("open", "closed")
            for c in ("high", "low")
        ],
    }
    tpl = STANDING_TEMPLATE
    images, anns, kps = [], [], []
    for si in range(n_subjects):
        subject = f"s{si + 1:02d}"
        size = image_size * rng.uniform(0.7, 0.9)
        for ci, st in enumerate(taxonomy["stances"]):
            fam, cham = ci // 2, ci % 2
            for k in range(per_class):
                body = tpl.copy()
                spread = 0.12 if fam == 0 else 0.02
                body[[13, 15], 0] -= spread
                body[[14, 16], 0] += spread
                body += rng.normal(0, 0.01, body.shape)
                pts = body * size + rng.uniform(0, image_size - size, 2)
                grip = pts[10] + rng.normal(0, 1.0, 2)
                ang = np.deg2rad((-60 if cham == 0 else 40) + rng.normal(0, 8))
                tip = grip + 0.35 * size * np.array([np.cos(ang), np.sin(ang)])
                xy = np.vstack([pts, grip, tip])
                v = np.full((19, 1), 2.0)
                if not with_stick:
                    xy[17:] = np.nan
                    v[17:] = 0
                iid = len(images) + 1
                name = f"images/{subject}_{st['name']}_{k:02d}.png"
                img = np.full((image_size, image_size, 3), 90, np.uint8)
                cv2.line(
                    img, tuple(int(c) for c in grip), tuple(int(c) for c in tip), (200, 140, 60), 2
                )
                cv2.imwrite(str(root / name), img)
                images.append(
                    {
                        "id": iid,
                        "file_name": name,
                        "width": image_size,
                        "height": image_size,
                        "stance": st["name"],
                        "subject": subject,
                    }
                )
                anns.append({"id": iid, "image_id": iid})
                kps.append(np.hstack([xy, v]))
    return Dataset.from_records(
        images, anns, np.array(kps), media_root=str(root.resolve()), taxonomy=taxonomy
    )


@pytest.fixture(name="toy_dataset", scope="session")
def toy_dataset_fixture():
    """:func:`make_toy_dataset` itself: ``ds = toy_dataset(tmp_path, n_subjects=3)``."""
    return make_toy_dataset
