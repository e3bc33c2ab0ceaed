"""The learned half of the minefield check: a linear model over a reply's character n-grams.

Rules catch the wordings they were written for; new wordings slip past them, and a rule can
fire where the reply as a whole does not read that way. A one-vs-rest logistic regression per
kind over binary, L2-normalised character 1-3 grams of the whole normalised reply (trained by
``python -m agent_assist.train minefields`` on the project's own labelled dev replies) does
two things: a rule hit of kind k stands only if the model's score for k reaches ``veto``,
and the model alone raises kind k when its score reaches ``fire``. Stored as plain arrays
(``.npz``, ``allow_pickle=False``) plus a JSON card; scikit-learn is not needed to run it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .automaton import WordFinder
from .errors import ModelError
from .ngrams import LazyNgramTable

BOS, EOS = "\x02", "\x03"  # mark the reply's start and end, so 好的 alone differs from 好的，…
_SENTENCE = re.compile(r"[^.!?;\n]+")  # normalised text: ASCII punctuation
_STRIP = " ,.!?;:~…\n\t"
_END = " ,.!?;:~…\n\t\u3000。！？；，、：～"  # the CJK forms too, though normalised text has ASCII


def model_text(text: str) -> str:
    """What the model reads of a normalised reply: without punctuation or space at its end.

    Whether a reply ends in 。 says nothing about minefields, but the written examples did
    differ (chat-style clean turns often end bare), and short replies magnify any n-gram:
    the model had learnt "ends in 。" as a sign of trouble (您好，请稍等。 read as perfunctory).
    """
    return text.rstrip(_END)


@dataclass(frozen=True)
class Located:
    """Where a model-only hit is: the sentence carrying most of its kind's score."""

    start: int
    end: int
    ngram: str  # the n-gram inside it that pushed hardest toward the kind


class MinefieldModel:
    """Loaded model; immutable after construction, so shared freely between threads."""

    def __init__(self, directory: Path) -> None:
        weights, meta = directory / "minefields.npz", directory / "minefields.json"
        try:
            info = json.loads(meta.read_text(encoding="utf-8"))
            with np.load(weights, allow_pickle=False) as z:
                grams = [str(g) for g in z["grams"]]
                coef = np.asarray(z["coef"], dtype=np.float64)
                intercept = np.asarray(z["intercept"], dtype=np.float64)
            self.kinds: tuple[str, ...] = tuple(info["kinds"])
            self.veto = float(info["thresholds"]["veto"])
            self.fire = float(info["thresholds"]["fire"])
            #: The model alone raises a kind only on replies at least this long (model_text).
            self.min_chars = int(info["thresholds"].get("min_chars", 0))
            self.trained = str(info["trained"])
        except (OSError, KeyError, ValueError, TypeError) as e:
            raise ModelError(f"cannot load minefield model from {directory}: {e}") from None
        if coef.shape != (len(grams), len(self.kinds)) or intercept.shape != (len(self.kinds),):
            raise ModelError(f"minefield model in {directory}: array shapes do not match its card")
        self.grams = grams
        self.coef = np.ascontiguousarray(coef)
        self._intercept = intercept.tolist()
        self._words = WordFinder({g: i for i, g in enumerate(grams)})
        self._table = LazyNgramTable(lambda: self.grams)

    def _ids(self, text: str) -> set[int]:
        index = self._words.values
        return {index[k] for k, _, _ in self._words.find(BOS + text + EOS)}

    def scores(self, text: str) -> list[float]:
        """Decision values per kind (log-odds) for normalised reply ``text``.

        Features are binary n-grams scaled by 1/sqrt(the number of n-gram positions), a
        function of the length alone, so only the n-grams the model kept are looked up.
        """
        text = model_text(text)
        return self._scores_of(text, self._ids(text))

    def _scores_of(self, text: str, ids: set[int]) -> list[float]:
        """:meth:`scores` of ``text`` (as the model reads it) holding the n-grams ``ids``."""
        z = list(self._intercept)
        if ids:
            sums = (
                self.coef.take(np.fromiter(ids, dtype=np.intp, count=len(ids)), axis=0).sum(axis=0).tolist()
            )
            n = len(text) + 2
            inv = 1.0 / math.sqrt(3 * n - 3)  # 1-, 2- and 3-gram positions: n + (n - 1) + (n - 2)
            for k in range(len(z)):
                z[k] += sums[k] * inv
        return z

    def scores_many(self, texts: list[str]) -> list[list[float]]:
        """:meth:`scores` of many replies in one numpy pass (QA scores a conversation's agent
        turns at once); equal to one call per reply up to float rounding."""
        if not texts:
            return []
        table = self._table.get()  # None: longer n-grams than it holds; one walk per text
        if table is None:
            return [self.scores(t) for t in texts]
        read = [model_text(t) for t in texts]
        docs, ids = table.occurrences([BOS + t + EOS for t in read])
        z = np.tile(np.asarray(self._intercept), (len(texts), 1))
        if len(ids):
            first = np.flatnonzero(np.concatenate(([True], docs[1:] != docs[:-1])))  # docs are sorted
            present = docs[first]
            sums = np.add.reduceat(self.coef.take(ids, axis=0), first, axis=0)
            n = np.fromiter(map(len, read), dtype=np.float64, count=len(read))[present] + 2
            z[present] += sums / np.sqrt(3 * n - 3)[:, None]
        out: list[list[float]] = z.tolist()
        return out

    def may_raise(self, text: str) -> bool:
        """Whether normalised reply ``text`` is long enough for the model alone to raise a kind."""
        return len(model_text(text)) >= self.min_chars

    def locate(self, text: str, kind: int) -> Located | None:
        """The sentence of ``text`` the model reads most as ``kind``, trimmed of punctuation,
        with its n-gram of largest weight for the kind; ``None`` for a text of no sentence."""
        best: tuple[float, int, int, set[int] | None] | None = None
        for m in _SENTENCE.finditer(text):
            s, e = m.span()
            while s < e and text[s] in _STRIP:
                s += 1
            while e > s and text[e - 1] in _STRIP:
                e -= 1
            if s < e:
                sentence = text[s:e]
                read = model_text(sentence)
                grams = self._ids(read)
                z = self._scores_of(read, grams)[kind]
                if best is None or z > best[0]:
                    best = (z, s, e, grams if read == sentence else None)  # its n-grams, if the same
        if best is None:
            return None
        _, s, e, kept = best
        ids = self._ids(text[s:e]) if kept is None else kept
        if not ids:
            return Located(s, e, "")
        idx = np.fromiter(ids, dtype=np.intp, count=len(ids))
        top = int(idx[self.coef[idx, kind].argmax()])  # the first of equal weights, as max() gave
        return Located(s, e, self.grams[top].strip(BOS + EOS))


_cache: dict[Path, MinefieldModel] = {}


def load_minefield_model(directory: Path) -> MinefieldModel:
    """The model in ``directory``, loaded once per process (callers hold their own lock)."""
    path = directory.resolve()
    if path not in _cache:
        _cache[path] = MinefieldModel(path)
    return _cache[path]
