"""``viewer DATASET [--queue FILE] [--screenshot OUT.png [--frame N] [--window]]``: the viewer."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from toolkit.commands.common import UsageError, cli_errors

EXAMPLE = "viewer my_dataset --queue my_dataset/queue.json"


def _require_display() -> None:
    """Napari needs a display (an X server: Xvfb works); offscreen Qt has no OpenGL."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        raise UsageError(
            "The viewer needs a display (napari draws with OpenGL). On a machine "
            "without one, run it under Xvfb:\n  xvfb-run -a -s '-screen 0 "
            "1280x1024x24' viewer DATASET --screenshot out.png"
        )


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("dataset", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--queue",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Review queue JSON (from `trainer score`); default: the flagged frames.",
)
@click.option(
    "--screenshot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Render one frame to this PNG and exit (needs a display or xvfb-run).",
)
@click.option(
    "--frame",
    type=int,
    default=None,
    help="Frame for --screenshot (0-based slider position; default: first flagged).",
)
@click.option(
    "--window",
    is_flag=True,
    help="With --screenshot: capture the whole window (canvas, review dock and list), for "
    "docs and bug reports; default: the canvas alone, as wide as the window.",
)
@click.option(
    "--autosave",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds between automatic saves when there are edits (0: off).",
)
@cli_errors(example=EXAMPLE)
def main(
    dataset: Path,
    queue: Path | None,
    screenshot: Path | None,
    frame: int | None,
    window: bool,
    autosave: float,
) -> None:
    """Review and fix a DATASET in napari.

    Drag grip and tip, set stance labels, walk the flagged frames or a review queue, fix a drifting
    stick with two keyframes.

    Every edit is journalled (fsynced) before it shows, with provenance "human" (or
    "interpolated" between keyframes, until accepted); Ctrl-Z undoes; Ctrl-S (and autosave)
    folds the journal into dataset.json. Press H in the viewer for the keys. A stick that
    drifts for some frames: I on a good frame before, I on a good frame after, check, A.

    \b
    Examples:
      viewer ds/                                    review the flagged frames
      viewer ds/ --queue ds/queue.json              walk a review queue (trainer score)
      viewer ds/ --autosave 0                       save only on Ctrl-S
      xvfb-run -a viewer ds/ --screenshot frame.png --frame 12
      xvfb-run -a viewer ds/ --screenshot bug.png --window      (canvas, dock and list)
    """
    if frame is not None and screenshot is None:
        raise UsageError(
            "Expected '--frame' only together with '--screenshot'.\n  Example: "
            "viewer ds/ --screenshot out.png --frame 12"
        )
    if window and screenshot is None:
        raise UsageError(
            "Expected '--window' only together with '--screenshot'.\n  Example: "
            "viewer ds/ --screenshot out.png --window"
        )
    _require_display()
    import napari

    from viewer.launch import open_dataset

    if screenshot is not None:
        write_screenshot(dataset, screenshot, frame=frame, queue=queue, window=window)
        click.echo(str(screenshot))
        return
    viewer = napari.Viewer(title=f"Arnis review: {dataset}")
    app = open_dataset(viewer, dataset, queue=queue, autosave_s=autosave)
    try:
        napari.run()
    finally:
        app.autosave()
        app.close()


def write_screenshot(
    dataset: Path,
    out: Path,
    frame: int | None = None,
    queue: Path | None = None,
    window: bool = False,
    size: tuple[int, int] = (1280, 900),
) -> Path:
    """Render ``frame`` (default: the first flagged one) of ``dataset`` to the PNG ``out``.

    Args:
        dataset: The dataset directory.
        out: The PNG to write.
        frame: The frame (0-based slider position).
        queue: A review queue to show in the dock.
        window: Capture the whole window (canvas, dock, review list); otherwise the canvas
            alone, with the side panels hidden so it fills the window's width and the caption
            fits.
        size: The window size in pixels.

    Raises:
        ValueError: ``frame`` is outside the dataset.
    """
    import napari
    from qtpy.QtWidgets import QApplication

    from viewer.launch import dock_for, open_dataset

    viewer = napari.Viewer(show=True, title="Arnis review")
    try:
        app = open_dataset(viewer, dataset, queue=queue, autosave_s=0)
        n = app.session.n_frames
        t = app.session.first_flagged() if frame is None else frame
        if not 0 <= t < max(n, 1):
            raise ValueError(f"Expected '--frame' to be in 0..{n - 1}, but got {frame}.")
        if not window:  # the canvas gets the whole width: no layer list, controls or dock
            qt = viewer.window._qt_viewer
            for dock in (qt.dockLayerList, qt.dockLayerControls, dock_for(viewer).parent()):
                if dock is not None and hasattr(dock, "hide"):
                    dock.hide()
        viewer.window.resize(*size)
        app.goto(t)
        overlay = viewer.canvas.overlays.text  # the caption says which frame this is
        overlay.text = "  ".join(
            x for x in (f"{app.session.frame_name(t)} ({t + 1}/{n})", overlay.text) if x
        )
        QApplication.processEvents()
        viewer.reset_view()
        QApplication.processEvents()
        out.parent.mkdir(parents=True, exist_ok=True)
        viewer.screenshot(path=str(out), canvas_only=not window, flash=False)
        app.close()
    finally:
        viewer.close()
    return out
