"""The statistical half of the emotion detector: a linear model over character n-grams and
the lexicon's features, stored as plain arrays (``.npz``, loaded with ``allow_pickle=False``).

It reproduces scikit-learn's ``TfidfVectorizer(binary=True, norm="l2")`` +
``LogisticRegression`` exactly, without scikit-learn: the n-gram vocabulary becomes an
Aho-Corasick automaton, so finding every known n-gram in a message is one native pass,
and the idf weights are folded into the coefficients ahead of time.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .automaton import WordFinder
from .errors import ModelError
from .ngrams import LazyNgramTable
from .phrasebook import EMOTION_FEATURES, TIERS


@dataclass(frozen=True)
class ModelInfo:
    """What the model card's JSON half says about the artefact."""

    version: str
    trained: str
    labels: tuple[str, ...]
    features: tuple[str, ...]
    ngram_range: tuple[int, int]
    vocabulary_size: int


def char_ngrams(text: str, lo: int = 1, hi: int = 3) -> list[str]:
    """Every character n-gram of normalised ``text``, lo <= n <= hi (training analyser)."""
    out = []
    for n in range(lo, hi + 1):
        out.extend(text[i : i + n] for i in range(len(text) - n + 1))
    return out


class EmotionModel:
    """Loaded model; immutable after construction, so shared freely between threads."""

    def __init__(self, directory: Path) -> None:
        weights, meta = directory / "emotion.npz", directory / "emotion.json"
        try:
            info = json.loads(meta.read_text(encoding="utf-8"))
            with np.load(weights, allow_pickle=False) as z:
                vocab = z["vocab"]
                self.ngram_coef = np.ascontiguousarray(z["ngram_coef"], dtype=np.float64)
                self.idf_sq = np.ascontiguousarray(z["idf_sq"], dtype=np.float64)
                self.feature_coef = np.ascontiguousarray(z["feature_coef"], dtype=np.float64)
                self.intercept = np.ascontiguousarray(z["intercept"], dtype=np.float64)
        except (OSError, KeyError, ValueError) as e:
            raise ModelError(f"cannot load emotion model from {directory}: {e}") from None
        self.info = ModelInfo(
            version=str(info["version"]),
            trained=str(info["trained"]),
            labels=tuple(info["labels"]),
            features=tuple(info["features"]),
            ngram_range=(int(info["ngram_range"][0]), int(info["ngram_range"][1])),
            vocabulary_size=len(vocab),
        )
        if self.info.labels != TIERS:
            raise ModelError(f"model labels {self.info.labels} differ from {TIERS}")
        if self.info.features != EMOTION_FEATURES:
            raise ModelError("model was trained on other lexicon features; retrain it")
        shapes_ok = (
            self.ngram_coef.shape == (len(vocab), len(TIERS))
            and self.idf_sq.shape == (len(vocab),)
            and self.feature_coef.shape == (len(EMOTION_FEATURES), len(TIERS))
            and self.intercept.shape == (len(TIERS),)
        )
        if not shapes_ok:
            raise ModelError(f"inconsistent array shapes in {weights}")
        # One gather + one sum per message: idf^2 rides along as a sixth column.
        self._packed = np.hstack([self.ngram_coef, self.idf_sq[:, None]])
        self._feature_rows = self.feature_coef.tolist()
        # How far each n-gram pushes each tier above its average: evidence ranking.
        self.push = np.ascontiguousarray((self.ngram_coef - self.ngram_coef.mean(axis=1, keepdims=True)).T)
        self._intercept = self.intercept.tolist()
        grams = vocab.tolist()
        self.ngram_length = [len(g) for g in grams]
        self._words = WordFinder({gram: i for i, gram in enumerate(grams)})
        self._table = LazyNgramTable(vocab.tolist)

    def ngrams(self, text: str) -> list[tuple[int, int]]:
        """(last index, vocabulary index) of every known n-gram in normalised ``text``, in
        order of end."""
        index = self._words.values
        return [(end - 1, index[k]) for k, _, end in self._words.find(text)]

    def ngram_ids(self, text: str) -> set[int]:
        """Vocabulary indices of the known n-grams in ``text`` (binary features: a set)."""
        index = self._words.values
        return {index[k] for k, _, _ in self._words.find(text)}

    def logits(self, ids: set[int], feats: list[float]) -> list[float]:
        """Decision values per tier for one message (``feats``: damped lexicon sums).

        Plain Python for the handful of non-zero lexicon features and one numpy gather
        for the n-grams: at this size numpy's per-call overhead dominates everything else.
        """
        z = list(self._intercept)
        for f, value in enumerate(feats):
            if value:
                row = self._feature_rows[f]
                for k in range(len(z)):
                    z[k] += value * row[k]
        if ids:
            idx = np.fromiter(ids, dtype=np.intp, count=len(ids))
            total = self._packed.take(idx, axis=0).sum(axis=0).tolist()
            norm = math.sqrt(total[-1])
            for k in range(len(z)):
                z[k] += total[k] / norm
        return z

    def logits_many(self, texts: Sequence[str], feats: np.ndarray) -> np.ndarray:
        """Decision values for many normalised messages at once (rows follow ``texts``;
        ``feats``: their log-damped lexicon sums, one row each): one n-gram lookup and one
        gather for the whole batch (see :class:`NgramTable`)."""
        table = self._table.get()  # None: longer n-grams than it holds; one walk per text
        if table is None:
            rows = zip(texts, feats.tolist(), strict=True)
            return np.array([self.logits(self.ngram_ids(t), f) for t, f in rows])
        z = feats @ self.feature_coef + self.intercept
        docs, ids = table.occurrences(texts)
        if len(ids):
            first = np.flatnonzero(np.concatenate(([True], docs[1:] != docs[:-1])))  # docs are sorted
            sums = np.add.reduceat(self._packed.take(ids, axis=0), first, axis=0)
            z[docs[first]] += sums[:, :-1] / np.sqrt(sums[:, -1:])
        return z


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of a batch of decision values."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax1(z: list[float]) -> list[float]:
    """Softmax of one short vector, in plain Python (cheaper than numpy at length 5)."""
    top = max(z)
    e = [math.exp(v - top) for v in z]
    total = sum(e)
    return [v / total for v in e]
