"""``toolkit import``, ``toolkit export``, ``toolkit info``: datasets in and out."""

from __future__ import annotations

import click

from toolkit.commands.common import UsageError, cli_errors, echo_err, pick_example

IMPORT_EXAMPLE = "toolkit import samples/arnis/data.yaml --out ds --subject-regex '^(s\\d+)_'"
EXPORT_EXAMPLE = "toolkit export ds --format coco --out ds_coco.json"
INFO_EXAMPLE = "toolkit info ds"
#: The import examples of ``--help``; an error shows the one that fits it.
IMPORT_EXAMPLES = [
    IMPORT_EXAMPLE,
    "toolkit import my_yolo/ --out ds --labels stances.csv",
    "toolkit import roboflow_export/ --out ds      # train/, valid/, test/ without a yaml",
    "toolkit import persons/ --stick-labels sticks/ --out ds --format yolo",
    "toolkit import runs/predict/labels --video clip.mp4 --out ds --kpt-values conf",
    "toolkit import runs/pose/predict --images photos/ --out ds",
    "toolkit import person_keypoints_val2017.json --out ds --images val2017/",
    "toolkit import results.json --format coco --images-from gt.json --out preds",
    "toolkit import alphapose-results.json --video strike.mp4 --out strike_ds",
    "toolkit import pifpaf_out/ --images frames/ --out ds --format results",
    "toolkit import my_yolo/ --out ds --taxonomy taxonomy.json --skip-bad",
    "toolkit import data.yaml --out ds --overwrite",
]
_FORMAT_EXAMPLE = {
    "yolo": IMPORT_EXAMPLE,
    "coco": "toolkit import person_keypoints_val2017.json --out ds --images val2017/",
    "results": "toolkit import alphapose-results.json --video strike.mp4 --out strike_ds",
}
EXPORT_EXAMPLES = {
    "coco": EXPORT_EXAMPLE,
    "yolo": "toolkit export ds --format yolo --out ds_yolo",
}


def _import_example(kwargs: dict, exc: Exception) -> str:
    """The example that fits an import error: the option it names, else the source's format."""
    from toolkit import io

    fmt = kwargs.get("fmt") or "auto"
    if fmt == "auto":
        try:
            fmt = io.detect_format(kwargs.get("src", ""))
        except (OSError, ValueError):
            fmt = "yolo"
    # The format's own examples first: "--images" means different folders for COCO and results.
    words = {"yolo": ("yaml", "yolo", "predict", "roboflow", "persons"), "coco": ("coco", "017")}
    words["results"] = ("alphapose", "pifpaf", "results")
    own = [e for e in IMPORT_EXAMPLES if any(w in e for w in words.get(fmt, ()))]
    if fmt == "coco":
        own = [e for e in own if "--format results" not in e]
    return pick_example(
        own + IMPORT_EXAMPLES, kwargs, exc, _FORMAT_EXAMPLE.get(fmt, IMPORT_EXAMPLE)
    )


def _export_example(kwargs: dict, exc: Exception) -> str:
    """The example that fits an export error: the option it names, else the format's own."""
    return pick_example(
        [*EXPORT_EXAMPLES.values(), "toolkit export ds --format coco --keypoints 17 --out c.json"],
        kwargs,
        exc,
        EXPORT_EXAMPLES.get(kwargs.get("fmt") or "coco", EXPORT_EXAMPLE),
    )


class FormatChoice(click.Choice):
    """``--format`` choices asked from the format registry (:func:`toolkit.io.format_names`).

    The registry is consulted on first use (parsing, ``--help``), not when the command module
    is imported, so ``toolkit --help`` does not load the format modules.
    """

    def __init__(self, capability: str, extra: tuple[str, ...] = ()):
        self.capability = capability
        self.extra = extra
        self.case_sensitive = True

    @property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        """``extra`` (e.g. ``auto``), then the registered formats with the capability."""
        from toolkit import io

        return (*self.extra, *io.format_names(self.capability))


