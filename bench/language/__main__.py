"""Language stage benchmark.

    .venv/bin/python -m bench.language [--eval-dir ../shared/eval] [--part report|all]
                                       [--runs 3] [--baselines] [--json out.json]
                                       [--no-regional] [--nusax-only]

Scores the stage (``LanguageIdentifier`` as configured in config/pipeline.toml) on the lingua test
data: sentences, word pairs, single words, and documents of >= 500 characters built from sentences
of one language (``evaldata.build_documents``). ``--part report`` (default) is the held-out half of
the seeded split (``evaldata.split_lingua``): nothing in it was used to train or calibrate anything.
``--part all`` is the whole file (half of it was used for fitting: optimistic).

Printed per kind: accuracy (``und`` counts as wrong), coverage (share not ``und``), Indonesian and
Malay recall, id->ms and ms->id confusions, expected calibration error (15 equal-width bins, over
the best guess and its confidence, ``und`` included), confident-wrong count (wrong with confidence
>= 0.8), items/s (one process, one thread, median of ``--runs`` timed passes; wall clock and per
CPU-second of the process, the honest one-core figure on a loaded machine; before each pass the
discriminator's token cache is emptied and re-filled from the fit half). Then per-language
recall on sentences, the Indonesian NER dev sentences (real Indonesian: share kept Indonesian), the
seeds, and a mixed page (a seed with the English Akismet line inserted).

Regional languages of Indonesia (``nusax_report``; NusaX train+valid, 12 languages x 600 parallel
sentences): the stage *before* (regional classifier off) on every sentence, and *after* under 5-fold
cross-validation grouped by parallel sentence (``training.language_regional.cross_validate``: each
fold's sentences are identified by the whole stage with a classifier trained without that fold's
rows in any language; needs scikit-learn). Printed: id/en/jv/su accuracy, the share of the 8 other
regional languages' sentences not called Indonesian (nor Malay), named right, named right or ``und``,
per-language accuracy, ECE and confident-wrong count, and the confusion counts.
``--no-regional`` runs the whole benchmark with the classifier off (the figures before it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from pipeline import config  # noqa: E402
from pipeline.stages.language import LanguageStage  # noqa: E402
from training.language_data import (  # noqa: E402
    KINDS,
    Sample,
    build_documents,
    default_eval_dir,
    lingua_samples,
    ner_sentences,
    split_lingua,
)

ROOT = Path(__file__).resolve().parents[2]
AKISMET = "This site uses Akismet to reduce spam. Learn how your comment data is processed."
CONFIDENT = 0.8

Predictor = Callable[[str], tuple[str, float]]  # text -> (code, confidence)


def expected_calibration_error(confidences: list[float], correct: list[bool], bins: int = 15) -> float:
    total = len(confidences)
    if not total:
        return 0.0
    sums: dict[int, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for conf, ok in zip(confidences, correct, strict=True):
        b = min(int(conf * bins), bins - 1)
        sums[b][0] += 1
        sums[b][1] += conf
        sums[b][2] += 1.0 if ok else 0.0
    return sum(abs(s[1] - s[2]) for s in sums.values()) / total


def score(predict: Predictor, guess: Predictor, samples: list[Sample], runs: int,
          before_run: Callable[[], object] | None = None) -> dict:
    """``predict`` gives the answer (may be und); ``guess`` the best guess and its confidence;
    ``before_run`` (untimed) resets caches before each timed run."""
    texts = [s.text for s in samples]
    timings = []
    cpu_timings = []
    for _ in range(runs):
        if before_run is not None:
            before_run()
        started, cpu_started = time.perf_counter(), time.process_time()
        answers = [predict(t) for t in texts]
        timings.append(time.perf_counter() - started)
        cpu_timings.append(time.process_time() - cpu_started)
    guesses = [guess(t) for t in texts]
    correct = [a[0] == s.lang for a, s in zip(answers, samples, strict=True)]
    by_lang: dict[str, list[bool]] = defaultdict(list)
    for ok, s in zip(correct, samples, strict=True):
        by_lang[s.lang].append(ok)
    confusion = Counter((s.lang, a[0]) for a, s in zip(answers, samples, strict=True)
                        if s.lang in ("id", "ms") and a[0] in ("id", "ms") and a[0] != s.lang)
    guess_ok = [g[0] == s.lang for g, s in zip(guesses, samples, strict=True)]
    return {
        "n": len(samples),
        "accuracy": sum(correct) / len(samples),
        "coverage": sum(a[0] != "und" for a in answers) / len(samples),
        "id_recall": _mean(by_lang.get("id", [])),
        "ms_recall": _mean(by_lang.get("ms", [])),
        "id_as_ms": confusion[("id", "ms")],
        "ms_as_id": confusion[("ms", "id")],
        "ece": expected_calibration_error([g[1] for g in guesses], guess_ok),
        "confident_wrong": sum(1 for g, ok in zip(guesses, guess_ok, strict=True)
                               if g[1] >= CONFIDENT and not ok),
        "per_second": len(samples) / statistics.median(timings),
        "per_cpu_second": len(samples) / max(statistics.median(cpu_timings), 1e-9),
        "per_language": {lang: _mean(v) for lang, v in sorted(by_lang.items())},
    }


def _mean(values: list[bool]) -> float:
    return sum(values) / len(values) if values else float("nan")


# --- systems -----------------------------------------------------------------------------------

def stage_system(stage: LanguageStage) -> tuple[Predictor, Predictor]:
    identifier = stage.identifier

    def predict(text: str) -> tuple[str, float]:
        result = identifier.identify(text)
        return result.code, result.confidence

    def guess(text: str) -> tuple[str, float]:
        result = identifier.identify(text)
        return result.guess, result.confidence

    return predict, guess


def baseline_systems() -> dict[str, Predictor]:
    from pipeline.stages.language.detectors import (
        Cld2Detector,
        Cld3Detector,
        FastTextDetector,
        Py3LangidDetector,
    )

    systems: dict[str, Predictor] = {}
    for detector in (Cld2Detector(), FastTextDetector(), Cld3Detector(), Py3LangidDetector()):
        def predict(text: str, d=detector) -> tuple[str, float]:
            ballot = d.scores(" ".join(text.split()))
            if not ballot:
                return "und", 0.0
            code = max(ballot, key=ballot.get)
            return code, min(1.0, ballot[code])
        systems[detector.name] = predict
    try:
        from lingua import LanguageDetectorBuilder
    except ImportError:
        return systems
    lingua = LanguageDetectorBuilder.from_all_languages().with_low_accuracy_mode() \
        .with_preloaded_language_models().build()

    def lingua_predict(text: str) -> tuple[str, float]:
        values = lingua.compute_language_confidence_values(text)
        if not values:
            return "und", 0.0
        iso = values[0].language.iso_code_639_1
        return iso.name.lower(), float(values[0].value)

    systems["lingua-low (not a dependency)"] = lingua_predict
    return systems


def timed(work: Callable[[], object], n: int, runs: int,
          before_run: Callable[[], object] | None = None) -> tuple[float, float]:
    """(items per wall-clock second, items per CPU-second of this process), medians of ``runs``."""
    walls, cpus = [], []
    for _ in range(runs):
        if before_run is not None:
            before_run()
        started, cpu_started = time.perf_counter(), time.process_time()
        work()
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu_started)
    return n / statistics.median(walls), n / max(statistics.median(cpus), 1e-9)


TRADEOFF_THRESHOLDS = (0.03, 0.05, 0.08, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7)


def malay_threshold_tradeoff(stage: LanguageStage, sentences: list[Sample], ner: list[str]) -> list[dict]:
    """The sentence model's Malay threshold against Indonesian recall, Malay recall (lingua
    sentences of this part) and the share of real Indonesian (NER dev) sentences kept Indonesian.
    Texts of two or more segments are decided by the document model and do not move."""
    discriminator = stage.identifier.discriminator
    shipped = discriminator.ms_threshold
    group = [s for s in sentences if s.lang in ("id", "ms")]
    rows = []
    print("\nMalay threshold trade-off (sentence model; * = shipped):")
    print(f"  {'raw P(ms) >':>12} {'id recall':>9} {'ms recall':>9} {'NER id':>7}")
    try:
        for threshold in sorted({*TRADEOFF_THRESHOLDS, shipped}):
            discriminator.ms_threshold = threshold
            codes = [stage.identifier.identify(s.text).code for s in group]
            id_recall = _mean([c == "id" for c, s in zip(codes, group, strict=True) if s.lang == "id"])
            ms_recall = _mean([c == "ms" for c, s in zip(codes, group, strict=True) if s.lang == "ms"])
            ner_id = _mean([stage.identifier.identify(t).code == "id" for t in ner])
            rows.append({"threshold": threshold, "id_recall": id_recall, "ms_recall": ms_recall,
                         "ner_dev_id": ner_id, "shipped": threshold == shipped})
            print(f"  {threshold:>12.3f} {id_recall:>9.3f} {ms_recall:>9.3f} {ner_id:>7.3f}"
                  + (" *" if threshold == shipped else ""))
    finally:
        discriminator.ms_threshold = shipped
    return rows


# --- regional languages of Indonesia (NusaX) ---------------------------------------------------

MAIN_FOUR = ("id", "en", "jv", "su")
OTHER_REGIONAL = ("ace", "ban", "bbc", "bjn", "bug", "mad", "min", "nij")


def nusax_scores(samples: list, answers: list[tuple[str, str, float]]) -> dict:
    """``answers``: (code, best guess, confidence) per sample."""
    def share(pred, langs):
        chosen = [(s, a) for s, a in zip(samples, answers, strict=True) if s.lang in langs]
        return sum(1 for s, a in chosen if pred(s, a)) / len(chosen)

    per_language = {lang: share(lambda s, a: a[0] == s.lang, (lang,)) for lang in sorted({s.lang for s in samples})}
    guesses_ok = [a[1] == s.lang for s, a in zip(samples, answers, strict=True)]
    confusion: dict[str, dict[str, int]] = {}
    for s, a in zip(samples, answers, strict=True):
        confusion.setdefault(s.lang, Counter())[a[0]] += 1
    return {
        "id_en_jv_su_accuracy": share(lambda s, a: a[0] == s.lang, MAIN_FOUR),
        "regional_not_id": share(lambda s, a: a[0] != "id", OTHER_REGIONAL),
        "regional_not_id_ms": share(lambda s, a: a[0] not in ("id", "ms"), OTHER_REGIONAL),
        "regional_named": share(lambda s, a: a[0] == s.lang, OTHER_REGIONAL),
        "regional_named_or_und": share(lambda s, a: a[0] in (s.lang, "und"), OTHER_REGIONAL),
        "per_language": per_language,
        "ece": expected_calibration_error([a[2] for a in answers], guesses_ok),
        "confident_wrong": sum(1 for a, ok in zip(answers, guesses_ok, strict=True) if a[2] >= CONFIDENT and not ok),
        "confusion": {lang: dict(c.most_common()) for lang, c in sorted(confusion.items())},
    }


def print_nusax(title: str, r: dict) -> None:
    print(f"\n{title}")
    print(f"  id/en/jv/su accuracy {r['id_en_jv_su_accuracy']:.3f}; other regional (8 languages): not id "
          f"{r['regional_not_id']:.3f}, not id/ms {r['regional_not_id_ms']:.3f}, named right "
          f"{r['regional_named']:.3f}, named right or und {r['regional_named_or_und']:.3f}; ECE {r['ece']:.3f}, "
          f"confidently wrong {r['confident_wrong']}")
    print("  per language: " + "  ".join(f"{lang} {v:.3f}" for lang, v in r["per_language"].items()))
    print("  confusions (gold: answer count, ...):")
    for lang, counts in r["confusion"].items():
        print(f"    {lang:>4}: " + ", ".join(f"{code} {n}" for code, n in counts.items()))


def nusax_report(stage: LanguageStage, eval_dir: Path, shipped) -> dict:
    from training.language_data import NUSAX_FOLDS, nusax_samples

    identifier = stage.identifier
    samples = nusax_samples(eval_dir)

    def answers() -> list[tuple[str, str, float]]:
        out = []
        for s in samples_now:
            r = identifier.identify(s.text)
            out.append((r.code, r.guess, r.confidence))
        return out

    results = {}
    saved = identifier.regional
    shipped_discriminator = identifier.discriminator
    try:
        try:
            from training.language_regional import cross_validate, training_items
            # the discriminator trains on NusaX Indonesian: each fold is answered by one trained without it
            discriminators = [fold_discriminator(eval_dir, shipped_discriminator, k) for k in range(NUSAX_FOLDS)]
        except ImportError as exc:   # scikit-learn missing
            print(f"  (cross-validation skipped: {exc}; pip install -e '.[train]'; the discriminator's "
                  "NusaX Indonesian figures below are in sample)")
            discriminators = None
        identifier.regional = None
        before_answers: dict[int, tuple[str, str, float]] = {}
        started = time.process_time()
        for k in range(NUSAX_FOLDS) if discriminators else [None]:
            if k is not None:
                identifier.discriminator = discriminators[k]
            samples_now = [s for s in samples if k is None or s.fold == k]
            for s, a in zip(samples_now, answers(), strict=True):
                before_answers[id(s)] = a
        results["before"] = nusax_scores(samples, [before_answers[id(s)] for s in samples])
        before_cpu = time.process_time() - started
        print_nusax(f"NusaX ({len(samples)} sentences), BEFORE (regional classifier off; the Indonesian/Malay "
                    f"discriminator cross-validated as below); {len(samples) / before_cpu:,.0f} sentences per CPU-s",
                    results["before"])
        if discriminators is None:
            return results
        cv = cross_validate(training_items(eval_dir), lambda message: None)
        cv_answers: dict[int, tuple[str, str, float]] = {}
        cpu = 0.0
        for k in range(NUSAX_FOLDS):
            identifier.regional = cv.fold_model(k)
            identifier.discriminator = discriminators[k]
            samples_now = [s for s in samples if s.fold == k]
            started = time.process_time()
            for s, a in zip(samples_now, answers(), strict=True):
                cv_answers[id(s)] = a
            cpu += time.process_time() - started
        results["after_cv"] = nusax_scores(samples, [cv_answers[id(s)] for s in samples])
        print_nusax(f"NusaX, AFTER, {NUSAX_FOLDS}-fold cross-validation grouped by parallel sentence "
                    f"(held-out rows in all 12 languages); {len(samples) / cpu:,.0f} sentences per CPU-s",
                    results["after_cv"])
        if shipped is not None:
            identifier.regional = shipped
            identifier.discriminator = shipped_discriminator
            samples_now = samples
            results["after_shipped_in_sample"] = r = nusax_scores(samples, answers())
            print(f"  (shipped model, trained on all of NusaX, in sample: id/en/jv/su {r['id_en_jv_su_accuracy']:.3f}, "
                  f"regional named {r['regional_named']:.3f}: optimistic, not a result)")
    finally:
        identifier.regional = saved
        identifier.discriminator = shipped_discriminator
    return results


def fold_discriminator(eval_dir: Path, shipped, k: int):
    """The Indonesian/Malay discriminator trained as the shipped one (its C and NER weight, its
    document model) but without NusaX fold ``k``'s Indonesian sentences, which it trains on."""
    import gzip
    import json

    from pipeline.stages.language.identifier import DISCRIMINATOR_FILE, IsotonicMap, MalayDiscriminator
    from training.language import train_discriminator

    with gzip.open(DISCRIMINATOR_FILE, "rt", encoding="utf-8") as handle:
        trained = json.load(handle)["trained"]
    if not trained.get("nusax_sentences"):
        return shipped  # trained without NusaX: nothing to hold out
    data = train_discriminator(eval_dir, lambda message: None, exclude_nusax_fold=k,
                               settings=(trained["C"], trained["ner_weight"]), document=False)
    cal = data["calibration"]
    return MalayDiscriminator(data["weights"], data["bias"], IsotonicMap(cal["x"], cal["y"]),
                              data["ms_threshold"], shipped.document)


