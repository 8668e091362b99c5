"""Options and data loading shared by ``trainer fit`` and ``trainer ablate``."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from pathlib import Path

import click

from toolkit.commands._common import echo_err

GROUP_NONE_WARNING = (
    "WARNING: --group none: frames of the same subject (and consecutive video frames) can land "
    "in both the training and the test part of a fold, so the accuracy below is OPTIMISTIC and "
    "does not tell how the model does on a new person."
)


def training_options(fn: Callable) -> Callable:
    """The options every training command takes."""
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
        click.option("--lr", type=float, default=3e-4, show_default=True),
        click.option(
            "--patience",
            type=click.IntRange(1, None),
            default=15,
            show_default=True,
            help="Early-stopping patience (epochs without a better validation loss).",
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
    return fn


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


def load_prepared(dataset: Path, opts: dict, need_crops: bool):
    """Load a dataset and turn it into labelled arrays (with crops when a model needs them)."""
    from toolkit.dataset import Dataset
    from trainer.data import Taxonomy, prepare

    ds = Dataset.load(dataset)
    tax = Taxonomy.load(opts["taxonomy"]) if opts.get("taxonomy") else None
    if opts["group"] == "none":
        echo_err(click.style(GROUP_NONE_WARNING, fg="red", bold=True))
    prep = prepare(
        ds, tax, group=opts["group"], raw=opts["raw"], crops=need_crops, progress=not opts["quiet"]
    )
    for note in prep.notes:
        echo_err(f"note: {note}")
    return prep


def prepared_from_csv(path: Path, label_column: str, group_column: str | None, opts: dict):
    """A :class:`trainer.data.Prepared` from an existing CSV of angle features."""
    import numpy as np

    from toolkit.errors import InputError, expected
    from trainer.baselines import read_angles_csv
    from trainer.data import Prepared, Taxonomy

    X, names, groups, _ = read_angles_csv(path, label_column, group_column)
    names = np.asarray(names).astype(str)
    tax = (
        Taxonomy.load(opts["taxonomy"])
        if opts.get("taxonomy")
        else Taxonomy(classes=sorted(set(names.tolist())))
    )
    unknown = sorted(set(names.tolist()) - set(tax.classes))
    if unknown:
        raise InputError(
            expected(
                f"'{label_column}' values", f"classes of the taxonomy {tax.classes}", unknown[:5]
            ),
            path,
        )
    y = np.array([tax.classes.index(n) for n in names], np.int64)
    if groups is None:
        if opts["group"] != "none":
            raise InputError(
                "Expected --group-column naming the subject (or video) column, so "
                "no subject is in both training and test; or pass --group none "
                "(the estimate is then optimistic).",
                path,
            )
        echo_err(click.style(GROUP_NONE_WARNING, fg="red", bold=True))
        groups = np.array([str(i) for i in range(len(y))], dtype=object)
    n = len(y)
    fam = tax.family_of[y] if tax.hierarchical else np.full(n, -1, np.int64)
    cha = tax.chamber_of[y] if tax.hierarchical else np.full(n, -1, np.int64)
    return Prepared(
        taxonomy=tax,
        keypoints=np.full((n, 19, 3), np.nan),
        conf=np.zeros((n, 19)),
        y=y,
        family=fam,
        chamber=cha,
        groups=np.asarray(groups).astype(str),
        ann_id=np.arange(n),
        image_id=np.full(n, -1),
        file_name=np.full(n, "", dtype=object),
        rows=np.arange(n),
        angles=X,
        group_by=group_column or "none",
    )


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in ["trainer", *sys.argv[1:]])
