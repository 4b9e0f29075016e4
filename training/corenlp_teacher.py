"""Stanford CoreNLP's pre-trained CRF NER models as a teacher (issue 19: distillation into ``en-news-crf``).

CoreNLP (GPL-3.0-or-later) is fetched by ``scripts/corenlp-fetch`` into ``.cache/corenlp/libs`` and runs as
a separate Java process: one long-lived ``edu.stanford.nlp.ie.crf.CRFClassifier -readStdin`` per model,
fed one line of whitespace-separated tokens per request (``WhitespaceTokenizer``: the tokens are ours, so
each tag belongs to a known token) and read back as ``token<TAB>tag`` lines. Nothing of CoreNLP is
imported or shipped; its labels (PERSON/ORGANIZATION/LOCATION, IO: an entity is a run of one label) are
mapped to PER/ORG/LOC, everything else (MISC, DATE, MONEY, ...) to O. Its CRF decoding is deterministic.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from training import entities_data as data

ROOT = Path(__file__).resolve().parents[1]
LIBS = ROOT / ".cache" / "corenlp" / "libs"
MODELS = {
    "3class": "edu/stanford/nlp/models/ner/english.all.3class.distsim.crf.ser.gz",
    "4class": "edu/stanford/nlp/models/ner/english.conll.4class.distsim.crf.ser.gz",
    "7class": "edu/stanford/nlp/models/ner/english.muc.7class.distsim.crf.ser.gz",
    "german": "edu/stanford/nlp/models/ner/german.distsim.crf.ser.gz",
}
ENGLISH_MODELS = ("3class", "4class", "7class")
LABELS = {"PERSON": "PER", "I-PER": "PER", "B-PER": "PER", "ORGANIZATION": "ORG", "I-ORG": "ORG",
          "B-ORG": "ORG", "LOCATION": "LOC", "I-LOC": "LOC", "B-LOC": "LOC"}
SILVER = "silver-corenlp"  # the set name prefix of teacher-labelled sentences


def installed(libs: Path = LIBS) -> bool:
    return any(libs.glob("stanford-corenlp-*.jar"))


class CoreNlpCrf:
    """One CoreNLP CRFClassifier in a Java child process, tagging token lines read from its stdin."""

    def __init__(self, model: str, libs: Path = LIBS, heap: str = "1g"):
        if not installed(libs):
            raise FileNotFoundError(f"no CoreNLP jars in {libs} (scripts/corenlp-fetch)")
        self.name = model
        self.proc = subprocess.Popen(
            ["java", f"-Xmx{heap}", "-Dfile.encoding=UTF-8", "-cp", f"{libs}/*",
             "edu.stanford.nlp.ie.crf.CRFClassifier", "-loadClassifier", MODELS.get(model, model), "-readStdin",
             "-tokenizerFactory", "edu.stanford.nlp.process.WhitespaceTokenizer",
             "-tokenizerOptions", "tokenizeNLs=false", "-outputFormat", "tsv",
             "-inputEncoding", "UTF-8", "-outputEncoding", "UTF-8"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, encoding="utf-8", bufsize=1)
        self.tag_tokens(["Ready", "."])  # returns once the model is loaded

    def tag_tokens(self, words: list[str]) -> list[str]:
        """One label per word (PER/ORG/LOC or O); several sentences may share the line."""
        if not words:
            return []
        if any(not w or w != "".join(w.split()) for w in words):
            raise ValueError("CoreNLP teacher: a token is empty or holds white space")
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(" ".join(words) + "\n")
        self.proc.stdin.flush()
        labels: list[str] = []
        while len(labels) < len(words):
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"CoreNLP ({self.name}) ended")
            if line.strip():
                word, _, tag = line.rstrip("\n").rpartition("\t")
                if word != words[len(labels)]:
                    raise RuntimeError(f"CoreNLP returned {word!r} for {words[len(labels)]!r}")
                labels.append(LABELS.get(tag, "O"))
        if self.proc.stdout.readline().strip():  # the blank line after the last sentence
            raise RuntimeError("CoreNLP: more output than tokens")
        return labels

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the Java process has used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)

    def __enter__(self) -> CoreNlpCrf:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def io_spans(labels: list[str]) -> set[tuple[int, int, str]]:
    """Entities of IO labels: each run of one label, as (first token, end token, label)."""
    found, start = set(), None
    for i, label in enumerate([*labels, "O"]):
        if start is not None and label != labels[start]:
            found.add((start, i, labels[start]))
            start = None
        if start is None and label != "O":
            start = i
    return found


def iob2(labels: list[str]) -> list[str]:
    tags = ["O"] * len(labels)
    for a, b, label in io_spans(labels):
        tags[a:b] = [f"B-{label}"] + [f"I-{label}"] * (b - a - 1)
    return tags


def silver(model: str, documents: list[list[list[str]]], lang: str, with_entities_only: bool = False,
           min_tokens: int = 4, max_tokens: int = 60) -> list[data.Sentence]:
    """Teacher-labelled sentences: CoreNLP ``model`` tags each document (its tokenised sentences) on one line,
    so its document features see the whole article; each sentence of ``min_tokens``-``max_tokens`` tokens
    is kept with its tags in IOB2 (``with_entities_only``: only those with an entity)."""
    out = []
    with CoreNlpCrf(model) as teacher:
        for d, doc in enumerate(documents):
            labels = teacher.tag_tokens([w for sent in doc for w in sent])
            pos = 0
            for i, toks in enumerate(doc):
                tags, pos = iob2(labels[pos:pos + len(toks)]), pos + len(toks)
                if not min_tokens <= len(toks) <= max_tokens:
                    continue
                if with_entities_only and all(t == "O" for t in tags):
                    continue
                out.append(data.Sentence(f"silver-{d}-{i}", toks, tags, f"{SILVER}.{lang}"))
    return out
