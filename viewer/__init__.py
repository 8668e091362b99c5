"""The napari viewer for reviewing and fixing stick grip/tip per frame (``viewer DATASET``).

Modules: :mod:`viewer.session` (edits, undo, flags, saving; no Qt), :mod:`viewer.convert` (the
one dataset <-> napari coordinate conversion), :mod:`viewer.frames` (frames decoded on demand),
:mod:`viewer.app` (layers and events), :mod:`viewer.widgets` (the dock), :mod:`viewer.keys`
(the key map), :mod:`viewer.findings` / :mod:`viewer.review` (validate findings, review queue),
:mod:`viewer.plugin` + ``napari.yaml`` (the napari plugin), :mod:`viewer.cli` (the command).
"""
