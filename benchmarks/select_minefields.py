"""Can a learned component lift minefield recall on *new* wording while keeping precision?

An experiment (it prints figures; it changes nothing). The hand-written rules
(``phrasebooks/minefields.yaml``) were written from ``replies_dev.jsonl`` and
``replies_dev2.jsonl``; on freshly written replies their recall drops to ~0.55. Designs:

* ``rules``      – ``check_reply`` alone (the baseline);
* ``clf``        – a one-vs-rest logistic regression per kind over binary, L2-normalised
  character 1-3 grams of the normalised reply (``\\x02`` / ``\\x03`` mark its start and end);
* ``clf_sent``   – the same model at the sentence level (split on . ! ? ;), multi-instance:
  every sentence carries its reply's kinds for training, a reply's score is its best sentence;
* ``mined``      – no classifier: per kind, the 2-4 grams whose training precision for that
  kind is high (a mined phrase list; a reply is flagged if it holds one);
* ``union``      – rules OR ``clf`` score >= t_k;
* ``veto``       – (rules AND score >= lo_k) OR score >= hi_k: the classifier may also
  overrule a rule hit whose score is very low.

Per-kind thresholds maximise recall subject to precision >= ``--target`` on out-of-fold
scores. A classifier never raises ``premature_compensation`` when the customer asked for
compensation (the rules' own customer-side check decides that).

Protocol: the training files (dev, dev2, dev3, dev4) are the folds of a leave-one-file-out
cross-validation. Scores for a file come from a model fitted on the other three; the
thresholds applied to a file are chosen on the other files' out-of-fold scores (nested, so
the CV figures are honest). dev and dev2 are where the rules were written (the rules are
in-sample there), so the CV table also shows the two *new-wording* folds alone. Finally one
model is fitted on all four files, thresholds come from all out-of-fold scores, and each
design is scored once on ``replies_dev5.jsonl`` (never used for any choice).
``tests/data/replies.jsonl`` (the test set) is never read.

Inference needs no scikit-learn: the n-gram vocabulary becomes an Aho-Corasick automaton
(as in ``agent_assist/emotion_model.py``), a reply's known n-grams are one C-level pass, and
its eleven scores are one numpy gather + sum over a (vocabulary x 12) float table.

    python benchmarks/select_minefields.py [--target 0.95] [--pool all|new] [--no-dev5]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # shared machine: single-threaded
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import ahocorasick  # noqa: E402
import numpy as np  # noqa: E402
from scipy import sparse  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent_assist.assistant import default_assistant  # noqa: E402
from agent_assist.minefields import KINDS, _CustomerSide  # noqa: E402

DATA = ROOT / "tests" / "data"
TRAIN = ["replies_dev.jsonl", "replies_dev2.jsonl", "replies_dev3.jsonl", "replies_dev4.jsonl"]
NEW = ["replies_dev3.jsonl", "replies_dev4.jsonl"]  # written after the rules: new wording
FINAL = "replies_dev5.jsonl"
K = list(KINDS)
COMP = K.index("premature_compensation")
BOS, EOS = "\x02", "\x03"
SENT = re.compile(r"[.!?;]+")  # normalised text has ASCII punctuation


# -- data ------------------------------------------------------------------------------


def load(name: str) -> list[dict]:
    """Rows of one file with the normalised reply, the rules' kinds and the customer side."""
    assistant = default_assistant()
    checker = assistant.minefields
    rows = []
    for line in (DATA / name).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        kw = {"customer_text": r.get("customer") or None, "history": r.get("history") or None}
        r["file"] = name
        r["norm"] = checker.fold(r["reply"])
        r["rules"] = np.array([False] * len(K))
        for h in assistant.check_reply(r["reply"], **kw).hits:
            r["rules"][K.index(h.kind)] = True
        # Private, but it *is* the rules' own "did the customer ask for compensation" test.
        r["asked"] = _CustomerSide(checker, kw["customer_text"], kw["history"]).asked
        r["y"] = np.array([k in r["kinds"] for k in K])
        rows.append(r)
    return rows


