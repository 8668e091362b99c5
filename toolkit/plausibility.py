"""Learned plausibility: a small beta-VAE on normalised 19-point poses.

The methodology's last validation stage. Poses are centred on the hips and divided by the torso
size (:func:`toolkit.geometry.normalise_pose`), missing points are masked out of the loss, and a
tiny MLP beta-VAE is trained on the data set itself for a few seconds on the CPU. A pose that
reconstructs poorly is unlike the rest of the data: a candidate for review (it flags, it never
changes anything).

torch is imported inside the functions only, so ``toolkit validate --no-vae`` (and every other
command) starts without it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from toolkit import geometry as geo
from toolkit import layout


@dataclass
class PlausibilityResult:
    """Reconstruction errors of every pose.

    Attributes:
        errors: ``(N,)`` masked mean squared reconstruction error (NaN for unscorable poses).
        model: The trained model (a ``torch.nn.Module``).
        seconds: Training time.
    """

    errors: np.ndarray
    model: Any
    seconds: float


def prepare(kp: np.ndarray, min_points: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalised, flattened poses for the VAE.

    Returns:
        ``(x (N, 38) float32 with 0 for missing, mask (N, 38) float32, usable (N,) bool)``.

    Shapes:
        38 = 19 keypoints x (x, y), in torso units around the hip centre, clipped to +-4.
    """
    z = geo.normalise_pose(kp)  # (N, 19, 2)
    ok = np.isfinite(z).all(-1)
    usable = ok[:, : layout.NUM_BODY].sum(1) >= min_points
    x = np.clip(np.nan_to_num(z, nan=0.0), -4, 4).reshape(len(kp), -1).astype(np.float32)
    mask = np.repeat(ok, 2, axis=1).astype(np.float32)
    return x, mask, usable


def build_model(n_in: int = 2 * layout.NUM_KEYPOINTS, hidden: int = 64, latent: int = 6):
    """A small beta-VAE: MLP encoder ``n_in -> hidden -> 2*latent``, MLP decoder back.

    Shapes:
        input ``(B, n_in)`` -> ``(reconstruction (B, n_in), mu (B, latent), logvar (B, latent))``.
    """
    import torch
    from torch import nn

    class PoseVAE(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.n_in, self.hidden, self.latent = n_in, hidden, latent
            self.enc = nn.Sequential(
                nn.Linear(2 * n_in, hidden),
                nn.ReLU(),
                nn.Linear(hidden, hidden),
                nn.ReLU(),
                nn.Linear(hidden, 2 * latent),
            )
            self.dec = nn.Sequential(
                nn.Linear(latent, hidden),
                nn.ReLU(),
                nn.Linear(hidden, hidden),
                nn.ReLU(),
                nn.Linear(hidden, n_in),
            )

        def forward(self, x, mask):
            h = self.enc(torch.cat([x * mask, mask], 1))  # the mask tells it what is missing
            mu, logvar = h.chunk(2, 1)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
            return self.dec(z), mu, logvar

        def __repr__(self) -> str:
            return f"PoseVAE(in={self.n_in}, hidden={self.hidden}, latent={self.latent})"

    return PoseVAE()


def score(
    kp: np.ndarray,
    *,
    epochs: int = 60,
    beta: float = 4.0,
    seed: int = 0,
    batch: int = 256,
    max_train: int = 20000,
    threads: int = 1,
) -> PlausibilityResult:
    """Train the beta-VAE on ``kp`` and return every pose's reconstruction error.

    Args:
        kp: ``(N, 19, 3)`` keypoints.
        batch: Mini-batch size.
        max_train: Most poses trained on (a random subset beyond it; all are scored).
        epochs: Passes over (at most ``max_train``) training poses.
        beta: Weight of the KL term (beta > 1 favours a smooth, compact latent space).
        seed: Seed for torch and the sampling of training poses.
        threads: torch CPU threads; one is fastest for a model this small (more threads
            only add synchronisation overhead).

    Returns:
        A :class:`PlausibilityResult` (errors NaN for poses it could not score).
    """
    import torch  # a required dependency, imported here to keep `toolkit validate --no-vae` light

    t0 = time.perf_counter()
    x, mask, usable = prepare(kp)
    errors = np.full(len(kp), np.nan)
    idx = np.flatnonzero(usable)
    if len(idx) < 10:
        return PlausibilityResult(errors=errors, model=None, seconds=0.0)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        train = rng.choice(idx, size=min(len(idx), max_train), replace=False)
        xt = torch.from_numpy(x[train])
        mt = torch.from_numpy(mask[train])
        model = build_model()
        opt = _Adam(list(model.parameters()), lr=3e-3)
        n = len(train)
        steps = max(1, int(np.ceil(n / batch)))
        model.train()
        for _ in range(epochs):
            perm = torch.randperm(n)
            for s in range(steps):
                b = perm[s * batch : (s + 1) * batch]
                rec, mu, logvar = model(xt[b], mt[b])
                r = (((rec - xt[b]) ** 2) * mt[b]).sum(1) / mt[b].sum(1).clamp(min=1)
                kl = -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)
                loss = (r + beta * kl / x.shape[1]).mean()
                model.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        model.eval()
        with torch.no_grad():
            for s in range(0, len(idx), 65536):
                b = idx[s : s + 65536]
                xb, mb = torch.from_numpy(x[b]), torch.from_numpy(mask[b])
                rec, _, _ = model(xb, mb)
                e = (((rec - xb) ** 2) * mb).sum(1) / mb.sum(1).clamp(min=1)
                errors[b] = e.numpy()
    finally:
        torch.set_num_threads(prev_threads)
    return PlausibilityResult(errors=errors, model=model, seconds=time.perf_counter() - t0)


class _Adam:
    """A minimal Adam (Kingma & Ba).

    ``torch.optim`` imports torch._dynamo on first use, which costs seconds of start-up for a
    model that trains in about one.
    """

    def __init__(
        self,
        params: list,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ):
        import torch

        self.params, self.lr, self.b1, self.b2, self.eps = params, lr, betas[0], betas[1], eps
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = 0

    def step(self) -> None:
        import torch

        self.t += 1
        c1 = 1 - self.b1**self.t
        c2 = 1 - self.b2**self.t
        with torch.no_grad():
            for p, m, v in zip(self.params, self.m, self.v, strict=True):
                if p.grad is None:
                    continue
                m.mul_(self.b1).add_(p.grad, alpha=1 - self.b1)
                v.mul_(self.b2).addcmul_(p.grad, p.grad, value=1 - self.b2)
                p.addcdiv_(m / c1, (v / c2).sqrt_().add_(self.eps), value=-self.lr)
