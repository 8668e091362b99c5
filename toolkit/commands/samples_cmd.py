"""``toolkit samples``: generate a synthetic Arnis sample set (see ``toolkit.synth``)."""

from __future__ import annotations

from pathlib import Path

import click

from toolkit.commands.common import cli_errors


@click.command("samples")
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Directory to create (refused if it exists, unless --overwrite).",
)
@click.option(
    "--per-class",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Images per subject and stance (12 stances).",
)
@click.option(
    "--subjects",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Number of subjects s01, s02, ...",
)
@click.option(
    "--videos",
    type=click.IntRange(min=0),
    default=4,
    show_default=True,
    help="Number of video clips.",
)
@click.option(
    "--frames",
    "frames",
    type=click.IntRange(min=10),
    default=120,
    show_default=True,
    help="Frames per video clip (15 fps).",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Random seed; the output is deterministic given all options.",
)
@click.option(
    "--image-size",
    type=click.IntRange(min=64),
    default=320,
    show_default=True,
    help="Width and height of the images and videos in pixels.",
)
@click.option(
    "--randomise",
    is_flag=True,
    help="Domain-randomised set: cluttered backgrounds, any clothing, stick colour and "
    "thickness, image sizes 320-1280 (--image-size ignored), wide camera, detector-like body "
    "noise, mild to gross stick errors; truth.csv adds error_magnitude, randomised, "
    "body_noise, stick_ratio.",
)
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@cli_errors(example="toolkit samples --out my_samples --per-class 10")
def samples_cmd(
    out: Path,
    per_class: int,
    subjects: int,
    videos: int,
    frames: int,
    seed: int,
    image_size: int,
    randomise: bool,
    overwrite: bool,
) -> None:
    """Generate a synthetic Arnis sample set: YOLO pose labels with stick errors + ground truth.

    12 stances (4 footwork families x 3 weapon chambers) of 3D stick-figure subjects holding a
    71 cm stick, rendered with OpenCV; labels carry stick errors at known rates, truth.csv holds
    the clean keypoints and each error's kind. Import the result with
    `toolkit import OUT/data.yaml --labels OUT/labels.csv --out DATASET`.

    \b
    Examples:
      toolkit samples --out my_samples --per-class 10
      toolkit samples --out hard --randomise --seed 3 --videos 0
      toolkit import my_samples/data.yaml --labels my_samples/labels.csv --out ds
    """
    from toolkit import synth
    from toolkit.fileio import staged_dir

    with staged_dir(out, overwrite=overwrite) as stage:
        synth.generate(
            stage,
            per_class=per_class,
            subjects=subjects,
            videos=videos,
            frames_per_video=frames,
            seed=seed,
            image_size=image_size,
            randomise=randomise,
        )
    n_img = per_class * subjects * len(synth.STANCES)
    click.echo(
        f"Wrote {out}: {n_img} images, {videos} videos of {frames} frames "
        f"(truth in {out / 'truth.csv'})."
    )
