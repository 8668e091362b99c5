"""The 19-keypoint layout: 17 COCO body keypoints, then the stick's grip and tip.

This module is the one definition of the layout. ``schemas/dataset.schema.json`` mirrors the
names (a test checks that they agree), and every other module imports from here.

Index 17 is ``stick_grip`` and index 18 is ``stick_tip``. Note the COCO convention that odd body
indices are LEFT (``9 = left_wrist``) and even ones RIGHT (``10 = right_wrist``), seen from the
person, not the camera.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

COCO_KEYPOINTS: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
STICK_KEYPOINTS: tuple[str, ...] = ("stick_grip", "stick_tip")
KEYPOINT_NAMES: tuple[str, ...] = COCO_KEYPOINTS + STICK_KEYPOINTS
NUM_KEYPOINTS = len(KEYPOINT_NAMES)  # 19
NUM_BODY = len(COCO_KEYPOINTS)  # 17

(
    NOSE,
    L_EYE,
    R_EYE,
    L_EAR,
    R_EAR,
    L_SHOULDER,
    R_SHOULDER,
    L_ELBOW,
    R_ELBOW,
    L_WRIST,
    R_WRIST,
    L_HIP,
    R_HIP,
    L_KNEE,
    R_KNEE,
    L_ANKLE,
    R_ANKLE,
    GRIP,
    TIP,
) = range(NUM_KEYPOINTS)

#: COCO body skeleton, 0-based (pycocotools' ``categories[].skeleton`` is 1-based).
COCO_SKELETON: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip
#: Stick edges: each wrist to the grip (only the weapon hand's is drawn solid), grip to tip.
STICK_SKELETON: tuple[tuple[int, int], ...] = ((L_WRIST, GRIP), (R_WRIST, GRIP), (GRIP, TIP))
SKELETON: tuple[tuple[int, int], ...] = COCO_SKELETON + STICK_SKELETON

#: Horizontal-flip permutation: left and right swap, nose/grip/tip map to themselves.
FLIP_IDX: tuple[int, ...] = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 17, 18)

#: Keypoint provenance codes, stored as ``uint8`` in memory and as names on disk.
#: ``interpolated``: placed between two keyframes a person set (viewer), until accepted.
SOURCES: tuple[str, ...] = ("imported", "corrected", "human", "predicted", "interpolated")
SOURCE_CODE: dict[str, int] = {name: i for i, name in enumerate(SOURCES)}
IMPORTED, CORRECTED, HUMAN, PREDICTED, INTERPOLATED = range(len(SOURCES))
#: One letter per provenance code in the on-disk ``keypoint_source`` string (``n`` for
#: interpolated: ``i`` is taken by imported).
SOURCE_LETTERS = "ichpn"

#: Per-keypoint COCO OKS sigmas: the 17 official ones, then grip and tip, both 0.089 (the ankle's
#: value). The grip sits inside a closed fist, so it is less sharply defined than the wrist
#: (0.062); the tip is a thin far end that blurs with motion. Both get the loosest body tolerance.
OKS_SIGMAS: np.ndarray = np.array(
    [0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062,
     0.107, 0.107, 0.087, 0.087, 0.089, 0.089, 0.089, 0.089]
)  # fmt: skip


@dataclass(frozen=True)
class Skeleton:
    """A keypoint layout with its edges and flip map.

    Attributes:
        names: Keypoint names in index order.
        edges: 0-based index pairs drawn as bones.
        flip_idx: Permutation applied to keypoints on a horizontal flip.
    """

    names: tuple[str, ...] = KEYPOINT_NAMES
    edges: tuple[tuple[int, int], ...] = SKELETON
    flip_idx: tuple[int, ...] = FLIP_IDX
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {n: i for i, n in enumerate(self.names)})

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        """Return the index of a keypoint name."""
        try:
            return self._index[name]
        except KeyError:
            raise ValueError(
                f"Expected a keypoint name in {list(self.names)}, but got {name!r}."
            ) from None

    def coco_category(self, category_id: int = 1, name: str = "person") -> dict:
        """The COCO ``categories`` entry (1-based skeleton, as pycocotools expects)."""
        return {
            "id": category_id,
            "name": name,
            "supercategory": "person",
            "keypoints": list(self.names),
            "skeleton": [[a + 1, b + 1] for a, b in self.edges],
        }


ARNIS = Skeleton()
