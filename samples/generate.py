"""Regenerate the committed synthetic sample set deterministically.

Usage::

    python -m samples.generate [--out samples/arnis]

Writes 8 subjects x 12 stances x 3 images and 4 videos of 120 frames (seed 0) through a staged
directory, so an interrupted run never leaves a half-written set.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from toolkit import synth
from toolkit.fileio import staged_dir

DEFAULT_OUT = Path(__file__).resolve().parent / "arnis"
#: The committed set's parameters (change them and regenerate, then commit the result).
COMMITTED = {
    "per_class": 3,
    "subjects": 8,
    "videos": 4,
    "frames_per_video": 120,
    "seed": 0,
    "image_size": 320,
}


def main(argv: list[str] | None = None) -> Path:
    """Regenerate the sample set (see the module docstring); returns its folder."""
    parser = argparse.ArgumentParser(
        prog="python -m samples.generate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="target directory (replaced; default: samples/arnis)",
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    with staged_dir(args.out, overwrite=True) as stage:
        synth.generate(stage, **COMMITTED)
    print(f"wrote {args.out} in {time.perf_counter() - start:.1f} s")
    return args.out


if __name__ == "__main__":
    main()
