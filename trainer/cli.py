"""The ``trainer`` command line: stance classifier training, export and scoring.

Commands are imported only when used (``trainer --help`` does not import torch).
"""

from __future__ import annotations

import click

from toolkit.commands.common import LazyGroup

#: command name -> "module:function".
COMMANDS: dict[str, str] = {
    "fit": "trainer.commands.fit_cmd:fit_cmd",
    "ablate": "trainer.commands.ablate_cmd:ablate_cmd",
    "export": "trainer.commands.export_cmd:export_cmd",
    "score": "trainer.commands.score_cmd:score_cmd",
    "detector": "trainer.commands.detector_cmd:detector_cmd",
}


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
def main() -> None:
    """Train, compare and export the GeoPose-Net stance classifier.

    \b
    Typical loop:
      trainer fit ds --out runs/geopose              # 5-fold, subject-independent CV
      trainer ablate ds --out runs/ablation          # every model on the same folds
      trainer export runs/geopose --out model.onnx   # one ONNX graph, parity-checked
    """


if __name__ == "__main__":
    main()
