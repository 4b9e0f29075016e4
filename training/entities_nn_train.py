"""Train the convolutional tagger that is ensembled with the CRF (see :mod:`neural`), in torch.

    taskset -c 1 .venv/bin/python -m training.entities_nn_train   # writes nn.npz + nn.json.gz

Needs the ``[train-nn]`` extra (torch). Same data recipe as the CRF (``entities.py``: idner-news-2k, NERGrit
and NERP train splits, NERP truecased); the dev splits are never read. ``--holdout F`` keeps a fraction
of each training set aside and prints its span F1 per epoch (to choose the number of epochs without
touching dev). One thread, fixed seeds, deterministic algorithms: the same command gives the same
weights. The weights are exported to numpy; the stage never imports torch.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from pipeline.stages.entities import gazetteer
from pipeline.stages.entities.crf import DEFAULT_MODEL, MODELS_DIR, build_extractor
from pipeline.stages.entities.features import shape
from training import entities_data as data
from training import entities_nn as neural
from training.entities import DEFAULT_EVAL_DIR, training_sentences


def build_vocab(sents: list[data.Sentence], extractor, min_word: int, min_char: int) -> dict:
    words, chars, shapes, gaz = Counter(), Counter(), Counter(), Counter()
    for s in sents:
        for tok in s.tokens:
            words[tok.lower()] += 1
            chars.update(tok[:neural.MAX_CHARS])
            shapes[shape(tok)] += 1
        gaz.update(g for g in neural.gazetteer_tags(s.tokens, [neural._fold(t) for t in s.tokens], extractor.gaz) if g)
    head = ["<pad>", "<unk>"]
    return {
        "words": head + sorted(w for w, c in words.items() if c >= min_word),
        "chars": head + sorted(c for c, n in chars.items() if n >= min_char),
        "shapes": head + sorted(s for s, c in shapes.items() if c >= 3),
        "gaz": head + sorted(gaz),
        # the CRF's word clusters as an input (first granularity): ids 2 .. 2 + the largest cluster
        "clusters": 3 + max((int(c[0]) for c in extractor.clusters.values()), default=-3),
    }


def main(argv: list[str] | None = None) -> int:
    import torch
    from torch import nn

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    ap.add_argument("--out", type=Path, default=MODELS_DIR / DEFAULT_MODEL)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--hidden", type=int, default=160)
    ap.add_argument("--word-dim", type=int, default=64)
    ap.add_argument("--char-dim", type=int, default=24)
    ap.add_argument("--char-filters", type=int, default=64)
    ap.add_argument("--dropout", type=float, default=0.5)
    ap.add_argument("--word-dropout", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--crf-weight", type=float, default=0.6,
                    help="weight of the CRF's marginals in the average with the network's probabilities")
    ap.add_argument("--holdout", type=float, default=0.0, help="fraction of each set kept aside and scored per epoch")
    args = ap.parse_args(argv)

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    rng = random.Random(args.seed)

    with gzip.open(args.out / "meta.json.gz", "rt", encoding="utf-8") as fh:
        crf_meta = json.load(fh)  # the CRF's recipe: same datasets, casing table, word frequencies
    datasets = tuple(crf_meta["domains"])
    base = crf_meta["base_domain"]
    extractor = build_extractor(crf_meta, gazetteer.load())
    cased = [s for name in datasets if name not in data.LOWERCASED_SETS for s in data.load(args.eval_dir, name, "train")]
    sents = training_sentences(args.eval_dir, datasets, data.casing_table(cased))
    held: list[data.Sentence] = []
    if args.holdout:
        train_part = []
        for name in datasets:
            group = [s for s in sents if s.source == name]
            k = int(len(group) * args.holdout)
            held += group[-k:]
            train_part += group[:-k]
        sents = train_part
    vocab = build_vocab(sents, extractor, min_word=2, min_char=2)
    voc = neural.Vocab(vocab)
    others = [d for d in datasets if d != base]

    def encode(s: data.Sentence) -> dict:
        enc = voc.encode(s.tokens, extractor)
        enc["chars"] = [voc.char_ids(t) for t in s.tokens]
        enc["tags"] = [neural.TAG_INDEX[t] for t in s.tags]
        enc["domain"] = s.source
        enc["tokens"] = s.tokens
        return enc

    encoded = [encode(s) for s in sents if s.tokens]
    held_enc = [encode(s) for s in held if s.tokens]

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.word_emb = nn.Embedding(len(vocab["words"]), args.word_dim, padding_idx=0)
            self.char_emb = nn.Embedding(len(vocab["chars"]), args.char_dim, padding_idx=0)
            self.char_conv = nn.Conv1d(args.char_dim, args.char_filters, 3)
            self.shape_emb = nn.Embedding(len(vocab["shapes"]), 12, padding_idx=0)
            self.gaz_emb = nn.Embedding(len(vocab["gaz"]), 12, padding_idx=0)
            d_in = args.word_dim + args.char_filters + 12 + 12 + neural.N_DENSE
            if vocab["clusters"]:
                self.cluster_emb = nn.Embedding(vocab["clusters"], 16, padding_idx=0)
                d_in += 16
            self.drop = nn.Dropout(args.dropout)
            self.proj = nn.Linear(d_in, args.hidden)
            self.convs = nn.ModuleList(nn.Conv1d(args.hidden, args.hidden, 3, dilation=d, padding=d)
                                       for d in neural.DILATIONS)
            self.out = nn.Linear(args.hidden, len(neural.TAGS))
            self.out_dom = nn.ModuleDict({d: nn.Linear(args.hidden, len(neural.TAGS)) for d in others})

        def forward(self, words, chars, char_len, shapes, gaz, dense, clusters, mask, domains):
            b, t, lc = chars.shape
            ce = self.char_emb(chars.view(b * t, lc)).transpose(1, 2)  # (bt, ce, L)
            cc = torch.relu(self.char_conv(ce))  # (bt, f, L-2)
            valid = (torch.arange(lc - 2)[None, :] < (char_len.view(-1, 1) - 2)).float()
            cvec = (cc * valid[:, None, :]).max(dim=2).values.view(b, t, -1)
            parts = [self.word_emb(words), cvec, self.shape_emb(shapes), self.gaz_emb(gaz), dense]
            if vocab["clusters"]:
                parts.append(self.cluster_emb(clusters))
            x = torch.cat(parts, dim=2)
            m = mask.unsqueeze(2)
            h = self.proj(self.drop(x)) * m
            for conv in self.convs:
                h = h + torch.relu(conv(self.drop(h).transpose(1, 2)).transpose(1, 2)) * m
            scores = self.out(self.drop(h))
            extra = torch.zeros_like(scores)
            for d, layer in self.out_dom.items():
                sel = torch.tensor([dom == d for dom in domains], dtype=torch.float32)[:, None, None]
                if sel.any():
                    extra = extra + sel * layer(self.drop(h))
            return scores + extra

    def batchify(items, train: bool):
        b = len(items)
        t = max(len(e["words"]) for e in items)
        lc = max(3, max(len(c) for e in items for c in e["chars"]))
        words = torch.zeros(b, t, dtype=torch.long)
        chars = torch.zeros(b, t, lc, dtype=torch.long)
        char_len = torch.full((b, t), 3, dtype=torch.long)
        shapes = torch.zeros(b, t, dtype=torch.long)
        gz = torch.zeros(b, t, dtype=torch.long)
        dense = torch.zeros(b, t, neural.N_DENSE)
        mask = torch.zeros(b, t)
        cl = torch.zeros(b, t, dtype=torch.long)
        tags = torch.full((b, t), -100, dtype=torch.long)
        for i, e in enumerate(items):
            n = len(e["words"])
            w = torch.tensor(e["words"])
            if train and args.word_dropout:
                drop = torch.rand(n) < args.word_dropout
                w = torch.where(drop, torch.full_like(w, neural.UNK), w)
            words[i, :n] = w
            for j, c in enumerate(e["chars"]):
                chars[i, j, :len(c)] = torch.tensor(c, dtype=torch.long)
                char_len[i, j] = max(3, len(c))
            shapes[i, :n] = torch.tensor(e["shapes"])
            gz[i, :n] = torch.tensor(e["gaz"])
            dense[i, :n] = torch.from_numpy(e["dense"])
            mask[i, :n] = 1
            if "clusters" in e:
                cl[i, :n] = torch.from_numpy(e["clusters"])
            tags[i, :n] = torch.tensor(e["tags"])
        return (words, chars, char_len, shapes, gz, dense, cl, mask, [e["domain"] for e in items]), tags

    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    steps_per_epoch = (len(encoded) + args.batch - 1) // args.batch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: max(0.05, 1 - step / (args.epochs * steps_per_epoch)))
    loss_fn = nn.CrossEntropyLoss(ignore_index=-100)

    def evaluate(items) -> dict[str, float]:
        net.eval()
        scores = {d: data.Score.empty() for d in datasets}
        with torch.no_grad():
            for k in range(0, len(items), 64):
                chunk = items[k:k + 64]
                inputs, _ = batchify(chunk, False)
                probs = torch.softmax(net(*inputs), dim=2).numpy()
                for i, e in enumerate(chunk):
                    pred = neural.viterbi(probs[i, :len(e["words"])])
                    scores[e["domain"]].add(data.spans([neural.TAGS[t] for t in e["tags"]]), data.spans(pred))
        net.train()
        return {d: round(s.prf()[2], 4) for d, s in scores.items()}

    t0 = time.time()
    for epoch in range(args.epochs):
        order = list(range(len(encoded)))
        rng.shuffle(order)
        total = 0.0
        for k in range(0, len(order), args.batch):
            inputs, tags = batchify([encoded[i] for i in order[k:k + args.batch]], True)
            scores = net(*inputs)
            loss = loss_fn(scores.reshape(-1, len(neural.TAGS)), tags.reshape(-1))
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            sched.step()
            total += float(loss.detach())
        line = f"epoch {epoch + 1} loss {total / steps_per_epoch:.4f} {time.time() - t0:.0f}s"
        if held_enc:
            line += f" holdout F1 {evaluate(held_enc)}"
        print(line, flush=True)

    if args.holdout:
        return 0
    sd = {k: v.detach().numpy() for k, v in net.state_dict().items()}

    def conv_w(w: np.ndarray) -> np.ndarray:  # torch (out, in, 3) -> numpy (3 * in, out)
        return np.concatenate([w[:, :, k].T for k in range(3)], axis=0)

    weights = {
        "word_emb": sd["word_emb.weight"], "char_emb": sd["char_emb.weight"],
        "char_conv_w": conv_w(sd["char_conv.weight"]), "char_conv_b": sd["char_conv.bias"],
        "shape_emb": sd["shape_emb.weight"], "gaz_emb": sd["gaz_emb.weight"],
        "proj_w": sd["proj.weight"].T, "proj_b": sd["proj.bias"],
        "out_w": sd["out.weight"].T, "out_b": sd["out.bias"],
    }
    for k in range(len(neural.DILATIONS)):
        weights[f"conv{k}_w"] = conv_w(sd[f"convs.{k}.weight"])
        weights[f"conv{k}_b"] = sd[f"convs.{k}.bias"]
    if vocab["clusters"]:
        weights["cluster_emb"] = sd["cluster_emb.weight"]
    for d in others:
        weights[f"out_{d}_w"] = sd[f"out_dom.{d}.weight"].T
        weights[f"out_{d}_b"] = sd[f"out_dom.{d}.bias"]
    weights = {k: np.ascontiguousarray(v, dtype=np.float16) for k, v in weights.items()}
    np.savez_compressed(args.out / "nn.npz", **weights)
    meta = {
        "kind": "convolutional tagger (word + char-CNN + shape + gazetteer inputs, 3 dilated conv layers)",
        "domains": list(datasets), "base_domain": base, "vocab": vocab, "crf_weight": args.crf_weight,
        "params": {k: v for k, v in vars(args).items() if k not in ("eval_dir", "out")},
        "command": "python -m training.entities_nn_train " + " ".join(argv if argv is not None else sys.argv[1:]),
        "sentences": len(encoded), "train_seconds": round(time.time() - t0),
    }
    with gzip.GzipFile(args.out / "nn.json.gz", "wb", mtime=0) as fh:
        fh.write(json.dumps(meta, ensure_ascii=False, sort_keys=True).encode("utf-8"))
    # the numpy inference must give what torch gives (up to the float16 export)
    check = neural.ConvTagger(args.out, extractor)
    sample = encoded[:64]
    net.eval()
    with torch.no_grad():
        inputs, _ = batchify(sample, False)
        ref = torch.softmax(net(*inputs), dim=2).numpy()
    diff = 0.0
    for d in datasets:
        idx = [i for i, e in enumerate(sample) if e["domain"] == d]
        got = check.probs_many([sample[i]["tokens"] for i in idx], d) if idx else []
        for i, p in zip(idx, got, strict=True):
            diff = max(diff, float(np.abs(p - ref[i, :len(p)]).max()))
    print(f"numpy vs torch: max probability difference {diff:.4f} on {len(sample)} sentences")
    if diff > 0.05:
        raise SystemExit("numpy inference does not match the torch model")
    print(f"wrote {args.out}/nn.npz ({(args.out / 'nn.npz').stat().st_size / 1e6:.1f} MB) in {meta['train_seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
