"""Training one cross-validation fold of GeoPose-Net (or a baseline).

Per fold: the training groups are split again (by group) into fit and validation rows; the model
trains with AdamW (3e-4, weight decay 0.01), a cosine schedule, batch 16, gradient clipping and
early stopping (patience 15) on the validation loss, in two phases:

1. **frozen backbone**: the MobileNetV3-Small crop features are computed once per run (for the
   plain crop and ``aug_views - 1`` augmented copies) and cached; only the graph stream, the
   visual projection and the heads train. This is what makes CPU training practical.
2. **fine-tuning** (``finetune_epochs > 0``): the backbone is unfrozen at a 10x lower learning
   rate and sees augmented crops (colour jitter, blur, rotation) every step.

Loss = CE(stance, label smoothing 0.1) + 0.3 CE(family) + 0.3 CE(chamber) + 0.1 L1(geometry),
plus an optional ArcFace term on the stance embedding after ``arcface_after`` epochs.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from trainer.cv import Fold, inner_split
from trainer.data import KeypointAugment, Prepared, featurise, geometry_targets, sibling_classes
from trainer.models import VARIANTS, ArcMargin, GeoPoseNet, mobilenet_backbone

BASELINES: tuple[str, ...] = ("angles-rf", "angles-gbm")
MODELS: tuple[str, ...] = VARIANTS + BASELINES


@dataclass
class TrainConfig:
    """Everything that shapes a training run (written to ``config.yaml``).

    Attributes:
        model: One of :data:`MODELS`.
        epochs: Maximum epochs of the frozen-backbone phase.
        finetune_epochs: Maximum epochs with the backbone unfrozen (0: never unfreeze).
        batch_size: Minibatch size.
        lr: AdamW learning rate (the backbone gets ``lr / 10`` when unfrozen).
        weight_decay: AdamW weight decay.
        patience: Early-stopping patience in epochs (on the validation loss).
        clip: Gradient-norm clip.
        label_smoothing: Stance (and family/chamber) cross-entropy smoothing.
        w_family, w_chamber, w_geometry: Auxiliary loss weights.
        arcface_after: Epoch after which the ArcFace term is added (-1: never).
        arcface_weight: Its weight.
        cache_features: Cache the frozen backbone's crop features (False: run the backbone every
            step, only for timing comparisons).
        aug_views: Cached crop views per frame (the first is the plain crop).
        augment: Keypoint and crop augmentation on/off.
        val_fraction: Share of the training groups used for early stopping.
        seed: Seed for folds, initialisation and augmentation.
        device: ``cpu`` or ``cuda``.
        visual_weights: MobileNetV3-Small ImageNet weights file (None: torch hub cache or random).
        dim: Width of each stream's embedding.
        threads: torch intra-op threads while training. 1 by default: the tensors are small
            (16 frames x 19 nodes), so extra threads mostly spin, and on a busy 2-core machine
            they make each step 10-20x slower.
        keypoint_augment: Keypoint augmentation settings.
    """

    model: str = "geopose"
    epochs: int = 100
    finetune_epochs: int = 0
    batch_size: int = 16
    lr: float = 3e-4
    weight_decay: float = 0.01
    patience: int = 15
    clip: float = 1.0
    label_smoothing: float = 0.1
    w_family: float = 0.3
    w_chamber: float = 0.3
    w_geometry: float = 0.1
    arcface_after: int = -1
    arcface_weight: float = 0.5
    cache_features: bool = True
    aug_views: int = 2
    augment: bool = True
    val_fraction: float = 0.2
    seed: int = 0
    device: str = "cpu"
    visual_weights: str | None = None
    dim: int = 128
    threads: int = 1
    keypoint_augment: KeypointAugment = field(default_factory=KeypointAugment)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def neural(self) -> bool:
        return self.model in VARIANTS


@dataclass
class FoldOutput:
    """What one fold produces.

    Attributes:
        fold: The outer fold.
        proba: ``(n_test, C)`` class probabilities on the fold's test rows.
        history: One dict per epoch (phase, losses, validation accuracy, lr, seconds).
        state: The best model's ``state_dict`` (None for baselines).
        model_config: Plain-typed arguments to rebuild the model (None for baselines).
        best_val_loss: Validation loss of the kept weights (NaN for baselines).
        seconds: Wall time of the fold.
        n_fit, n_val: Rows used for fitting and for early stopping.
    """

    fold: Fold
    proba: np.ndarray
    history: list[dict]
    state: dict | None
    model_config: dict | None
    best_val_loss: float
    seconds: float
    n_fit: int
    n_val: int


# ---------------------------------------------------------------------- visual feature cache
class CropCache:
    """Grip crops as float tensors and the frozen backbone's features for them (per run).

    Attributes:
        backbone: The shared initial backbone (every fold's model starts from a copy).
        weights_from: Where its weights came from (a file, or ``"random"``).
        feats: ``(V, N, 576)`` cached features (view 0 = plain crop), or None until computed.
    """

    def __init__(self, prep: Prepared, cfg: TrainConfig, progress: bool = False):
        if prep.crops is None:
            raise ValueError("Expected crops for a visual model (prepare(..., crops=True)).")
        self.prep = prep
        self.backbone, self.weights_from = mobilenet_backbone(cfg.visual_weights, seed=cfg.seed)
        self.backbone.eval()
        self.feats: torch.Tensor | None = None
        self.progress = progress
        self.views = max(1, cfg.aug_views)
        self.seed = cfg.seed
        self.seconds = 0.0
        if self.weights_from == "random":
            t0 = time.perf_counter()
            self._calibrate_batchnorm(self.backbone, _MEAN, _STD, "cpu")
            self.seconds += time.perf_counter() - t0

    @torch.no_grad()
    def _calibrate_batchnorm(self, net, mean, std, device) -> None:
        """Set the BatchNorm running statistics of a randomly initialised backbone from the crops.

        With torchvision's initial statistics (mean 0, variance 1) a random MobileNetV3 in eval
        mode shrinks every crop to ~1e-9 features, identical for all crops, so the visual stream
        would learn nothing. One pass in train mode over the crops (pixels only; labels are never
        used) gives statistics that keep the features alive. Pretrained weights skip this.
        """
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None  # cumulative average over the pass
        net.train()
        gen = torch.Generator().manual_seed(self.seed)
        for s in range(0, len(self.prep), 64):
            x = self.crops(np.arange(s, min(len(self.prep), s + 64)))
            # Noisy copies keep the statistics sane when the crops are near-uniform (tiny
            # variances would blow up any other input, e.g. the export's parity check).
            x = torch.cat([x, (x + torch.rand(x.shape, generator=gen)) / 2])
            net((x.to(device) - mean) / std)
        net.eval()

    def crops(self, rows: np.ndarray) -> torch.Tensor:
        """``(len(rows), 3, 128, 128)`` float crops in 0..1."""
        c = torch.from_numpy(self.prep.crops[rows]).permute(0, 3, 1, 2)
        return c.float().div_(255.0)

    @torch.no_grad()
    def compute(self, device: str = "cpu") -> torch.Tensor:
        """Backbone features of every crop, once (plain view, then augmented views)."""
        if self.feats is not None:
            return self.feats
        from tqdm.auto import tqdm

        from trainer.models import IMAGENET_MEAN, IMAGENET_STD

        t0 = time.perf_counter()
        net = self.backbone.to(device)
        mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
        n = len(self.prep)
        out = torch.zeros(self.views, n, 576)
        gen = torch.Generator().manual_seed(self.seed)
        total = self.views * math.ceil(n / 64)
        with tqdm(
            total=total, desc="crop features", unit="batch", disable=not self.progress, leave=False
        ) as bar:
            for v in range(self.views):
                for s in range(0, n, 64):
                    rows = np.arange(s, min(n, s + 64))
                    x = self.crops(rows)
                    if v > 0:
                        x = augment_crops(x, gen)
                    out[v, rows] = net((x.to(device) - mean) / std).cpu()
                    bar.update()
        self.backbone.to("cpu")
        self.feats = out
        self.seconds += time.perf_counter() - t0
        return out


def augment_crops(x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
    """Colour jitter, occasional blur and a small rotation, per crop.

    Shapes:
        x: ``(B, 3, H, W)`` in 0..1. Returns the same shape.
    """
    b = x.shape[0]

    def u(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return torch.rand(b, *shape, generator=gen) * (hi - lo) + lo

    grey = x.mean(1, keepdim=True)
    x = grey + (x - grey) * u(0.7, 1.3, 1, 1, 1)  # saturation
    mean = x.mean((1, 2, 3), keepdim=True)
    x = mean + (x - mean) * u(0.75, 1.25, 1, 1, 1)  # contrast
    x = x * u(0.75, 1.25, 1, 1, 1)  # brightness
    k = torch.tensor([1.0, 2.0, 1.0])
    k = (k[:, None] * k[None]) / 16
    blurred = F.conv2d(
        F.pad(x, (1, 1, 1, 1), mode="replicate"), k.expand(3, 1, 3, 3).to(x.dtype), groups=3
    )
    blur = (torch.rand(b, generator=gen) < 0.3).view(b, 1, 1, 1)
    x = torch.where(blur, blurred, x)
    ang = u(-10, 10).mul(math.pi / 180)
    cos, sin = torch.cos(ang), torch.sin(ang)
    theta = torch.stack(
        [torch.stack([cos, -sin, torch.zeros(b)], -1), torch.stack([sin, cos, torch.zeros(b)], -1)],
        1,
    ).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")
    return x.clamp_(0, 1)


# ---------------------------------------------------------------------- batches
def _model_config(prep: Prepared, cfg: TrainConfig) -> dict:
    tax = prep.taxonomy
    return {
        "variant": cfg.model,
        "n_classes": len(tax.classes),
        "family_of": tax.family_of.tolist() if tax.hierarchical else None,
        "chamber_of": tax.chamber_of.tolist() if tax.hierarchical else None,
        "seed": cfg.seed,
        "dim": cfg.dim,
    }


class _Batches:
    """Builds model inputs for row sets (augmented for training, cached for evaluation)."""

    def __init__(
        self,
        prep: Prepared,
        cfg: TrainConfig,
        fit_rows: np.ndarray,
        cache: CropCache | None,
        device: torch.device,
    ):
        self.prep, self.cfg, self.cache, self.device = prep, cfg, cache, device
        self.pool = prep.keypoints[fit_rows]
        self.pool_y = prep.y[fit_rows]
        self.siblings = sibling_classes(prep.taxonomy)
        self.geo, self.geo_mask = geometry_targets(prep.keypoints)
        self.nodes, self.edges = featurise(prep.keypoints, prep.conf)

    def inputs(
        self,
        rows: np.ndarray,
        rng: np.random.Generator | None,
        *,
        crops: bool = False,
        gen: torch.Generator | None = None,
    ) -> dict:
        """Model keyword inputs for ``rows``; ``rng`` given = augment the keypoints."""
        p, dev = self.prep, self.device
        out: dict[str, torch.Tensor] = {}
        model = self.cfg.model
        if model != "visual":
            if rng is not None and self.cfg.augment:
                kp = self.cfg.keypoint_augment(
                    p.keypoints[rows], p.y[rows], rng, self.pool, self.pool_y, self.siblings
                )
                nodes, edges = featurise(kp, p.conf[rows])
            else:
                nodes, edges = self.nodes[rows], self.edges[rows]
            out["nodes"] = torch.from_numpy(nodes).to(dev)
            out["edge_attr"] = torch.from_numpy(edges).to(dev)
        if model != "graph":
            if crops or not self.cfg.cache_features:
                x = self.cache.crops(rows)
                if rng is not None and self.cfg.augment:
                    x = augment_crops(x, gen)
                if crops:
                    out["crop"] = x.to(dev)
                else:  # frozen backbone without a cache: features recomputed every step
                    with torch.no_grad():
                        out["crop_feat"] = self.cache.backbone((x - _MEAN) / _STD).to(dev)
            else:
                feats = self.cache.feats
                view = (
                    rng.integers(0, feats.shape[0], len(rows))
                    if rng is not None and self.cfg.augment
                    else np.zeros(len(rows), int)
                )
                out["crop_feat"] = feats[view, rows].to(dev)
        return out

    def targets(self, rows: np.ndarray) -> dict:
        p, dev = self.prep, self.device
        return {
            "y": torch.from_numpy(p.y[rows]).to(dev),
            "family": torch.from_numpy(p.family[rows]).to(dev),
            "chamber": torch.from_numpy(p.chamber[rows]).to(dev),
            "geometry": torch.from_numpy(self.geo[rows]).to(dev),
            "geometry_mask": torch.from_numpy(self.geo_mask[rows]).to(dev),
        }


_MEAN = torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1)
_STD = torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1)


def compute_loss(
    out: dict,
    t: dict,
    cfg: TrainConfig,
    arc: ArcMargin | None = None,
    smoothing: float | None = None,
) -> torch.Tensor:
    """The training objective (see the module docstring)."""
    ls = cfg.label_smoothing if smoothing is None else smoothing
    loss = F.cross_entropy(out["stance"], t["y"], label_smoothing=ls)
    if "family" in out:
        loss = loss + cfg.w_family * F.cross_entropy(out["family"], t["family"], label_smoothing=ls)
        loss = loss + cfg.w_chamber * F.cross_entropy(
            out["chamber"], t["chamber"], label_smoothing=ls
        )
    if "geometry" in out and cfg.w_geometry > 0:
        m = t["geometry_mask"].float()
        l1 = ((out["geometry"] - t["geometry"]).abs() * m).sum() / m.sum().clamp(min=1.0)
        loss = loss + cfg.w_geometry * l1
    if arc is not None:
        loss = loss + cfg.arcface_weight * F.cross_entropy(arc(out["embedding"], t["y"]), t["y"])
    return loss


@torch.no_grad()
def predict(
    model: GeoPoseNet, batches: _Batches, rows: np.ndarray, crops: bool = False, chunk: int = 256
) -> tuple[np.ndarray, float]:
    """Class probabilities for ``rows`` and the mean stance NLL against their labels."""
    model.eval()
    probs, nll = [], 0.0
    for s in range(0, len(rows), chunk):
        r = rows[s : s + chunk]
        out = model(**batches.inputs(r, None, crops=crops))
        logits = out["stance"]
        nll += float(F.cross_entropy(logits, batches.targets(r)["y"], reduction="sum"))
        probs.append(logits.softmax(-1).cpu().numpy())
    if not probs:
        return np.zeros((0, model.n_classes)), float("nan")
    return np.concatenate(probs).astype(np.float64), nll / max(1, len(rows))


# ---------------------------------------------------------------------- one fold
def train_fold(
    prep: Prepared,
    fold: Fold,
    cfg: TrainConfig,
    cache: CropCache | None = None,
    progress: bool = False,
) -> FoldOutput:
    """Train and evaluate one outer fold (neural model or baseline)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, cfg.threads))
    try:
        return _train_fold(prep, fold, cfg, cache, progress)
    finally:
        torch.set_num_threads(threads)


