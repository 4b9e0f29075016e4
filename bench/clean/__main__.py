"""Quality and speed of the clean stage on third-party gold data.

    .venv/bin/python -m bench.clean                         # both sets, HTML and text mode
    .venv/bin/python -m bench.clean --mode html --set aeb --limit 50
    .venv/bin/python -m bench.clean --mode text --runs 5    # median docs/s over 5 timed passes

For every set and mode it prints precision, recall, F1 (each set's own metric, see
``bench.clean.metrics``) and docs/s, for our clean stage and for the baselines:

* HTML: ``stage`` = ``CleanStage.run`` on ``{"html": ...}`` events, exactly as a worker calls it
  (trafilatura in one child process with the per-page time limit, then our post-processing);
  ``trafilatura`` = ``trafilatura.extract`` alone, in-process, with trafilatura's own benchmark
  settings; ``rs-trafilatura`` (the Rust port, only when it is installed) alone, in-process.
* Text mode: ``stage`` = ``CleanStage.run`` on ``{"text": ...}`` events, with a line classifier that
  never saw the page it scores (see ``--protocol``; training needs ``pip install -e '.[train]'``);
  ``keep_all`` and ``line_rule`` (>= 12 words ending in sentence punctuation) as baselines.

One core: unless ``--cpu -1`` the benchmark pins itself, and so every child process it starts, to
one CPU (``sched_setaffinity``), so docs/s is what one core gives; the HTML stage's wall time
includes handing each page to the child process and back, as in a worker. The machine is shared,
so it also prints docs per CPU-second (CPU time of the benchmark process and the stage's child
over the pass): what one core gives when nobody else uses it.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.clean.metrics import score_set
from bench.clean.stage import HTML_FILES, ROOT, TEXT_FILES, StageExtractor, has_rs_trafilatura, read_rows

SETS = ("aeb", "trafilatura")

# trafilatura's settings in its own benchmark (and in the text-mode scorer's reference ceiling)
TRAFILATURA_OPTIONS = dict(fast=False, include_comments=False, include_tables=True, include_formatting=False)


def trafilatura_alone(row: dict) -> str:
    import trafilatura

    return trafilatura.extract(row["html"], **TRAFILATURA_OPTIONS) or ""


def rs_trafilatura_alone(row: dict) -> str:
    """rs-trafilatura (a Rust port of trafilatura; not a dependency: built from source when wanted,
    see README.md), with its own defaults (page type from its classifier) and tables as above."""
    import rs_trafilatura

    try:
        return rs_trafilatura.extract(row["html"], url=row.get("url"), include_tables=True,
                                      include_comments=False).main_content or ""
    except ValueError:  # "Extraction failed": nothing extracted
        return ""


def text_lines(text: str) -> list[str]:
    return [line.strip() for line in text.split("\n") if line.strip()]


def keep_all(row: dict) -> str:
    return "\n".join(text_lines(row["text"]))


def line_rule(row: dict) -> str:
    return "\n".join(line for line in text_lines(row["text"])
                     if len(line.split()) >= 12 and line.rstrip("\"'”’»)]›").endswith(tuple(".!?…。！？")))


# --- running -------------------------------------------------------------------------------------

def cpu_seconds() -> float:
    """CPU time (user + system) of this process and every live descendant (the stage's child)."""
    import psutil

    me = psutil.Process()
    total = 0.0
    for proc in [me, *me.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def timed_pass(extract: Callable[[dict], str], rows: list[dict]) -> tuple[list[str], float, float]:
    """Outputs, wall seconds inside the extractor, CPU seconds of the whole pass (all processes)."""
    from pipeline.stages.clean.line_model import clear_line_cache

    clear_line_cache()  # every pass starts cold: repeats within the set count, repeats of a pass do not
    outputs, spent = [], 0.0
    cpu0 = cpu_seconds()
    for row in rows:
        t0 = time.perf_counter()
        out = extract(row)
        spent += time.perf_counter() - t0
        outputs.append(out or "")
    return outputs, spent, cpu_seconds() - cpu0


def measure(name: str, kind: str, extract: Callable[[dict], str], rows: list[dict], runs: int,
            dump: Path | None, mode: str) -> dict:
    extract(rows[0])  # warm-up: imports, the child process, the model
    outputs, spent, cpu = timed_pass(extract, rows)
    rates, cpu_rates = [len(rows) / spent], [len(rows) / cpu if cpu > 0 else float("inf")]
    for _ in range(runs - 1):
        _, spent, cpu = timed_pass(extract, rows)
        rates.append(len(rows) / spent)
        cpu_rates.append(len(rows) / cpu if cpu > 0 else float("inf"))
    result = {"set": kind, "mode": mode, "method": name, "docs": len(rows), **score_set(kind, rows, outputs),
              "docs_per_s": statistics.median(rates), "docs_per_s_runs": [round(r, 1) for r in rates],
              "docs_per_cpu_s": statistics.median(cpu_rates)}
    dead = getattr(extract, "dead_letters", None)
    if dead:
        result["dead_letters"] = dict(dead)
    counts = f"  tp={result['tp']} fp={result['fp']} fn={result['fn']}" if kind == "trafilatura" else ""
    print(f"{mode:<5} {kind:<12} {name:<18} P={result['precision']:.3f} R={result['recall']:.3f} "
          f"F1={result['f1']:.3f}{counts}  {result['docs_per_s']:.1f} docs/s "
          f"(median of {runs}: {', '.join(f'{r:.1f}' for r in rates)}; per CPU-second: "
          f"{result['docs_per_cpu_s']:.1f})"
          + (f"  dead letters: {dead}" if dead else ""), flush=True)
    if dump:
        dump.mkdir(parents=True, exist_ok=True)
        with gzip.open(dump / f"{mode}.{kind}.{name}.jsonl.gz", "wt", encoding="utf-8") as f:
            for row, out in zip(rows, outputs, strict=True):
                f.write(json.dumps({"id": row["id"], "url": row.get("url"), "output": out}, ensure_ascii=False)
                        + "\n")
    return result


_CV_MODELS: dict = {}


def held_out_extractor(kind: str, eval_dir: Path, protocol: str) -> StageExtractor:
    """The text-mode stage with a line classifier that never saw the page it scores:
    'cross-set': trained on the other set only; 'cv': trained on the other folds of both sets;
    'packaged': the shipped model (trained on both sets: training scores, not honest ones)."""
    if protocol == "packaged":
        return StageExtractor("text")
    from training import clean as train

    if protocol == "cv":
        if not _CV_MODELS:
            _CV_MODELS.update(train.cross_validation_classifiers(eval_dir))
        return StageExtractor("text", classifier_of=lambda row: _CV_MODELS[(kind, str(row["id"]))])
    other = [s for s in SETS if s != kind]
    print(f"text  {kind:<12} training a line classifier on {', '.join(other)} only ...", file=sys.stderr, flush=True)
    return StageExtractor("text", train.train_classifier(train.load_training_pages(eval_dir, other)))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.clean", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", nargs="+", choices=SETS, default=list(SETS), dest="sets")
    ap.add_argument("--mode", nargs="+", choices=("html", "text"), default=["html", "text"])
    ap.add_argument("--limit", type=int, help="first N pages of each set")
    ap.add_argument("--runs", type=int, default=3, help="timed passes; docs/s is their median (default 3)")
    ap.add_argument("--eval-dir", type=Path, default=ROOT.parent / "shared" / "eval")
    ap.add_argument("--cpu", type=int, default=None,
                    help="pin to this CPU (default: the last one allowed); -1 = no pinning")
    ap.add_argument("--no-baselines", action="store_true", help="only our stage")
    ap.add_argument("--protocol", choices=("cv", "cross-set", "packaged"), default="cv",
                    help="text mode: 'cv' (default): 5-fold cross-validation by page over both sets, each page "
                         "scored by a classifier trained on the other folds; 'cross-set': each set scored by a "
                         "classifier trained on the other set only; 'packaged': the model shipped in the "
                         "package (trained on both sets: training scores, for speed runs)")
    ap.add_argument("--dump", type=Path, help="write each method's outputs to DIR/<mode>.<set>.<method>.jsonl.gz")
    ap.add_argument("--json", type=Path, help="write the results as JSON")
    ap.add_argument("--metadata", action="store_true",
                    help="title / date / author against bench/clean/metadata_gold.jsonl (AEB pages) instead of "
                         "the main text; text mode uses the packaged line model")
    ap.add_argument("--split", nargs="+", choices=("dev", "test", "all"), default=["dev", "test", "all"],
                    help="--metadata: which halves of the gold set to report (default: all three rows)")
    args = ap.parse_args(argv)

    if not args.eval_dir.is_dir():
        ap.error(f"evaluation data not found: {args.eval_dir} (give --eval-dir)")
    if args.cpu != -1 and hasattr(os, "sched_setaffinity"):
        cpu = args.cpu if args.cpu is not None else max(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})  # inherited by the stage's child process
        print(f"pinned to CPU {cpu}: one core for this process and its children", file=sys.stderr)

    if args.metadata:
        from bench.clean import metadata_bench

        results = metadata_bench.run(args.eval_dir, args.mode, args.split, not args.no_baselines, args.dump,
                                     args.limit)
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
        return

    results = []
    for mode in args.mode:
        for kind in args.sets:
            path = args.eval_dir / (HTML_FILES if mode == "html" else TEXT_FILES)[kind]
            rows = read_rows(path, args.limit)
            methods: list[tuple[str, Callable[[dict], str]]] = []
            if mode == "html":
                methods.append(("stage", StageExtractor("html")))
                if not args.no_baselines:
                    methods.append(("trafilatura", trafilatura_alone))
                    if has_rs_trafilatura():
                        methods.append(("rs-trafilatura", rs_trafilatura_alone))
            else:
                methods.append((f"stage[{args.protocol}]", held_out_extractor(kind, args.eval_dir, args.protocol)))
                if not args.no_baselines:
                    methods += [("keep_all", keep_all), ("line_rule", line_rule)]
            for name, extract in methods:
                results.append(measure(name, kind, extract, rows, args.runs, args.dump, mode))
                if hasattr(extract, "close"):
                    extract.close()
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
