"""Title, date and author quality of the clean stage on the hand-annotated AEB pages.

    .venv/bin/python -m bench.clean --metadata                 # HTML (stage, trafilatura alone) and text
    .venv/bin/python -m bench.clean --metadata --mode text --split test

Gold: ``metadata_gold.jsonl`` (181 pages, annotated by reading each page, see README), split into a
``dev`` half (looked at while writing rules) and a ``test`` half (not looked at); rows are printed
for each half and for all pages.

Metrics (after normalisation: Unicode NFKC, typographic quotes/dashes/ellipsis to ASCII, whitespace
collapsed, case folded; HTML entities are *not* decoded, a title that keeps ``&amp;`` is wrong):

* title exact: the normalised title equals the gold headline (or an alternative the annotator
  accepted, ``title_also``);
* date same day: the first 10 characters (the local day of an ISO date-time) equal the gold day or an
  accepted alternative (``date_also``: mostly the UTC day of a late-evening American time); pages
  without a gold date are not counted, a date returned for them counts as ``spurious``;
* author any: on pages with a gold byline, at least one returned name equals a gold author;
* author exact set: the returned names equal the gold names as a set, on every page (no byline in
  gold means none must be returned).

Error kinds are counted per field so a change shows which failure it fixed.
"""

from __future__ import annotations

import html
import json
import re
import time
import unicodedata
from collections import Counter
from collections.abc import Callable
from pathlib import Path

GOLD = Path(__file__).with_name("metadata_gold.jsonl")
_TRANS = str.maketrans({"‘": "'", "’": "'", "‚": "'", "‛": "'", "“": '"', "”": '"', "„": '"', "«": '"',
                        "»": '"', "–": "-", "—": "-", "‐": "-", "‑": "-", "…": "...", "\u00a0": " "})
_ENTITY = re.compile(r"&(?:[a-zA-Z]{2,8}|#\d{2,6}|#x[0-9a-fA-F]{2,5});")
_SEPARATORS = re.compile(r"\s[|\-:»·•/]\s|\s-\s")


def norm(text: str | None) -> str:
    if not text:
        return ""
    text = unicodedata.normalize("NFKC", text).translate(_TRANS)
    return re.sub(r"\s+", " ", text).strip().casefold()


def load_gold(path: Path = GOLD) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# --- per-field verdicts ----------------------------------------------------------------------------

def title_verdict(pred: str | None, gold: dict) -> str:
    """'ok' or the kind of error."""
    wanted = {norm(gold["title"]), *(norm(t) for t in gold.get("title_also", []))}
    got = norm(pred)
    if got in wanted:
        return "ok"
    if not got:
        return "missing"
    if _ENTITY.search(pred or "") and norm(html.unescape(pred)) in wanted:
        return "html_entity"
    for want in wanted:
        if want and want in got and len(got) > len(want):
            return "site_name_left" if _SEPARATORS.search(got.replace(want, " | ", 1)) or \
                got.startswith(want) or got.endswith(want) else "longer"
        if got and got in want:
            return "truncated"
    if _ENTITY.search(pred or ""):
        return "html_entity"
    return "other_headline"


def date_verdict(pred: str | None, gold: dict) -> str | None:
    """'ok', an error kind, or None when the page has no gold date and none was returned."""
    if not gold.get("date"):
        return "spurious" if pred else None
    if not pred:
        return "missing"
    day = pred[:10]
    if day in {gold["date"], *gold.get("date_also", [])}:
        return "ok"
    try:
        from datetime import date

        gap = abs((date.fromisoformat(day) - date.fromisoformat(gold["date"])).days)
    except ValueError:
        return "unparsable"
    return "off_by_one_day" if gap == 1 else "wrong_day"


def author_verdicts(pred: list[str], gold: dict) -> tuple[str | None, str]:
    """(any-verdict on pages with a gold byline or None, exact-set verdict); verdicts are 'ok' or a kind."""
    want = [norm(a) for a in gold.get("authors", [])]
    got = [norm(a) for a in pred or [] if norm(a)]
    exact = "ok" if set(got) == set(want) else _author_kind(got, want)
    if not want:
        return None, exact
    return ("ok" if set(got) & set(want) else _author_kind(got, want)), exact


def _author_kind(got: list[str], want: list[str]) -> str:
    if not got:
        return "missing"
    if not want:
        return "non_person_or_spurious"   # a publisher, a desk, an agency, a site account ...
    if "".join(sorted(re.sub(r"\W", "", g) for g in got)) == "".join(sorted(re.sub(r"\W", "", w) for w in want)) \
            or any(sum(w in g for w in want) > 1 for g in got):
        return "bad_split"
    if set(got) & set(want):
        # some right, some wrong
        extra = [g for g in got if g not in want]
        if any(w in g for g in extra for w in want):
            return "extra_text"
        return "extra_names" if extra else "missing_names"
    if any(w in g for g in got for w in want):
        return "extra_text"                # initials, credentials, "- Staff Writer", ", Cleveland.com"
    if any(g in w for g in got for w in want):
        return "partial_name"
    return "wrong_name"


# --- running ---------------------------------------------------------------------------------------