@click.command("import")
@click.argument("src", type=click.Path(path_type=str))
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=str),
    help="The dataset directory to create (refused if it exists, unless --overwrite).",
)
@click.option(
    "--format",
    "fmt",
    type=FormatChoice("read", extra=("auto",)),
    default="auto",
    show_default=True,
    help="Source format; auto detects it where unambiguous. results: AlphaPose, OpenPifPaf "
    "or mmpose output.",
)
@click.option(
    "--labels",
    type=click.Path(path_type=str),
    default=None,
    help="CSV file,stance[,subject] (file relative to the images root).",
)
@click.option(
    "--subject-regex",
    default=None,
    help="Regex on each image's file name; group 1 (or the match) is the subject.",
)
@click.option(
    "--stick-labels",
    type=click.Path(path_type=str),
    default=None,
    help="YOLO: folder of stick label files (grip, tip) with the same relative paths.",
)
@click.option(
    "--video",
    type=click.Path(path_type=str),
    default=None,
    help="The video the labels or results belong to (YOLO: per-frame <stem>_<frame>.txt; "
    "results: frames named by image_id, counted from 0).",
)
@click.option(
    "--kpt-values",
    type=click.Choice(["auto", "flag", "conf"]),
    default="auto",
    show_default=True,
    help="Third keypoint value: visibility flag or confidence (auto decides per file).",
)
@click.option(
    "--images",
    type=click.Path(path_type=str),
    default=None,
    help="The folder of the images: COCO file_names are relative to it (default: images/ "
    "beside the JSON if there, else its folder); results: the folder the tool read; YOLO: the "
    "source images of a labels-only folder (ultralytics predict).",
)
@click.option(
    "--images-from",
    type=click.Path(path_type=str),
    default=None,
    help="COCO results file: the ground-truth COCO JSON (or dataset) with its images.",
)
@click.option(
    "--skip-bad",
    is_flag=True,
    help="Import the rest when some items are bad; every skipped item is listed in "
    "the import report.",
)
@click.option(
    "--taxonomy",
    type=click.Path(dir_okay=False, path_type=str),
    default=None,
    help="Stance taxonomy JSON (stance -> family, chamber). Default: a taxonomy.json beside SRC.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing --out dataset.")
@cli_errors(example=_import_example)
def import_cmd(
    src: str,
    out: str,
    fmt: str,
    labels: str | None,
    subject_regex: str | None,
    stick_labels: str | None,
    video: str | None,
    kpt_values: str,
    images: str | None,
    images_from: str | None,
    skip_bad: bool,
    taxonomy: str | None,
    overwrite: bool,
) -> None:
    """Import SRC (YOLO pose, ultralytics predictions, COCO, AlphaPose...) as a new DATASET.

    SRC is a data.yaml, a YOLO dataset folder (images/ + labels/, or split folders train/,
    valid/, test/ each with images/ + labels/), ultralytics predict output (per-frame label
    files with --video, or labels of still images with --images), a COCO keypoints JSON, a COCO
    results JSON (with --images-from), or AlphaPose / OpenPifPaf / mmpose results (with --video
    or --images; no ground truth needed). Frames and images come in natural order (frame_2
    before frame_10). Nothing is written unless the whole import succeeds (or --skip-bad skips
    the bad items); DATASET/import_report.json lists notes and skipped items. To add stance
    labels afterwards: toolkit label DATASET --labels CSV.

    \b
    Examples:
      toolkit import samples/arnis/data.yaml --out ds --subject-regex '^(s\\d+)_'
      toolkit import my_yolo/ --out ds --labels stances.csv
      toolkit import roboflow_export/ --out ds      # train/, valid/, test/ without a yaml
      toolkit import persons/ --stick-labels sticks/ --out ds --format yolo
      toolkit import runs/predict/labels --video clip.mp4 --out ds --kpt-values conf
      toolkit import runs/pose/predict --images photos/ --out ds
      toolkit import person_keypoints_val2017.json --out ds --images val2017/
      toolkit import results.json --format coco --images-from gt.json --out preds
      toolkit import alphapose-results.json --video strike.mp4 --out strike_ds
      toolkit import pifpaf_out/ --images frames/ --out ds --format results
    """
    import inspect
    from pathlib import Path

    from toolkit import io

    given = {
        "labels": labels,
        "subject_regex": subject_regex,
        "stick_labels": stick_labels,
        "video": video,
        "images": images,
        "images_from": images_from,
        "kpt_values": None if kpt_values == "auto" else kpt_values,
        "skip_bad": skip_bad or None,
    }
    given = {k: v for k, v in given.items() if v is not None}
    name = io.detect_format(src) if fmt == "auto" else fmt
    reader = io.formats()[name].read
    accepted = set(inspect.signature(reader).parameters)
    unsupported = [k for k in given if k not in accepted]
    if unsupported:
        flags = ", ".join("--" + k.replace("_", "-") for k in unsupported)
        raise UsageError(
            f"{flags}: not used by the {name} format.\n"
            f"  Example: {_FORMAT_EXAMPLE.get(name, IMPORT_EXAMPLE)}"
        )
    for key in ("labels", "stick_labels", "video", "images", "images_from"):
        if key in given:
            given[key] = Path(given[key])
    result = io.import_dataset(
        src, out, format=name, overwrite=overwrite, taxonomy=taxonomy, **given
    )
    ds = result.dataset
    stances = ds.images["stance"].dropna().nunique()
    subjects = ds.images["subject"].dropna().nunique()
    click.echo(f"imported {src} ({name}) -> {out}")
    click.echo(
        f"  images: {len(ds.images)}   annotations: {len(ds)}   videos: {len(ds.videos)}"
        f"   stances: {stances}   subjects: {subjects}   skipped: {len(result.skipped)}"
    )
    for note in result.notes:
        click.echo(f"  note: {note}")
    if result.skipped:
        echo_err(
            f"  {len(result.skipped)} items skipped, e.g. {result.skipped[0].path}:"
            f"{result.skipped[0].line or ''} {result.skipped[0].reason}"
        )
    click.echo(f"  report: {Path(out) / 'import_report.json'}")


