"""The fixed 19-node body + stick graph GeoPose-Net runs on.

Every frame uses the same edge *slots*, so a batch is one constant topology repeated (what makes
the ONNX graph batch-dynamic). Only two slots change their source node per frame: the weapon
attachment edges run from the **weapon** wrist and elbow to the grip, where the weapon side is the
wrist nearest the grip in that frame (the one rule, :func:`toolkit.geometry.weapon_side`). The model reads that choice from a node
feature (``weapon`` flag on the weapon wrist and elbow), so the decision is made once, here.

Edge groups (undirected; each is used in both directions):

* ``body``: the 19 COCO skeleton edges (:data:`toolkit.layout.COCO_SKELETON`).
* ``weapon``: weapon wrist - grip, weapon elbow - grip (slots :data:`WEAPON_SLOTS`).
* ``rigid``: grip - tip (the stick itself; the only edge with the rigidity flag set).
* ``semantic``: hand - opposite shoulder, stick tip - head, tip - hips, grip - head.

Plus one self loop per node (explicit, so the attention never needs PyG's self-loop filling).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from toolkit import layout

BODY_EDGES: tuple[tuple[int, int], ...] = layout.COCO_SKELETON
#: Weapon attachment slots; the source written here (left side) is replaced per frame.
WEAPON_EDGES: tuple[tuple[int, int], ...] = (
    (layout.L_WRIST, layout.GRIP),
    (layout.L_ELBOW, layout.GRIP),
)
RIGID_EDGES: tuple[tuple[int, int], ...] = ((layout.GRIP, layout.TIP),)
SEMANTIC_EDGES: tuple[tuple[int, int], ...] = (
    (layout.L_WRIST, layout.R_SHOULDER),
    (layout.R_WRIST, layout.L_SHOULDER),
    (layout.TIP, layout.NOSE),
    (layout.TIP, layout.L_HIP),
    (layout.TIP, layout.R_HIP),
    (layout.GRIP, layout.NOSE),
)
GROUPS: tuple[str, ...] = ("body", "weapon", "rigid", "semantic", "self")

# The feature constants of the graph input, in one home (:func:`trainer.data.featurise` writes
# them, the model and the ONNX metadata read them).
#: Per-node features: position in torso units, confidence, COCO visibility / 2, weapon flag.
NODE_FEATURES: tuple[str, ...] = ("x", "y", "confidence", "visibility", "weapon")
#: Index of the weapon flag (1 on the weapon wrist and elbow) in :data:`NODE_FEATURES`.
WEAPON_FEATURE = NODE_FEATURES.index("weapon")
#: Per-edge attributes: length in torso units, sin and cos of the edge angle, rigidity flag.
EDGE_FEATURES: tuple[str, ...] = ("length", "sin", "cos", "rigid")
#: Targets of the auxiliary stick-geometry head (:func:`trainer.data.geometry_targets`).
GEOMETRY_TARGETS: tuple[str, ...] = ("grip_dx", "grip_dy", "stick_length", "angle_offset")


@dataclass(frozen=True)
class GraphSpec:
    """The directed edge list shared by every frame.

    Attributes:
        src: ``(E,)`` source node per directed edge (weapon slots hold the LEFT side).
        dst: ``(E,)`` target node per directed edge.
        group: ``(E,)`` index into :data:`GROUPS`.
        weapon_src_slots: Directed edge indices whose source is the weapon wrist/elbow.
        weapon_dst_slots: Directed edge indices whose target is the weapon wrist/elbow.
        num_nodes: 19.
    """

    src: np.ndarray
    dst: np.ndarray
    group: np.ndarray
    weapon_src_slots: np.ndarray
    weapon_dst_slots: np.ndarray
    num_nodes: int = layout.NUM_KEYPOINTS

    @property
    def num_edges(self) -> int:
        """Directed edges per frame (self loops included)."""
        return len(self.src)

    def __repr__(self) -> str:
        counts = ", ".join(f"{g}={int((self.group == i).sum())}" for i, g in enumerate(GROUPS))
        return f"GraphSpec(nodes={self.num_nodes}, directed_edges={self.num_edges}: {counts})"


def build_graph() -> GraphSpec:
    """The directed edge list: each undirected edge both ways, then one self loop per node."""
    src, dst, grp = [], [], []
    w_src, w_dst = [], []
    for gi, edges in enumerate((BODY_EDGES, WEAPON_EDGES, RIGID_EDGES, SEMANTIC_EDGES)):
        for a, b in edges:
            for s, d in ((a, b), (b, a)):
                if gi == 1:
                    (w_src if s != layout.GRIP else w_dst).append(len(src))
                src.append(s)
                dst.append(d)
                grp.append(gi)
    for n in range(layout.NUM_KEYPOINTS):
        src.append(n)
        dst.append(n)
        grp.append(GROUPS.index("self"))
    return GraphSpec(np.array(src), np.array(dst), np.array(grp), np.array(w_src), np.array(w_dst))


GRAPH = build_graph()


def weapon_side(kp: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """Which hand holds the stick, as the graph wires it: 1 = right, 0 = left or unknown.

    The decision is :func:`toolkit.geometry.weapon_side` (the wrist nearest the grip, else the
    usual hand of the row's ``groups`` entry, e.g. its subject); an unknown side (-1) wires the
    weapon slots to the left points, and :func:`trainer.data.featurise` then sets no weapon flag,
    so the model can tell "unknown" from "left".

    Shapes:
        kp: ``(N, 19, 2+)`` pixels, NaN where missing. Returns ``(N,)`` int64 in {0, 1}.
    """
    from toolkit.geometry import weapon_side as rule

    return np.maximum(rule(kp, groups), 0).astype(np.int64)


def edge_sources(side: np.ndarray, spec: GraphSpec = GRAPH) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame directed edge endpoints with the weapon slots pointing at the weapon side.

    Shapes:
        side: ``(N,)`` 0/1. Returns ``src, dst`` each ``(N, E)`` int64 (node indices 0..18).
    """
    n = len(side)
    src = np.broadcast_to(spec.src, (n, spec.num_edges)).copy()
    dst = np.broadcast_to(spec.dst, (n, spec.num_edges)).copy()
    right = np.asarray(side, bool)[:, None]
    # Left-side COCO indices are odd, the right side's are the next even number.
    src[:, spec.weapon_src_slots] += right
    dst[:, spec.weapon_dst_slots] += right
    return src, dst
