"""Near-duplicate variants of real articles, as news feeds produce them, from a fixed seed.

Kinds:
- ``boilerplate``: the same headline and body inside another site's menus and footers
- ``truncated``: the body cut after 75-95 % of its words (a teaser, a paywall)
- ``paragraph_added``: a paragraph from another article inserted (an update, an editor's note)
- ``paragraph_dropped``: one paragraph left out
- ``new_headline``: the same body under another headline
- ``copy_edit``: light editing: a few words replaced, typos fixed or made, numbers changed
- ``reencoded``: the same text with quotes, dashes, ellipses and spaces in other code points

Hard negatives are not generated: they are the real articles themselves, among them different
articles on the same subject (``nearest_negatives`` finds, for each article, the other article
sharing most shingles); none of them may be marked a duplicate of another.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from bench.dedup.corpus import Article

KINDS = ("boilerplate", "truncated", "paragraph_added", "paragraph_dropped", "new_headline", "copy_edit",
         "reencoded")


@dataclass
class Variant:
    id: str
    kind: str
    original: str  # id of the article it was made from
    text: str


def _words_cut(text: str, keep: float) -> str:
    words = text.split(" ")
    return " ".join(words[: max(1, int(len(words) * keep))])


def make_variant(kind: str, article: Article, others: list[Article], rng: random.Random) -> str:
    paragraphs = list(article.paragraphs)
    if kind == "boilerplate":
        donor = rng.choice([o for o in others if o.boilerplate] or others)
        lines = donor.boilerplate or donor.paragraphs
        head = lines[: rng.randint(3, 15)]
        tail = lines[-rng.randint(3, 15):]
        return "\n".join([*head, article.title, *paragraphs, *tail])
    if kind == "truncated":
        body = "\n".join(paragraphs)
        return "\n".join([article.title, _words_cut(body, rng.uniform(0.75, 0.95))])
    if kind == "paragraph_added":
        donor = rng.choice(others)
        extra = rng.choice(donor.paragraphs)
        paragraphs.insert(rng.randint(0, len(paragraphs)), extra)
        return "\n".join([article.title, *paragraphs])
    if kind == "paragraph_dropped":
        del paragraphs[rng.randrange(len(paragraphs))]
        return "\n".join([article.title, *paragraphs])
    if kind == "new_headline":
        donor = rng.choice(others)
        return "\n".join([donor.title or "Breaking news", *paragraphs])
    if kind == "copy_edit":
        words = "\n".join(paragraphs).split(" ")
        for _ in range(max(1, len(words) // 40)):  # about 2.5 % of the words
            i = rng.randrange(len(words))
            w = words[i]
            roll = rng.random()
            if any(ch.isdigit() for ch in w):
                words[i] = "".join(str(rng.randint(0, 9)) if ch.isdigit() else ch for ch in w)
            elif roll < 0.4 and len(w) > 3:  # a typo made or fixed
                j = rng.randrange(len(w) - 1)
                words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:]
            elif roll < 0.7:
                words[i] = rng.choice(["the", "a", "this", "that", "its", "their", "new", "said"])
            else:
                words.insert(i, rng.choice(["also", "now", "still", "reportedly", "however,"]))
        return "\n".join([article.title, " ".join(words)])
    if kind == "reencoded":
        table = [('"', "\u201c"), ("'", "\u2019"), (" - ", " \u2014 "), ("...", "\u2026"), (" ", "\u00a0"),
                 ("\u201c", '"'), ("\u201d", '"'), ("\u2019", "'"), ("\u2014", "--"), ("\u2013", "-")]
        text = article.text
        for a, b in rng.sample(table, k=5):
            if a == " ":
                # only some spaces become no-break spaces
                parts = text.split(" ")
                text = "".join(p + (b if rng.random() < 0.1 else " ") for p in parts[:-1]) + parts[-1]
            else:
                text = text.replace(a, b)
        return text
    raise ValueError(kind)


def make_variants(articles: list[Article], per_article: int, seed: int) -> list[Variant]:
    rng = random.Random(seed)
    out = []
    for n, article in enumerate(articles):
        others = [articles[(n + k) % len(articles)] for k in rng.sample(range(1, len(articles)), 5)]
        for kind in rng.sample(KINDS, k=min(per_article, len(KINDS))):
            out.append(Variant(f"{article.id}~{kind}", kind, article.id,
                               make_variant(kind, article, others, rng)))
    return out
