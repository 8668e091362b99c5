"""``toolkit correct``: make the stick keypoints agree with a rigid stick (non-destructive)."""

from __future__ import annotations

import click

from toolkit.commands.common import cli_errors

EXAMPLE = "toolkit correct ds --dry-run"


@click.command("correct")
@click.argument("dataset", type=click.Path(path_type=str))
@click.option(
    "--method",
    type=click.Choice(["rigid", "forearm-ratio"]),
    default="rigid",
    show_default=True,
    help="rigid: data-driven rigid stick (per-subject length, image evidence, time). "
    "forearm-ratio: the methodology's rule (tip = grip + alpha x forearm).",
)
@click.option(
    "--alpha",
    type=click.FloatRange(0, min_open=True),
    default=1.35,
    show_default=True,
    help="forearm-ratio: stick length in forearm lengths.",
)
@click.option(
    "--max-deviation",
    type=click.FloatRange(0, 180),
    default=20.0,
    show_default=True,
    help="forearm-ratio: largest stick-forearm angle (degrees) before the direction is "
    "pulled toward the forearm.",
)
@click.option("--dry-run", is_flag=True, help="Print what would change; write nothing.")
@click.option(
    "--revert",
    is_flag=True,
    help="Restore the raw (imported) stick for every point a person did not fix.",
)
@click.option(
    "--no-images",
    is_flag=True,
    help="rigid: do not read images / video frames (geometry and time only).",
)
@click.option("--no-time", is_flag=True, help="rigid: do not use the temporal filter on videos.")
@click.option(
    "--flag-only",
    is_flag=True,
    help="rigid: change nothing; only report what is wrong and the proposed fixes.",
)
@click.option(
    "--show",
    type=click.IntRange(0),
    default=20,
    show_default=True,
    help="How many changes to list.",
)
@cli_errors(example=EXAMPLE)
def correct_cmd(
    dataset: str,
    method: str,
    alpha: float,
    max_deviation: float,
    dry_run: bool,
    revert: bool,
    no_images: bool,
    no_time: bool,
    flag_only: bool,
    show: int,
) -> None:
    """Correct the grip/tip keypoints of DATASET, in place and non-destructively.

    First do no harm: a point moves only on decisive evidence (the video's time axis, a stick
    longer than the subject's stick can look, a swap seen in the geometry and the image).
    Everything else is reported as a proposed fix that `toolkit validate` stores with its
    finding and the viewer applies with Enter. keypoints_raw is never touched, corrected points
    get provenance 'corrected', points a person placed are never changed, and every change is
    appended to DATASET/corrections.csv (before, after, reason). --revert puts the raw stick back.

    \b
    Examples:
      toolkit correct work/ds --dry-run        # what would change, nothing written
      toolkit correct work/ds                  # apply the decisive fixes
      toolkit correct work/ds --flag-only      # change nothing, list the proposals
      toolkit correct work/ds --no-images      # geometry and time only
      toolkit correct work/ds --revert         # restore the raw stick
    """
    import pandas as pd

    from toolkit.correct import CORRECTION_LOG, CorrectOptions, run

    opts = CorrectOptions(
        method=method,
        alpha=alpha,
        max_deviation=max_deviation,
        use_images=not no_images,
        use_time=not no_time,
        apply="none" if flag_only else "decisive",
    )
    log, result = run(dataset, opts, dry_run=dry_run, revert_stick=revert)
    n_ann = log["ann_id"].nunique()
    what = "revert" if revert else method
    if result is not None:
        for note in result.notes:
            click.echo(f"note: {note}", err=True)
    click.echo(
        f"{what}: {len(log)} points in {n_ann} annotations "
        f"{'would change' if dry_run else 'changed'}."
    )
    if len(log):
        reasons = log["reason"].str.split(";").explode().value_counts()
        click.echo("  " + ", ".join(f"{k}: {v}" for k, v in reasons.items()))
    if result is not None and (result.flags > 0).any():
        from toolkit.correct import reason_names

        flagged = pd.Series(reason_names(result.flags)[result.flags > 0]).value_counts()
        click.echo(
            "  proposed, not changed (review with `toolkit validate` + the viewer): "
            + ", ".join(f"{k}: {v}" for k, v in flagged.items())
        )
    if show and len(log):
        cols = ["file_name", "keypoint", "before_x", "before_y", "after_x", "after_y", "reason"]
        with pd.option_context("display.width", 160, "display.max_colwidth", 40):
            click.echo(log[cols].head(show).round(1).to_string(index=False))
        if len(log) > show:
            click.echo(f"  ... {len(log) - show} more")
    if dry_run:
        click.echo("dry run: nothing written.")
    elif len(log):
        click.echo(f"saved; log appended to {dataset.rstrip('/')}/{CORRECTION_LOG}")
