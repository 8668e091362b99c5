"""Training one cross-validation fold of GeoPose-Net (or a baseline).

Per fold, ``members`` models are trained (a seed ensemble, 1 by default). A member trains with
AdamW (1e-3, weight decay 0.01), a cosine schedule, batch 16 and gradient clipping, and stops by
``stop``:

* ``fixed`` (default): the whole schedule, keeping the last weights (no decision hinges on a
  validation subject; the schedule length is the ``--epochs`` option);
* ``smoothed``: the best epoch by an exponential moving average of the validation loss (after a
  third of the epochs), stopping after ``patience`` epochs without a better smoothed loss;
* ``patience``: the raw validation loss with patience (the old behaviour).

Which rows a member trains on:

* ``fixed`` with ``refit`` (default): the fixed schedule needs no validation rows, so **every
  member trains on all of the fold's training rows**. With 3-4 training subjects, holding one
  out costs a quarter to a third of the people the model can learn from. The temperature
  (temperature scaling: one scalar that divides the stance logits, minimising the NLL) comes from
  one extra *calibration model*, trained the same way without a block of about ``val_fraction``
  of the training groups and fitted on that block; every member gets it.
* otherwise (``smoothed``, ``patience`` or ``refit=False``): each member holds out a different
  block of the fold's training groups as its validation rows (for stopping and its own
  temperature), so with several members every training subject is trained on by most of them.

The fold's probabilities are the mean of the members' calibrated probabilities. Everything random
is seeded from ``(seed, fold, member)`` alone, so a fold trains the same in any process. Training
runs in two phases:

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

from trainer.baselines import BASELINES
from trainer.cv import Fold, inner_split
from trainer.data import KeypointAugment, Prepared, featurise, geometry_targets, sibling_classes
from trainer.models import VARIANTS, VISUAL_SOURCES, ArcMargin, GeoPoseNet, mobilenet_backbone

MODELS: tuple[str, ...] = VARIANTS + BASELINES
#: Early-stopping criteria (``--stop``).
STOPS: tuple[str, ...] = ("fixed", "smoothed", "patience")


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
        patience: Early-stopping patience in epochs (``stop`` = smoothed or patience).
        stop: ``fixed``, ``smoothed`` or ``patience`` (see the module docstring).
        members: Models per fold (seed ensemble, each with other validation groups).
        calibrate: Fit a temperature per member on its validation rows.
        visual: Visual stream of ``geopose``/``visual``/``flat``/``no-aux``: ``none``, ``yolo``
            (COCO-pretrained yolo11n-pose features sampled at the hand and stick, see
            :mod:`trainer.visual`) or ``mobilenet`` (a grip crop through MobileNetV3-Small;
            ImageNet weights from ``visual_weights`` or the torch hub cache, else random with a
            warning).
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
        refit: With ``stop="fixed"``, train every member on all of the fold's training rows
            and take the temperature from a calibration model trained without a held-out block
            of groups (see :func:`train_fold`). False: each member holds out its own
            validation groups (the behaviour of ``smoothed``/``patience``, which need them).
    """

    model: str = "geopose"
    epochs: int = 100
    finetune_epochs: int = 0
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.01
    patience: int = 15
    stop: str = "fixed"
    members: int = 1
    calibrate: bool = True
    visual: str = "none"
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
    refit: bool = True

    def to_dict(self) -> dict:
        """Every setting as plain types (for ``config.yaml``)."""
        return asdict(self)

    @property
    def neural(self) -> bool:
        """Whether the model is a neural network (not a scikit-learn baseline)."""
        return self.model in VARIANTS

    @property
    def visual_source(self) -> str:
        """The visual stream this model uses (``none`` for ``graph`` and baselines)."""
        if self.model == "graph" or not self.neural:
            return "none"
        if self.model == "visual" and self.visual == "none":
            return "yolo"
        return self.visual

    def check(self) -> None:
        """Refuse settings that cannot train (named like the CLI options)."""
        if self.model not in MODELS:
            raise ValueError(
                f"Expected '--model' to be one of {list(MODELS)}, but got {self.model!r}."
            )
        if self.stop not in STOPS:
            raise ValueError(
                f"Expected '--stop' to be one of {list(STOPS)}, but got {self.stop!r}."
            )
        if self.visual not in VISUAL_SOURCES:
            raise ValueError(
                f"Expected '--visual' to be one of {list(VISUAL_SOURCES)}, but got {self.visual!r}."
            )
        if self.members < 1:
            raise ValueError(f"Expected '--members' to be at least 1, but got {self.members}.")


