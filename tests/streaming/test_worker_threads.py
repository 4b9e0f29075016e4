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
