"""``toolkit demo``: import → correct → validate → fit → export → score on the samples."""

from __future__ import annotations

from pathlib import Path

import click

from toolkit.commands.common import cli_errors

EXAMPLE = "toolkit demo --out demo-run"


@click.command("demo")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default="demo-run",
    show_default=True,
    help="Scratch folder to create (refused if it exists, unless --overwrite).",
)
@click.option(
    "--quick/--full",
    default=True,
    show_default=True,
    help="quick: the graph model, 30 epochs (a few minutes on 2 CPU cores); full: "
    "GeoPose-Net with the visual stream (much slower).",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing --out (a demo folder).")
@click.option(
    "--samples",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Sample set to use (default: the committed samples/arnis).",
)
@click.option("--no-video", is_flag=True, help="Skip the video clip (second dataset).")
@click.option("--folds", type=click.IntRange(2), default=None, hidden=True)
@click.option("--epochs", type=click.IntRange(1), default=None, hidden=True)
@click.option("--no-vae", is_flag=True, hidden=True)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars in the trainer steps.")
@cli_errors(example=EXAMPLE)
def demo_cmd(
    out: Path,
    quick: bool,
    overwrite: bool,
    samples: Path | None,
    no_video: bool,
    folds: int | None,
    epochs: int | None,
    no_vae: bool,
    quiet: bool,
) -> None:
    """Run the whole loop on the committed samples in a scratch folder.

    import (data.yaml + labels.csv, and one video with per-frame labels as a second dataset)
    → correct → validate (HTML report) → trainer fit (5 folds grouped by subject) → trainer
    export (ONNX) → trainer score → review queue. Every step is the real command, printed before
    it runs. Ends with a summary and the command that opens the viewer on the result.

    \b
    Examples:
      toolkit demo                      # what `make demo` runs (--out demo-run)
      toolkit demo --out /tmp/d --overwrite
    """
    from toolkit.demo import run_demo

    try:
        summary = run_demo(
            out,
            full=not quick,
            overwrite=overwrite,
            samples=samples,
            folds=folds,
            epochs=epochs,
            video=not no_video,
            vae=not no_vae,
            quiet=quiet,
            echo=click.echo,
        )
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(summary.text())
