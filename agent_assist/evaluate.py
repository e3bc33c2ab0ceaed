"""Evaluation: ``python -m agent_assist.evaluate emotion FILE.jsonl|dev``.

Prints accuracy, macro-F1, per-tier precision/recall/F1 and a confusion matrix for
agent_assist and, in the same run, for the baselines:

* ``tfidf_lr``: TF-IDF (character 1-2 grams) + LogisticRegression with scikit-learn's
  defaults, trained on exactly the rows our model was trained on;
* ``snownlp``: SnowNLP sentiment < 0.5 → the most frequent negative tier of the training
  rows, else calm;
* ``majority``: the most frequent tier of the training rows.

``dev`` means our fixed dev split of the public data. Macro-F1 averages over the tiers
present in the gold labels (the public data has no indifference rows).
Baselines need the ``[eval]`` extra; ``--no-baselines`` skips them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from .datasets import Example, domain_train, read_labelled, split_public
from .phrasebook import TIERS


def metrics(gold: Sequence[str], pred: Sequence[str]) -> dict:
    """Accuracy, macro-F1 over gold tiers, per-tier P/R/F1 and the confusion matrix."""
    labels = [t for t in TIERS if t in set(gold)]
    confusion = {g: Counter() for g in TIERS}
    for g, p in zip(gold, pred):
        confusion[g][p] += 1
    per = {}
    for t in TIERS:
        tp = confusion[t][t]
        predicted = sum(confusion[g][t] for g in TIERS)
        actual = sum(confusion[t].values())
        prec = tp / predicted if predicted else 0.0
        rec = tp / actual if actual else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per[t] = {"precision": prec, "recall": rec, "f1": f1, "support": actual}
    return {
        "n": len(gold),
        "accuracy": sum(g == p for g, p in zip(gold, pred)) / max(len(gold), 1),
        "macro_f1": sum(per[t]["f1"] for t in labels) / max(len(labels), 1),
        "per_tier": per,
        "confusion": {g: dict(confusion[g]) for g in TIERS},
    }


def _ours() -> Callable[[list[str]], list[str]]:
    from .assistant import detect_emotions

    return lambda texts: [r.tier for r in detect_emotions(texts)]


def _tfidf_lr(train: list[Example]) -> Callable[[list[str]], list[str]]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(
        TfidfVectorizer(analyzer="char", ngram_range=(1, 2)), LogisticRegression(max_iter=1000)
    )
    model.fit([e.text for e in train], [e.tier for e in train])
    return lambda texts: list(model.predict(texts))


def _snownlp(train: list[Example]) -> Callable[[list[str]], list[str]]:
    from snownlp import SnowNLP

    negative = Counter(e.tier for e in train if e.tier != "calm").most_common(1)[0][0]

    def predict(texts: list[str]) -> list[str]:
        return [negative if t.strip() and SnowNLP(t).sentiments < 0.5 else "calm" for t in texts]

    return predict


def _majority(train: list[Example]) -> Callable[[list[str]], list[str]]:
    top = Counter(e.tier for e in train).most_common(1)[0][0]
    return lambda texts: [top] * len(texts)


def format_report(name: str, m: dict, seconds: float) -> str:
    lines = [
        f"== {name}: accuracy {m['accuracy']:.3f}  macro-F1 {m['macro_f1']:.3f}  "
        f"(n={m['n']}, {seconds * 1e6 / max(m['n'], 1):.0f} µs/message)",
        f"{'tier':<15}{'prec':>7}{'recall':>8}{'F1':>7}{'support':>9}",
    ]
    for t in TIERS:
        p = m["per_tier"][t]
        lines.append(f"{t:<15}{p['precision']:>7.3f}{p['recall']:>8.3f}{p['f1']:>7.3f}{p['support']:>9}")
    short = {"calm": "calm", "panic": "pani", "anger": "ange", "disappointment": "disa", "indifference": "indi"}
    lines.append("confusion (rows gold, columns predicted): " + " ".join(f"{short[t]:>5}" for t in TIERS))
    for g in TIERS:
        row = m["confusion"][g]
        lines.append(f"{'':<15}{g:<27}" + " ".join(f"{row.get(p, 0):>5}" for p in TIERS))
    return "\n".join(lines)


def evaluate_emotion(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir) if args.data_dir else None
    if args.file == "dev":
        train, rows = split_public(data_dir)
        label = "public dev split"
    else:
        rows = read_labelled(Path(args.file))
        train = split_public(data_dir)[0] if not args.no_baselines else []
        label = args.file
    if not rows:
        print(f"no labelled rows in {args.file}", file=sys.stderr)
        return 2
    train = train + domain_train() if train else train
    texts = [e.text for e in rows]
    gold = [e.tier for e in rows]
    systems: list[tuple[str, Callable[[list[str]], list[str]]]] = [("agent_assist", _ours())]
    if not args.no_baselines:
        systems += [
            ("tfidf_lr", _tfidf_lr(train)),
            ("snownlp", _snownlp(train)),
            ("majority", _majority(train)),
        ]
    print(f"# emotion evaluation on {label}: {len(rows)} messages, tiers {dict(Counter(gold))}")
    summary = {}
    for name, predict in systems:
        t0 = time.perf_counter()
        pred = predict(texts)
        m = metrics(gold, pred)
        summary[name] = m
        print(format_report(name, m, time.perf_counter() - t0))
    if len(systems) > 1:
        ours = summary["agent_assist"]["macro_f1"]
        print("# macro-F1 difference, agent_assist minus baseline: " + ", ".join(
            f"{n} {ours - summary[n]['macro_f1']:+.3f}" for n, _ in systems[1:]
        ))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m agent_assist.evaluate", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    e = sub.add_parser("emotion", help="tier accuracy against a labelled JSONL file")
    e.add_argument("file", help="JSONL with text and tier per line, or 'dev' for the public dev split")
    e.add_argument("--data-dir", help="public data folder for the split (default: shared/data)")
    e.add_argument("--no-baselines", action="store_true", help="only evaluate agent_assist")
    e.add_argument("--json", help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    return evaluate_emotion(args)


if __name__ == "__main__":
    raise SystemExit(main())