def regional_speed(stage: LanguageStage, regional, sets: dict[str, list[str] | None], eval_dir: Path,
                   runs: int, rewarm: Callable[[], object]) -> dict:
    """Items per CPU-second with the regional classifier off and on, in alternating passes of one
    process (the machine's load moves between runs; alternating keeps the comparison fair). Medians."""
    from training.language_data import nusax_samples

    identifier = stage.identifier
    out = {}
    print("\nspeed, regional classifier off vs on (alternating passes, median items per CPU-s):")
    for name, texts in sets.items():
        if texts is None:
            texts = [s.text for s in nusax_samples(eval_dir)]
        with_spans = name.startswith("documents")
        rates: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(runs):
            for on in (False, True):
                identifier.regional = regional if on else None
                rewarm()
                started = time.process_time()
                for text in texts:
                    if with_spans:
                        stage.spans(text, stage.identify(text)["code"])
                    else:
                        identifier.identify(text)
                rates[on].append(len(texts) / max(time.process_time() - started, 1e-9))
        identifier.regional = regional
        off, on = statistics.median(rates[False]), statistics.median(rates[True])
        out[name] = {"off": off, "on": on, "change": on / off - 1.0}
        print(f"  {name:<30} off {off:>8,.0f}  on {on:>8,.0f}  ({on / off - 1.0:+.0%})")
    return out