def stack(rows: list[dict], key: str) -> np.ndarray:
    return np.array([r[key] for r in rows])


# -- features and models -----------------------------------------------------------------


def grams(text: str, lo: int = 1, hi: int = 3) -> set[str]:
    t = BOS + text + EOS
    return {t[i : i + n] for n in range(lo, hi + 1) for i in range(len(t) - n + 1)}


class Vectorizer:
    """Binary character n-grams seen in >= min_df training texts, rows L2-normalised."""

    def __init__(self, texts: list[str], hi: int = 3, min_df: int = 2) -> None:
        df = Counter(g for t in texts for g in grams(t, 1, hi))
        self.hi = hi
        self.vocab = {g: i for i, g in enumerate(sorted(g for g, c in df.items() if c >= min_df))}

    def __call__(self, texts: list[str]) -> sparse.csr_matrix:
        ind, ptr = [], [0]
        for t in texts:
            ind.extend(self.vocab[g] for g in grams(t, 1, self.hi) if g in self.vocab)
            ptr.append(len(ind))
        x = sparse.csr_matrix(
            (np.ones(len(ind)), np.array(ind, dtype=np.int64), np.array(ptr)),
            shape=(len(texts), len(self.vocab)),
        )
        n = np.sqrt(np.asarray(x.sum(axis=1)).ravel())
        n[n == 0] = 1
        return sparse.diags(1 / n) @ x


