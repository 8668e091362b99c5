"""``toolkit validate``: the anatomical-validity QA report, with an exit code for CI."""

from __future__ import annotations

import click

from toolkit.commands.common import cli_errors

EXAMPLE = "toolkit validate ds --report qa --fail-on error"


@click.command("validate")
@click.argument("dataset", type=click.Path(path_type=str))
@click.option(
    "--report",
    "report_dir",
    type=click.Path(path_type=str),
    default=None,
    help="Write report files into this folder (all formats unless --format is given).",
)
@click.option(
    "--format",
    "formats",
    type=click.Choice(["text", "json", "csv", "html"]),
    multiple=True,
    help="Output format (repeatable). Without --report: printed to stdout (json: the "
    "document {summary, findings}).",
)
@click.option(
    "--fail-on",
    type=click.Choice(["error", "warning", "never"]),
    default="error",
    show_default=True,
    help="Exit with code 1 when a finding reaches this severity.",
)
@click.option("--no-vae", is_flag=True, help="Skip the learned-plausibility (beta-VAE) check.")
@click.option(
    "--no-images",
    is_flag=True,
    help="Do not read images / video frames (skips stick.image_mismatch).",
)
@click.option(
    "--no-store",
    is_flag=True,
    help="Do not store the findings as DATASET/validation.json for the viewer.",
)
@cli_errors(example=EXAMPLE)
def validate_cmd(
    dataset: str,
    report_dir: str | None,
    formats: tuple[str, ...],
    fail_on: str,
    no_vae: bool,
    no_images: bool,
    no_store: bool,
) -> None:
    """Check DATASET (structure, anatomy, stick, temporal, plausibility) and report findings.

    Every finding has a reason code (e.g. stick.too_long), a severity that says how sure it is,
    the image or video frame, the keypoints, the measured value and the threshold, and for stick
    findings a proposed fix (stored in DATASET/validation.json; the viewer applies it with
    Enter). Thresholds are calibrated on DATASET itself. Exit code 1 when a finding reaches
    --fail-on, so it can gate a data set in CI.

    \b
    Examples:
      toolkit validate work/ds                              # terminal summary
      toolkit validate work/ds --report qa --format html    # self-contained HTML with plots
      toolkit validate work/ds --format json > findings.json
      toolkit validate work/ds --fail-on warning            # exit 1 on any warning (CI gate)
      toolkit validate work/ds --no-images --no-vae         # geometry and time only, fast
    """
    import sys
    from pathlib import Path

    from toolkit import report as rep
    from toolkit.validate import ValidateOptions, validate_dir

    report, ds = validate_dir(
        dataset, ValidateOptions(use_vae=not no_vae, use_images=not no_images)
    )
    if not no_store and Path(dataset).is_dir():
        rep.write_findings_file(report, dataset)
    if report_dir:
        written = rep.write_report(report, report_dir, formats or rep.FORMATS, ds)
        click.echo(rep.text_summary(report, fail_on), err=bool(formats and "text" not in formats))
        click.echo("report: " + ", ".join(str(p) for p in written), err=True)
    else:
        fmts = formats or ("text",)
        for fmt in fmts:
            if fmt == "text":
                click.echo(rep.text_summary(report, fail_on))
            elif fmt == "json":
                sys.stdout.write(rep.to_json_bytes(report).decode() + "\n")
            elif fmt == "csv":
                sys.stdout.write(rep.to_csv_text(report))
            else:
                sys.stdout.write(rep.to_html(report, ds))
        if "text" not in fmts:
            sev = report.summary["by_severity"]
            click.echo(
                f"{report.summary['n_findings']} findings ({sev['error']} errors, "
                f"{sev['warning']} warnings); --fail-on {fail_on}: "
                f"{'FAIL' if report.fails(fail_on) else 'ok'}",
                err=True,
            )
    if report.fails(fail_on):
        sys.exit(1)
