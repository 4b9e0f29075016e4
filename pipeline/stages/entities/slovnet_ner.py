"""Russian NER by a pre-trained Slovnet model (``slovnet:<model>`` taggers): Natasha's news NER.

The weights are the ones the ``natasha`` wheel ships (MIT licence): ``slovnet_ner_news_v1.tar``, a
convolutional tagger with a CRF over PER/LOC/ORG (2.4 MB), and the Navec news word embeddings it reads
(``navec_news_v1_1B_250K_300d_100q.tar``, 26 MB: 250,000 words, product-quantised). They are read from
the installed wheel's data folder (found through the package's installed files); ``natasha`` itself is
never imported (nor its dependencies pymorphy2, yargy, ipymarkup), only ``slovnet`` (numpy inference, no
torch), ``navec`` and ``razdel`` (the tokeniser the model was trained with). Nothing is downloaded.

Offsets: the text is tokenised once by razdel, whose tokens carry their character offsets into the
text; the tokens are cut into pieces at line breaks (and a line of more than 200 tokens after a
sentence end: not at every full stop, so "В. Путин" stays whole), the pieces are tagged in batches of
similar length, and each entity's span runs from its first token's start to its last token's end in
the original text. Tags are read as slovnet reads them (an I- tag with no entity open is outside any).

A model is loaded once per process (the first tagger that asks; later ones share it).
"""

from __future__ import annotations

import functools
import importlib.metadata
from pathlib import Path

from pipeline.stages.entities.rules import Mention
from pipeline.stages.entities.tokens import Token

DATA_PACKAGE = "natasha"
# model name -> (tagger file, embeddings file), inside the data package's ``data`` folder
MODELS = {
    "ner_news_v1": ("model/slovnet_ner_news_v1.tar", "emb/navec_news_v1_1B_250K_300d_100q.tar"),
}
LABELS = {"PER": "PER", "LOC": "LOC", "ORG": "ORG"}
BATCH_SIZE = 32  # pieces per forward pass (the CRF's Viterbi loops once per position of a batch)
MAX_PIECE_TOKENS = 200  # a longer line is cut (memory; the convolutions see 3 tokens either side)
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
    """Tokens cut at line breaks, and a line longer than MAX_PIECE_TOKENS after its last sentence end in
    the window (else at the window's end). Not at every full stop: "В. Путин", "С. Лавров" stay whole."""
    out: list[list[Token]] = []
    current: list[Token] = []
    for tok in tokens:
        if current and text.find("\n", current[-1].end, tok.start) >= 0:
            out.append(current)
            current = []
        current.append(tok)
        if len(current) >= MAX_PIECE_TOKENS:
            cut = max((i for i in range(len(current) - 1, len(current) // 2, -1) if current[i].text in SENTENCE_ENDS),
                      default=len(current) - 1)
            out.append(current[: cut + 1])
            current = current[cut + 1:]
    if current:
        out.append(current)
    return out


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
    common_words: frozenset[str] = frozenset()

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
                    mentions.append(Mention(start, end, text[start:end], LABELS[label], "", {}, "model"))
        return mentions
