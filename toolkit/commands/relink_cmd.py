"""``toolkit relink``: point a moved or copied dataset at its media again."""

from __future__ import annotations

import click

from toolkit.commands.common import cli_errors

EXAMPLE = "toolkit relink ds --media /data/arnis/images"


@click.command("relink")
@click.argument("dataset", type=click.Path(path_type=str))
@click.option(
    "--media",
    type=click.Path(path_type=str),
    default=None,
    help="The folder that holds the images and videos now (default: search next to DATASET).",
)
@click.option(
    "--allow-outside",
    is_flag=True,
    help="Accept a media folder outside the allowed roots (e.g. a system or hidden folder).",
)
@click.option("--dry-run", is_flag=True, help="Check that every file is there; change nothing.")
@cli_errors(example=EXAMPLE)
def relink_cmd(dataset: str, media: str | None, allow_outside: bool, dry_run: bool) -> None:
    """Point DATASET's media_root at the folder that holds its images and videos now.

    A copied or moved dataset loses its media when the relative (or absolute) media_root no
    longer leads to it. Every still image and video must exist under the new folder, else
    nothing changes. The new media_root is written atomically and journalled edits are kept.
    Without --media, the folders next to DATASET are searched (the old folder name, images/,
    media/, DATASET and its parent).

    \b
    Examples:
      toolkit relink ds --media /data/arnis/images
      toolkit relink copied_ds                  # search next to the dataset
      toolkit relink ds --media ../media --dry-run
    """
    from toolkit.dataset import Dataset

    ds = Dataset.load(dataset, allow_outside_media=True)
    old = ds.media_root
    root = ds.relink(media, allow_outside=allow_outside, dry_run=dry_run)
    n_files = len(ds.videos) + int(ds.images["video_id"].isna().sum())
    verb = "would relink" if dry_run else "relinked"
    click.echo(f"{verb} {dataset}: media_root {old!r} -> {ds.media_root!r}")
    click.echo(f"  {n_files} media files found under {root}")
