"""Benchmarks: `.venv/bin/python -m bench.<stage>`."""
