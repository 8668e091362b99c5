"""``trainer ablate``: every model on the same folds, one comparison table."""

from __future__ import annotations

from pathlib import Path

import click

from toolkit.commands.common import cli_errors, echo_err
from trainer.commands._options import training_options

ALL_MODELS = (
    "geopose",
    "graph",
    "flat",
    "no-aux",
    "angles-rf",
    "angles-gbm",
    "coords-rf",
    "coords-mlp",
)
#: Accepted besides ALL_MODELS: a model with an explicit visual stream.
EXTRA_MODELS = ("geopose+yolo", "geopose+mobilenet", "visual+yolo", "visual+mobilenet", "visual")


def _models(value: str) -> list[str]:
    """The ``--models`` list, checked."""
    names = [v.strip() for v in value.split(",") if v.strip()]
    bad = [n for n in names if n not in ALL_MODELS + EXTRA_MODELS]
    if bad or not names:
        raise click.BadParameter(
            f"Expected a comma-separated list of {list(ALL_MODELS + EXTRA_MODELS)}, but got "
            f"{value!r}."
        )
    return names


@click.command("ablate")
@click.argument("dataset", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder for one run folder per model plus ablation.csv/json/txt.",
)
@click.option(
    "--models",
    default=",".join(ALL_MODELS),
    show_default=True,
    help="Comma-separated models to compare (a '+yolo' or '+mobilenet' suffix adds that "
    "visual stream, e.g. geopose+yolo).",
)
@training_options
@cli_errors(example="trainer ablate ds --out runs/ablation")
def ablate_cmd(dataset: Path, out: Path, models: str, **opts) -> None:
    """Cross-validate every model on DATASET on the same folds and print the table.

    Each model gets its own run folder under --out (as `trainer fit` writes it); crops and
    pretrained visual features are computed once and shared. The table shows mean ± std over
    folds, the worst fold, ECE, and the difference to angles-rf and to the best baseline.
    Every (model, fold) pair is an independent task: --engine ray trains them all in parallel
    (same results as --engine local; docs/cluster.md).

    \b
    Examples:
      trainer ablate ds --out runs/ablation
      trainer ablate ds --out runs/abl2 --models geopose,geopose+yolo,coords-mlp,angles-rf
      trainer ablate ds --out runs/abl3 --models geopose,coords-mlp --folds 4 --epochs 60
      trainer ablate ds --out runs/abl4 --engine ray --address ray://head:10001
    """
    from toolkit.engine import check_engine_options
    from trainer.commands._options import (
        command_line,
        load_prepared,
        make_config,
        open_training_engine,
    )
    from trainer.runs import run_ablation, split_model_name

    names = _models(models)
    check_engine_options(opts["engine"], opts["workers"], opts["address"])
    visuals = set()
    for n in names:
        base, vis = split_model_name(n)
        if base in ("geopose", "flat", "no-aux", "visual"):
            vis = vis or opts["visual"]
            visuals.add("yolo" if base == "visual" and vis == "none" else vis)
    prep = load_prepared(
        dataset, opts, need_crops="mobilenet" in visuals, need_visual="yolo" in visuals
    )
    cfg = make_config(names[0], opts)
    echo_err(
        f"ablation: {len(prep)} frames, {len(prep.taxonomy.classes)} stances, "
        f"{len(set(prep.groups.tolist()))} groups by {prep.group_by}, {opts['folds']} folds, "
        f"models {', '.join(names)}"
    )
    with open_training_engine(opts) as engine:
        _, table = run_ablation(
            prep,
            names,
            cfg,
            out,
            n_folds=opts["folds"],
            overwrite=opts["overwrite"],
            resume=opts["resume"],
            progress=not opts["quiet"],
            extra_config={
                "command": command_line(),
                "dataset": str(dataset.resolve()),
                "raw": opts["raw"],
            },
            echo=None if opts["quiet"] else echo_err,
            engine=engine,
        )
    click.echo(table)
    click.echo(f"\nablation folder: {out}")