def _train_fold(
    prep: Prepared, fold: Fold, cfg: TrainConfig, cache: CropCache | None, progress: bool
) -> FoldOutput:
    t0 = time.perf_counter()
    if cfg.model in BASELINES:
        proba = _baseline_fold(prep, fold, cfg)
        return FoldOutput(
            fold, proba, [], None, None, float("nan"), time.perf_counter() - t0, len(fold.train), 0
        )
    if cfg.model not in VARIANTS:
        raise ValueError(f"Expected '--model' to be one of {list(MODELS)}, but got {cfg.model!r}.")
    fit_rows, val_rows = inner_split(
        prep.y, prep.groups, fold.train, seed=cfg.seed + fold.index, fraction=cfg.val_fraction
    )
    from tqdm.auto import tqdm

    device = torch.device(cfg.device)
    torch.manual_seed(cfg.seed * 1000 + fold.index)
    rng = np.random.default_rng(cfg.seed * 1000 + fold.index)
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + fold.index)
    uses_visual = cfg.model != "graph"
    if uses_visual and cache is None:
        raise ValueError("Expected a CropCache for a visual model.")
    if uses_visual and cfg.cache_features:
        cache.compute(cfg.device)
    mc = _model_config(prep, cfg)
    model = GeoPoseNet(
        n_classes=mc["n_classes"],
        variant=cfg.model,
        family_of=None if mc["family_of"] is None else np.asarray(mc["family_of"]),
        chamber_of=None if mc["chamber_of"] is None else np.asarray(mc["chamber_of"]),
        dim=cfg.dim,
        backbone=copy.deepcopy(cache.backbone) if uses_visual else None,
    ).to(device)
    if uses_visual:
        model.visual.set_frozen(True)
    arc = (
        ArcMargin(model.head.classifier.in_features, mc["n_classes"]).to(device)
        if cfg.arcface_after >= 0
        else None
    )
    batches = _Batches(prep, cfg, fit_rows, cache, device)
    history: list[dict] = []
    best = {"loss": math.inf, "state": copy.deepcopy(model.state_dict()), "epoch": -1}
    phases = [("frozen", cfg.epochs, False)]
    if uses_visual and cfg.finetune_epochs > 0:
        phases.append(("finetune", cfg.finetune_epochs, True))
    total_epochs = sum(p[1] for p in phases)
    bar = tqdm(
        total=total_epochs,
        desc=f"fold {fold.index + 1} {cfg.model}",
        unit="epoch",
        disable=not progress,
        leave=False,
    )
    epoch = 0
    for phase, n_epochs, with_crops in phases:
        if n_epochs <= 0:
            continue
        if with_crops:
            model.load_state_dict(best["state"])
            model.visual.set_frozen(False)
        backbone_ids = {id(p) for p in model.visual.backbone.parameters()} if uses_visual else set()
        head_params = [
            p for p in model.parameters() if p.requires_grad and id(p) not in backbone_ids
        ]
        groups = [{"params": head_params, "lr": cfg.lr}]
        if with_crops:
            groups.append({"params": list(model.visual.backbone.parameters()), "lr": cfg.lr / 10})
        if arc is not None:
            groups.append({"params": list(arc.parameters()), "lr": cfg.lr})
        opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
        steps_per_epoch = max(1, math.ceil(len(fit_rows) / cfg.batch_size))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=n_epochs * steps_per_epoch)
        stale = 0
        for phase_epoch in range(n_epochs):
            te = time.perf_counter()
            model.train()
            perm = rng.permutation(fit_rows)
            tot, cnt = 0.0, 0
            use_arc = arc if (arc is not None and epoch >= cfg.arcface_after) else None
            for s in range(0, len(perm), cfg.batch_size):
                r = perm[s : s + cfg.batch_size]
                if len(r) < 2 and len(perm) > 2:
                    continue  # a 1-row tail batch only adds noise
                out = model(**batches.inputs(r, rng, crops=with_crops, gen=gen))
                loss = compute_loss(out, batches.targets(r), cfg, use_arc)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], cfg.clip)
                opt.step()
                sched.step()
                tot += loss.item() * len(r)
                cnt += len(r)
            proba_val, val_loss = predict(model, batches, val_rows, crops=with_crops)
            val_acc = float(np.mean(proba_val.argmax(1) == prep.y[val_rows]))
            history.append(
                {
                    "epoch": epoch,
                    "phase": phase,
                    "train_loss": tot / max(cnt, 1),
                    "val_loss": val_loss,
                    "val_accuracy": val_acc,
                    "lr": opt.param_groups[0]["lr"],
                    "seconds": time.perf_counter() - te,
                }
            )
            bar.set_postfix(loss=f"{tot / max(cnt, 1):.3f}", val=f"{val_acc:.3f}")
            bar.update()
            epoch += 1
            if val_loss < best["loss"] - 1e-4:
                best = {
                    "loss": val_loss,
                    "state": copy.deepcopy(model.state_dict()),
                    "epoch": epoch - 1,
                    "phase": phase,
                }
                stale = 0
            else:
                stale += 1
                if stale >= cfg.patience:
                    bar.update(n_epochs - phase_epoch - 1)  # early stop: the bar jumps ahead
                    break
    bar.close()
    model.load_state_dict(best["state"])
    finetuned = best.get("phase") == "finetune"
    proba, _ = predict(model, batches, fold.test, crops=finetuned)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    mc["finetuned"] = finetuned
    mc["best_epoch"] = best["epoch"]
    return FoldOutput(
        fold,
        proba,
        history,
        state,
        mc,
        float(best["loss"]),
        time.perf_counter() - t0,
        len(fit_rows),
        len(val_rows),
    )


def _baseline_fold(prep: Prepared, fold: Fold, cfg: TrainConfig) -> np.ndarray:
    from trainer.baselines import fit_predict_baseline

    X = angle_matrix(prep)
    return fit_predict_baseline(
        cfg.model,
        X[fold.train],
        prep.y[fold.train],
        X[fold.test],
        seed=cfg.seed,
        n_classes=len(prep.taxonomy.classes),
    )


def angle_matrix(prep: Prepared) -> np.ndarray:
    """Joint-angle features of every row (cached on the :class:`Prepared`)."""
    if prep.angles is None:
        from trainer.features import angle_features

        prep.angles, _ = angle_features(prep.keypoints)
    return prep.angles
