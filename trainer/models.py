"""GeoPose-Net: a GATv2 over the body+stick graph fused with a MobileNetV3-Small grip crop.

::

    nodes (B,19,5), edge_attr (B,E,4) ── GraphStream (2 x GATv2Conv, edge_dim=4) ──┐
                                                                                   ├─ trunk ─┬─ HierarchicalHead
    crop (B,3,128,128) in 0..1 ───────── VisualStream (MobileNetV3-Small + MLP) ───┘         │   family, chamber,
                                                                                             │   stance | both
                                                                                             └─ GeometryHead (aux)

Variants (:data:`VARIANTS`): ``geopose`` (all of it), ``graph`` (no visual stream), ``visual``
(crop only), ``flat`` (stance head without the hierarchy), ``no-aux`` (no geometry head).

The graph is the same 19-node topology for every frame (:mod:`trainer.graph`), so the batch is
pooled with ``h.view(-1, 19, C)`` (mean and max), which keeps the exported ONNX graph
batch-dynamic (PyG's ``global_mean_pool`` would bake the batch size in).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from toolkit import layout
from trainer.graph import EDGE_FEATURES, GRAPH, GROUPS, NODE_FEATURES, WEAPON_FEATURE, GraphSpec

VARIANTS: tuple[str, ...] = ("geopose", "graph", "visual", "flat", "no-aux")
#: Visual streams (``--visual``): none, pretrained YOLO point features, MobileNetV3 grip crop.
VISUAL_SOURCES: tuple[str, ...] = ("none", "yolo", "mobilenet")
VISUAL_DIM = 576  # MobileNetV3-Small feature width after global pooling
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class FrameGraph:
    """One batch's wiring, shared by both GATv2 layers.

    Attributes:
        src: ``(B, E)`` source node of each edge slot.
        dst: ``(B, E)`` target node of each edge slot.
        src_rows: ``(B*E,)`` row of each slot's source in the flattened ``(B*N, C)`` node table.
        dst_rows: ``(B*E,)`` row of each slot's target in that table.
        cell_rows: ``(B*N*N,)`` for every cell ``(b, i, j)`` the row of its edge slot ``j -> i``
            in the ``(1 + B*E, H)`` score table whose row 0 is ``-1e9`` (the row read when no
            edge ``j -> i`` exists).
        keep: ``(B, E)`` bool DropEdge mask, or None (every edge kept).
        edge_attr: ``(B, E, 4)``.
        num_nodes: ``N`` as a Python int (a traced shape would put shape arithmetic in the
            exported graph).
    """

    src: torch.Tensor
    dst: torch.Tensor
    src_rows: torch.Tensor
    dst_rows: torch.Tensor
    cell_rows: torch.Tensor
    keep: torch.Tensor | None
    edge_attr: torch.Tensor
    num_nodes: int


class DenseGATv2(nn.Module):
    """PyG's ``GATv2Conv`` evaluated per frame over a small fixed node set.

    The parameters are those of a real ``torch_geometric.nn.GATv2Conv`` (``self.conv``; its own
    sparse ``forward`` gives the same numbers, a test checks it). Scores are computed per edge
    slot (row gathers from the flattened node table), laid out as a dense ``(B, H, N, N)``
    block by one more row gather (every cell without an edge reads a constant ``-1e9`` row),
    normalised by a softmax over the last axis and aggregated by one batched matrix product:
    a handful of plain tensor ops instead of scatter kernels, fast on a CPU and exportable to
    ONNX with a symbolic batch size.

    Shapes:
        x: ``(B, N, F)``; graph: a :class:`FrameGraph`. Returns ``(B, N, heads * out)``.
    """

    def __init__(self, in_dim: int, out_dim: int, heads: int, edge_dim: int):
        super().__init__()
        with warnings.catch_warnings():
            # PyG's import calls torch.jit.script, which warns (FutureWarning) on every run.
            warnings.simplefilter("ignore", FutureWarning)
            from torch_geometric.nn import GATv2Conv

        self.conv = GATv2Conv(in_dim, out_dim, heads=heads, edge_dim=edge_dim, add_self_loops=False)
        self.heads, self.out_dim = heads, out_dim
        # (H*D, H) block-diagonal selector: score = leaky(e) @ (att * eye) sums each head's D.
        self.register_buffer(
            "head_eye", torch.eye(heads).repeat_interleave(out_dim, 0), persistent=False
        )
        self.register_buffer("no_edge", torch.full((1, heads), -1e9), persistent=False)

    def forward(self, x: torch.Tensor, g: FrameGraph) -> torch.Tensor:
        """Run the module (shapes in the class docstring)."""
        # Every reshape keeps the batch axis as -1: no shape arithmetic in the exported graph.
        c = self.conv
        n, h, d = g.num_nodes, self.heads, self.out_dim
        x_l = c.lin_l(x)  # source side (x_j), (B, N, H*D)
        x_r = c.lin_r(x)  # target side (x_i)
        e = (
            x_l.reshape(-1, h * d).index_select(0, g.src_rows)
            + x_r.reshape(-1, h * d).index_select(0, g.dst_rows)
            + c.lin_edge(g.edge_attr.reshape(-1, c.edge_dim))
        )  # (B*E, H*D)
        att = c.att.reshape(h * d, 1) * self.head_eye  # (H*D, H): sums each head's D
        score = F.leaky_relu(e, c.negative_slope) @ att  # (B*E, H)
        if g.keep is not None:
            score = score.masked_fill(~g.keep.reshape(-1, 1), -1e9)
        # Row 0 of the score table stands for "no edge"; slot rows follow.
        score = torch.cat([self.no_edge, score])
        dense = score.index_select(0, g.cell_rows).view(-1, n, n, h)
        alpha = dense.permute(0, 3, 1, 2).softmax(-1)  # (B, H, i, j): over the sources j
        out = alpha @ x_l.view(-1, n, h, d).transpose(1, 2)  # (B, H, N, D)
        return out.transpose(1, 2).reshape(-1, n, h * d) + c.bias

    def extra_repr(self) -> str:
        """The one-line summary inside ``repr``."""
        return (
            f"GATv2Conv({self.conv.in_channels}, {self.out_dim}, heads={self.heads}, "
            f"edge_dim={self.conv.edge_dim}), per-frame masked softmax"
        )


class GraphStream(nn.Module):
    """Two GATv2 layers with 4-d edge attributes over the fixed 19-node graph.

    The weapon attachment edges (weapon wrist/elbow <-> grip) are wired per frame from the
    ``weapon`` node feature, so the topology stays one constant edge list per frame. The edge
    list ``(B, E, 4)`` is scattered into a dense ``(B, 19, 19, 4)`` block by a one-hot matrix
    product (no scatter op in the exported graph).

    Args:
        out_dim: Width of the pooled graph embedding.
        hidden: Per-head width of each GATv2 layer.
        heads: Attention heads.
        drop_edge: Probability of dropping each body edge per frame while training (DropEdge).
        spec: Graph topology.

    Shapes:
        nodes: ``(B, 19, 5)``; edge_attr: ``(B, E, 4)``. Returns ``(B, out_dim)``.
    """

    def __init__(
        self,
        out_dim: int = 128,
        hidden: int = 32,
        heads: int = 4,
        drop_edge: float = 0.1,
        spec: GraphSpec = GRAPH,
    ):
        super().__init__()
        width = hidden * heads
        self.width, self.heads, self.drop_edge = width, heads, drop_edge
        self.num_nodes = spec.num_nodes
        self.proj = nn.Linear(len(NODE_FEATURES), width)
        self.node_embedding = nn.Parameter(torch.zeros(spec.num_nodes, width))
        nn.init.normal_(self.node_embedding, std=0.1)
        self.gat1 = DenseGATv2(width, hidden, heads, len(EDGE_FEATURES))
        self.gat2 = DenseGATv2(width, hidden, heads, len(EDGE_FEATURES))
        self.norm1 = nn.LayerNorm(width)
        self.norm2 = nn.LayerNorm(width)
        # Readout: mean and max over the 19 nodes, plus a per-node linear readout (the node order
        # is fixed, so which joint sits where survives the pooling).
        self.node_readout = nn.Linear(spec.num_nodes * width, out_dim)
        self.out = nn.Sequential(nn.Linear(2 * width, out_dim), nn.ELU())
        w_src = torch.zeros(spec.num_edges, dtype=torch.long)
        w_src[torch.as_tensor(spec.weapon_src_slots)] = 1
        w_dst = torch.zeros(spec.num_edges, dtype=torch.long)
        w_dst[torch.as_tensor(spec.weapon_dst_slots)] = 1
        self.register_buffer("src", torch.as_tensor(spec.src, dtype=torch.long), persistent=False)
        self.register_buffer("dst", torch.as_tensor(spec.dst, dtype=torch.long), persistent=False)
        self.register_buffer("w_src", w_src, persistent=False)
        self.register_buffer("w_dst", w_dst, persistent=False)
        self.register_buffer(
            "body_edge", torch.as_tensor(spec.group == GROUPS.index("body")), persistent=False
        )
        # slot_of_cell[side, i * N + j]: 1 + the edge slot j -> i for that weapon side, else 0.
        n, n_e = spec.num_nodes, spec.num_edges
        slot_of_cell = torch.zeros((2, n * n), dtype=torch.long)
        for side in (0, 1):
            cells = (self.dst + side * self.w_dst) * n + self.src + side * self.w_src
            if len(set(cells.tolist())) != n_e:
                raise ValueError("Expected at most one directed edge per (source, target) pair.")
            slot_of_cell[side, cells] = torch.arange(1, n_e + 1)
        self.register_buffer("slot_of_cell", slot_of_cell, persistent=False)

    def endpoints(self, nodes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-frame ``(B, E)`` source and target node of every edge slot (weapon side wired)."""
        right = (nodes[:, layout.R_WRIST, WEAPON_FEATURE] > 0.5).long()[:, None]  # (B, 1)
        return self.src[None] + right * self.w_src[None], self.dst[None] + right * self.w_dst[None]

    def frame_graph(
        self, nodes: torch.Tensor, edge_attr: torch.Tensor, keep: torch.Tensor | None = None
    ) -> FrameGraph:
        """The batch's :class:`FrameGraph` (``keep``: ``(B, E)`` DropEdge mask)."""
        n, n_e = self.num_nodes, self.src.numel()
        src, dst = self.endpoints(nodes)
        right = (nodes[:, layout.R_WRIST, WEAPON_FEATURE] > 0.5).long()  # (B,)
        frame = torch.arange(nodes.shape[0], device=nodes.device)[:, None]  # (B, 1)
        slot = self.slot_of_cell.index_select(0, right)  # (B, N*N), 0 = no edge
        cell_rows = torch.where(slot > 0, slot + frame * n_e, 0)
        return FrameGraph(
            src,
            dst,
            (src + frame * n).reshape(-1),
            (dst + frame * n).reshape(-1),
            cell_rows.reshape(-1),
            keep,
            edge_attr,
            n,
        )

    def forward(self, nodes: torch.Tensor, edge_attr: torch.Tensor) -> torch.Tensor:
        """Run the module (shapes in the class docstring)."""
        keep = None
        if self.training and self.drop_edge > 0:
            drop = torch.rand(nodes.shape[0], self.src.numel(), device=nodes.device)
            keep = ~((drop < self.drop_edge) & self.body_edge[None])
        g = self.frame_graph(nodes, edge_attr, keep)
        x = self.proj(nodes) + self.node_embedding
        h = self.norm1(F.elu(self.gat1(x, g)) + x)
        h = self.norm2(F.elu(self.gat2(h, g)) + h)
        h = h.view(-1, self.num_nodes, self.width)
        pooled = self.out(torch.cat([h.mean(1), h.amax(1)], -1))
        return pooled + F.elu(self.node_readout(h.reshape(-1, self.num_nodes * self.width)))

    def extra_repr(self) -> str:
        """The one-line summary inside ``repr``."""
        return (
            f"nodes={self.num_nodes}, edges/frame={self.src.numel()}, heads={self.heads}, "
            f"width={self.width}, drop_edge={self.drop_edge}, "
            f"pool=mean+max+per-node over h.view(-1, 19, C)"
        )


