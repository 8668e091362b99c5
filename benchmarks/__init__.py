"""Benchmarks: ``python -m benchmarks.run [names...] [--quick]`` (see ``benchmarks/run.py``)."""
