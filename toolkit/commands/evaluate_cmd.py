"""``toolkit evaluate``: keypoint accuracy of one dataset against another."""

from __future__ import annotations

import click

from toolkit.commands.common import cli_errors

EXAMPLE = "toolkit evaluate labels_ds predicted_ds --json > eval.json"


@click.command("evaluate")
@click.argument("gt", type=click.Path(path_type=str))
@click.argument("pred", type=click.Path(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.option(
    "--pck",
    default=0.05,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True),
    help="PCK threshold as a fraction of the gt box's larger side (and of the torso).",
)
@click.option(
    "--keypoints",
    type=click.Choice(["auto", "all", "body"]),
    default="auto",
    show_default=True,
    help="auto: 19 points, or the 17 body points when neither dataset has a stick.",
)
@click.option(
    "--min-oks",
    default=0.1,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="People pair up for pixel error and PCK only at or above this OKS.",
)
@click.option(
    "--out",
    "out",
    default=None,
    type=click.Path(path_type=str),
    help="Also write the JSON report to this file.",
)
@cli_errors(example=EXAMPLE)
def evaluate_cmd(
    gt: str, pred: str, as_json: bool, pck: float, keypoints: str, min_oks: float, out: str | None
) -> None:
    """Compare PRED's keypoints against GT's: COCO OKS AP/AR, pixel error and PCK.

    GT and PRED are dataset directories; frames match by file_name (video frames by video and
    frame index). Use it to compare `trainer detector` runs, or two annotators.

    \b
    Examples:
      toolkit evaluate labels_ds predicted_ds
      toolkit evaluate labels_ds predicted_ds --json > eval.json
      toolkit evaluate annotator_a annotator_b --pck 0.1 --keypoints body --out agree.json
    """
    import orjson

    from toolkit.evaluate import evaluate, format_report

    rep = evaluate(gt, pred, pck=pck, keypoints=keypoints, min_oks=min_oks)
    data = orjson.dumps(rep, option=orjson.OPT_INDENT_2)
    if out:
        from toolkit.fileio import atomic_write_bytes

        atomic_write_bytes(out, data)
    click.echo(data.decode() if as_json else format_report(rep))
