"""napari plugin hooks (``napari.yaml``): a reader for dataset folders.

``napari DATASET`` (or File > Open Folder…) calls :func:`get_reader`; for a directory holding
``dataset.json`` (or that file itself) it returns a reader that opens the dataset for review in
the current viewer, with all layers, key bindings and the dock widget, and returns napari's
"handled, no further layers" sentinel ``[(None,)]``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from toolkit.dataset import DATASET_FILE


def _dataset_dir(path) -> Path | None:
    if isinstance(path, list | tuple):
        if len(path) != 1:
            return None
        path = path[0]
    if not isinstance(path, str | Path):
        return None
    p = Path(path)
    if p.is_dir() and (p / DATASET_FILE).is_file():
        return p
    if p.is_file() and p.name == DATASET_FILE:
        return p.parent
    return None


def get_reader(path) -> Callable | None:
    """Napari reader contribution: a reader for Arnis dataset folders, else None."""
    if _dataset_dir(path) is None:
        return None
    return read_dataset


def read_dataset(path) -> list[tuple]:
    """Open the dataset in the current napari viewer (layers + dock)."""
    import napari

    from viewer.launch import open_dataset

    viewer = napari.current_viewer()
    if viewer is None:
        viewer = napari.Viewer()
    open_dataset(viewer, _dataset_dir(path))
    return [(None,)]
