"""The napari viewer for reviewing and fixing stick grip/tip per frame (``viewer DATASET``).

Modules: :mod:`viewer.session` (edits, undo, keyframes, flags, saving; no Qt),
:mod:`viewer.interpolate` (the stick between keyframes), :mod:`viewer.convert` (the one
dataset <-> napari coordinate conversion), :mod:`viewer.frames` (frames decoded on demand and
ahead), :mod:`viewer.app` (layers and events), :mod:`viewer.widgets` (the dock),
:mod:`viewer.launch` (wires session, app and dock; app and dock do not import each other),
:mod:`viewer.keys` (the key map), :mod:`viewer.findings` / :mod:`viewer.review` (validate
findings and their proposals, review queue and its filter), :mod:`viewer.plugin` +
``napari.yaml`` (the napari plugin), :mod:`viewer.cli` (the command).
"""
