"""The stance classifier: GeoPose-Net, baselines, grouped cross-validation, export and scoring.

Modules: :mod:`trainer.data` (datasets and angle CSVs to tensors), :mod:`trainer.graph` (the
skeleton graph and its feature constants), :mod:`trainer.models`, :mod:`trainer.train`,
:mod:`trainer.cv` (subject-grouped folds and metrics), :mod:`trainer.baselines`,
:mod:`trainer.runs` (run folders, ablations), :mod:`trainer.export` (ONNX),
:mod:`trainer.score` (re-scoring footage into a review queue), :mod:`trainer.cli`.
"""
