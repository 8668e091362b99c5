"""Annotator effort: fixing the drift episodes of the sample videos with the viewer's own actions.

Each sample video (``samples/arnis/videos``, imported like ``toolkit import`` does with its
``save_txt`` labels) has drift episodes: 5-20 consecutive frames whose stick drifts away
(``wrong_angle``, ``too_short``, ``too_long`` or ``grip_off``, from ``truth.csv``). A scripted
annotator fixes every episode in a real napari viewer (Xvfb), three ways:

* **frame by frame**: on each frame of the episode, drag each stick point that is visibly off
  (more than :data:`TOLERANCE` of the stick length, or 3 px) onto the truth;
* **copy previous**: on each frame, C (the previous frame's stick carried by the wrist), then
  drag what is still off;
* **keyframes**: on the nearest frame before and after the episode, drag what is off (usually
  nothing: those frames are clean), press I on each, then A accepts the interpolated range;
* **keyframes_plus**: the same, but before accepting, the annotator looks through the filled
  frames and, while one is visibly off, drags it right and presses I there (a keyframe inside
  the interpolation re-fills both sides), at most :data:`MAX_EXTRA_KEYS` times.

A drag is simulated as napari's select-mode drag ends: the point's position changes in the
keypoints layer (the layer's data event, exactly what a mouse drag fires); keys call the actions
the key map binds. Counted: **edit actions** (drags and keys), **navigation** (frame jumps, like
N or a click in the review list) and the **seconds** the scripted session took (machine time,
not a person's). Quality: the **tip error** of every episode frame after the fix, against the
truth, as a percentage of the true stick length (its 95th-percentile projected length in the video; grip error likewise).

Run: ``python -m benchmarks.run effort`` or ``python -m benchmarks.bench_effort [--quick]``.
Target: a 20-frame drift episode fixed in <= 3 edit actions with the in-between tip error
<= 5 % of the stick length.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples" / "arnis"
DRIFT_KINDS = ("wrong_angle", "too_short", "too_long", "grip_off")
#: A stick point is "visibly off" when farther than this fraction of the stick length (or 3 px).
TOLERANCE = 0.05
MIN_EPISODE = 5
WORKFLOWS = ("frame_by_frame", "copy_previous", "keyframes", "keyframes_plus")
#: ``keyframes_plus``: at most this many keyframes added inside the interpolation.
MAX_EXTRA_KEYS = 3


# ---------------------------------------------------------------------- data
def import_video(stem: str, out: Path):
    """Import ``samples/arnis/videos/<stem>`` into ``out``; returns (dataset path, truth kp,
    error kind per row).
    """
    from toolkit import synth
    from toolkit.io.yolo import read_yolo

    v = SAMPLES / "videos"
    res = read_yolo(
        v / f"{stem}_labels",
        video=v / f"{stem}.mp4",
        labels=v / f"{stem}_stances.csv",
        subject_regex=r"^(s\d+)_",
    )
    ds = res.dataset
    ds.media_root = str(res.media_root)
    ds.save(out)
    truth, kind = synth.truth_keypoints(ds, SAMPLES)
    return out, truth, np.asarray(kind, dtype=object)


def episodes(ds, kind: np.ndarray) -> list[tuple[np.ndarray, str]]:
    """Drift episodes: runs (in frame order) of one drift kind, at least :data:`MIN_EPISODE`
    frames; as (annotation rows in time order, kind).
    """
    from toolkit.locate import Locator

    fidx = ds.images["frame_index"].to_numpy(dtype=np.float64)[Locator.build(ds).ann_frame]
    order = np.argsort(fidx, kind="stable")
    out = []
    i = 0
    while i < len(order):
        k = kind[order[i]]
        j = i
        while (
            j + 1 < len(order)
            and kind[order[j + 1]] == k
            and fidx[order[j + 1]] == fidx[order[j]] + 1
        ):
            j += 1
        if k in DRIFT_KINDS and j - i + 1 >= MIN_EPISODE:
            out.append((order[i : j + 1], str(k)))
        i = j + 1
    return out


def stick_px(truth: np.ndarray) -> float:
    """The stick's length in pixels in one video: the 95th percentile of its true projected
    length (a stick pointing at the camera projects short; dividing by that would inflate).
    """
    return float(np.nanpercentile(np.linalg.norm(truth[:, 18, :2] - truth[:, 17, :2], axis=1), 95))


# ---------------------------------------------------------------------- the scripted annotator
class Annotator:
    """Drives an :class:`viewer.app.ArnisApp` and counts what a person would do."""

    def __init__(self, app, truth: np.ndarray):
        self.app = app
        self.truth = truth
        self.edits = 0
        self.navigation = 0
        self.length = stick_px(truth)

    def goto(self, t: int) -> None:
        if self.app.frame != t:
            self.app.goto(t)
            self.navigation += 1

    def key(self, action: str) -> None:
        getattr(self.app, action)()
        self.edits += 1

    def off(self, t: int, k: int) -> bool:
        """Whether point ``k`` of frame ``t`` is visibly off the truth."""
        row = int(self.app.session.ann_rows(t)[0])
        d = np.linalg.norm(self.app.ds.keypoints[row, k, :2] - self.truth[row, k, :2])
        return not np.isfinite(d) or d > max(3.0, TOLERANCE * self.length)

    def stick_error(self, rows: np.ndarray) -> np.ndarray:
        """``(len(rows),)`` the larger of the grip and tip errors (pixels) per row."""
        d = np.linalg.norm(self.app.ds.keypoints[rows, 17:, :2] - self.truth[rows, 17:, :2], axis=2)
        return np.where(np.isfinite(d), d, np.inf).max(1)

    def drag_off_points(self, t: int) -> None:
        """Drag the grip, then the tip, onto the truth when they are visibly off."""
        from toolkit import layout

        row = int(self.app.session.ann_rows(t)[0])
        for k in (layout.GRIP, layout.TIP):
            if self.off(t, k):
                self.drag(t, k, self.truth[row, k, :2])

    def drag(self, t: int, k: int, xy: np.ndarray) -> None:
        """Move point ``k`` through the keypoints layer, as the end of a mouse drag does."""
        self.goto(t)
        layer = self.app.points_layer
        kp = layer.features["kp"].to_numpy()
        i = np.flatnonzero(kp == k)
        if not len(i):  # not shown (missing): put it at the mouse (G / T) instead
            self.app.viewer.cursor.position = (t, xy[1], xy[0])
            self.key("place_grip" if k == 17 else "place_tip")
            return
        data = layer.data.copy()
        data[i[0], 1:] = [xy[1], xy[0]]  # napari's (t, y, x)
        layer.selected_data = {int(i[0])}
        layer.data = data
        self.edits += 1


def run_workflow(app, truth, rows: np.ndarray, workflow: str) -> dict:
    """Fix one episode (annotation rows in time order) with ``workflow``; returns the counts."""
    frame_of = app.session.lookup.ann_frame
    frames = [int(frame_of[r]) for r in rows]
    bot = Annotator(app, truth)
    t0 = time.perf_counter()
    if workflow == "frame_by_frame":
        for t in frames:
            bot.goto(t)
            bot.drag_off_points(t)
    elif workflow == "copy_previous":
        for t in frames:
            bot.goto(t)
            bot.key("copy_previous_stick")
            bot.drag_off_points(t)
    else:  # keyframes on the nearest frames with a person before and after the episode
        track = app.session.track_rows(int(app.session.track[rows[0]]))
        pos = np.flatnonzero(np.isin(track, rows))
        before = track[pos[0] - 1] if pos[0] > 0 else rows[0]
        after = track[pos[-1] + 1] if pos[-1] + 1 < len(track) else rows[-1]
        for r in (before, after):
            t = int(frame_of[r])
            bot.goto(t)
            bot.drag_off_points(t)
            bot.key("set_keyframe")
        if workflow == "keyframes_plus":  # look through the fill; fix the worst frame, re-fill
            for _ in range(MAX_EXTRA_KEYS):
                err = bot.stick_error(rows)
                if np.nanmax(err) <= max(3.0, TOLERANCE * bot.length):
                    break
                t = int(frame_of[rows[int(np.nanargmax(err))]])
                bot.goto(t)
                bot.drag_off_points(t)
                bot.key("set_keyframe")
        bot.key("accept_range")
    seconds = time.perf_counter() - t0
    kp = app.ds.keypoints[rows]
    tr = truth[rows]
    length = stick_px(truth)
    tip = np.linalg.norm(kp[:, 18, :2] - tr[:, 18, :2], axis=1) / length * 100
    grip = np.linalg.norm(kp[:, 17, :2] - tr[:, 17, :2], axis=1) / length * 100
    src = app.ds.source[rows][:, 17:]
    return {
        "edit_actions": bot.edits,
        "navigation": bot.navigation,
        "seconds": round(seconds, 3),
        "tip_error_pct_mean": round(float(np.nanmean(tip)), 2),
        "tip_error_pct_max": round(float(np.nanmax(tip)), 2),
        "grip_error_pct_mean": round(float(np.nanmean(grip)), 2),
        "all_human": bool((src == 2).all()),
    }


def child(stem: str, workflow: str, work: Path) -> list[dict]:
    """One video, one workflow, in a fresh napari window (needs a display)."""
    import napari
    from qtpy.QtWidgets import QApplication

    from toolkit.dataset import Dataset
    from viewer.launch import open_dataset

    ds_path, truth, kind = import_video(stem, work / f"{stem}_{workflow}")
    eps = episodes(Dataset.load(ds_path), kind)
    viewer = napari.Viewer(show=True)
    app = open_dataset(viewer, ds_path, autosave_s=0, dock=True)
    QApplication.processEvents()
    out = []
    for rows, k in eps:
        before = app.ds.keypoints[rows].copy()
        r = run_workflow(app, truth, rows, workflow)
        QApplication.processEvents()
        tip0 = np.linalg.norm(before[:, 18, :2] - truth[rows][:, 18, :2], axis=1)
        tip0 = tip0 / stick_px(truth) * 100
        fi = app.ds.images["frame_index"].to_numpy()[app.session.lookup.ann_frame[rows]]
        out.append(
            {
                "video": stem,
                "frames": f"{int(fi[0])}-{int(fi[-1])}",
                "length": len(rows),
                "kind": k,
                "workflow": workflow,
                "tip_error_pct_before": round(float(np.nanmean(tip0)), 1),
                **r,
            }
        )
    app.save()
    app.close()
    viewer.close()
    return out


def _run_child(stem: str, workflow: str, work: Path) -> list[dict]:
    cmd = [sys.executable, "-m", "benchmarks.bench_effort", "--child", stem, workflow, str(work)]
    if not os.environ.get("DISPLAY") and shutil.which("xvfb-run"):
        cmd = ["xvfb-run", "-a", "-s", "-screen 0 1280x1024x24", *cmd]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"effort child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


# ---------------------------------------------------------------------- main
def main(quick: bool = False) -> dict:
    """Run the benchmark; prints a table and returns a JSON-able dict."""
    stems = sorted(p.stem for p in (SAMPLES / "videos").glob("*.mp4"))
    if quick:
        stems = stems[:1]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench_effort_") as tmp:
        for stem in stems:
            for wf in WORKFLOWS:
                rows.extend(_run_child(stem, wf, Path(tmp)))
    print(
        "effort: drift episodes of the sample videos fixed with the viewer's actions (Xvfb); "
        "edits = drags + keys, nav = frame jumps; tip/grip error after the fix, % of the true "
        f"stick length (a point is dragged when off by > {TOLERANCE:.0%} of it or 3 px)"
    )
    print(
        f"{'video':10} {'frames':>8} {'n':>3} {'kind':11} {'workflow':15} {'edits':>5} "
        f"{'nav':>4} {'sec':>6} {'tip% before':>11} {'tip% mean':>9} {'tip% max':>8} "
        f"{'grip% mean':>10}"
    )
    for r in rows:
        print(
            f"{r['video']:10} {r['frames']:>8} {r['length']:>3} {r['kind']:11} "
            f"{r['workflow']:15} {r['edit_actions']:>5} {r['navigation']:>4} "
            f"{r['seconds']:>6.2f} {r['tip_error_pct_before']:>11.1f} "
            f"{r['tip_error_pct_mean']:>9.2f} {r['tip_error_pct_max']:>8.2f} "
            f"{r['grip_error_pct_mean']:>10.2f}"
        )
    summary = {}
    for wf in WORKFLOWS:
        sel = [r for r in rows if r["workflow"] == wf]
        if not sel:
            continue
        n_frames = sum(r["length"] for r in sel)
        summary[wf] = {
            "episodes": len(sel),
            "frames": n_frames,
            "edit_actions": sum(r["edit_actions"] for r in sel),
            "edit_actions_per_episode": round(sum(r["edit_actions"] for r in sel) / len(sel), 2),
            "max_edit_actions": max(r["edit_actions"] for r in sel),
            "navigation": sum(r["navigation"] for r in sel),
            "seconds": round(sum(r["seconds"] for r in sel), 2),
            "tip_error_pct_mean": round(
                sum(r["tip_error_pct_mean"] * r["length"] for r in sel) / n_frames, 2
            ),
            "tip_error_pct_max": max(r["tip_error_pct_max"] for r in sel),
        }
        s = summary[wf]
        print(
            f"{wf:15} {s['episodes']} episodes ({s['frames']} frames): {s['edit_actions']} edit "
            f"actions ({s['edit_actions_per_episode']} per episode, max {s['max_edit_actions']}),"
            f" {s['navigation']} frame jumps, {s['seconds']} s; tip error mean "
            f"{s['tip_error_pct_mean']} %, max {s['tip_error_pct_max']} %"
        )
    long_eps = [r for r in rows if r["workflow"] == "keyframes" and r["length"] >= 15]
    return {
        "videos": stems,
        "tolerance": TOLERANCE,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "rows": rows,
        "summary": summary,
        "long_episodes_keyframes": long_eps,
        "targets": {"edit_actions_per_episode": 3, "tip_error_pct": 5.0},
    }


if __name__ == "__main__":
    if "--child" in sys.argv:
        i = sys.argv.index("--child")
        res = child(sys.argv[i + 1], sys.argv[i + 2], Path(sys.argv[i + 3]))
        print("RESULT " + json.dumps(res), flush=True)
    else:
        main(quick="--quick" in sys.argv)
