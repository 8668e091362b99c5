"""Wiring: a dataset under review in a napari viewer is a session, an app and a dock.

:mod:`viewer.app` (layers, keys, napari events) and :mod:`viewer.widgets` (the dock) do not
import each other: the app announces what changed to its ``listeners`` (see
:class:`viewer.app.ArnisApp`), and the dock calls the app's public actions. This module builds
the three and connects them; the ``viewer`` command, the napari reader (:mod:`viewer.plugin`)
and the dock opened from napari's Plugins menu (its "Open dataset…") all come through here.
"""

from __future__ import annotations

import weakref
from pathlib import Path

from viewer.app import AUTOSAVE_S, ArnisApp
from viewer.session import EditSession
from viewer.widgets import ArnisDock

#: The dock's name in the napari window.
DOCK_NAME = "Arnis review"
_APPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_DOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def open_dataset(
    viewer,
    path: str | Path,
    queue: str | Path | None = None,
    autosave_s: float = AUTOSAVE_S,
    dock: bool = True,
) -> ArnisApp:
    """Open a dataset directory for review in a napari viewer.

    Args:
        viewer: A ``napari.Viewer``.
        path: The dataset directory (``dataset.json`` inside).
        queue: A review-queue JSON (``--queue``), or None to list the flagged frames.
        autosave_s: Save (fold the journal) this often when there are unsaved edits; 0 = never.
        dock: Add a review dock when the viewer has none (one it has shows the dataset anyway).

    Returns:
        The app (its dock, if any: :func:`dock_for`).
    """
    app = ArnisApp(viewer, EditSession.open(path, queue), autosave_s=autosave_s)
    _APPS[viewer] = app
    panel = dock_for(viewer)
    if panel is None and dock:
        panel = _new_dock(viewer)
        viewer.window.add_dock_widget(panel, name=DOCK_NAME, area="right")
    if panel is not None:
        panel.attach(app)
    return app


def app_for(viewer) -> ArnisApp | None:
    """The :class:`viewer.app.ArnisApp` last opened in ``viewer``, if any."""
    return _APPS.get(viewer)


def dock_for(viewer) -> ArnisDock | None:
    """The review dock of ``viewer``, if it has one."""
    return _DOCKS.get(viewer)


def make_dock(napari_viewer) -> ArnisDock:
    """The dock widget for napari's Plugins menu (``napari.yaml``).

    It shows the dataset already open in the viewer, or offers "Open dataset…".
    """
    panel = _new_dock(napari_viewer)
    app = app_for(napari_viewer)
    if app is not None:
        panel.attach(app)
    return panel


def _new_dock(viewer) -> ArnisDock:
    """A dock for ``viewer``, remembered until its widget is destroyed."""
    panel = ArnisDock(viewer, opener=lambda path: open_dataset(viewer, path))
    _DOCKS[viewer] = panel

    def forget(*_args) -> None:
        if _DOCKS.get(viewer) is panel:
            del _DOCKS[viewer]

    panel.destroyed.connect(forget)
    return panel
