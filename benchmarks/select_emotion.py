"""Choose the emotion model's hyper-parameters without touching the dev or test sets.

Protocol: the public *train* split is cut again (90 % fit / 10 % validation, fixed seed),
and the domain training examples in three folds: two are fitted, the third validates.
A candidate's score is the mean of public-validation and domain-fold macro-F1. The public
dev split and ``tests/data/emotion_domain.jsonl`` are never read here.

    python benchmarks/select_emotion.py                  # the candidates below
    python benchmarks/select_emotion.py 'C=2,balance=1'  # your own, comma-separated k=v

Figures from the run that chose the shipped model are in models/emotion/MODEL_CARD.md.
"""

from __future__ import annotations

import random
import sys

from agent_assist.datasets import domain_train, split_public
from agent_assist.evaluate import metrics
from agent_assist.phrasebook import Phrasebook
from agent_assist.train import _featurize, fit

CANDIDATES = [
    "C=1,balance=1,domain_weight=10,ngram_max=3",
    "C=1,balance=0.5,domain_weight=10,ngram_max=3",
    "C=4,balance=0.5,domain_weight=10,ngram_max=2",
    "C=1,balance=0.5,domain_weight=3,ngram_max=2",
    "C=1,balance=0.5,domain_weight=5,ngram_max=2",
    "C=1,balance=0.5,domain_weight=10,ngram_max=2",
    "C=1,balance=0.75,domain_weight=10,ngram_max=2",
    "C=1,balance=1,domain_weight=10,ngram_max=2",
]


def predict(vec, clf, rows, pb):
    from scipy import sparse

    norm, feats = _featurize(rows, pb)
    x = sparse.hstack([vec.transform(norm), sparse.csr_matrix(feats)]).tocsr()
    return list(clf.predict(x))


def parse(spec: str) -> dict:
    out = {}
    for part in spec.split(","):
        k, _, v = part.partition("=")
        out[k.strip()] = int(v) if k.strip() == "ngram_max" else float(v)
    return out


def main(argv: list[str]) -> int:
    pb = Phrasebook()
    train, _ = split_public()
    rng = random.Random(7)
    public = train[:]
    rng.shuffle(public)
    cut = len(public) // 10
    p_val, p_fit = public[:cut], public[cut:]
    domain = domain_train()
    rng.shuffle(domain)
    folds = [domain[i::3] for i in range(3)]
    d_fit, d_val = folds[0] + folds[1], folds[2]
    for spec in argv or CANDIDATES:
        params = parse(spec)
        vec, clf = fit(
            p_fit + d_fit,
            [False] * len(p_fit) + [True] * len(d_fit),
            pb=pb,
            c=params.get("C", 1.0),
            domain_weight=params.get("domain_weight", 10.0),
            max_features=int(params.get("max_features", 60000)),
            balance=params.get("balance", 0.5),
            ngram_max=params.get("ngram_max", 2),
        )
        pub = metrics([r.tier for r in p_val], predict(vec, clf, p_val, pb))["macro_f1"]
        dom = metrics([r.tier for r in d_val], predict(vec, clf, d_val, pb))["macro_f1"]
        print(f"{spec:<48} public-val {pub:.3f}  domain-fold {dom:.3f}  mean {(pub + dom) / 2:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