class LinearScorer:
    """The classifier at inference: no scikit-learn, one automaton pass + one numpy gather."""

    def __init__(self, vocab: dict[str, int], coef: np.ndarray, intercept: np.ndarray) -> None:
        keep = np.flatnonzero(np.abs(coef).max(axis=1) > 0)
        self.grams = [g for g, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
        self.packed = np.ascontiguousarray(np.hstack([coef, np.ones((len(coef), 1))]), dtype=np.float64)
        self.intercept = intercept.tolist()
        auto = ahocorasick.Automaton(ahocorasick.STORE_INTS)
        for i in keep.tolist():
            auto.add_word(self.grams[i], i)
        auto.make_automaton()
        self.auto = auto

    def scores(self, norm: str) -> list[float]:
        ids = {i for _, i in self.auto.iter(BOS + norm + EOS)}
        z = list(self.intercept)
        if ids:
            total = self.packed.take(np.fromiter(ids, dtype=np.intp, count=len(ids)), axis=0).sum(axis=0)
            total = total.tolist()
            inv = 1.0 / math.sqrt(total[-1])
            for k in range(len(z)):
                z[k] += total[k] * inv
        return z


def fit_clf(train: list[dict], C: float = 16.0) -> tuple[Vectorizer, np.ndarray, np.ndarray]:
    texts = [r["norm"] for r in train]
    vec = Vectorizer(texts)
    x, y = vec(texts), stack(train, "y")
    coef = np.zeros((len(vec.vocab), len(K)))
    icpt = np.zeros(len(K))
    for k in range(len(K)):
        w = trainable(train, k)
        m = LogisticRegression(C=C, solver="liblinear", class_weight="balanced").fit(x[w], y[w, k])
        coef[:, k], icpt[k] = m.coef_[0], m.intercept_[0]
    return vec, coef, icpt


def trainable(train: list[dict], k: int) -> np.ndarray:
    """Rows a reply-only model may learn kind k from: for premature_compensation, not the
    replies to a customer who asked for compensation (same words, opposite label)."""
    if k != COMP:
        return np.ones(len(train), dtype=bool)
    return ~stack(train, "asked")


def clf_scores(train: list[dict], test: list[dict]) -> np.ndarray:
    vec, coef, icpt = fit_clf(train)
    return np.asarray(vec([r["norm"] for r in test]) @ coef) + icpt


def sentences(text: str) -> list[str]:
    return [s for s in SENT.split(text) if s.strip()] or [text]


def sent_scores(train: list[dict], test: list[dict], C: float = 16.0) -> np.ndarray:
    units, owner = [], []
    for j, r in enumerate(train):
        for s in sentences(r["norm"]):
            units.append(s)
            owner.append(j)
    vec = Vectorizer(units)
    x, y = vec(units), stack(train, "y")[owner]
    w_of = {k: trainable(train, k)[owner] for k in (COMP,)}
    tu, to = [], []
    for j, r in enumerate(test):
        for s in sentences(r["norm"]):
            tu.append(s)
            to.append(j)
    xt, to = vec(tu), np.array(to)
    out = np.full((len(test), len(K)), -1e9)
    for k in range(len(K)):
        w = w_of.get(k, np.ones(len(units), dtype=bool))
        m = LogisticRegression(C=C, solver="liblinear", class_weight="balanced").fit(x[w], y[w, k])
        np.maximum.at(out[:, k], to, m.decision_function(xt))
    return out


def mined_scores(train: list[dict], test: list[dict]) -> np.ndarray:
    """Score = the best smoothed training precision of any 2-4 gram of the reply for the kind
    (only grams in >= 2 replies of that kind); thresholding it = a mined phrase list."""
    sets = [grams(r["norm"], 2, 4) for r in train]
    y = stack(train, "y")
    df = Counter(g for s in sets for g in s)
    pos = [Counter(g for s, yy in zip(sets, y) if yy[k] for g in s) for k in range(len(K))]
    table: dict[str, list[float]] = {}
    for k in range(len(K)):
        for g, c in pos[k].items():
            if c >= 2:
                table.setdefault(g, [0.0] * len(K))[k] = (c + 0.0) / (df[g] + 1.0)
    out = np.zeros((len(test), len(K)))
    for j, r in enumerate(test):
        for g in grams(r["norm"], 2, 4):
            v = table.get(g)
            if v:
                out[j] = np.maximum(out[j], v)
    return out


MODELS = {"clf": clf_scores, "clf_sent": sent_scores, "mined": mined_scores}


# -- thresholds -------------------------------------------------------------------------------


def prf(y: np.ndarray, p: np.ndarray) -> tuple[float, float, int, int, int]:
    tp, fp, fn = int((y & p).sum()), int((~y & p).sum()), int((y & ~p).sum())
    return tp / max(tp + fp, 1), tp / max(tp + fn, 1), tp, fp, fn


def best_hi(y: np.ndarray, s: np.ndarray, base: np.ndarray, target: float) -> tuple[float, float]:
    """Threshold t maximising recall of base | (s >= t) with precision >= target
    (inf: the classifier adds nothing). Returns (t, recall)."""
    tp0, fp0, npos = int((y & base).sum()), int((~y & base).sum()), int(y.sum())
    best_t, best_r = math.inf, (tp0 / max(npos, 1) if tp0 / max(tp0 + fp0, 1) >= target else -1.0)
    extra = ~base
    order = np.argsort(-s, kind="stable")
    ss, yy, ee = s[order], y[order], extra[order]
    tp = tp0 + np.cumsum(yy & ee)
    fp = fp0 + np.cumsum(~yy & ee)
    last = np.r_[ss[1:] != ss[:-1], True]  # only cut between distinct scores
    prec = tp / np.maximum(tp + fp, 1)
    ok = np.flatnonzero(last & (prec >= target))
    if ok.size:
        i = ok[np.argmax(tp[ok])]
        r = tp[i] / max(npos, 1)
        if r > best_r:
            nxt = ss[i + 1] if i + 1 < len(ss) else ss[i] - 1.0
            best_t, best_r = (ss[i] + nxt) / 2, r
    return best_t, best_r


def choose(design: str, y: np.ndarray, s: np.ndarray, rules: np.ndarray, asked: np.ndarray, target: float) -> list:
    """Thresholds (lo, hi) per kind for a design, chosen on a selection pool. lo is None
    for classifier-only designs; a rule hit stands only if its score is >= lo."""
    if design.endswith("_g"):  # one (lo, hi) shared by every kind: micro precision >= target
        best = (-1.0, -math.inf, math.inf)
        los = [None] if design == "clf_g" else [-math.inf, *np.linspace(-4, 2, 25)]
        for lo in los:
            for hi in np.linspace(-2, 6, 81):
                th = [(lo, hi)] * len(K)
                p, r, *_ = prf(y, apply(th, s, rules, asked))
                if p >= target and r > best[0]:
                    best = (r, lo, hi)
        return [(best[1], best[2])] * len(K) if best[0] >= 0 else [(None, math.inf)] * len(K)
    out = []
    for k in range(len(K)):
        yk, sk, rk = y[:, k], s[:, k].copy(), rules[:, k]
        if k == COMP:
            sk[asked] = -math.inf  # the gate in apply(), so precision is counted after it
        if design in ("clf", "clf_sent", "mined"):
            out.append((None, best_hi(yk, sk, np.zeros_like(yk), target)[0]))
        elif design == "union":
            out.append((-math.inf, best_hi(yk, sk, rk, target)[0]))
        elif design == "veto":
            los = np.unique(np.r_[-math.inf, s[rk, k]])
            best = (-1.0, -math.inf, math.inf)
            for lo in los:
                hi, r = best_hi(yk, sk, rk & (s[:, k] >= lo), target)
                if r > best[0]:
                    best = (r, lo, hi)
            out.append((best[1], best[2]))
    return out


def apply(th: list, s: np.ndarray, rules: np.ndarray, asked: np.ndarray) -> np.ndarray:
    pred = np.zeros(s.shape, dtype=bool)
    for k, (lo, hi) in enumerate(th):
        clf = s[:, k] >= hi
        if k == COMP:
            clf &= ~asked  # only the rules may judge compensation the customer asked for
        pred[:, k] = clf if lo is None else (rules[:, k] & (s[:, k] >= lo)) | clf
    return pred


def score_of(design: str) -> str:
    return design if design in MODELS else "clf"


# -- main ---------------------------------------------------------------------------------------


def timing(scorer: LinearScorer, rows: list[dict]) -> tuple[float, float, float]:
    """µs per reply: classifier on normalised text; fold + classifier; check_reply."""
    assistant = default_assistant()
    fold = assistant.minefields.fold
    texts = [r["norm"] for r in rows]
    raw = [r["reply"] for r in rows]
    out = []
    for fn, xs in ((scorer.scores, texts), (lambda t: scorer.scores(fold(t)), raw), (assistant.check_reply, raw)):
        for x in xs[:50]:
            fn(x)
        best = math.inf
        for _ in range(5):
            t0 = time.perf_counter()
            for x in xs:
                fn(x)
            best = min(best, time.perf_counter() - t0)
        out.append(best * 1e6 / len(xs))
    return out[0], out[1], out[2]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", type=float, default=0.95, help="per-kind precision floor for thresholds")
    ap.add_argument("--pool", choices=["all", "new"], default="all", help="files thresholds are chosen on")
    ap.add_argument("--no-dev5", action="store_true", help="cross-validation only")
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    data = {f: load(f) for f in TRAIN}
    rows = [r for f in TRAIN for r in data[f]]
    fid = np.array([TRAIN.index(r["file"]) for r in rows])
    y, rules, asked = stack(rows, "y"), stack(rows, "rules"), stack(rows, "asked")

    # Out-of-fold scores: a file's scores come from a model fitted on the other three.
    oof = {m: np.zeros((len(rows), len(K))) for m in MODELS}
    for i, f in enumerate(TRAIN):
        train = [r for g in TRAIN if g != f for r in data[g]]
        for m, fn in MODELS.items():
            oof[m][fid == i] = fn(train, data[f])

    designs = ["rules", "mined", "clf_sent", "clf", "union", "veto", "clf_g", "veto_g"]
    newmask = np.isin(fid, [TRAIN.index(f) for f in NEW])
    print(f"# leave-one-file-out CV over {', '.join(TRAIN)} ({len(rows)} replies); thresholds: "
          f"precision >= {args.target} per kind, chosen on the other files' out-of-fold scores "
          f"(pool: {args.pool})")
    print(f"{'design':<10}{'P all':>8}{'R all':>8}{'P new':>8}{'R new':>8}   per-fold P/R")
    cv_pred = {}
    for d in designs:
        pred = np.zeros_like(y)
        for i, f in enumerate(TRAIN):
            test = fid == i
            if d == "rules":
                pred[test] = rules[test]
                continue
            pool = ~test if args.pool == "all" else (~test & newmask)
            s = oof[score_of(d)]
            th = choose(d, y[pool], s[pool], rules[pool], asked[pool], args.target)
            pred[test] = apply(th, s[test], rules[test], asked[test])
        cv_pred[d] = pred
        pa, ra, *_ = prf(y, pred)
        pn, rn, *_ = prf(y[newmask], pred[newmask])
        folds = " ".join(f"{prf(y[fid == i], pred[fid == i])[0]:.2f}/{prf(y[fid == i], pred[fid == i])[1]:.2f}"
                         for i in range(len(TRAIN)))
        print(f"{d:<10}{pa:>8.3f}{ra:>8.3f}{pn:>8.3f}{rn:>8.3f}   {folds}")
    print(f"{'':<10}per-kind recall, new-wording folds (dev3+dev4)")
    print(f"{'kind':<24}" + "".join(f"{d:>9}" for d in designs))
    for k, name in enumerate(K):
        print(f"{name:<24}" + "".join(f"{prf(y[newmask][:, k], cv_pred[d][newmask][:, k])[1]:>9.3f}" for d in designs))
    print(f"(CV took {time.perf_counter() - t_start:.0f} s)")

    if args.no_dev5:
        return 0

    # Final: fit on all four files, thresholds from all out-of-fold scores, score dev5 once.
    test = load(FINAL)
    yt, rt, at = stack(test, "y"), stack(test, "rules"), stack(test, "asked")
    pool = np.ones(len(rows), dtype=bool) if args.pool == "all" else newmask
    final = {m: fn(rows, test) for m, fn in MODELS.items()}
    print(f"\n# {FINAL}: {len(test)} replies, {int(yt.any(axis=1).sum())} with minefields "
          f"(held out: no choice above looked at it)")
    print(f"{'design':<10}{'prec':>8}{'recall':>8}{'TP':>6}{'FP':>5}{'FN':>5}{'clean FP rate':>15}")
    preds = {}
    clean = ~yt.any(axis=1)
    for d in designs:
        if d == "rules":
            p = rt
        else:
            th = choose(d, y[pool], oof[score_of(d)][pool], rules[pool], asked[pool], args.target)
            p = apply(th, final[score_of(d)], rt, at)
        preds[d] = p
        pp, rr, tp, fp, fn = prf(yt, p)
        cfp = p[clean].any(axis=1).mean()
        print(f"{d:<10}{pp:>8.3f}{rr:>8.3f}{tp:>6}{fp:>5}{fn:>5}{cfp:>15.3f}")
    print(f"\nper kind on {FINAL} (precision/recall)")
    print(f"{'kind':<24}" + "".join(f"{d:>12}" for d in designs))
    for k, name in enumerate(K):
        cells = []
        for d in designs:
            pp, rr, *_ = prf(yt[:, k], preds[d][:, k])
            cells.append(f"{pp:.2f}/{rr:.2f}")
        print(f"{name:<24}" + "".join(f"{c:>12}" for c in cells))

    # Inference cost of the shipped form of ``clf`` (fitted on all four files).
    vec, coef, icpt = fit_clf(rows)
    scorer = LinearScorer(vec.vocab, coef, icpt)
    ref = np.asarray(vec([r["norm"] for r in test]) @ coef) + icpt
    mine = np.array([scorer.scores(r["norm"]) for r in test])
    us_clf, us_fold, us_rules = timing(scorer, test)
    print(f"\ninference: vocabulary {len(vec.vocab)} n-grams x {len(K)} kinds "
          f"({scorer.packed.nbytes / 1e6:.1f} MB float64); max |pure - sklearn| = {np.abs(ref - mine).max():.1e}")
    print(f"µs/reply (mean over {FINAL}, best of 5): classifier {us_clf:.1f}, fold+classifier {us_fold:.1f}, "
          f"check_reply {us_rules:.1f}")
    print(f"(total {time.perf_counter() - t_start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
