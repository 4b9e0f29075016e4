"""Builds the German lexicon of the entities stage (``pipeline/stages/entities/lexicons/de.tsv.gz``).

    .venv/bin/python -m training.lexicons

Source: LanguageTool's German part-of-speech dictionary (``de.danielnaber:german-pos-dict`` 1.2.4 on Maven
Central, CC BY-SA 4.0, based on Morphy), a morfologik automaton of about five million (form, lemma, tag)
entries. Maven fetches it with the morfologik reader (``scripts/lexicons/pom.xml``) into ``.cache``; a
ten-line Java program (``scripts/lexicons/DumpDictionary.java``) prints the entries; this module keeps
what the stage needs, one line per form with its classes (``nouns.py``):

* ``N``: a common noun (tag ``SUB``);
* ``F``: a closed-class word, lower-case (pronouns, articles, prepositions, conjunctions, adverbs:
  "Sie", "Dabei" at a sentence's start are not names);
* ``P``: a person's name (``EIG`` of kind ``VOR`` first name or ``NAC`` surname), ``V`` also for first
  names; ``L``: a place (``EIG`` of kind ``COU``, ``STD``, ``GEB``, ``WAT``, ``MOU``, ``GEO``); ``O``: any
  other proper name (companies, brands).

Adjective, verb and participle forms (3.7 million) are left out. The output is sorted and gzipped with
no timestamp: two runs give the same bytes.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "scripts" / "lexicons"
CACHE = ROOT / ".cache" / "lexicons"
OUT = ROOT / "pipeline" / "stages" / "entities" / "lexicons" / "de.tsv.gz"
DICTIONARY = "/org/languagetool/resource/de/german.dict"
CLOSED = ("PRO", "ART", "PRP", "KON", "ADV", "NEG", "INJ", "ZUS", "ZAL")
PERSON_KINDS = {"VOR": "PV", "NAC": "P"}
PLACE_KINDS = {"COU", "STD", "GEB", "WAT", "MOU", "GEO"}
ORDER = "NFPVLO"


def fetch() -> Path:
    """The jars in ``.cache/lexicons/libs`` (Maven, once per pom)."""
    libs = CACHE / "libs"
    stamp = CACHE / ".stamp"
    want = hashlib.sha256((SOURCES / "pom.xml").read_bytes()).hexdigest()
    if stamp.is_file() and stamp.read_text() == want and any(libs.glob("*.jar")):
        return libs
    if shutil.which("mvn") is None or shutil.which("javac") is None:
        sys.exit("training.lexicons: needs Java 17 and Maven (apt-get install openjdk-17-jdk-headless maven)")
    shutil.rmtree(libs, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mvn", "-q", "-B", "-f", str(SOURCES / "pom.xml"), f"-Dmaven.repo.local={ROOT / '.cache' / 'm2'}",
                    "dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={libs}"], check=True)
    stamp.write_text(want)
    return libs


def entries(libs: Path):
    """(form, lemma, tag) of every entry of the dictionary."""
    classes = CACHE / "classes"
    classes.mkdir(parents=True, exist_ok=True)
    classpath = ":".join(str(p) for p in sorted(libs.glob("*.jar")))
    subprocess.run(["javac", "-d", str(classes), "-cp", classpath, str(SOURCES / "DumpDictionary.java")], check=True)
    proc = subprocess.Popen(["java", "-cp", f"{classpath}:{classes}", "DumpDictionary", DICTIONARY],
                            stdout=subprocess.PIPE, text=True, encoding="utf-8")
    assert proc.stdout is not None
    for line in proc.stdout:
        parts = line.rstrip("\n").split("\t")
        if len(parts) == 3:
            yield parts[0], parts[1], parts[2].split(" ", 1)[0]
    if proc.wait() != 0:
        sys.exit(f"training.lexicons: DumpDictionary exited {proc.returncode}")


def classes_of(rows) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for form, _lemma, tag in rows:
        if form.startswith("#") or not form:
            continue
        fields = tag.split(":")
        kind = fields[0]
        if kind == "SUB":
            out[form].add("N")
        elif kind in CLOSED:
            out[form.lower()].add("F")
        elif kind == "EIG":
            sub = fields[-1].rstrip("*#")
            if sub in PERSON_KINDS:
                out[form].update(PERSON_KINDS[sub])
            elif sub in PLACE_KINDS:
                out[form].add("L")
            else:
                out[form].add("O")
    return out


def write(classes: dict[str, set[str]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = "".join(f"{form}\t{''.join(c for c in ORDER if c in kinds)}\n" for form, kinds in sorted(classes.items()))
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0, filename="") as fh:
        fh.write(lines.encode("utf-8"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    classes = classes_of(entries(fetch()))
    write(classes, args.out)
    counts = defaultdict(int)
    for kinds in classes.values():
        for c in kinds:
            counts[c] += 1
    print(f"{args.out}: {len(classes)} forms ({', '.join(f'{c} {counts[c]}' for c in ORDER)}), "
          f"{args.out.stat().st_size / 1000:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
