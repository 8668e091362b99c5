"""Run the benchmarks: ``python -m benchmarks.run [names...] [--quick]``.

Discovers ``benchmarks/bench_<name>.py``; each module's ``main(quick: bool = False) -> dict``
prints its own table (ours vs a straightforward reference, with the ratio) and returns a
JSON-able dict, written to ``benchmarks/results/<name>.json``; ``results/summary.json`` combines
every module run this time.
"""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
import time
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def discover() -> list[str]:
    """Names of the benchmark modules (``bench_io.py`` -> ``io``), sorted."""
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def run(names: list[str] | None = None, quick: bool = False, results_dir: Path = RESULTS) -> dict:
    """Run the named benchmarks (all when empty) and write their results.

    Returns:
        ``{name: result dict}`` (also written to ``results_dir/summary.json``).
    """
    available = discover()
    names = names or available
    unknown = [n for n in names if n not in available]
    if unknown:
        raise SystemExit(f"Expected benchmark names from {available}, but got {unknown}.")
    results_dir.mkdir(parents=True, exist_ok=True)
    summary: dict = {
        "quick": quick,
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "benchmarks": {},
    }
    for name in names:
        print(f"== bench_{name}{' (quick)' if quick else ''}", flush=True)
        module = importlib.import_module(f"benchmarks.bench_{name}")
        t0 = time.perf_counter()
        result = module.main(quick=quick)
        result = {
            "name": name,
            "quick": quick,
            "seconds": round(time.perf_counter() - t0, 2),
            **result,
        }
        (results_dir / f"{name}.json").write_bytes(
            orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
        )
        summary["benchmarks"][name] = result
    (results_dir / "summary.json").write_bytes(
        orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    )
    print(f"results: {results_dir}")
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default all: {discover()})")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    args = parser.parse_args(argv)
    run(args.names, quick=args.quick, results_dir=args.out)


if __name__ == "__main__":
    main()