def bare_backbone() -> nn.Module:
    """MobileNetV3-Small feature extractor with no weights loaded (checkpoints fill it in)."""
    import torchvision

    net = torchvision.models.mobilenet_v3_small(weights=None)
    return nn.Sequential(net.features, net.avgpool, nn.Flatten(1))


def mobilenet_backbone(
    weights: str | Path | None = None, *, seed: int = 0
) -> tuple[nn.Module, str]:
    """MobileNetV3-Small feature extractor, ImageNet weights when they are on disk.

    Looks at ``weights`` (an explicit file; an error when missing), then the torch hub cache
    (``torch.hub.get_dir()/checkpoints``). Never downloads: without weights the network starts
    from a seeded random initialisation and a warning says so.

    Returns:
        ``(module, where)``: ``module(x)`` maps ``(B, 3, H, W)`` normalised images to
        ``(B, 576)``; ``where`` is the weights file used or ``"random"``.
    """
    import torchvision

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = torchvision.models.mobilenet_v3_small(weights=None)
    path: Path | None = None
    if weights is not None:
        path = Path(weights)
        if not path.exists():
            raise FileNotFoundError(
                f"Expected --visual-weights to be a file, but {path} does not exist."
            )
    else:
        cand = sorted((Path(torch.hub.get_dir()) / "checkpoints").glob("mobilenet_v3_small-*.pth"))
        path = cand[0] if cand else None
    where = "random"
    if path is not None:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        missing, _ = net.load_state_dict(state, strict=False)
        if any(k.startswith("features.") for k in missing):
            raise ValueError(
                f"Expected MobileNetV3-Small weights in {path}, but its keys do not "
                "match the network."
            )
        where = str(path)
    else:
        warnings.warn(
            "No ImageNet weights for MobileNetV3-Small found (looked in "
            f"{Path(torch.hub.get_dir()) / 'checkpoints'}); the visual stream starts from a "
            "RANDOM initialisation. Pass --visual-weights PATH to use pretrained weights.",
            UserWarning,
            stacklevel=2,
        )
    body = nn.Sequential(net.features, net.avgpool, nn.Flatten(1))
    return body, where


