"""``trainer score``: re-score a dataset with ONNX model(s), store predictions, write the queue."""

from __future__ import annotations

from pathlib import Path

import click

from toolkit.commands._engine import engine_options
from toolkit.commands.common import cli_errors, echo_err

EXAMPLE = "trainer score ds --model runs/geopose --out ds/queue.json"


@click.command("score")
@click.argument(
    "datasets",
    metavar="DATASET...",
    nargs=-1,
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
)
@click.option(
    "--model",
    "models",
    required=True,
    multiple=True,
    type=click.Path(path_type=Path),
    help="model.onnx (repeat for an ensemble of files) or a `trainer fit` run folder "
    "(its model.onnx, exported when absent).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="The review queue file to write (done flags of an existing one carry over); with "
    "several DATASETs, the folder that gets one queue per dataset (OUT/<dataset name>.json).",
)
@click.option(
    "--ensemble",
    is_flag=True,
    help="With a run folder: run every fold model separately (mean probability and "
    "the members' disagreement).",
)
@click.option(
    "--oof",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Out-of-fold probabilities for the label check (run folder or "
    "oof_probabilities.csv; repeat to average several runs). Default: the model's run.",
)
@click.option(
    "--ema-alpha",
    type=float,
    default=0.5,
    show_default=True,
    help="Video: weight of the newest frame in the moving average (1 = no smoothing).",
)
@click.option(
    "--min-kpt-conf",
    type=float,
    default=0.3,
    show_default=True,
    help="Video: frames whose mean keypoint confidence is lower are skipped.",
)
@click.option(
    "--hold",
    type=click.IntRange(0),
    default=5,
    show_default=True,
    help="Video: a skipped frame holds the last valid prediction this many frames.",
)
@click.option(
    "--batch",
    type=click.IntRange(1),
    default=256,
    show_default=True,
    help="onnxruntime batch size.",
)
@click.option(
    "--top", type=click.IntRange(1), default=None, help="Keep only the first K queue items."
)
@click.option(
    "--window",
    type=click.IntRange(0),
    default=15,
    show_default=True,
    help="Queue: one item per this many frames of a video (spread in time).",
)
@click.option(
    "--low-margin",
    type=click.FloatRange(0, 1),
    default=0.25,
    show_default=True,
    help="Queue low_confidence when the top-2 probability margin is below this.",
)
@click.option(
    "--threads", type=click.IntRange(1), default=2, show_default=True, help="onnxruntime threads."
)
@click.option("--no-save", is_flag=True, help="Do not store the predictions in the dataset.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@engine_options
@cli_errors(example=EXAMPLE)
def score_cmd(
    datasets: tuple[Path, ...],
    models: tuple[Path, ...],
    out: Path,
    ensemble: bool,
    oof: tuple[Path, ...],
    ema_alpha: float,
    min_kpt_conf: float,
    hold: int,
    batch: int,
    top: int | None,
    window: int,
    low_margin: float,
    threads: int,
    no_save: bool,
    quiet: bool,
    engine: str,
    workers: int | None,
    address: str | None,
) -> None:
    """Score every annotation of each DATASET and write the review queue --out.

    Predictions go into each annotation's `predictions` field (stance labels are untouched).
    The queue lists, ranked and spread out in time: likely label errors (confident learning on
    the run's out-of-fold probabilities), low-confidence frames (unlabelled first: worth
    labelling next), sticks whose predicted geometry disagrees with the annotation, and the
    findings of `toolkit validate` (DATASET/validation.json).

    Several DATASETs are independent tasks (one queue each, OUT/<name>.json); with --engine ray
    they run in parallel on a Ray cluster (docs/cluster.md), with the same results.

    \b
    Examples:
      trainer score ds --model runs/geopose --out ds/queue.json
      trainer score ds --model runs/geopose --ensemble --out q.json     # fold disagreement
      trainer score clip_ds --model model.onnx --ema-alpha 0.3 --hold 10 --out q.json
      trainer score day1 day2 day3 --model runs/geopose --out queues --engine ray
      viewer ds --queue ds/queue.json
    """
    from toolkit.engine import check_engine_options
    from trainer.score import ScoreOptions, score_dataset

    check_engine_options(engine, workers, address)
    opts = ScoreOptions(
        ema_alpha=ema_alpha,
        min_kpt_conf=min_kpt_conf,
        hold=hold,
        batch=batch,
        top=top,
        window=window,
        low_margin=low_margin,
        threads=threads,
        save=not no_save,
    )
    try:
        if len(datasets) == 1 and engine == "local":
            res = score_dataset(
                datasets[0],
                list(models),
                out,
                options=opts,
                ensemble=ensemble,
                oof=list(oof),
                progress=not quiet,
                echo=echo_err,
            )
        else:
            _score_many(datasets, models, out, opts, ensemble, oof, quiet, engine, workers, address)
            return
    except RuntimeError as exc:  # export parity failure, checkpoint that does not load
        raise click.ClickException(str(exc)) from None
    _report(res, datasets[0], out, no_save)


def _score_many(datasets, models, out, opts, ensemble, oof, quiet, engine, workers, address):
    """Several datasets (or one on Ray): one task each, one line per dataset."""
    from toolkit.engine import open_engine
    from trainer.score import queue_paths, score_many

    with open_engine(engine, workers, address) as eng:
        results = score_many(
            list(datasets),
            list(models),
            out,
            options=opts,
            ensemble=ensemble,
            oof=list(oof),
            engine=eng,
            progress=not quiet,
            echo=echo_err if len(datasets) > 1 else None,
        )
    if len(datasets) == 1:
        _report(results[0], datasets[0], out, not opts.save)
        return
    paths = queue_paths(list(datasets), out)
    n = sum(len(r.probs) for r in results)
    click.echo(f"scored {n} annotations in {len(results)} datasets with {engine} engine")
    for d, r, q in zip(datasets, results, paths, strict=True):
        click.echo(f"  {d}: {len(r.probs)} annotations, {len(r.queue)} queue items -> {q}")


def _report(res, dataset: Path, out: Path, no_save: bool) -> None:
    """The summary of one scored dataset."""
    q = res.queue
    n = len(res.probs)
    s = res.seconds
    click.echo(
        f"scored {n} annotations with {len(res.models)} model(s) in {s['inference']:.2f} s "
        f"({s['frames_per_second']:.0f} frames/s); video frames held {int(res.held.sum())},"
        f" gated {int(res.gated.sum())}"
    )
    if res.oof_source:
        click.echo(f"  label check: out-of-fold probabilities from {res.oof_source}")
    if not no_save:
        click.echo(f"  predictions stored in {dataset}/dataset.json (labels untouched)")
    counts = ", ".join(f"{k}: {v}" for k, v in q.counts().items()) or "nothing"
    click.echo(f"review queue: {len(q)} items ({counts}); {len(q.pending())} pending -> {out}")
    for it in q.items[:5]:
        where = f"{it.video}#{it.frame_index}" if it.video is not None else it.file_name
        d = it.details
        hint = (
            f"label {d.get('label')} -> {d.get('suggested')}"
            if it.reason == "label_disagreement"
            else d.get("code") or d.get("predicted") or ""
        )
        click.echo(f"  {it.rank:>3}. {it.reason:<18} {it.score:6.3f}  {where}  {hint}")
    click.echo(f"walk it: viewer {dataset} --queue {out}")
