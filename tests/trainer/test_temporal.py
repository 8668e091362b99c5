"""The temporal model over per-frame embeddings (trainer/temporal.py)."""

from __future__ import annotations

import numpy as np
import torch

from trainer.temporal import (
    TemporalHead,
    fit_temporal,
    frame_embeddings,
    predict_temporal,
    sequence_windows,
)


def test_sequence_windows_stay_inside_their_sequence_in_frame_order():
    values = np.arange(7, dtype=float)[:, None]  # row i holds i
    seq = np.array([0, 0, 0, 1, 1, -1, 0])
    frame = np.array([2, 0, 1, 0, 1, 0, 3])
    w = sequence_windows(values, seq, frame, width=3)[..., 0]
    assert w.shape == (7, 3)
    # sequence 0 in frame order: rows 1 (f0), 2 (f1), 0 (f2), 6 (f3)
    np.testing.assert_array_equal(w[0], [2, 0, 6])
    np.testing.assert_array_equal(w[1], [1, 1, 2])  # the start repeats the edge frame
    np.testing.assert_array_equal(w[6], [0, 6, 6])
    np.testing.assert_array_equal(w[3], [3, 3, 4])  # sequence 1 never sees sequence 0
    np.testing.assert_array_equal(w[5], [5, 5, 5])  # a still image is its own window


def test_temporal_head_learns_what_the_neighbours_say():
    # The per-frame log-probabilities (first 3 features) say nothing and the centre frame's
    # embedding is noise; the label is in the neighbours' embeddings: a per-frame model cannot
    # do this, a window can.
    rng = np.random.default_rng(0)
    n, width = 240, 5
    y = rng.integers(0, 3, n)
    win = rng.normal(0, 1, (n, width, 7)).astype(np.float32)
    win[..., :3] = np.log(1 / 3)
    win[:, [0, 1, 3, 4], 3] += 5 * y[:, None]
    head = fit_temporal(win[:160], y[:160], 3, epochs=60, seed=0)
    assert isinstance(head, TemporalHead) and "classes=3" in repr(head)
    p = predict_temporal(head, win[160:])
    assert p.shape == (80, 3)
    np.testing.assert_allclose(p.sum(1), 1, atol=1e-6)
    assert np.mean(p.argmax(1) == y[160:]) > 0.8


def test_temporal_head_starts_as_the_per_frame_prediction():
    torch.manual_seed(0)  # unseeded, the neighbours' 2 % share of the mix topped 0.1 now and then
    head = TemporalHead(in_dim=5, n_classes=3, width=3)
    x = torch.randn(4, 3, 5)
    np.testing.assert_allclose(head(x).detach().numpy(), x[:, 1, :3].numpy(), atol=0.1)


def test_frame_embeddings_average_calibrated_members():
    class Fake(torch.nn.Module):
        def __init__(self, logits, t):
            super().__init__()
            self.logits = torch.tensor(logits)
            self.register_buffer("temperature", torch.tensor(t))

        def forward(self, nodes):
            b = nodes.shape[0]
            return {"stance": self.logits.expand(b, -1), "embedding": torch.ones(b, 128)}

    m1, m2 = Fake([0.0, 2.0], 2.0), Fake([0.0, 0.0], 1.0)
    emb = frame_embeddings([m1, m2], {"nodes": np.zeros((3, 19, 5), np.float32)})
    assert emb.shape == (3, 2 + 128)
    p1 = torch.tensor([0.0, 1.0]).softmax(-1)  # logits / T
    expected = ((p1 + torch.tensor([0.5, 0.5])) / 2).log().numpy()
    np.testing.assert_allclose(emb[0, :2], expected, atol=1e-6)
