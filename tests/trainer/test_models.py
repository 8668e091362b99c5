"""Shapes, reprs and the dense GATv2 against PyG's own sparse GATv2Conv."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from toolkit import layout
from trainer.data import featurise, geometry_targets
from trainer.graph import (
    EDGE_FEATURES,
    GRAPH,
    GROUPS,
    NODE_FEATURES,
    WEAPON_FEATURE,
    edge_sources,
    weapon_side,
)
from trainer.models import (
    ArcMargin,
    FlatHead,
    GeometryHead,
    GeoPoseNet,
    GraphStream,
    HierarchicalHead,
    VisualStream,
    bare_backbone,
)

FAM = np.repeat(np.arange(4), 3)
CH = np.tile(np.arange(3), 4)


def _poses(n: int, seed: int = 0, right_handed: bool = True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    kp = np.concatenate([rng.uniform(40, 260, (n, 19, 2)), np.full((n, 19, 1), 2.0)], -1)
    wrist = layout.R_WRIST if right_handed else layout.L_WRIST
    kp[:, layout.GRIP, :2] = kp[:, wrist, :2] + 3.0
    return kp


def test_graph_spec_edges_both_ways_and_self_loops():
    assert GRAPH.num_nodes == 19
    pairs = set(zip(GRAPH.src.tolist(), GRAPH.dst.tolist(), strict=True))
    assert len(pairs) == GRAPH.num_edges  # no duplicate directed edge
    for s, d in pairs:
        assert (d, s) in pairs
    assert all((n, n) in pairs for n in range(19))
    assert (layout.GRIP, layout.TIP) in pairs
    assert int((GRAPH.group == GROUPS.index("body")).sum()) == 2 * len(layout.COCO_SKELETON)
    assert "weapon=4" in repr(GRAPH) and "rigid=2" in repr(GRAPH)


def test_weapon_side_follows_the_grip():
    kp = np.concatenate([_poses(3, right_handed=True), _poses(3, 1, right_handed=False)])
    np.testing.assert_array_equal(weapon_side(kp), [1, 1, 1, 0, 0, 0])
    # No grip: the subject's usual hand (the one rule in toolkit.geometry), else left wiring.
    nogrip = kp.copy()
    nogrip[[2, 5], layout.GRIP] = np.nan
    subjects = np.array(["a", "a", "a", "b", "b", "b"])
    np.testing.assert_array_equal(weapon_side(nogrip, subjects), [1, 1, 1, 0, 0, 0])
    nodes, _ = featurise(nogrip[[2]])
    assert nodes[0, :, WEAPON_FEATURE].sum() == 0  # unknown: no weapon flag
    src, dst = edge_sources(weapon_side(kp))
    slot = GRAPH.weapon_src_slots[0]  # weapon wrist -> grip
    assert src[0, slot] == layout.R_WRIST and src[3, slot] == layout.L_WRIST
    assert (dst[:, slot] == layout.GRIP).all()


def test_featurise_shapes_normalisation_and_missing_stick():
    kp = _poses(5)
    kp[2, [layout.GRIP, layout.TIP]] = np.nan
    kp[2, [layout.GRIP, layout.TIP], 2] = 0
    nodes, edges = featurise(kp)
    assert nodes.shape == (5, 19, len(NODE_FEATURES)) and nodes.dtype == np.float32
    assert edges.shape == (5, GRAPH.num_edges, len(EDGE_FEATURES))
    # centred on the hips, torso length 1
    hip = (nodes[:, layout.L_HIP, :2] + nodes[:, layout.R_HIP, :2]) / 2
    sho = (nodes[:, layout.L_SHOULDER, :2] + nodes[:, layout.R_SHOULDER, :2]) / 2
    np.testing.assert_allclose(hip, 0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(sho - hip, axis=1), 1, atol=1e-5)
    # stick nodes of frame 2 are marked missing, their edges are zero
    assert (nodes[2, [layout.GRIP, layout.TIP], :4] == 0).all()
    touches = (GRAPH.src >= layout.GRIP) | (GRAPH.dst >= layout.GRIP)
    assert (edges[2, touches & (GRAPH.src != GRAPH.dst)] == 0).all()
    rigid = GRAPH.group == GROUPS.index("rigid")
    assert (edges[0, rigid, 3] == 1).all() and (edges[0, ~rigid, 3] == 0).all()
    np.testing.assert_allclose(
        edges[0, ~(GRAPH.src == GRAPH.dst), 1] ** 2 + edges[0, ~(GRAPH.src == GRAPH.dst), 2] ** 2,
        1,
        atol=1e-5,
    )
    assert nodes[0, layout.R_WRIST, WEAPON_FEATURE] == 1
    assert nodes[0, layout.L_WRIST, WEAPON_FEATURE] == 0
    t, m = geometry_targets(kp)
    assert t.shape == (5, 4) and m.shape == (5, 4)
    assert not m[2, 2:].any() and m[0].all()


def test_dense_gatv2_equals_pyg_sparse():
    kp = np.concatenate([_poses(4), _poses(4, 1, right_handed=False)])
    nodes, edges = featurise(kp)
    stream = GraphStream().eval()
    n, e = torch.from_numpy(nodes), torch.from_numpy(edges)
    g = stream.frame_graph(n, e)
    x = torch.randn(8, 19, 128)
    dense = stream.gat1(x, g)
    assert dense.shape == (8, 19, 128)
    offset = torch.arange(8)[:, None] * 19
    ei = torch.stack([(g.src + offset).reshape(-1), (g.dst + offset).reshape(-1)])
    sparse = stream.gat1.conv(x.reshape(-1, 128), ei, e.reshape(-1, 4)).view(8, 19, 128)
    torch.testing.assert_close(dense, sparse, atol=1e-5, rtol=1e-5)
    assert "GATv2Conv(128, 32, heads=4, edge_dim=4)" in repr(stream.gat1)
    # DropEdge: a dropped slot is the same as an edge missing from PyG's edge list
    keep = torch.rand(8, GRAPH.num_edges, generator=torch.Generator().manual_seed(0)) > 0.3
    keep |= torch.as_tensor(GRAPH.src == GRAPH.dst)  # self loops stay
    dropped = stream.gat1(x, stream.frame_graph(n, e, keep))
    flat = keep.reshape(-1)
    sparse = stream.gat1.conv(x.reshape(-1, 128), ei[:, flat], e.reshape(-1, 4)[flat])
    torch.testing.assert_close(dropped, sparse.view(8, 19, 128), atol=1e-5, rtol=1e-5)


def test_stream_and_head_shapes_and_reprs():
    nodes, edges = featurise(_poses(3))
    gs = GraphStream(out_dim=64)
    assert gs(torch.from_numpy(nodes), torch.from_numpy(edges)).shape == (3, 64)
    assert "edges/frame=75" in repr(gs) and "pool=mean+max" in repr(gs)
    vs = VisualStream(out_dim=32, backbone=bare_backbone()).eval()
    crop = torch.rand(2, 3, 128, 128)
    assert vs.features(crop).shape == (2, 576)
    # the one-pass normalisation is ImageNet's (crop - mean) / std
    torch.testing.assert_close(
        vs.features(crop), vs.backbone((crop - vs.mean) / vs.std), atol=1e-5, rtol=1e-5
    )
    assert vs(crop).shape == (2, 32) and vs(feat=torch.randn(2, 576)).shape == (2, 32)
    assert "MobileNetV3-Small" in repr(vs) and "InvertedResidual" not in repr(vs)
    hh = HierarchicalHead(16, FAM, CH)
    out = hh(torch.randn(5, 16))
    assert out["stance"].shape == (5, 12) and out["family"].shape == (5, 4)
    assert out["chamber"].shape == (5, 3) and out["embedding"].shape == (5, 128)
    assert "families=4" in repr(hh)
    fh = FlatHead(16, 7)
    assert fh(torch.randn(5, 16))["stance"].shape == (5, 7) and "flat" in repr(fh)
    assert GeometryHead(16)(torch.randn(5, 16)).shape == (5, 4)
    arc = ArcMargin(128, 12)
    logits = arc(out["embedding"], torch.arange(5))
    assert logits.shape == (5, 12) and "m=0.2" in repr(arc)


@pytest.mark.parametrize("variant", ["geopose", "graph", "visual", "flat", "no-aux"])
def test_geoposenet_variants(variant):
    nodes, edges = featurise(_poses(4))
    model = GeoPoseNet(
        12, variant, FAM, CH, backbone=None if variant == "graph" else bare_backbone()
    )
    out = model(torch.from_numpy(nodes), torch.from_numpy(edges), torch.rand(4, 3, 128, 128))
    assert out["stance"].shape == (4, 12)
    assert ("family" in out) == (variant != "flat")
    assert ("geometry" in out) == (variant != "no-aux")
    assert (model.graph is None) == (variant == "visual")
    assert (model.visual is None) == (variant == "graph")
    assert f"variant={variant!r}" in repr(model)
    out["stance"].sum().backward()  # differentiable end to end


def test_batch_independence_and_unknown_variant():
    """Frames do not leak into each other through the batched graph."""
    nodes, edges = featurise(_poses(6))
    model = GeoPoseNet(12, "graph", FAM, CH).eval()
    n, e = torch.from_numpy(nodes), torch.from_numpy(edges)
    with torch.no_grad():
        full = model(n, e)["stance"]
        one = model(n[3:4], e[3:4])["stance"]
    torch.testing.assert_close(full[3:4], one, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="variant"):
        GeoPoseNet(12, "resnet")


def test_missing_weights_warn_and_explicit_missing_path_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.warns(UserWarning, match="RANDOM initialisation"):
        vs = VisualStream()
    assert vs.weights_from == "random"
    with pytest.raises(FileNotFoundError, match="visual-weights"):
        VisualStream(weights=tmp_path / "nope.pth")
    # weights present in the hub cache are used
    ck = tmp_path / "checkpoints"
    ck.mkdir()
    import torchvision

    net = torchvision.models.mobilenet_v3_small(weights=None)
    torch.save(net.state_dict(), ck / "mobilenet_v3_small-047dcff4.pth")
    vs2 = VisualStream()
    assert vs2.weights_from.endswith("mobilenet_v3_small-047dcff4.pth")
    torch.testing.assert_close(vs2.backbone[0][0][0].weight, net.features[0][0].weight)
