"""``trainer fit``: cross-validate one model and write its run folder."""

from __future__ import annotations

from pathlib import Path

import click

from toolkit.commands.common import cli_errors, echo_err
from trainer.commands._options import training_options

MODEL_CHOICES = (
    "geopose",
    "graph",
    "visual",
    "flat",
    "no-aux",
    "angles-rf",
    "angles-gbm",
    "coords-rf",
    "coords-mlp",
)
EXAMPLE = "trainer fit ds --out runs/geopose --folds 5 --group subject"


@click.command("fit")
@click.argument("dataset", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Run folder.")
@click.option(
    "--model",
    type=click.Choice(MODEL_CHOICES),
    default="geopose",
    show_default=True,
    help="GeoPose-Net or a variant, or a baseline (angle features or normalised coordinates).",
)
@training_options
@click.option(
    "--angles-csv",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Train an angle baseline straight from a CSV of angle features (no DATASET).",
)
@click.option(
    "--label-column", default="stance", show_default=True, help="Class column of --angles-csv."
)
@click.option("--group-column", help="Subject/video column of --angles-csv.")
@click.option(
    "--feature-columns",
    help="Comma-separated feature columns of --angles-csv (default: every numeric column; "
    "text columns are ignored with a note).",
)
@click.pass_context
@cli_errors(example=EXAMPLE)
def fit_cmd(
    ctx: click.Context,
    dataset: Path | None,
    out: Path,
    model: str,
    angles_csv: Path | None,
    label_column: str,
    group_column: str | None,
    feature_columns: str | None,
    **opts,
) -> None:
    """Cross-validate a stance classifier on DATASET and write the run folder --out.

    Folds are stratified and grouped (StratifiedGroupKFold): with --group subject no subject is in
    both the training and the test part of a fold. The run folder holds config.yaml,
    metrics.json/csv, the confusion matrix, training curves, out-of-fold probabilities per frame
    and one checkpoint per fold. Each fold is an independent task: --engine ray trains them in
    parallel (same results as --engine local; docs/cluster.md).

    \b
    Examples:
      trainer fit ds --out runs/geopose
      trainer fit ds --out runs/geopose_yolo --visual yolo      # pretrained visual features
      trainer fit ds --out runs/mlp --model coords-mlp          # a strong simple baseline
      trainer fit ds --out runs/graph --model graph --raw
      trainer fit ds --out runs/geopose --engine ray --workers 5      # folds in parallel
      trainer fit --angles-csv angles.csv --label-column stance --group-column subject \\
          --model angles-rf --out runs/rf
      trainer fit --angles-csv angles.csv --group-column video \\
          --feature-columns elbow,knee,hip --out runs/rf3
    """
    from toolkit.engine import check_engine_options
    from trainer.baselines import ANGLE_BASELINES
    from trainer.commands._options import (
        command_line,
        load_prepared,
        make_config,
        open_training_engine,
        prepared_from_csv,
    )
    from trainer.runs import fold_table, run_experiment, summary_table
    from trainer.train import BASELINES

    check_engine_options(opts["engine"], opts["workers"], opts["address"])
    if angles_csv is not None:
        if dataset is not None:
            raise ValueError("Expected either DATASET or --angles-csv, but got both.")
        if ctx.get_parameter_source("model") == click.core.ParameterSource.DEFAULT:
            model = "angles-rf"
        if model not in ANGLE_BASELINES:
            raise ValueError(
                f"Expected '--model' to be one of {list(ANGLE_BASELINES)} with "
                f"--angles-csv (a CSV has no keypoints or images), but got {model!r}."
            )
        cols = None if feature_columns is None else feature_columns.split(",")
        prep = prepared_from_csv(angles_csv, label_column, group_column, opts, cols)
        source = {
            "angles_csv": str(angles_csv.resolve()),
            "label_column": label_column,
            "group_column": group_column,
        }
    else:
        if dataset is None:
            raise ValueError("Expected a DATASET directory (or --angles-csv FILE).")
        if feature_columns is not None:
            raise ValueError("Expected --feature-columns only with --angles-csv.")
        visual = "none" if model in ("graph", *BASELINES) else opts["visual"]
        if model == "visual" and visual == "none":
            visual = "yolo"
        prep = load_prepared(
            dataset, opts, need_crops=visual == "mobilenet", need_visual=visual == "yolo"
        )
        source = {"dataset": str(dataset.resolve()), "raw": opts["raw"]}
    cfg = make_config(model, opts)
    cfg.check()
    extra = (
        f", {cfg.members} member(s), stop {cfg.stop}, visual {cfg.visual_source}"
        if cfg.neural
        else ""
    )
    echo_err(
        f"{model}: {len(prep)} frames, {len(prep.taxonomy.classes)} stances, "
        f"{len(set(prep.groups.tolist()))} groups by {prep.group_by}, {opts['folds']} folds{extra}"
    )
    with open_training_engine(opts) as engine:
        res = run_experiment(
            prep,
            cfg,
            out,
            n_folds=opts["folds"],
            overwrite=opts["overwrite"],
            resume=opts["resume"],
            progress=not opts["quiet"],
            extra_config={"command": command_line(), **source},
            echo=None if opts["quiet"] else echo_err,
            engine=engine,
        )
    click.echo(fold_table(res.metrics))
    click.echo()
    click.echo(summary_table([res.metrics], baseline=None))
    click.echo(f"\nrun folder: {out}")