class VisualStream(nn.Module):
    """MobileNetV3-Small on the grip crop, then a small projection.

    ``features(crop)`` is what gets cached while the backbone is frozen; ``forward`` accepts
    either the crop or those cached features.

    Shapes:
        crop: ``(B, 3, 128, 128)`` RGB in 0..1 (ImageNet normalisation happens here).
        feat: ``(B, 576)`` cached backbone features. Returns ``(B, out_dim)``.
    """

    def __init__(
        self,
        out_dim: int = 128,
        weights: str | Path | None = None,
        seed: int = 0,
        backbone: nn.Module | None = None,
    ):
        super().__init__()
        if backbone is None:
            backbone, self.weights_from = mobilenet_backbone(weights, seed=seed)
        else:
            self.weights_from = "given"
        self.backbone = backbone
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        # (x - mean) / std as one affine pass (a single BatchNormalization node in ONNX).
        mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        self.register_buffer("norm_scale", 1.0 / std, persistent=False)
        self.register_buffer("norm_shift", -mean / std, persistent=False)
        self.register_buffer("norm_zero", torch.zeros(3), persistent=False)
        self.register_buffer("norm_one", torch.ones(3), persistent=False)
        self.head = nn.Sequential(nn.Linear(VISUAL_DIM, out_dim), nn.Hardswish(), nn.Dropout(0.2))
        self.out_dim = out_dim

    def features(self, crop: torch.Tensor) -> torch.Tensor:
        """Backbone features of ImageNet-normalised crops (what the frozen phase caches)."""
        x = F.batch_norm(
            crop,
            self.norm_zero,
            self.norm_one,
            self.norm_scale,
            self.norm_shift,
            training=False,
            eps=0.0,
        )  # == (crop - mean) / std, in one pass instead of two
        return self.backbone(x)

    def forward(
        self, crop: torch.Tensor | None = None, feat: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Run the module (shapes in the class docstring)."""
        if feat is None:
            feat = self.features(crop)
        return self.head(feat)

    def set_frozen(self, frozen: bool) -> None:
        """Freeze or unfreeze the backbone.

        Its BatchNorm statistics stay fixed either way (small batches on a CPU would only add
        noise to them).
        """
        for p in self.backbone.parameters():
            p.requires_grad_(not frozen)

    def train(self, mode: bool = True) -> VisualStream:
        """Set the training mode; the backbone's BatchNorm layers always stay in eval mode."""
        super().train(mode)
        for m in self.backbone.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def extra_repr(self) -> str:
        """The one-line summary inside ``repr``."""
        n = sum(p.numel() for p in self.backbone.parameters())
        return (
            f"backbone=MobileNetV3-Small({n / 1e6:.2f}M params, weights={self.weights_from}), "
            f"crop=3x128x128 RGB 0..1, out_dim={self.out_dim}"
        )

    def __repr__(self) -> str:
        # The backbone's 150-line module dump says nothing the summary line does not.
        head = repr(self.head).replace("\n", "\n  ")
        return f"VisualStream(\n  {self.extra_repr()}\n  (head): {head}\n)"


class FeatureStream(nn.Module):
    """Precomputed pretrained visual features (:mod:`trainer.visual`) -> an embedding.

    Shapes:
        feat: ``(B, D)``. Returns ``(B, out_dim)``.
    """

    def __init__(self, in_dim: int, out_dim: int = 128, dropout: float = 0.3):
        super().__init__()
        self.norm = nn.LayerNorm(in_dim)
        self.head = nn.Sequential(nn.Linear(in_dim, out_dim), nn.Hardswish(), nn.Dropout(dropout))
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        """Run the module (shapes in the class docstring)."""
        return self.head(self.norm(feat))

    def extra_repr(self) -> str:
        """The one-line summary inside ``repr``."""
        return f"pretrained point features {self.in_dim} -> {self.out_dim}"


class HierarchicalHead(nn.Module):
    """Family and chamber heads, and a stance head conditioned on both.

    The stance logits are an MLP over ``[z, p(family), p(chamber)]`` plus a learned multiple of
    ``log p(family of stance) + log p(chamber of stance)``: the taxonomy's hierarchy as a prior.

    Shapes:
        z: ``(B, in_dim)``. Returns a dict with ``stance (B, C)``, ``family (B, F)``,
        ``chamber (B, K)``, ``embedding (B, hidden)``.
    """

    def __init__(
        self,
        in_dim: int,
        family_of: np.ndarray,
        chamber_of: np.ndarray,
        hidden: int = 128,
        dropout: float = 0.2,
    ):
        super().__init__()
        n_cls = len(family_of)
        n_fam, n_ch = int(np.max(family_of)) + 1, int(np.max(chamber_of)) + 1
        self.family = nn.Linear(in_dim, n_fam)
        self.chamber = nn.Linear(in_dim, n_ch)
        self.embed = nn.Sequential(
            nn.Linear(in_dim + n_fam + n_ch, hidden), nn.ReLU(), nn.Dropout(dropout)
        )
        self.classifier = nn.Linear(hidden, n_cls)
        self.prior_scale = nn.Parameter(torch.tensor(0.5))
        self.register_buffer("fam_onehot", F.one_hot(torch.as_tensor(family_of), n_fam).float())
        self.register_buffer("ch_onehot", F.one_hot(torch.as_tensor(chamber_of), n_ch).float())
        self.sizes = (n_cls, n_fam, n_ch)

    def forward(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run the module (shapes in the class docstring)."""
        fam, ch = self.family(z), self.chamber(z)
        e = self.embed(torch.cat([z, fam.softmax(-1), ch.softmax(-1)], -1))
        prior = fam.log_softmax(-1) @ self.fam_onehot.T + ch.log_softmax(-1) @ self.ch_onehot.T
        return {
            "stance": self.classifier(e) + self.prior_scale * prior,
            "family": fam,
            "chamber": ch,
            "embedding": e,
        }

    def extra_repr(self) -> str:
        """The one-line summary inside ``repr``."""
        c, f, k = self.sizes
        return f"stances={c}, families={f}, chambers={k}, stance | (z, p_family, p_chamber)"


class FlatHead(nn.Module):
    """Stance classifier without hierarchy.

    Shapes:
        z: ``(B, in_dim)``. Returns a dict with ``stance (B, C)`` and ``embedding (B, hidden)``.
    """

    def __init__(self, in_dim: int, n_classes: int, hidden: int = 128, dropout: float = 0.2):
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.classifier = nn.Linear(hidden, n_classes)
        self.n_classes = n_classes

    def forward(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run the module (shapes in the class docstring)."""
        e = self.embed(z)
        return {"stance": self.classifier(e), "embedding": e}

    def extra_repr(self) -> str:
        """The one-line summary inside ``repr``."""
        return f"stances={self.n_classes}, flat"


class GeometryHead(nn.Module):
    """Auxiliary regression of the stick geometry (grip dx, dy, stick length, angle offset).

    Shapes:
        z: ``(B, in_dim)``. Returns ``(B, 4)``.
    """

    def __init__(self, in_dim: int, hidden: int = 64):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, 4))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Run the module (shapes in the class docstring)."""
        return self.mlp(z)


class ArcMargin(nn.Module):
    """ArcFace logits (additive angular margin) for the optional metric-learning phase.

    Used only in the loss, on the stance embedding; inference never sees it.

    Shapes:
        emb: ``(B, D)``; target: ``(B,)``. Returns ``(B, C)`` scaled logits.
    """

    def __init__(self, dim: int, n_classes: int, scale: float = 16.0, margin: float = 0.2):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_classes, dim) * 0.01)
        self.scale, self.margin = scale, margin

    def forward(self, emb: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Run the module (shapes in the class docstring)."""
        cos = F.normalize(emb, dim=-1) @ F.normalize(self.weight, dim=-1).T
        theta = torch.acos(cos.clamp(-1 + 1e-6, 1 - 1e-6))
        hit = F.one_hot(target, cos.shape[1]).bool()
        return self.scale * torch.where(hit, torch.cos(theta + self.margin), cos)

    def extra_repr(self) -> str:
        """The one-line summary inside ``repr``."""
        c, d = self.weight.shape
        return f"dim={d}, classes={c}, s={self.scale}, m={self.margin}"


