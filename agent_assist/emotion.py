"""Emotion tier of a customer message: the cue lexicon and the n-gram model, combined.

The lexicon finds the words and rules (negation, intensifiers, repetition, waiting time,
threats, sarcasm, resignation); their damped sums are features of a linear model that
also reads character n-grams. The model's weights for those features were learned from
data, so how much "投诉" or "算了" moves each tier is measured, not guessed; the lexicon
supplies the evidence spans and the domain knowledge that Weibo-trained n-grams lack.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .cues import CueHit, CueMatcher, feature_vector
from .emotion_model import EmotionModel, softmax, softmax1
from .phrasebook import TIERS, Phrasebook
from .results import EmotionResult, Evidence, build
from .text import Normalized, check_text

# Intensity = (1 - p(calm)) * (FLOOR + (1 - FLOOR) * (1 - exp(-strength / SCALE))), where
# strength is the summed weight of non-calm evidence after intensifiers. A model-only
# verdict with no cue reaches at most FLOOR; about three strong cues saturate it.
_INTENSITY_FLOOR = 0.5
_INTENSITY_SCALE = 2.0
# Model n-grams reported as evidence when no lexicon cue speaks for the winning tier.
_MODEL_EVIDENCE = 2
_CALM = TIERS.index("calm")


class EmotionDetector:
    """Emotion analysis bound to one phrasebook and one model; thread-safe, immutable."""

    def __init__(self, phrasebook: Phrasebook, model: EmotionModel) -> None:
        self._normalizer = phrasebook.normalizer
        self._matcher = phrasebook.cached(
            "emotion.matcher",
            lambda: CueMatcher(phrasebook.emotion, phrasebook.normalizer, str(phrasebook.file("emotion.yaml"))),
        )
        self._model = model

    def detect(self, text: str) -> EmotionResult:
        """Emotion of one message (see :func:`agent_assist.detect_emotion`)."""
        check_text(text)
        if not text.strip():
            return _empty()
        norm = self._normalizer.normalize(text)
        sums, hits = self._matcher.scan(norm.text)
        matches = self._model.ngrams(norm.text)
        z = self._model.logits(matches, feature_vector(sums))
        return self._result(norm, hits, matches, softmax1(z))

    def detect_many(self, texts: Sequence[str]) -> list[EmotionResult]:
        """Emotions of many messages; the model runs once over the whole batch."""
        for i, t in enumerate(texts):
            check_text(t, f"texts[{i}]")
        unique: dict[str, int] = {}
        for t in texts:
            if t.strip() and t not in unique:
                unique[t] = len(unique)
        norms, scans, matches = [], [], []
        for t in unique:
            n = self._normalizer.normalize(t)
            norms.append(n)
            scans.append(self._matcher.scan(n.text))
            matches.append(self._model.ngrams(n.text))
        results: list[EmotionResult] = []
        if unique:
            feats = np.log1p(np.array([s for s, _ in scans], dtype=np.float64))
            probs = softmax(self._model.logits_batch(matches, feats)).tolist()
            results = [
                self._result(norms[i], scans[i][1], matches[i], probs[i]) for i in range(len(unique))
            ]
        return [results[unique[t]] if t in unique else _empty() for t in texts]

    def _result(
        self, norm: Normalized, hits: list[CueHit], matches: list[tuple[int, int]], p: list[float]
    ) -> EmotionResult:
        best = max(range(len(p)), key=p.__getitem__)
        tier = TIERS[best]
        original, offsets = norm.original, norm.offsets
        evidence = []
        for h in hits:
            a, b = (h.start, h.end) if offsets is None else norm.span(h.start, h.end)
            evidence.append(
                build(
                    Evidence,
                    start=a,
                    end=b,
                    text=original[a:b],
                    cue=h.cue,
                    rule=h.rule,
                    tier=h.tier,
                    weight=h.weight,
                )
            )
        if best != _CALM and not any(h.tier == tier for h in hits):
            evidence.extend(self._model_evidence(norm, matches, best, hits))
        if len(evidence) > 1:
            evidence.sort(key=_position)
        strength = sum(h.weight for h in hits if h.tier != "calm")
        shape = _INTENSITY_FLOOR + (1 - _INTENSITY_FLOOR) * (1 - math.exp(-strength / _INTENSITY_SCALE))
        intensity = (1.0 - p[_CALM]) * shape
        scores = dict(zip(TIERS, p))
        return build(
        EmotionResult,
            tier=tier, scores=scores, intensity=round(intensity, 4), evidence=evidence
        )

    def _model_evidence(
        self, norm: Normalized, matches: list[tuple[int, int]], best: int, hits: list[CueHit]
    ) -> list[Evidence]:
        """The n-grams that pushed hardest toward the winning tier, as evidence spans."""
        first: dict[int, int] = {}
        for last, idx in matches:
            first.setdefault(idx, last)
        if not first:
            return []
        idx = np.fromiter(first, dtype=np.intp, count=len(first))
        push = self._model.push[best].take(idx)
        taken: list[tuple[int, int]] = [(h.start, h.end) for h in hits]
        lengths = self._model.ngram_length
        out: list[Evidence] = []
        for k in np.argsort(-push, kind="stable")[: 4 * _MODEL_EVIDENCE].tolist():
            if push[k] <= 0:
                break
            i = int(idx[k])
            end = first[i] + 1
            start = end - lengths[i]
            if any(start < e and s < end for s, e in taken):
                continue
            taken.append((start, end))
            o_start, o_end = norm.span(start, end)
            out.append(
                build(
                    Evidence,
                    start=o_start,
                    end=o_end,
                    text=norm.original[o_start:o_end],
                    cue=f"model:{norm.text[start:end]}",
                    rule="model",
                    tier=TIERS[best],
                    weight=round(float(push[k]), 4),
                )
            )
            if len(out) == _MODEL_EVIDENCE:
                break
        return out


def _position(e: Evidence) -> tuple[int, int]:
    return e.start, e.end


def _empty() -> EmotionResult:
    scores = {t: (1.0 if t == "calm" else 0.0) for t in TIERS}
    return build(
        EmotionResult,tier="calm", scores=scores, intensity=0.0, evidence=[])
