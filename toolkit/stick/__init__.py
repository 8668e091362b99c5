"""The stick: its statistics, its course in time, its evidence in the image, and one judgement.

``correct`` and ``validate`` both import from here and from nowhere else for stick logic:

* :mod:`toolkit.stick.stats`: robust per-subject / per-stance levels (stick length, angles);
* :mod:`toolkit.stick.temporal`: outliers of a video track's stick angle and length;
* :mod:`toolkit.stick.image`: colour- and thickness-free ridge evidence, calibrated per image
  and per data set;
* :mod:`toolkit.stick.assessment`: :func:`assess`, the one judgement (checks with severities,
  proposed fixes, and which of them are decisive).
"""

from __future__ import annotations

from toolkit.stick.assessment import AssessOptions, Check, StickAssessment, assess

__all__ = ["AssessOptions", "Check", "StickAssessment", "assess"]