class GeoPoseNet(nn.Module):
    """The stance classifier: graph stream + visual stream -> hierarchical heads (+ geometry).

    Args:
        n_classes: Number of stances.
        variant: One of :data:`VARIANTS`.
        family_of: ``(C,)`` family index per stance (None or flat taxonomy -> flat head).
        chamber_of: ``(C,)`` chamber index per stance.
        visual_weights: MobileNetV3-Small weights file (default: torch hub cache, else random).
        seed: Seed of the backbone's random initialisation (the same for every fold, so frozen
            crop features can be cached once per run).
        dim: Width of each stream's embedding.
        backbone: A MobileNetV3 feature extractor to use (``visual="mobilenet"``).
        visual: The visual stream: ``"none"``, ``"yolo"`` (precomputed pretrained point
            features of width ``visual_dim``) or ``"mobilenet"`` (the grip crop).
        visual_dim: Width of the ``"yolo"`` features.

    The ``temperature`` buffer (1 until calibrated, saved with the weights) divides the stance
    logits in :func:`trainer.export` and scoring; ``forward`` returns the raw logits.

    Shapes:
        nodes: ``(B, 19, 5)``; edge_attr: ``(B, E, 4)``; crop: ``(B, 3, 128, 128)`` in 0..1;
        crop_feat: ``(B, 576)`` cached backbone features (instead of ``crop``);
        visual_feat: ``(B, visual_dim)`` pretrained point features.
        Returns a dict: ``stance (B, C)`` logits, ``family (B, F)``/``chamber (B, K)`` (when
        hierarchical), ``geometry (B, 4)`` (with the aux head), ``embedding (B, 128)``.
    """

    def __init__(
        self,
        n_classes: int,
        variant: str = "geopose",
        family_of: np.ndarray | None = None,
        chamber_of: np.ndarray | None = None,
        visual_weights: str | Path | None = None,
        seed: int = 0,
        dim: int = 128,
        backbone: nn.Module | None = None,
        visual: str = "mobilenet",
        visual_dim: int | None = None,
    ):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(
                f"Expected 'variant' to be one of {list(VARIANTS)}, but got {variant!r}."
            )
        if visual not in VISUAL_SOURCES:
            raise ValueError(
                f"Expected 'visual' to be one of {list(VISUAL_SOURCES)}, but got {visual!r}."
            )
        if variant == "graph":
            visual = "none"
        if variant == "visual" and visual == "none":
            raise ValueError("Expected a visual stream ('yolo' or 'mobilenet') for 'visual'.")
        self.variant = variant
        self.visual_source = visual
        self.n_classes = n_classes
        self.uses_graph = variant != "visual"
        self.uses_visual = visual != "none"
        self.graph = GraphStream(out_dim=dim) if self.uses_graph else None
        if visual == "mobilenet":
            self.visual = VisualStream(
                out_dim=dim, weights=visual_weights, seed=seed, backbone=backbone
            )
        elif visual == "yolo":
            if not visual_dim:
                raise ValueError("Expected 'visual_dim' for the 'yolo' visual stream.")
            self.visual = FeatureStream(int(visual_dim), dim)
        else:
            self.visual = None
        self.register_buffer("temperature", torch.tensor(1.0))
        width = dim * (int(self.uses_graph) + int(self.uses_visual))
        self.trunk = nn.Sequential(nn.Linear(width, 256), nn.ReLU(), nn.Dropout(0.2))
        self.hierarchical = (
            variant != "flat"
            and family_of is not None
            and chamber_of is not None
            and len(family_of)
            and np.min(family_of) >= 0
        )
        self.head = (
            HierarchicalHead(256, np.asarray(family_of), np.asarray(chamber_of))
            if self.hierarchical
            else FlatHead(256, n_classes)
        )
        self.geometry = GeometryHead(256) if variant != "no-aux" else None

    def forward(
        self,
        nodes: torch.Tensor | None = None,
        edge_attr: torch.Tensor | None = None,
        crop: torch.Tensor | None = None,
        crop_feat: torch.Tensor | None = None,
        visual_feat: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Run the module (shapes in the class docstring)."""
        parts = []
        if self.graph is not None:
            parts.append(self.graph(nodes, edge_attr))
        if self.visual_source == "yolo":
            parts.append(self.visual(visual_feat))
        elif self.visual is not None:
            parts.append(self.visual(crop, crop_feat))
        z = self.trunk(torch.cat(parts, -1) if len(parts) > 1 else parts[0])
        out = self.head(z)
        if self.geometry is not None:
            out["geometry"] = self.geometry(z)
        return out

    def extra_repr(self) -> str:
        """The one-line summary inside ``repr``."""
        n = sum(p.numel() for p in self.parameters())
        return (
            f"variant={self.variant!r}, visual={self.visual_source!r}, classes={self.n_classes}, "
            f"hierarchical={bool(self.hierarchical)}, params={n / 1e6:.2f}M"
        )


def build_model(config: dict, backbone: nn.Module | None = None) -> GeoPoseNet:
    """A :class:`GeoPoseNet` from a checkpoint's ``model_config`` (plain types only)."""
    fam = config.get("family_of")
    ch = config.get("chamber_of")
    # Checkpoints from before --visual always had the MobileNetV3 stream (except 'graph').
    visual = config.get("visual", "none" if config["variant"] == "graph" else "mobilenet")
    return GeoPoseNet(
        n_classes=int(config["n_classes"]),
        variant=config["variant"],
        family_of=None if fam is None else np.asarray(fam, np.int64),
        chamber_of=None if ch is None else np.asarray(ch, np.int64),
        visual_weights=None,
        seed=int(config.get("seed", 0)),
        dim=int(config.get("dim", 128)),
        backbone=backbone if backbone is not None or visual != "mobilenet" else bare_backbone(),
        visual=visual,
        visual_dim=config.get("visual_dim"),
    )
