"""Choose the emotion model's hyper-parameters without touching the dev or test sets.

Protocol: the public *train* split is cut again (90 % fit / 10 % validation, fixed seed),
and the domain training examples are used in 3 folds (2 to fit, 1 to validate). Each
candidate is scored by the mean of public-validation macro-F1 and domain-fold macro-F1.
The public dev split and ``tests/data/emotion_domain.jsonl`` are never read here.

    python benchmarks/select_emotion.py            # prints one line per candidate
"""

from __future__ import annotations

import itertools
import random
import sys

import numpy as np

from agent_assist.cues import feature_vector
from agent_assist.datasets import domain_train, split_public
from agent_assist.emotion_model import softmax
from agent_assist.evaluate import metrics
from agent_assist.phrasebook import TIERS, Phrasebook
from agent_assist.train import _featurize, fit


def predict(vec, clf, rows, pb):
    from scipy import sparse

    norm, feats = _featurize(rows, pb)
    x = sparse.hstack([vec.transform(norm), sparse.csr_matrix(feats)]).tocsr()
    return list(clf.predict(x))


def main() -> int:
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
    grid = list(itertools.product([float(c) for c in sys.argv[1].split(",")] if len(sys.argv) > 1 else [1.0, 4.0, 16.0],
                                  [1.0, 3.0, 10.0]))
    for c, dw in grid:
        pub, dom = [], []
        for k in range(3):
            d_fit = [r for j, f in enumerate(folds) if j != k for r in f]
            rows = p_fit + d_fit
            flags = [False] * len(p_fit) + [True] * len(d_fit)
            vec, clf = fit(rows, flags, pb=pb, c=c, domain_weight=dw, max_features=60000)
            if k == 0:
                pub.append(metrics([r.tier for r in p_val], predict(vec, clf, p_val, pb))["macro_f1"])
            dom.append(metrics([r.tier for r in folds[k]], predict(vec, clf, folds[k], pb))["macro_f1"])
        score = (np.mean(pub) + np.mean(dom)) / 2
        print(f"C={c:<5} domain_weight={dw:<5} public-val {np.mean(pub):.3f}  domain-cv {np.mean(dom):.3f}  mean {score:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
