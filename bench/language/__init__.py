"""Language stage benchmark: `.venv/bin/python -m bench.language`."""
