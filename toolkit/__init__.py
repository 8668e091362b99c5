"""The toolkit: the bottom layer of the suite (dataset, formats, stick QA, detection, CLI).

Modules: :mod:`toolkit.dataset` (the dataset and its journal), :mod:`toolkit.layout` (the 19
keypoints), :mod:`toolkit.geometry` (weapon side, torso size, angles), :mod:`toolkit.io` (formats),
:mod:`toolkit.media` (a row's pixels), :mod:`toolkit.locate` (a record's frame and annotation),
:mod:`toolkit.stick` (the one judgement of every stick), :mod:`toolkit.correct` /
:mod:`toolkit.validate` / :mod:`toolkit.report` (the QA), :mod:`toolkit.queue` (the review
queue), :mod:`toolkit.detect` (pose models), :mod:`toolkit.cli` (the ``toolkit`` command).
The viewer and the trainer build on it; it imports neither.
"""
