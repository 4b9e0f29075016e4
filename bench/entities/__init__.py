"""Benchmark of the entities stage: ``python -m bench.entities`` (see README.md here)."""
