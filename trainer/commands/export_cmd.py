"""``trainer export``: a run's model(s) as one parity-checked ONNX graph."""

from __future__ import annotations

from pathlib import Path

import click

from toolkit.commands.common import cli_errors


@click.command("export")
@click.argument("run", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The .onnx file to write.",
)
@click.option("--ensemble", is_flag=True, help="Average every fold model inside one graph.")
@click.option(
    "--fold", type=int, help="Export this fold's model (default: lowest validation loss)."
)
@click.option("--overwrite", is_flag=True, help="Replace an existing --out.")
@cli_errors(example="trainer export runs/geopose --out model.onnx --ensemble")
def export_cmd(run: Path, out: Path, ensemble: bool, fold: int | None, overwrite: bool) -> None:
    """Export the run folder RUN to ONNX (dynamic batch, metadata inside).

    A fold's model is its seed ensemble with each member's calibrated temperature inside.
    Parity with PyTorch is checked at batch 1 and 64 (max abs difference <= 1e-4); when it fails
    the command exits 1 and writes nothing. Runs trained with --visual yolo do not export.

    \b
    Examples:
      trainer export runs/geopose --out model.onnx              # fold with the lowest val loss
      trainer export runs/geopose --out all_folds.onnx --ensemble
      trainer export runs/geopose --out fold2.onnx --fold 2 --overwrite
    """
    from trainer.export import export_run

    if ensemble and fold is not None:
        raise ValueError("Expected either --ensemble or --fold, but got both.")
    try:
        rep = export_run(run, out, ensemble=ensemble, fold=fold, overwrite=overwrite)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    parity = ", ".join(f"batch {b}: {d:.1e}" for b, d in rep.parity.items())
    click.echo(
        f"wrote {rep.path} ({rep.size_bytes / 1e6:.1f} MB): folds {rep.folds}, inputs "
        f"{rep.inputs}, outputs {rep.outputs}"
    )
    click.echo(f"parity vs PyTorch (max abs diff): {parity}")
