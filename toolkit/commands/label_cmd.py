"""``toolkit label``: attach stance labels (and subjects) to an existing dataset from a CSV."""

from __future__ import annotations

import click

from toolkit.commands.common import cli_errors, echo_err

EXAMPLE = "toolkit label clip_ds --labels stances.csv   (stances.csv: video,start,end,stance)"


@click.command("label")
@click.argument("dataset", type=click.Path(path_type=str))
@click.option(
    "--labels",
    required=True,
    type=click.Path(dir_okay=False, path_type=str),
    help="CSV: file,stance[,subject] or image_id,stance[,subject] per image, or "
    "video,start,end,stance[,subject] per held stance (frames from 0, or times like 12.5s; "
    "for an image folder of numbered frames, video names the folder).",
)
@click.option(
    "--taxonomy",
    type=click.Path(dir_okay=False, path_type=str),
    default=None,
    help="Check stances against this taxonomy JSON when the dataset has none.",
)
@click.option("--dry-run", is_flag=True, help="Check the CSV and report; change nothing.")
@click.option(
    "--no-fold",
    is_flag=True,
    help="Leave the edits in the journal (a viewer that has DATASET open folds them on save).",
)
@cli_errors(example=EXAMPLE)
def label_cmd(
    dataset: str, labels: str, taxonomy: str | None, dry_run: bool, no_fold: bool
) -> None:
    """Set the stance (and subject) of DATASET's images from a labels CSV.

    Rows name images by file name or id, or a stretch of video: 'clip.mp4,120,245,forward_high'
    labels every frame from 120 to 245. Keypoints, scores and provenance are kept; every change
    is journalled before it counts. Unknown files, overlapping segments with different stances
    and stances outside the taxonomy are refused with the CSV line.

    \b
    Examples:
      toolkit detect clip.mp4 --weights yolo11n-pose.pt --out clip_ds
      toolkit label clip_ds --labels segments.csv
        # segments.csv:
        #   video,start,end,stance,subject
        #   clip.mp4,0,119,forward_high,s01
        #   clip.mp4,4.0s,8.2s,cat_low,s01
      toolkit label ds --labels frames.csv --dry-run     # frames.csv: file,stance[,subject]
      toolkit label ds --labels ids.csv --taxonomy taxonomy.json   # image_id,stance
    """
    from toolkit.labels import label_dataset

    s = label_dataset(dataset, labels, taxonomy=taxonomy, dry_run=dry_run, fold=not no_fold)
    verb = "would label" if dry_run else "labelled"
    click.echo(
        f"{verb} {s.n_images} images of {dataset} from {s.n_rows} rows of {labels}: "
        f"{s.stance_set} stances set, {s.stance_replaced} replaced, {s.subject_set} subjects "
        f"set, {s.unchanged} already so"
    )
    if s.per_stance:
        click.echo("  per stance: " + ", ".join(f"{k} {v}" for k, v in s.per_stance.items()))
    click.echo(f"  images still without a stance: {s.unlabelled}")
    if not dry_run and no_fold:
        click.echo("  edits are in the journal (folded into dataset.json on the next save)")
    for note in s.notes:
        echo_err(f"  note: {note}")
