"""Video: a small temporal model over per-frame embeddings in a window.

Beside the probability smoothing of ``trainer score`` (an exponential moving average, see
:func:`trainer.score.smooth_sequences`), this learns how stances follow each other: each frame's
input is the per-frame model's output for the ``width`` frames centred on it (its stance
log-probabilities and its 128-d embedding, :func:`frame_embeddings`), and :class:`TemporalHead`
predicts the centre frame's stance: a learned weighting of the window's log-probabilities plus a
correction from a two-layer 1-D convolution over the window::

    emb = frame_embeddings(models, nodes, edges)              # (N, D) from a trained fold model
    win = sequence_windows(emb, seq, frame, width=9)          # (N, 9, D)
    head = fit_temporal(win[train], y[train], n_classes)      # a TemporalHead
    proba = predict_temporal(head, win[test])                 # (n_test, C)

Frames of one sequence (a video and track) only see their own sequence; at the ends the window
repeats the edge frame. Still images are sequences of one frame.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn


@contextlib.contextmanager
def one_thread():
    """Torch on one intra-op thread.

    The tensors are small: more threads only spin, and on a busy 2-core machine they made a
    tiny fit ~100x slower.
    """
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


def sequence_windows(values: np.ndarray, seq: np.ndarray, frame: np.ndarray, width: int = 9):
    """For each row, the rows of its sequence at frame offsets ``-width//2 .. width//2``.

    Neighbours are taken in frame order within the sequence (missing frames are skipped over,
    the ends repeat the edge row); rows with ``seq < 0`` are single-frame sequences.

    Shapes:
        values: ``(N, D)``; seq, frame: ``(N,)``. Returns ``(N, width, D)``.
    """
    values = np.asarray(values)
    seq = np.asarray(seq)
    half = width // 2
    idx = np.repeat(np.arange(len(values))[:, None], width, 1)
    for s in np.unique(seq[seq >= 0]):
        pos = np.flatnonzero(seq == s)
        pos = pos[np.argsort(np.asarray(frame)[pos], kind="stable")]
        k = np.arange(len(pos))
        for j, o in enumerate(range(-half, half + 1)):
            idx[pos, j] = pos[np.clip(k + o, 0, len(pos) - 1)]
    return values[idx]


@torch.no_grad()
def frame_embeddings(models, inputs: dict[str, np.ndarray], chunk: int = 512) -> np.ndarray:
    """Per-frame inputs of the temporal model.

    The calibrated stance log-probabilities (members' mean) and the mean 128-d stance embedding
    of the members.

    Args:
        models: The fold's members (:func:`trainer.runs.load_members` or a training result).
        inputs: Model inputs (``nodes``, ``edge_attr``, ...), numpy arrays of equal length.
        chunk: Frames per forward pass.

    Shapes:
        Returns ``(N, C + 128)`` float32.
    """
    n = len(next(iter(inputs.values())))
    out = []
    with one_thread():
        out = _embed(models, inputs, n, chunk)
    return np.concatenate(out).astype(np.float32)


def _embed(models, inputs: dict, n: int, chunk: int) -> list:
    out = []
    for s in range(0, n, chunk):
        kw = {k: torch.from_numpy(np.asarray(v[s : s + chunk])) for k, v in inputs.items()}
        probs, embs = [], []
        for m in models:
            m.eval()
            o = m(**kw)
            probs.append((o["stance"] / m.temperature).softmax(-1))
            embs.append(o["embedding"])
        p = torch.stack(probs).mean(0).clamp_min(1e-6).log()
        out.append(torch.cat([p, torch.stack(embs).mean(0)], -1).numpy())
    return out


class TemporalHead(nn.Module):
    """A learned smoothing of the per-frame predictions plus a correction from the window.

    The first ``n_classes`` features of each frame are the per-frame model's log-probabilities
    (:func:`frame_embeddings`). The logits are a learned weighted mean of those over the window
    (the weights start on the centre frame: at initialisation the head repeats the per-frame
    prediction) plus a correction from two 1-D convolutions over the standardised window, whose
    output layer starts at zero. So a few training clips can teach it how stances follow each
    other without unlearning what the per-frame model knows (e.g. stances those clips never
    show).

    Shapes:
        x: ``(B, W, D)`` with ``D >= n_classes``. Returns ``(B, C)`` logits.
    """

    def __init__(
        self, in_dim: int, n_classes: int, hidden: int = 64, dropout: float = 0.2, width: int = 9
    ):
        super().__init__()
        centre = torch.full((width,), -4.0)
        centre[width // 2] = 0.0
        self.mix = nn.Parameter(centre)  # softmax -> weights over the window's log-probabilities
        # Per-feature standardisation, set from the training windows by fit_temporal.
        self.register_buffer("mu", torch.zeros(in_dim))
        self.register_buffer("sd", torch.ones(in_dim))
        self.conv = nn.Sequential(
            nn.Conv1d(in_dim, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Conv1d(hidden, hidden, 3, padding=1),
            nn.ReLU(),
        )
        self.out = nn.Linear(2 * hidden, n_classes)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.in_dim, self.n_classes = in_dim, n_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the module (shapes in the class docstring)."""
        h = self.conv(((x - self.mu) / self.sd).transpose(1, 2))  # (B, hidden, W)
        centre = h[..., h.shape[-1] // 2]
        w = self.mix.softmax(0)[: x.shape[1]]
        smooth = (x[..., : self.n_classes] * w[None, :, None]).sum(1) / w.sum()
        return smooth + self.out(torch.cat([centre, h.mean(-1)], -1))

    def extra_repr(self) -> str:
        """The one-line summary inside ``repr``."""
        return f"in={self.in_dim}, classes={self.n_classes}, window conv 3+3"


def fit_temporal(
    windows: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    *,
    epochs: int = 60,
    lr: float = 1e-3,
    batch_size: int = 32,
    seed: int = 0,
) -> TemporalHead:
    """Train a :class:`TemporalHead` (AdamW, cosine schedule, label smoothing 0.1).

    Shapes:
        windows: ``(N, W, D)``; y: ``(N,)``.
    """
    with one_thread():
        return _fit(windows, y, n_classes, epochs, lr, batch_size, seed)


def _fit(windows, y, n_classes, epochs, lr, batch_size, seed) -> TemporalHead:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    head = TemporalHead(windows.shape[-1], n_classes, width=windows.shape[1])
    x = torch.from_numpy(np.asarray(windows, np.float32))
    t = torch.from_numpy(np.asarray(y, np.int64))
    flat = x.reshape(-1, x.shape[-1])
    head.mu.copy_(flat.mean(0))
    head.sd.copy_(flat.std(0).clamp_min(1e-4))
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.01)
    steps = max(1, int(np.ceil(len(t) / batch_size))) * epochs
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    head.train()
    for _ in range(epochs):
        perm = rng.permutation(len(t))
        for s in range(0, len(perm), batch_size):
            r = torch.from_numpy(perm[s : s + batch_size])
            loss = loss_fn(head(x[r]), t[r])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return head.eval()


@torch.no_grad()
def predict_temporal(head: TemporalHead, windows: np.ndarray) -> np.ndarray:
    """``(N, C)`` probabilities of the centre frames."""
    head.eval()
    x = torch.from_numpy(np.asarray(windows, np.float32))
    with one_thread():
        return head(x).softmax(-1).double().numpy()