def score(preds: dict[str, dict], gold: list[dict]) -> dict:
    """preds: id -> {title, authors, published}."""
    counts: dict[str, Counter] = {k: Counter() for k in ("title", "date", "author_any", "author_exact")}
    for g in gold:
        p = preds.get(g["id"], {})
        counts["title"][title_verdict(p.get("title"), g)] += 1
        d = date_verdict(p.get("published"), g)
        if d:
            counts["date"][d] += 1
        a_any, a_exact = author_verdicts(p.get("authors") or [], g)
        if a_any:
            counts["author_any"][a_any] += 1
        counts["author_exact"][a_exact] += 1

    def rate(c: Counter, exclude: tuple[str, ...] = ()) -> float:
        n = sum(v for k, v in c.items() if k not in exclude)
        return c["ok"] / n if n else float("nan")

    return {"docs": len(gold),
            "title_exact": rate(counts["title"]),
            "date_same_day": rate(counts["date"], exclude=("spurious",)),
            "author_any": rate(counts["author_any"]),
            "author_exact_set": rate(counts["author_exact"]),
            "errors": {k: {kind: n for kind, n in sorted(c.items()) if kind != "ok"} for k, c in counts.items()}}


def predict_all(method: Callable[[dict], dict], rows: list[dict]) -> tuple[dict[str, dict], float]:
    method(rows[0])  # warm-up
    out, spent = {}, 0.0
    for row in rows:
        t0 = time.perf_counter()
        out[row["id"]] = method(row)
        spent += time.perf_counter() - t0
    return out, len(rows) / spent if spent else float("inf")


def trafilatura_metadata(row: dict) -> dict:
    import trafilatura

    doc = trafilatura.bare_extraction(row["html"], url=row.get("url"), with_metadata=True, include_comments=False,
                                      include_tables=True, include_formatting=False)
    if doc is None:
        return {}
    authors = [a.strip() for a in (doc.author or "").split(";") if a.strip()]
    return {"title": doc.title, "authors": authors, "published": doc.date}


def rs_trafilatura_metadata(row: dict) -> dict:
    """rs-trafilatura's own metadata (only when it is installed; see README.md)."""
    import rs_trafilatura

    try:
        doc = rs_trafilatura.extract(row["html"], url=row.get("url"), include_tables=True, include_comments=False)
    except ValueError:
        return {}
    authors = [a.strip() for a in re.split(r";|,| and ", doc.author or "") if a.strip()]
    return {"title": doc.title, "authors": authors, "published": doc.date}


class StageMetadata:
    """The clean stage's record fields, called as a worker calls it."""

    def __init__(self, body_field: str):
        from bench.clean.stage import StageExtractor

        self.inner = StageExtractor(body_field)

    def __call__(self, row: dict) -> dict:
        from bench.clean.stage import FETCHED_AT
        from pipeline.records import BadInput

        event = {"id": str(row["id"]), "url": row.get("url"), "fetched_at": FETCHED_AT,
                 self.inner.body_field: row[self.inner.body_field]}
        try:
            rec = self.inner.stage.run(event, self.inner.ctx)
        except BadInput:
            return {}
        return {"title": rec.get("title"), "authors": rec.get("authors") or [], "published": rec.get("published")}

    def close(self) -> None:
        self.inner.close()


def run(eval_dir: Path, modes: list[str], splits: list[str], baselines: bool, dump: Path | None,
        limit: int | None = None) -> list[dict]:
    from bench.clean.stage import HTML_FILES, TEXT_FILES, has_rs_trafilatura, read_rows

    gold = load_gold()
    gold_ids = {g["id"] for g in gold}
    results = []
    for mode in modes:
        rows = [r for r in read_rows(eval_dir / (HTML_FILES if mode == "html" else TEXT_FILES)["aeb"], None)
                if r["id"] in gold_ids]
        if limit:
            rows = rows[:limit]
        ids = {r["id"] for r in rows}
        methods: list[tuple[str, Callable[[dict], dict]]] = [("stage", StageMetadata(mode))]
        if mode == "html" and baselines:
            methods.append(("trafilatura", trafilatura_metadata))
            if has_rs_trafilatura():
                methods.append(("rs-trafilatura", rs_trafilatura_metadata))
        for name, method in methods:
            preds, rate = predict_all(method, rows)
            if hasattr(method, "close"):
                method.close()
            if dump:
                dump.mkdir(parents=True, exist_ok=True)
                (dump / f"metadata.{mode}.{name}.json").write_text(json.dumps(preds, ensure_ascii=False, indent=0))
            for split in splits:
                part = [g for g in gold if g["id"] in ids and (split == "all" or g["split"] == split)]
                res = {"mode": mode, "method": name, "split": split, "docs_per_s": rate, **score(preds, part)}
                results.append(res)
                print(f"{mode:<5} {name:<12} {split:<5} n={res['docs']:<4} title={res['title_exact']:.3f} "
                      f"date={res['date_same_day']:.3f} author_any={res['author_any']:.3f} "
                      f"author_set={res['author_exact_set']:.3f}  ({rate:.1f} docs/s)", flush=True)
                for field, kinds in res["errors"].items():
                    if kinds:
                        print(f"{'':<25}{field:<13} " + ", ".join(f"{k}={v}" for k, v in kinds.items()))
    return results
