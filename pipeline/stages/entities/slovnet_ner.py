"""Russian NER by a pre-trained Slovnet model (``slovnet:<model>`` taggers): Natasha's news NER.

The weights are the ones the ``natasha`` wheel ships (MIT licence): ``slovnet_ner_news_v1.tar``, a
convolutional tagger with a CRF over PER/LOC/ORG (2.4 MB), and the Navec news word embeddings it reads
(``navec_news_v1_1B_250K_300d_100q.tar``, 26 MB: 250,000 words, product-quantised). They are read from
the installed wheel's data folder (found through the package's installed files); ``natasha`` itself is
never imported (nor its dependencies pymorphy2, yargy, ipymarkup), only ``slovnet`` (numpy inference, no
torch), ``navec`` and ``razdel`` (the tokeniser the model was trained with). Nothing is downloaded.

Offsets: the text is tokenised once by razdel, whose tokens carry their character offsets into the
text; the tokens are cut into sentence-sized pieces (line breaks, sentence ends but not after an
initial, so "В. Путин" stays whole; at most 120 tokens), the pieces are tagged in batches of similar
length, and each entity's span runs from its first token's start to its last token's end in the
original text. Tags are read as slovnet reads them (an I- tag with no entity open is outside any).

A model is loaded once per process (the first tagger that asks; later ones share it).
"""

from __future__ import annotations

import functools
import importlib.metadata
from pathlib import Path

from pipeline.stages.entities.rules import Mention
from pipeline.stages.entities.tokens import Token, split_at_ends

DATA_PACKAGE = "natasha"
# model name -> (tagger file, embeddings file), inside the data package's ``data`` folder
MODELS = {
    "ner_news_v1": ("model/slovnet_ner_news_v1.tar", "emb/navec_news_v1_1B_250K_300d_100q.tar"),
}
LABELS = frozenset({"PER", "LOC", "ORG"})  # the model's types, named as ours
BATCH_SIZE = 32  # pieces per forward pass (the CRF's Viterbi loops once per position of a batch)
MAX_PIECE_TOKENS = 120  # a longer sentence is cut (the convolutions see 3 tokens either side)
SENTENCE_ENDS = {".", "!", "?", "…", "...", "?!", "!?"}


def data_file(relative: str) -> Path:
    """A file of the data package's ``data`` folder, found through its installed files (not imported)."""
    dist = importlib.metadata.distribution(DATA_PACKAGE)  # PackageNotFoundError when not installed
    path = Path(str(dist.locate_file(f"{DATA_PACKAGE}/data/{relative}")))
    if not path.is_file():
        raise FileNotFoundError(f"{path} (not in {DATA_PACKAGE} {dist.version})")
    return path


@functools.lru_cache(maxsize=2)
def load(name: str) -> tuple[object, str]:
    """(the slovnet NER object with its embeddings, the data package's version); once per process."""
    if name not in MODELS:
        raise ValueError(f"unknown slovnet model {name!r} (known: {', '.join(sorted(MODELS))})")
    from navec import Navec  # only when configured
    from slovnet import NER

    model_file, embeddings_file = MODELS[name]
    ner = NER.load(str(data_file(model_file)), batch_size=BATCH_SIZE)
    ner.navec(Navec.load(str(data_file(embeddings_file))))  # keeps the quantised vectors, not the Navec object
    return ner, importlib.metadata.version(DATA_PACKAGE)


def tokenize(text: str) -> list[Token]:
    from razdel import tokenize as razdel_tokenize

    return [Token(t.text, t.start, t.stop) for t in razdel_tokenize(text)]


def pieces(text: str, tokens: list[Token]) -> list[list[Token]]:
    """Tokens cut into sentence-sized pieces: at line breaks; after a sentence end followed by a capital,
    unless a single letter stands before it ("В. Путин", "С. Лавров", "г. Москва" stay whole); and
    after MAX_PIECE_TOKENS tokens (short pieces batch with less padding)."""
    last = len(tokens) - 1

    def ends_after(i: int, current: list[Token]) -> bool:
        return len(current) >= MAX_PIECE_TOKENS or (
            tokens[i].text in SENTENCE_ENDS and i < last and tokens[i + 1].text[:1].isupper()
            and not (len(current) > 1 and len(current[-2].text) == 1 and current[-2].text.isalpha()))

    return split_at_ends(text, tokens, ends_after)


def bio_spans(tags: list[str]) -> list[tuple[int, int, str]]:
    """(first token, last token + 1, type) of each entity, read as slovnet reads its own tags: a B- tag
    opens an entity, I- tags continue the open one, an I- tag with none open is outside any entity."""
    out: list[tuple[int, int, str]] = []
    start, kind = -1, ""
    for i, tag in enumerate(tags):
        part, _, label = tag.partition("-")
        if part == "I":
            continue
        if kind:
            out.append((start, i, kind))
        start, kind = (i, label) if part == "B" else (-1, "")
    if kind:
        out.append((start, len(tags), kind))
    return out


class SlovnetNer:
    statistical = True
    lexicon_checked = False  # trained on Russian news
    common_words: frozenset[str] = frozenset()
    learnt = frozenset({"ru"})
    short_form_labels: frozenset[str] = frozenset()
    place_heads: frozenset[str] = frozenset()

    def __init__(self, model: str):
        self.ner, version = load(model)
        self.name = f"slovnet:{model}/{DATA_PACKAGE}-{version}"

    def tag_pieces(self, parts: list[list[Token]]) -> list[list[str]]:
        """The model's tags of each piece of text (tokens from ``tokenize``), in the order given."""
        order = sorted(range(len(parts)), key=lambda i: len(parts[i]))  # batches of similar length pad less
        infer = self.ner.infer
        words = [[t.text for t in parts[i]] for i in order]
        tags: list[list[str]] = [[] for _ in parts]
        for i, sent_tags in zip(order, infer.decoder(infer.process(infer.encoder(words))), strict=True):
            tags[i] = sent_tags
        return tags

    def tag(self, text: str, lang: str | None = None) -> list[Mention]:
        parts = pieces(text, tokenize(text))
        mentions = []
        for part, tags in zip(parts, self.tag_pieces(parts), strict=True):
            for first, last, label in bio_spans(tags):
                if label in LABELS:
                    start, end = part[first].start, part[last - 1].end
                    mentions.append(Mention(start, end, text[start:end], label, "", {}, "model"))
        return mentions