# --- report ------------------------------------------------------------------------------------

HEADER = (f"{'system':<30} {'kind':<13} {'n':>5} {'acc':>6} {'cover':>6} {'id':>6} {'ms':>6} "
          f"{'id>ms':>5} {'ms>id':>5} {'ECE':>6} {'conf.wrong':>10} {'items/s':>9} {'/cpu-s':>9}")


def row(system: str, kind: str, r: dict) -> str:
    return (f"{system:<30} {kind:<13} {r['n']:>5} {r['accuracy']:>6.3f} {r['coverage']:>6.3f} "
            f"{r['id_recall']:>6.3f} {r['ms_recall']:>6.3f} {r['id_as_ms']:>5} {r['ms_as_id']:>5} "
            f"{r['ece']:>6.3f} {r['confident_wrong']:>10} {r['per_second']:>9,.0f} {r['per_cpu_second']:>9,.0f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Language stage benchmark (lingua test data).")
    parser.add_argument("--eval-dir", type=Path, default=default_eval_dir())
    parser.add_argument("--part", choices=("report", "all"), default="report")
    parser.add_argument("--runs", type=int, default=3, help="timed passes per kind (median)")
    parser.add_argument("--baselines", action="store_true", help="also score the single detectors")
    parser.add_argument("--json", type=Path, help="write all figures here")
    parser.add_argument("--no-regional", action="store_true",
                        help="regional-language classifier off (the stage before it)")
    parser.add_argument("--nusax-only", action="store_true", help="only the NusaX regional-language report")
    args = parser.parse_args(argv)

    samples = lingua_samples(args.eval_dir)
    fit, report = split_lingua(samples)
    part = report if args.part == "report" else samples
    by_kind = {kind: [s for s in part if s.kind == kind] for kind in KINDS}
    by_kind["documents"] = build_documents(part)
    settings = config.load(ROOT / "config" / "pipeline.toml", env=os.environ).stages.language
    stage = LanguageStage(settings)
    shipped_regional = stage.identifier.regional
    if args.no_regional:
        stage.identifier.regional = None
    if args.nusax_only:
        results = nusax_report(stage, args.eval_dir, shipped_regional)
        if args.json:
            args.json.write_text(json.dumps({"nusax": results}, indent=1))
        return 0
    print(f"lingua {args.part} part: " + ", ".join(f"{k} {len(v)}" for k, v in by_kind.items())
          + f"; {args.runs} timed runs, median")
    results: dict[str, dict] = {}
    print(HEADER)
    predict, guess = stage_system(stage)
    warm_texts = [s.text for s in fit]

    def rewarm() -> None:
        """The discriminator caches per-token sums: before each timed run the cache is emptied and
        filled from the fit half only, so report texts' new words are paid for in every run."""
        stage.identifier.discriminator.clear_cache()
        if stage.identifier.regional is not None:
            stage.identifier.regional.clear_cache()
        for text in warm_texts:
            stage.identifier.vote(text)

    for kind, items in by_kind.items():
        results[f"stage/{kind}"] = r = score(predict, guess, items, args.runs, rewarm)
        print(row("stage", kind, r))
    if args.baselines:
        for name, predict_b in baseline_systems().items():
            for kind in ("sentences", "word-pairs", "single-words", "documents"):
                results[f"{name}/{kind}"] = r = score(predict_b, predict_b, by_kind[kind], args.runs)
                print(row(name, kind, r))

    print("\nstage, per-language recall on sentences:")
    per_language = results["stage/sentences"]["per_language"]
    print("  " + "  ".join(f"{lang} {v:.2f}" for lang, v in per_language.items()))

    # whole records through the stage (spans included): docs/s as the worker sees it
    docs = by_kind["documents"]
    rate, cpu_rate = timed(lambda: [stage.spans(d.text, stage.identify(d.text)["code"]) for d in docs],
                           len(docs), args.runs, rewarm)
    print(f"\nstage, documents with spans (identify + spans): {rate:,.0f} docs/s, {cpu_rate:,.0f} per CPU-s")

    # real Indonesian: the NER dev sentences (news, Wikipedia), alone and packed into documents
    ner = ner_sentences(args.eval_dir, "dev")
    ner_docs = build_documents([Sample(t, "id", "sentences") for t in ner])
    ner_codes = Counter(predict(t)[0] for t in ner)
    ner_doc_codes = Counter(predict(d.text)[0] for d in ner_docs)
    ner_rate, ner_cpu_rate = timed(lambda: [predict(t) for t in ner], len(ner), args.runs, rewarm)
    print(f"Indonesian NER dev sentences ({len(ner)}, real Indonesian news/Wikipedia): "
          f"id {ner_codes['id'] / len(ner):.3f}; " + ", ".join(f"{c} {n}" for c, n in ner_codes.most_common(6))
          + f"; {ner_rate:,.0f} sentences/s, {ner_cpu_rate:,.0f} per CPU-s")
    print(f"Indonesian NER dev documents ({len(ner_docs)}, >= 500 chars): id "
          f"{ner_doc_codes['id'] / len(ner_docs):.3f}; " + ", ".join(f"{c} {n}" for c, n in ner_doc_codes.most_common(4)))
    tradeoff = malay_threshold_tradeoff(stage, by_kind["sentences"], ner)
    speed = None
    if shipped_regional is not None and not args.no_regional:
        speed = regional_speed(stage, shipped_regional, {
            "lingua sentences": [s.text for s in by_kind["sentences"]], "NER dev sentences": ner,
            "NusaX sentences": None, "documents (identify + spans)": [d.text for d in docs]},
            args.eval_dir, max(args.runs, 3), rewarm)

    from pipeline.stages.clean.text_page import extract_text_page

    seeds = sorted((ROOT / "seeds").glob("*.txt"))
    print("seeds (after the clean stage's text-page extraction):")
    seed_texts = []
    for path in seeds:
        text = extract_text_page(path.read_text(encoding="utf-8")).text
        seed_texts.append(text)
        lang = stage.identify(text)
        spans = stage.spans(text, lang["code"])
        print(f"  {path.name}: {lang['code']} {lang['confidence']:.3f} reliable={lang['reliable']} "
              f"spans={[(s['start'], s['end'], s['code']) for s in spans]}")
    if seed_texts:
        lines = seed_texts[0].split("\n")
        lines.insert(len(lines) // 2, AKISMET)
        mixed = "\n".join(lines)
        lang = stage.identify(mixed)
        spans = stage.spans(mixed, lang["code"])
        print(f"  seed 0 + Akismet line at paragraph {len(lines) // 2}: page {lang['code']} "
              f"{lang['confidence']:.3f}; spans={[(s['start'], s['end'], s['code']) for s in spans]}")
    nusax = nusax_report(stage, args.eval_dir, shipped_regional) if not args.no_regional else None
    if args.json:
        args.json.write_text(json.dumps({"part": args.part, "results": results, "nusax": nusax,
                                         "docs_per_second_with_spans": rate,
                                         "docs_per_cpu_second_with_spans": cpu_rate,
                                         "ner_dev_id_share": ner_codes["id"] / len(ner),
                                         "ner_dev_document_id_share": ner_doc_codes["id"] / len(ner_docs),
                                         "malay_threshold_tradeoff": tradeoff, "regional_speed": speed},
                                        indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
