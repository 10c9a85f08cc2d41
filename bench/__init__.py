"""Threadline benchmarks (GitHub issue 9): `python -m bench.run --help`."""
