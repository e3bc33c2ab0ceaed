"""Rebuild the models: ``python -m agent_assist.train emotion`` (below) and
``python -m agent_assist.train minefields`` (see :mod:`agent_assist.train_minefields`).

Needs the ``[train]`` extra (scikit-learn) and the public data (``shared/data`` or
``$AGENT_ASSIST_DATA``). Deterministic: the same data and phrasebook give the same bytes.

Training rows are the public train split (tiers calm/panic/anger/disappointment) plus our
own complaint-domain examples (``models/training/emotion_domain_train.jsonl``), which are
the only source of the indifference tier. Domain rows count ``--domain-weight`` times, and
every tier gets the same total weight so the rare tiers are not drowned out.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import hashlib
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from .cues import CueMatcher, feature_vector
from .datasets import DEV_FRACTION, SPLIT_SEED, Example, domain_train, split_public
from .emotion_model import char_ngrams
from .phrasebook import EMOTION_FEATURES, TIERS, Phrasebook

# Character 1-2 grams: trigrams added nothing on held-out training data (macro-F1 0.605
# vs 0.606, benchmarks/select_emotion.py) and cost a third more n-gram matches a message.
NGRAM_MAX = 2
MODEL_VERSION = "1"


def _featurize(rows: list[Example], pb: Phrasebook) -> tuple[list[str], np.ndarray]:
    matcher = CueMatcher(pb.emotion, pb.normalizer)
    norm = [pb.normalizer.normalize(r.text).text for r in rows]
    feats = np.array([feature_vector(matcher.scan(t)[0]) for t in norm], dtype=np.float64)
    return norm, feats


def sample_weights(tiers: list[str], domain: list[bool], domain_weight: float, balance: float) -> np.ndarray:
    """Domain rows count ``domain_weight`` times; then rare tiers are up-weighted.

    ``balance`` 1 (the default, chosen on held-out training data) gives every tier the
    same total weight, 0 leaves the data's own mix; values in between trade the rare
    tiers' recall against their precision.
    """
    raw = np.array([domain_weight if d else 1.0 for d in domain])
    totals: Counter[str] = Counter()
    for t, w in zip(tiers, raw):
        totals[t] += w
    target = raw.sum() / len(totals)
    return np.array([w * (target / totals[t]) ** balance for t, w in zip(tiers, raw)])


def fit(
    rows: list[Example],
    domain_flags: list[bool],
    *,
    pb: Phrasebook,
    c: float,
    domain_weight: float,
    max_features: int,
    balance: float = 1.0,
    ngram_max: int = NGRAM_MAX,
):
    """Fit vectorizer + logistic regression; returns (vectorizer, classifier)."""
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    norm, feats = _featurize(rows, pb)
    vec = TfidfVectorizer(
        analyzer=functools.partial(char_ngrams, lo=1, hi=ngram_max),
        binary=True,
        min_df=2,
        max_features=max_features,
        dtype=np.float64,
    )
    x = sparse.hstack([vec.fit_transform(norm), sparse.csr_matrix(feats)]).tocsr()
    y = [r.tier for r in rows]
    clf = LogisticRegression(C=c, max_iter=3000, tol=1e-5)
    clf.fit(x, y, sample_weight=sample_weights(y, domain_flags, domain_weight, balance))
    return vec, clf


def export(vec, clf, out: Path, card: dict, ngram_max: int = NGRAM_MAX) -> None:
    """Write ``emotion.npz`` + ``emotion.json`` in the tier order the library uses."""
    vocab_items = sorted(vec.vocabulary_.items(), key=lambda kv: kv[1])
    n_vocab = len(vocab_items)
    order = [list(clf.classes_).index(t) for t in TIERS]
    coef = clf.coef_[order]  # (tiers, vocab + features)
    idf = vec.idf_
    out.mkdir(parents=True, exist_ok=True)
    np.savez(
        out / "emotion.npz",
        vocab=np.array([g for g, _ in vocab_items]),
        ngram_coef=(coef[:, :n_vocab].T * idf[:, None]).astype(np.float32),
        idf_sq=(idf**2).astype(np.float32),
        feature_coef=coef[:, n_vocab:].T.astype(np.float32),
        intercept=clf.intercept_[order].astype(np.float32),
    )
    meta = {
        "version": MODEL_VERSION,
        "trained": card["trained"],
        "labels": list(TIERS),
        "features": list(EMOTION_FEATURES),
        "ngram_range": [1, ngram_max],
        **{k: v for k, v in card.items() if k != "trained"},
    }
    (out / "emotion.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def train_emotion(args: argparse.Namespace) -> int:
    pb = Phrasebook(args.phrasebooks) if args.phrasebooks else Phrasebook()
    train, dev = split_public(Path(args.data_dir) if args.data_dir else None)
    domain = domain_train()
    rows = train + domain
    flags = [False] * len(train) + [True] * len(domain)
    print(f"public train {len(train)}  dev {len(dev)}  domain train {len(domain)}", file=sys.stderr)
    print(f"tiers: {dict(sorted(Counter(r.tier for r in rows).items()))}", file=sys.stderr)
    vec, clf = fit(
        rows,
        flags,
        pb=pb,
        c=args.C,
        domain_weight=args.domain_weight,
        max_features=args.max_features,
        balance=args.balance,
    )
    digest = hashlib.sha256("\n".join(f"{r.tier}\t{r.text}" for r in rows).encode()).hexdigest()[:16]
    card = {
        "trained": args.date or dt.date.today().isoformat(),
        "hyperparameters": {
            "C": args.C,
            "domain_weight": args.domain_weight,
            "balance": args.balance,
            "max_features": args.max_features,
            "min_df": 2,
        },
        "data": {
            "public_train_rows": len(train),
            "public_dev_rows": len(dev),
            "domain_train_rows": len(domain),
            "split_seed": SPLIT_SEED,
            "dev_fraction": DEV_FRACTION,
            "training_rows_sha256_16": digest,
        },
    }
    export(vec, clf, Path(args.out), card)
    print(f"wrote {args.out}/emotion.npz ({len(vec.vocabulary_)} n-grams)", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m agent_assist.train", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    e = sub.add_parser("emotion", help="train the emotion model")
    e.add_argument("--data-dir", help="folder holding emotion/*.jsonl (default: shared/data)")
    e.add_argument("--phrasebooks", help="phrasebook directory whose lexicon features to use")
    e.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "models" / "emotion"))
    e.add_argument("--C", type=float, default=1.0, help="inverse regularisation strength")
    e.add_argument("--domain-weight", type=float, default=10.0, help="weight of a domain row")
    e.add_argument("--balance", type=float, default=1.0, help="0 = data's tier mix, 1 = equal")
    e.add_argument("--max-features", type=int, default=60000)
    e.add_argument("--date", help="date to record in the model card (default: today)")
    e.set_defaults(run=train_emotion)
    from .train_minefields import add_parser

    add_parser(sub)
    args = p.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    raise SystemExit(main())
