"""Benchmarks: quality and speed of the stages on third-party data (`python -m bench.<stage>`)."""
