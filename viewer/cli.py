"""``viewer`` placeholder until the napari viewer issue lands."""

from __future__ import annotations

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("dataset", required=False)
def main(dataset: str | None) -> None:
    """napari viewer for fixing stick grip/tip per frame (coming in the viewer issue)."""
    raise click.ClickException("The viewer is not built yet; see the tracker's viewer issue.")
