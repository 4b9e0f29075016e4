"""The pipeline's speed against its compute bound: `python -m bench.pipeline` (see __main__)."""
