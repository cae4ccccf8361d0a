"""Benchmarks: `python -m minwave.bench generate` (sampling speed) and `python -m minwave.bench train`.

Each subcommand lives in its own module (generate.py, train.py) with a `main(argv) -> int`; __main__.py
only dispatches. Results and the machines they were measured on: docs/benchmarks.md.
"""
