"""Evaluation: ``python -m agent_assist.evaluate emotion FILE.jsonl|dev`` and
``python -m agent_assist.evaluate replies FILE.jsonl`` (minefield checks, see :func:`evaluate_replies`).

Prints accuracy, macro-F1, per-tier precision/recall/F1 and a confusion matrix for
agent_assist and, in the same run, for the baselines:

* ``tfidf_lr``: TF-IDF (character 1-2 grams) + LogisticRegression with scikit-learn's
  defaults, trained on exactly the rows our model was trained on;
* ``snownlp``: SnowNLP sentiment < 0.5 → the most frequent negative tier of the training
  rows, else calm;
* ``majority``: the most frequent tier of the training rows.

``dev`` means our fixed dev split of the public data. Macro-F1 averages over the tiers
present in the gold labels (the public data has no indifference rows).
Baselines need the ``[eval]`` extra; ``--no-baselines`` skips them. Speed is measured by
``benchmarks/bench_emotion.py``, not here.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
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


def format_report(name: str, m: dict) -> str:
    lines = [
        f"== {name}: accuracy {m['accuracy']:.3f}  macro-F1 {m['macro_f1']:.3f}  (n={m['n']})",
        f"{'tier':<15}{'prec':>7}{'recall':>8}{'F1':>7}{'support':>9}",
    ]
    for t in TIERS:
        p = m["per_tier"][t]
        lines.append(f"{t:<15}{p['precision']:>7.3f}{p['recall']:>8.3f}{p['f1']:>7.3f}{p['support']:>9}")
    short = {
        "calm": "calm",
        "panic": "pani",
        "anger": "ange",
        "disappointment": "disa",
        "indifference": "indi",
    }
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
        m = metrics(gold, predict(texts))
        summary[name] = m
        print(format_report(name, m))
    if len(systems) > 1:
        ours = summary["agent_assist"]["macro_f1"]
        print(
            "# macro-F1 difference, agent_assist minus baseline: "
            + ", ".join(f"{n} {ours - summary[n]['macro_f1']:+.3f}" for n, _ in systems[1:])
        )
    if args.json:
        Path(args.json).write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
    return 0


def reply_metrics(rows: Sequence[dict], predicted: Sequence[set[str]], still_hit: Sequence[bool]) -> dict:
    """Per-kind P/R/F1 over rows (a row is positive for each kind it is labelled with),
    micro-averaged overall figures, the false-positive rate on clean rows and the count of
    positives whose ``suggested_reply`` still has hits."""
    from .minefields import KINDS

    per = {}
    tp_all = fp_all = fn_all = 0
    pairs = list(zip(rows, predicted, strict=True))
    for k in KINDS:
        tp = sum(1 for r, p in pairs if k in r["kinds"] and k in p)
        fp = sum(1 for r, p in pairs if k not in r["kinds"] and k in p)
        fn = sum(1 for r, p in pairs if k in r["kinds"] and k not in p)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per[k] = {"precision": prec, "recall": rec, "f1": f1, "support": tp + fn, "fp": fp, "fn": fn}
        tp_all, fp_all, fn_all = tp_all + tp, fp_all + fp, fn_all + fn
    clean = [(r, p) for r, p in pairs if not r["kinds"]]
    hard = [(r, p) for r, p in clean if r.get("hard_negative")]
    return {
        "n": len(rows),
        "precision": tp_all / (tp_all + fp_all) if tp_all + fp_all else 0.0,
        "recall": tp_all / (tp_all + fn_all) if tp_all + fn_all else 0.0,
        "per_kind": per,
        "clean_rows": len(clean),
        "clean_false_positive_rate": sum(1 for _, p in clean if p) / max(len(clean), 1),
        "hard_negatives": len(hard),
        "hard_negative_false_positive_rate": sum(1 for _, p in hard if p) / max(len(hard), 1),
        "positives": sum(1 for r in rows if r["kinds"]),
        "suggested_still_hit": sum(1 for r, bad in zip(rows, still_hit, strict=True) if r["kinds"] and bad),
    }


def evaluate_replies(args: argparse.Namespace) -> int:
    """Minefield checks against a labelled replies JSONL file (customer, reply, kinds, history)."""
    from .assistant import Assistant

    path = Path(args.file)
    rows = [obj for _, obj in _read_replies(path)]
    if not rows:
        print(f"no labelled rows in {args.file}", file=sys.stderr)
        return 2
    assistant = Assistant(args.phrasebooks)
    assistant.check_reply("预热")  # load the phrasebook outside the timing
    t0 = time.perf_counter()
    context = [
        {"customer_text": r.get("customer") or None, "history": r.get("history") or None} for r in rows
    ]
    checks = [assistant.check_reply(r["reply"], **kw) for r, kw in zip(rows, context, strict=True)]
    seconds = time.perf_counter() - t0
    predicted = [{h.kind for h in c.hits} for c in checks]
    still = [
        not assistant.check_reply(c.suggested_reply, **kw).ok for c, kw in zip(checks, context, strict=True)
    ]
    m = reply_metrics(rows, predicted, still)
    print(
        f"# minefield evaluation on {args.file}: {m['n']} replies, {m['positives']} with minefields, "
        f"{m['clean_rows']} clean ({m['hard_negatives']} hard negatives); "
        f"{seconds * 1e6 / len(rows):.0f} µs/reply"
    )
    print(f"{'kind':<24}{'prec':>7}{'recall':>8}{'F1':>7}{'support':>9}{'FP':>5}{'FN':>5}")
    for k, p in m["per_kind"].items():
        print(
            f"{k:<24}{p['precision']:>7.3f}{p['recall']:>8.3f}{p['f1']:>7.3f}"
            f"{p['support']:>9}{p['fp']:>5}{p['fn']:>5}"
        )
    print(f"{'overall (micro)':<24}{m['precision']:>7.3f}{m['recall']:>8.3f}")
    print(
        f"false-positive rate on clean replies: {m['clean_false_positive_rate']:.3f} "
        f"(hard negatives: {m['hard_negative_false_positive_rate']:.3f})"
    )
    print(f"positives whose suggested_reply still has hits: {m['suggested_still_hit']} of {m['positives']}")
    if args.errors:
        for r, p in zip(rows, predicted, strict=True):
            gold = set(r["kinds"])
            if gold != p:
                print(f"  gold={sorted(gold)} got={sorted(p)}  {r['reply']}")
    if args.json:
        Path(args.json).write_text(json.dumps(m, ensure_ascii=False, indent=2), encoding="utf-8")
    return 0


def _read_replies(path: Path) -> Iterator[tuple[int, dict]]:
    from .datasets import read_jsonl

    for n, obj in read_jsonl(path):
        if not isinstance(obj.get("reply"), str) or not isinstance(obj.get("kinds"), list):
            raise ValueError(f"{path}:{n}: needs a 'reply' string and a 'kinds' list")
        yield n, obj


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m agent_assist.evaluate", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    e = sub.add_parser("emotion", help="tier accuracy against a labelled JSONL file")
    e.add_argument("file", help="JSONL with text and tier per line, or 'dev' for the public dev split")
    e.add_argument("--data-dir", help="public data folder for the split (default: shared/data)")
    e.add_argument("--no-baselines", action="store_true", help="only evaluate agent_assist")
    e.add_argument("--json", help="also write the figures to this JSON file")
    e.set_defaults(run=evaluate_emotion)
    r = sub.add_parser("replies", help="minefield precision/recall against a labelled replies JSONL file")
    r.add_argument("file", help="JSONL with customer, reply, kinds and history per line")
    r.add_argument("--phrasebooks", help="your own phrasebook directory (default: bundled)")
    r.add_argument("--errors", action="store_true", help="also print every reply whose kinds differ")
    r.add_argument("--json", help="also write the figures to this JSON file")
    r.set_defaults(run=evaluate_replies)
    args = p.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    raise SystemExit(main())