@dataclass
class FoldOutput:
    """What one fold produces.

    Attributes:
        fold: The outer fold.
        proba: ``(n_test, C)`` class probabilities on the fold's test rows (calibrated members'
            mean for neural models).
        history: One dict per member and epoch (member, phase, losses, validation accuracy, lr,
            seconds).
        state: The first member's ``state_dict`` (None for baselines).
        model_config: Plain-typed arguments to rebuild the model (None for baselines).
        best_val_loss: Mean validation NLL of the kept members (after calibration; NaN for
            baselines).
        seconds: Wall time of the fold.
        n_fit, n_val: Rows used for fitting and for validation (per member, the first member's).
        members: Every member's ``state_dict`` (neural models; ``members[0] is state``).
        proba_raw: ``(n_test, C)`` members' mean before temperature scaling (or None).
        temperatures: Fitted temperature per member.
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
    members: list[dict] = field(default_factory=list)
    proba_raw: np.ndarray | None = None
    temperatures: list[float] = field(default_factory=list)


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
    src = cfg.visual_source
    return {
        "variant": cfg.model,
        "n_classes": len(tax.classes),
        "family_of": tax.family_of.tolist() if tax.hierarchical else None,
        "chamber_of": tax.chamber_of.tolist() if tax.hierarchical else None,
        "seed": cfg.seed,
        "dim": cfg.dim,
        "visual": src,
        "visual_dim": int(prep.visual.shape[1]) if src == "yolo" else None,
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
        self.subject = prep.subject
        self.geo, self.geo_mask = geometry_targets(prep.keypoints, prep.subject)
        self.nodes, self.edges = featurise(prep.keypoints, prep.conf, groups=prep.subject)
        self.source = cfg.visual_source

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
                groups = None if self.subject is None else self.subject[rows]
                nodes, edges = featurise(kp, p.conf[rows], groups=groups)
            else:
                nodes, edges = self.nodes[rows], self.edges[rows]
            out["nodes"] = torch.from_numpy(nodes).to(dev)
            out["edge_attr"] = torch.from_numpy(edges).to(dev)
        if self.source == "yolo":
            out["visual_feat"] = torch.from_numpy(p.visual[rows]).float().to(dev)
        elif self.source == "mobilenet":
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
def predict_logits(
    model: GeoPoseNet, batches: _Batches, rows: np.ndarray, crops: bool = False, chunk: int = 256
) -> np.ndarray:
    """Stance logits for ``rows`` (before temperature scaling).

    Shapes:
        Returns ``(len(rows), C)`` float64.
    """
    model.eval()
    out = []
    for s in range(0, len(rows), chunk):
        r = rows[s : s + chunk]
        out.append(model(**batches.inputs(r, None, crops=crops))["stance"].double().cpu().numpy())
    if not out:
        return np.zeros((0, model.n_classes))
    return np.concatenate(out)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _nll(logits: np.ndarray, y: np.ndarray, t: float = 1.0) -> float:
    if not len(y):
        return float("nan")
    z = logits / t
    z = z - z.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].mean())


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """Temperature scaling: the ``T`` in ``[0.05, 20]`` minimising the NLL of ``logits / T``.

    A 1-D search on a log grid, then refined around the best point (deterministic, no
    optimiser state). Returns 1.0 without validation rows.

    Shapes:
        logits: ``(n, C)``; y: ``(n,)``.
    """
    if len(y) < 2:
        return 1.0
    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 61))
    losses = [_nll(logits, y, t) for t in grid]
    k = int(np.argmin(losses))
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
    fine = np.exp(np.linspace(np.log(lo), np.log(hi), 41))
    return float(fine[int(np.argmin([_nll(logits, y, t) for t in fine]))])


@torch.no_grad()
def predict(
    model: GeoPoseNet, batches: _Batches, rows: np.ndarray, crops: bool = False, chunk: int = 256
) -> tuple[np.ndarray, float]:
    """Class probabilities for ``rows`` (the model's temperature applied) and their mean NLL."""
    logits = predict_logits(model, batches, rows, crops, chunk)
    t = float(model.temperature)
    if not len(rows):
        return logits, float("nan")
    return _softmax(logits / t), _nll(logits, batches.prep.y[rows], t)


def member_splits(
    y: np.ndarray,
    groups: np.ndarray,
    rows: np.ndarray,
    members: int,
    seed: int = 0,
    fraction: float = 0.2,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Fit/validation rows of each ensemble member; members hold out different groups.

    The training groups are shuffled once and member ``m`` validates on the ``m``-th block of
    about ``fraction`` of them (cycling when there are more members than blocks), so with 4
    training subjects and 3 members, three different subjects validate and every subject is
    trained on by at least two members. With a single group, rows are split at random.

    Returns:
        ``[(fit_rows, val_rows)]`` per member, subsets of ``rows``.
    """
    g = np.asarray(groups).astype(str)[rows]
    uniq = np.unique(g)
    if len(uniq) < 2:
        return [
            inner_split(y, groups, rows, seed=seed + m, fraction=fraction) for m in range(members)
        ]
    rng = np.random.default_rng(seed)
    order = uniq[rng.permutation(len(uniq))]
    n_val = int(min(max(1, round(fraction * len(uniq))), len(uniq) - 1))
    out = []
    for m in range(members):
        start = (m * n_val) % len(uniq)
        val_groups = np.take(order, np.arange(start, start + n_val), mode="wrap")
        is_val = np.isin(g, val_groups)
        out.append((rows[~is_val], rows[is_val]))
    return out


# ---------------------------------------------------------------------- one fold
def train_fold(
    prep: Prepared,
    fold: Fold,
    cfg: TrainConfig,
    cache: CropCache | None = None,
    progress: bool = False,
) -> FoldOutput:
    """Train and evaluate one outer fold (neural model or baseline).

    Args:
        prep: The labelled data.
        fold: The outer fold (its ``test`` rows are only predicted).
        cfg: The training settings (``refit``, ``members``, ``calibrate``: see the module
            docstring).
        cache: The crop-feature cache (``--visual mobilenet`` only).
        progress: Show a tqdm bar per member.

    Returns:
        The fold's :class:`FoldOutput` (``n_val`` is 0 when the members trained on every row).
    """
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
    cfg.check()
    if cfg.model in BASELINES:
        proba = _baseline_fold(prep, fold, cfg)
        return FoldOutput(
            fold, proba, [], None, None, float("nan"), time.perf_counter() - t0, len(fold.train), 0
        )
    _check_visual_inputs(prep, cfg, cache)
    splits = member_splits(
        prep.y,
        prep.groups,
        fold.train,
        cfg.members,
        seed=cfg.seed * 1000 + fold.index,
        fraction=cfg.val_fraction,
    )
    mc = _model_config(prep, cfg)
    history: list[dict] = []
    shared_t: float | None = None
    calib_loss = float("nan")
    empty = np.zeros(0, np.int64)
    if refits(cfg):
        # Every member trains on all of the fold's training rows; the temperature comes from a
        # calibration model trained the same way without the first member's validation groups.
        if cfg.calibrate:
            shared_t, calib_loss, hist = _calibration_model(prep, fold, cfg, cache, splits[0], mc)
            history += hist
        splits = [(fold.train, empty) for _ in splits]
    states, temps, raws, cals, losses, best_epochs = [], [], [], [], [], []
    finetuned = False
    for m, (fit_rows, val_rows) in enumerate(splits):
        model, batches, hist, crops_used, best_epoch = _train_member(
            prep, fold, cfg, cache, fit_rows, val_rows, m, mc, progress
        )
        for h in hist:
            h["member"] = m
        history += hist
        finetuned = finetuned or crops_used
        best_epochs.append(best_epoch)
        if shared_t is None:
            val_logits = predict_logits(model, batches, val_rows, crops=crops_used)
            t = fit_temperature(val_logits, prep.y[val_rows]) if cfg.calibrate else 1.0
            losses.append(_nll(val_logits, prep.y[val_rows], t))
        else:
            t = shared_t
            losses.append(calib_loss)
        model.temperature.fill_(t)
        test_logits = predict_logits(model, batches, fold.test, crops=crops_used)
        raws.append(_softmax(test_logits))
        cals.append(_softmax(test_logits / t))
        temps.append(t)
        states.append({k: v.detach().cpu() for k, v in model.state_dict().items()})
    mc["finetuned"] = finetuned
    mc["best_epoch"] = best_epochs[0]
    mc["members"] = len(states)
    mc["refit"] = refits(cfg)
    return FoldOutput(
        fold,
        np.mean(cals, 0),
        history,
        states[0],
        mc,
        float(np.nanmean(losses)) if np.isfinite(losses).any() else float("nan"),
        time.perf_counter() - t0,
        len(splits[0][0]),
        len(splits[0][1]),
        members=states,
        proba_raw=np.mean(raws, 0),
        temperatures=temps,
    )


def refits(cfg: TrainConfig) -> bool:
    """Whether the members train on every training row of the fold (``refit`` with ``fixed``).

    Only the fixed schedule can: ``smoothed`` and ``patience`` need validation rows to stop.
    """
    return bool(cfg.refit and cfg.stop == "fixed")


def _check_visual_inputs(prep: Prepared, cfg: TrainConfig, cache: CropCache | None) -> None:
    """Refuse a visual model without its inputs; compute the cached crop features once."""
    source = cfg.visual_source
    if source == "mobilenet":
        if cache is None:
            raise ValueError("Expected a CropCache for a visual model.")
        if cfg.cache_features:
            cache.compute(cfg.device)
    if source == "yolo" and prep.visual is None:
        raise ValueError(
            "Expected pretrained visual features (trainer.visual.attach_visual_features) for "
            "--visual yolo."
        )


#: Seed offset of the calibration model (apart from every member's seed).
_CALIBRATION_SEED = 104_729


def _calibration_model(
    prep: Prepared,
    fold: Fold,
    cfg: TrainConfig,
    cache: CropCache | None,
    split: tuple[np.ndarray, np.ndarray],
    mc: dict,
) -> tuple[float, float, list[dict]]:
    """Train a model without ``split``'s validation groups and fit the temperature on them.

    The model is trained exactly like a member (same schedule and augmentation) on the other
    training rows; only its temperature is kept. A model trained on a few more subjects is
    slightly less over-confident on new people, so the temperature errs on the cautious side.

    Returns:
        ``(temperature, validation NLL at that temperature, history)`` (temperature 1 and NaN
        without validation rows).
    """
    fit_rows, val_rows = split
    if not len(val_rows):
        return 1.0, float("nan"), []
    model, batches, hist, crops_used, _ = _train_member(
        prep, fold, cfg, cache, fit_rows, val_rows, _CALIBRATION_SEED, mc, False
    )
    for h in hist:
        h["member"] = "calibration"
    logits = predict_logits(model, batches, val_rows, crops=crops_used)
    t = fit_temperature(logits, prep.y[val_rows])
    return t, _nll(logits, prep.y[val_rows], t), hist


def _new_member_model(cfg: TrainConfig, mc: dict, cache: CropCache | None, device) -> GeoPoseNet:
    """A freshly initialised member (seeded by the caller) on ``device``."""
    uses_mobilenet = cfg.visual_source == "mobilenet"
    model = GeoPoseNet(
        n_classes=mc["n_classes"],
        variant=cfg.model,
        family_of=None if mc["family_of"] is None else np.asarray(mc["family_of"]),
        chamber_of=None if mc["chamber_of"] is None else np.asarray(mc["chamber_of"]),
        dim=cfg.dim,
        backbone=copy.deepcopy(cache.backbone) if uses_mobilenet else None,
        visual=mc["visual"],
        visual_dim=mc["visual_dim"],
    ).to(device)
    if uses_mobilenet:
        model.visual.set_frozen(True)
    return model


def _optimiser(
    model: GeoPoseNet, arc: ArcMargin | None, cfg: TrainConfig, with_crops: bool
) -> tuple[torch.optim.Optimizer, list[dict]]:
    """AdamW over the trainable parameters (the backbone at ``lr / 10`` when fine-tuning)."""
    backbone = model.visual.backbone if cfg.visual_source == "mobilenet" else None
    backbone_ids = {id(p) for p in backbone.parameters()} if backbone is not None else set()
    head_params = [p for p in model.parameters() if p.requires_grad and id(p) not in backbone_ids]
    groups = [{"params": head_params, "lr": cfg.lr}]
    if with_crops and backbone is not None:
        groups.append({"params": list(backbone.parameters()), "lr": cfg.lr / 10})
    if arc is not None:
        groups.append({"params": list(arc.parameters()), "lr": cfg.lr})
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay), groups


@dataclass
class _Stopper:
    """The ``--stop`` rule over one phase: which weights to keep and when to stop.

    Attributes:
        cfg: The training settings.
        n_epochs: Epochs of the phase.
        best: ``{"loss", "state", "epoch", "phase"}`` of the kept weights.
    """

    cfg: TrainConfig
    n_epochs: int
    best: dict
    stale: int = 0
    smooth: float | None = None

    def keep(self, model: GeoPoseNet, loss: float, epoch: int, phase: str) -> None:
        """Keep the model's current weights as the best ones."""
        self.best = {
            "loss": loss,
            "state": copy.deepcopy(model.state_dict()),
            "epoch": epoch,
            "phase": phase,
        }

    def update(
        self, model: GeoPoseNet, val_loss: float, phase_epoch: int, epoch: int, phase: str, has_val
    ) -> bool:
        """Record one epoch's validation loss; True when training should stop now."""
        cfg = self.cfg
        if cfg.stop == "fixed" or not has_val:
            if phase_epoch == self.n_epochs - 1:
                self.keep(model, val_loss, epoch, phase)
            return False
        if cfg.stop == "smoothed":
            self.smooth = val_loss if self.smooth is None else 0.7 * self.smooth + 0.3 * val_loss
            crit = self.smooth if phase_epoch >= self.n_epochs // 3 else math.inf
        else:
            crit = val_loss
        if crit < self.best["loss"] - 1e-4:
            self.keep(model, crit, epoch, phase)
            self.stale = 0
        elif math.isfinite(crit) or cfg.stop == "patience":
            self.stale += 1
            return self.stale >= cfg.patience
        return False


def _train_epoch(
    model: GeoPoseNet,
    batches: _Batches,
    fit_rows: np.ndarray,
    opt: torch.optim.Optimizer,
    sched,
    groups: list[dict],
    arc: ArcMargin | None,
    rng: np.random.Generator,
    gen: torch.Generator,
    with_crops: bool,
) -> float:
    """One pass over ``fit_rows`` in shuffled minibatches; returns the mean training loss."""
    cfg = batches.cfg
    model.train()
    perm = rng.permutation(fit_rows)
    tot, cnt = 0.0, 0
    params = [p for g in groups for p in g["params"]]
    for s in range(0, len(perm), cfg.batch_size):
        r = perm[s : s + cfg.batch_size]
        if len(r) < 2 and len(perm) > 2:
            continue  # a 1-row tail batch only adds noise
        out = model(**batches.inputs(r, rng, crops=with_crops, gen=gen))
        loss = compute_loss(out, batches.targets(r), cfg, arc)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.clip)
        opt.step()
        sched.step()
        tot += loss.item() * len(r)
        cnt += len(r)
    return tot / max(cnt, 1)


def _validate(
    model: GeoPoseNet, batches: _Batches, val_rows: np.ndarray, with_crops: bool, watch: bool
) -> tuple[float, float]:
    """Validation NLL and accuracy (NaN when not watched or without validation rows)."""
    if not (watch and len(val_rows)):
        return float("nan"), float("nan")
    proba_val, val_loss = predict(model, batches, val_rows, crops=with_crops)
    return val_loss, float(np.mean(proba_val.argmax(1) == batches.prep.y[val_rows]))


def _train_member(
    prep: Prepared,
    fold: Fold,
    cfg: TrainConfig,
    cache: CropCache | None,
    fit_rows: np.ndarray,
    val_rows: np.ndarray,
    member: int,
    mc: dict,
    progress: bool,
):
    """Train one ensemble member; returns ``(model, batches, history, finetuned, best_epoch)``.

    Everything random is seeded from ``(cfg.seed, fold.index, member)`` alone, so a member
    trains the same in any process and in any order.
    """
    from tqdm.auto import tqdm

    device = torch.device(cfg.device)
    seed = cfg.seed * 1000 + fold.index + 7919 * member
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    model = _new_member_model(cfg, mc, cache, device)
    arc = (
        ArcMargin(model.head.classifier.in_features, mc["n_classes"]).to(device)
        if cfg.arcface_after >= 0
        else None
    )
    batches = _Batches(prep, cfg, fit_rows, cache, device)
    history: list[dict] = []
    phases = [("frozen", cfg.epochs, False)]
    if cfg.visual_source == "mobilenet" and cfg.finetune_epochs > 0:
        phases.append(("finetune", cfg.finetune_epochs, True))
    bar = tqdm(
        total=sum(p[1] for p in phases),
        desc=f"fold {fold.index + 1} {cfg.model} member {member + 1}/{cfg.members}",
        unit="epoch",
        disable=not progress,
        leave=False,
    )
    best = {"loss": math.inf, "state": copy.deepcopy(model.state_dict()), "epoch": -1}
    epoch = 0
    for phase, n_epochs, with_crops in phases:
        if n_epochs <= 0:
            continue
        if with_crops:
            model.load_state_dict(best["state"])
            model.visual.set_frozen(False)
        opt, groups = _optimiser(model, arc, cfg, with_crops)
        steps_per_epoch = max(1, math.ceil(len(fit_rows) / cfg.batch_size))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=n_epochs * steps_per_epoch)
        stopper = _Stopper(cfg, n_epochs, best)
        for phase_epoch in range(n_epochs):
            te = time.perf_counter()
            use_arc = arc if (arc is not None and epoch >= cfg.arcface_after) else None
            train_loss = _train_epoch(
                model, batches, fit_rows, opt, sched, groups, use_arc, rng, gen, with_crops
            )
            # The fixed schedule never looks at the validation rows while training (only its
            # curve is logged, every 5 epochs and at the end, to keep the CPU cost down).
            watch = cfg.stop != "fixed" or phase_epoch % 5 == 4 or phase_epoch == n_epochs - 1
            val_loss, val_acc = _validate(model, batches, val_rows, with_crops, watch)
            history.append(
                {
                    "epoch": epoch,
                    "phase": phase,
                    "train_loss": train_loss,
                    "val_loss": val_loss,
                    "val_accuracy": val_acc,
                    "lr": opt.param_groups[0]["lr"],
                    "seconds": time.perf_counter() - te,
                }
            )
            bar.set_postfix(loss=f"{train_loss:.3f}", val=f"{val_acc:.3f}")
            bar.update()
            stop = stopper.update(model, val_loss, phase_epoch, epoch, phase, len(val_rows) > 0)
            epoch += 1
            if stop:
                bar.update(n_epochs - phase_epoch - 1)  # early stop: the bar jumps ahead
                break
        best = stopper.best
    bar.close()
    model.load_state_dict(best["state"])
    return model, batches, history, best.get("phase") == "finetune", best["epoch"]


def _baseline_fold(prep: Prepared, fold: Fold, cfg: TrainConfig) -> np.ndarray:
    from trainer.baselines import baseline_features, fit_predict_baseline

    X = baseline_features(cfg.model, prep)
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
    from trainer.baselines import baseline_features

    return baseline_features("angles-rf", prep)
