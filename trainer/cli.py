"""``trainer`` placeholder until the trainer issue lands."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Stance classifier training (coming in the trainer issue)."""
