"""``trainer detector``: fine-tune a 19-keypoint YOLO pose model on a dataset."""

from __future__ import annotations

import click

from toolkit.commands.common import cli_errors, echo_err

EXAMPLE = (
    "trainer detector cleaned_ds --out runs/det1 --weights yolo11n-pose.pt --epochs 50 --imgsz 640"
)


@click.command("detector")
@click.argument("dataset", type=click.Path(path_type=str))
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=str),
    metavar="RUN",
    help="Run folder to create (refused if it exists, unless --overwrite).",
)
@click.option(
    "--weights",
    default=None,
    metavar="MODEL",
    help="Start from this local .pt (e.g. yolo11n-pose.pt) or model .yaml; default: "
    "yolo11n-pose.yaml built from scratch. Never downloads.",
)
@click.option("--epochs", default=50, show_default=True, type=click.IntRange(1))
@click.option("--imgsz", default=640, show_default=True, type=click.IntRange(32, 4096))
@click.option(
    "--device",
    default="auto",
    show_default=True,
    help="auto (GPU when present), cpu, cuda or a GPU index.",
)
@click.option("--batch", default=16, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--patience",
    default=50,
    show_default=True,
    type=click.IntRange(1),
    help="Stop after this many epochs without improvement.",
)
@click.option(
    "--plots/--no-plots",
    default=True,
    show_default=True,
    help="Let ultralytics draw its training plots.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing RUN folder.")
@cli_errors(example=EXAMPLE)
def detector_cmd(
    dataset: str,
    out: str,
    weights: str | None,
    epochs: int,
    imgsz: int,
    device: str,
    batch: int,
    seed: int,
    patience: int,
    plots: bool,
    overwrite: bool,
) -> None:
    """Fine-tune a YOLO pose model with 19 keypoints (body + stick) on DATASET.

    Exports DATASET to YOLO format, trains with ultralytics offline, and writes RUN/best.pt,
    metrics and an evaluation of the trained model on the data (RUN/evaluate.json).

    \b
    Examples:
      trainer detector cleaned_ds --out runs/det1 --weights yolo11n-pose.pt --epochs 50
      trainer detector cleaned_ds --out runs/det_cpu --epochs 5 --imgsz 320 --device cpu
      toolkit detect clip.mp4 --weights runs/det1/best.pt --out clip_ds
    """
    from toolkit.commands.common import is_tty
    from trainer.detector import train_detector

    m = train_detector(
        dataset,
        out,
        weights=weights,
        epochs=epochs,
        imgsz=imgsz,
        device=device,
        batch=batch,
        seed=seed,
        patience=patience,
        plots=plots,
        overwrite=overwrite,
        progress=is_tty(),
    )
    oks = m["evaluate"]["oks"]
    ap = "-" if oks["AP"] is None else f"{oks['AP']:.3f}"
    px = m["evaluate"]["overall"]["median_px"]
    echo_err(
        f"trained in {m['seconds']['train']:.0f} s on {m['device']}; on its data: OKS AP "
        f"{ap}, median error {'-' if px is None else f'{px:.1f}'} px"
    )
    echo_err(f"model: {out}/best.pt   (toolkit detect VIDEO --weights {out}/best.pt --out DS)")
