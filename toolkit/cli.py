"""The ``toolkit`` command line: a thin Click layer over the library.

Commands live one per module in ``toolkit/commands/`` and are imported only when used, so
``toolkit --help`` starts fast and heavy libraries (torch, ultralytics) load only for the
commands that need them.
"""

from __future__ import annotations

import click

from toolkit.commands.common import LazyGroup

#: command name -> "module:function" (the module is imported when the command is used).
COMMANDS: dict[str, str] = {
    "import": "toolkit.commands.io_cmd:import_cmd",
    "export": "toolkit.commands.io_cmd:export_cmd",
    "info": "toolkit.commands.io_cmd:info_cmd",
    "label": "toolkit.commands.label_cmd:label_cmd",
    "relink": "toolkit.commands.relink_cmd:relink_cmd",
    "samples": "toolkit.commands.samples_cmd:samples_cmd",
    "correct": "toolkit.commands.correct_cmd:correct_cmd",
    "validate": "toolkit.commands.validate_cmd:validate_cmd",
    "detect": "toolkit.commands.detect_cmd:detect_cmd",
    "evaluate": "toolkit.commands.evaluate_cmd:evaluate_cmd",
    "demo": "toolkit.commands.demo_cmd:demo_cmd",
}


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="arnis-suite")
def main() -> None:
    """Import, correct, validate and export 19-keypoint Arnis pose data.

    The 19 keypoints are the 17 COCO body points followed by stick_grip (17) and stick_tip (18).
    A DATASET is a directory holding dataset.json (COCO keypoints JSON plus extensions).

    \b
    Typical loop:
      toolkit import data.yaml --out ds        # YOLO pose / COCO / ultralytics predictions
      toolkit info ds                          # what is in it
      toolkit correct ds                       # fix drifting stick points (non-destructive)
      toolkit validate ds --report qa          # anatomical-validity QA report
      toolkit export ds --format yolo --out y  # back to ultralytics / COCO
    """


if __name__ == "__main__":
    main()