@click.command("export")
@click.argument("dataset", type=click.Path(path_type=str))
@click.option(
    "--format",
    "fmt",
    type=FormatChoice("write"),
    required=True,
    help="coco: one COCO keypoints JSON; yolo: an ultralytics pose dataset folder.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=str),
    help="coco: a .json file (or a folder for annotations.json); yolo: a folder.",
)
@click.option(
    "--keypoints",
    type=click.Choice(["19", "17"]),
    default="19",
    show_default=True,
    help="coco: 17 drops the stick, writing a COCO-17 import back exactly.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing --out.")
@cli_errors(example=_export_example)
def export_cmd(dataset: str, fmt: str, out: str, keypoints: str, overwrite: bool) -> None:
    """Export DATASET as COCO keypoints JSON or an ultralytics YOLO pose dataset.

    \b
    Examples:
      toolkit export ds --format coco --out ds_coco.json
      toolkit export ds --format coco --keypoints 17 --out coco17.json
      toolkit export ds --format yolo --out ds_yolo
    """
    import warnings

    from toolkit import io
    from toolkit.dataset import Dataset

    ds = Dataset.load(dataset)
    if fmt == "yolo" and len(ds):
        ds.require_media("toolkit export --format yolo (it copies the images)")
    opts: dict = {"overwrite": overwrite}
    if fmt == "coco":
        opts["keypoints"] = int(keypoints)
    elif keypoints != "19":
        raise UsageError(
            f"--keypoints 17 applies to --format coco only.\n  Example: {EXPORT_EXAMPLE}"
        )
    # The writers warn about fixable input (points clipped to the image); show it as a note,
    # not as Python's "path/to/module.py:123: UserWarning" line.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        written = io.write(ds, fmt, out, **opts)
    for w in caught:
        if issubclass(w.category, UserWarning):
            echo_err(f"  note: {w.message}")
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    click.echo(
        f"exported {dataset} ({len(ds.images)} images, {len(ds)} annotations) as {fmt} -> {written}"
    )
    if fmt == "coco":
        click.echo(f"  image file_names are relative to {ds.media_path().resolve()}")


@click.command("info")
@click.argument("dataset", type=click.Path(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@cli_errors(example=INFO_EXAMPLE)
def info_cmd(dataset: str, as_json: bool) -> None:
    """Summarise DATASET: counts per stance/subject/video, missing points, provenance, edits.

    \b
    Examples:
      toolkit info ds
      toolkit info ds --json | jq .missing_points
    """
    import orjson

    from toolkit.info import format_summary, info

    summary = info(dataset)
    if as_json:
        click.echo(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(format_summary(summary))
