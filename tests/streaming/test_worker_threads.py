"""A stage worker runs its numeric libraries on one thread, whatever the environment asks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT

PROBE = """
import json, subprocess, sys
import numpy  # loaded before the worker pins: its OpenBLAS started with the environment's threads
from threadpoolctl import threadpool_info
before = [p["num_threads"] for p in threadpool_info()]
from pipeline.streaming.worker import one_numeric_thread
one_numeric_thread()
child = subprocess.run([sys.executable, "-c", "import numpy, json; from threadpoolctl import threadpool_info; "
                        "print(json.dumps([p['num_threads'] for p in threadpool_info()]))"],
                       capture_output=True, text=True, check=True).stdout
print(json.dumps({"before": before, "after": [p["num_threads"] for p in threadpool_info()],
                  "apis": [p["internal_api"] for p in threadpool_info()], "child": json.loads(child)}))
"""


def test_one_numeric_thread_in_the_worker_and_the_processes_it_starts():
    env = dict(os.environ, OPENBLAS_NUM_THREADS="2", OMP_NUM_THREADS="2", MKL_NUM_THREADS="2")
    out = json.loads(subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True,
                                    text=True, check=True, timeout=60).stdout)
    assert "openblas" in out["apis"] and max(out["before"]) == 2  # as the user asked, until the worker pins
    assert out["after"] == [1] * len(out["after"]) and out["child"] == [1] * len(out["child"])


FREEZE_PROBE = """
import gc, json
from pipeline import config
from pipeline.stages import freeze_loaded_objects
from pipeline.streaming.worker import build_processor
processor = build_processor(config.load(), "entities")
model = getattr(processor.stage, "inner", processor.stage).tagger.gazetteer
freeze_loaded_objects()
tracked = {id(o) for o in gc.get_objects()}
print(json.dumps({"frozen": gc.get_freeze_count(), "gazetteer_scanned": id(model) in tracked,
                  "tracked_after": len(tracked)}))
"""


def test_the_workers_loaded_models_are_kept_out_of_the_cyclic_collector():
    """A worker freezes what its stage loaded: a full collection no longer walks the entities
    stage's models and gazetteer (some 118,000 container objects) again and again."""
    out = json.loads(subprocess.run([sys.executable, "-c", FREEZE_PROBE], cwd=ROOT, capture_output=True,
                                    text=True, check=True, timeout=120).stdout)
    assert out["frozen"] > 50_000 and not out["gazetteer_scanned"]
    assert out["tracked_after"] < out["frozen"] / 10
