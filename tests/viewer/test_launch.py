"""``viewer.launch``: session, app and dock wired together; app and dock never import each other."""

from __future__ import annotations

import ast
from pathlib import Path

import viewer

VIEWER = Path(viewer.__file__).parent


def _imports(module: str) -> set[str]:
    """Every module ``viewer/<module>.py`` imports, at the top or inside functions."""
    tree = ast.parse((VIEWER / f"{module}.py").read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def test_app_and_dock_do_not_import_each_other():
    app, widgets = _imports("app"), _imports("widgets")
    assert not {m for m in app if m.startswith(("viewer.widgets", "viewer.launch"))}
    assert not {m for m in widgets if m.startswith(("viewer.app", "viewer.launch"))}
    assert "viewer.app" in _imports("launch") and "viewer.widgets" in _imports("launch")


def test_the_dock_follows_the_app_through_its_listeners(make_napari_viewer, small_dataset):
    from qtpy.QtWidgets import QComboBox, QGroupBox

    from viewer.app import EVENTS
    from viewer.launch import app_for, dock_for, open_dataset

    viewer_ = make_napari_viewer(show=True)
    app = open_dataset(viewer_, small_dataset, autosave_s=0)
    dock = dock_for(viewer_)
    assert app_for(viewer_) is app and dock.app is app and dock.on_app_event in app.listeners
    seen = []
    app.listeners.append(lambda kind, index=None: seen.append(kind))
    help_box = dock.findChild(QGroupBox, "help_box")
    hidden = help_box.isHidden()
    app.toggle_help()  # the app asks; the dock shows or hides its help
    assert help_box.isHidden() != hidden
    app.toggle_help()
    assert help_box.isHidden() == hidden
    app.set_queue_filter("not done")
    assert dock.findChild(QComboBox, "queue_filter").currentText() == "not done"
    assert {"help", "filter", "changed"} <= set(seen) and set(seen) <= set(EVENTS)
    dock.close()
    dock.deleteLater()
    app.close()
