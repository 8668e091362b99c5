"""A crash between an edit and a save loses no acknowledged edit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from toolkit import layout
from toolkit.dataset import DATASET_FILE, JOURNAL_FILE, Dataset, read_journal

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent("""
    import os, signal, sys
    import napari, numpy as np
    from toolkit import layout
    from viewer.launch import open_dataset

    viewer = napari.Viewer(show=False)
    app = open_dataset(viewer, sys.argv[1], autosave_s=0)
    app.goto(4)
    layer = app.points_layer
    data = layer.data.copy()
    i = int(np.flatnonzero(layer.features["kp"].to_numpy() == layout.TIP)[0])
    data[i, 1:] += [7.5, -9.25]          # napari (y, x): the same path a drag ends in
    layer.data = data
    app.set_stance("back_high")
    x, y = app.ds.keypoints[4, layout.TIP, :2]
    print("ACK", x, y, flush=True)       # the edit is acknowledged (shown) here
    os.kill(os.getpid(), signal.SIGKILL)  # crash before any save
""")


@pytest.mark.gui
def test_sigkill_after_edit_loses_nothing(small_dataset: Path, tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    before = (small_dataset / DATASET_FILE).read_bytes()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(script), str(small_dataset)],
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
        cwd=ROOT,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    ack = [line for line in proc.stdout.splitlines() if line.startswith("ACK")]
    assert ack, proc.stdout + proc.stderr[-2000:]
    x, y = map(float, ack[0].split()[1:])
    # Nothing was saved, but the journal holds both edits ...
    assert (small_dataset / DATASET_FILE).read_bytes() == before
    assert len(read_journal(small_dataset / JOURNAL_FILE).entries) == 2
    # ... and loading replays them.
    ds = Dataset.load(small_dataset)
    np.testing.assert_allclose(ds.keypoints[4, layout.TIP, :2], [x, y])
    np.testing.assert_allclose([x, y], np.array([134.0, 40.0]) + [-9.25, 7.5])
    assert ds.source[4, layout.TIP] == layout.HUMAN
    assert ds.images["stance"].iat[4] == "back_high"
