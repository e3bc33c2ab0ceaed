"""Emotion tier of a customer message: the cue lexicon and the n-gram model, combined.

The lexicon finds the words and rules (negation, intensifiers, repetition, waiting time,
threats, sarcasm, resignation); their damped sums are features of a linear model that
also reads character n-grams. The model's weights for those features were learned from
data, so how much "投诉" or "算了" moves each tier is measured, not guessed; the lexicon
supplies the evidence spans and the domain knowledge that Weibo-trained n-grams lack.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import NamedTuple

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
# Messages per model pass in a batch: large enough to amortise numpy's call overhead, small
# enough that the intermediate n-gram lists stay young (a whole-batch pass kept ~10^5 tuples
# alive and let the garbage collector's full scans dominate).
_CHUNK = 128
#: (messages normalised, the messages, positions whose evidence is read or None for all)
_Group = tuple[Sequence[Normalized], Sequence[str], Collection[int] | None]


class Mood(NamedTuple):
    """A message's tier and intensity alone (see :meth:`EmotionDetector.detect_moods`)."""

    tier: str
    intensity: float


class EmotionDetector:
    """Emotion analysis bound to one phrasebook and one model; thread-safe, immutable."""

    def __init__(self, phrasebook: Phrasebook, model: EmotionModel) -> None:
        self._normalizer = phrasebook.normalizer
        self._matcher = phrasebook.cached(
            "emotion.matcher",
            lambda: CueMatcher(
                phrasebook.emotion, phrasebook.normalizer, str(phrasebook.file("emotion.yaml"))
            ),
        )
        self._model = model

    def detect(self, text: str) -> EmotionResult:
        """Emotion of one message (see :func:`agent_assist.detect_emotion`)."""
        check_text(text)
        if not text.strip():
            return _empty()
        norm = self._normalizer.normalize(text)
        sums, hits = self._matcher.scan(norm.text)
        z = self._model.logits(self._model.ngram_ids(norm.text), feature_vector(sums))
        return self._result(norm, hits, softmax1(z))

    def detect_many(
        self, texts: Sequence[str], *, evidence_for: Collection[int] | None = None
    ) -> list[EmotionResult]:
        """Emotions of many messages: duplicates are analysed once, and the model runs on
        chunks of messages at a time (one numpy pass per chunk instead of one per message).

        ``evidence_for``: the positions whose evidence the caller reads (None: all); the
        others come back with ``evidence=[]``, which spares building it (QA reads the tier
        of every customer turn but the evidence of the first and last only).
        """
        for i, t in enumerate(texts):
            check_text(t, f"texts[{i}]")
        normalize = self._normalizer.normalize
        return self.detect_normalized([normalize(t) for t in dict.fromkeys(texts)], texts, evidence_for)

    def detect_normalized(
        self, norms: Sequence[Normalized], texts: Sequence[str], evidence_for: Collection[int] | None = None
    ) -> list[EmotionResult]:
        """:meth:`detect_many` for a caller that has normalised the messages already (QA
        normalises each turn once for every analyser): ``norms`` holds at least one
        :class:`Normalized` per distinct string of ``texts``, by this detector's normaliser."""
        return self.detect_groups([(norms, texts, evidence_for)])[0]

    def detect_groups(self, groups: Sequence[_Group]) -> list[list[EmotionResult]]:
        """:meth:`detect_normalized` of several groups of messages (QA: the customer turns of
        each transcript in a block) with the model run over all of them at once; each group
        comes out as if detected alone (its duplicates analysed once, its evidence_for kept)."""
        return self._groups(groups, False)  # type: ignore[return-value]

    def detect_moods(self, groups: Sequence[_Group]) -> list[list[EmotionResult | Mood]]:
        """:meth:`detect_groups`, but a message outside its group's ``evidence_for`` comes back
        as a :class:`Mood` (tier and intensity, equal to its result's): QA reads no more of
        the middle turns of a conversation, and builds no result for them."""
        return self._groups(groups, True)

    def _groups(self, groups: Sequence[_Group], moods: bool) -> list[list[EmotionResult | Mood]]:
        jobs: list[tuple[Normalized, bool]] = []
        layout: list[tuple[Sequence[str], int, list[str]]] = []
        for norms, texts, evidence_for in groups:
            by_text = {n.original: n for n in norms if n.original.strip()}
            unique = list(dict.fromkeys(t for t in texts if t in by_text))
            wanted = None if evidence_for is None else {texts[i] for i in evidence_for}
            layout.append((texts, len(jobs), unique))
            jobs.extend((by_text[t], wanted is None or t in wanted) for t in unique)
        results: list[EmotionResult | Mood] = []
        for at in range(0, len(jobs), _CHUNK):
            results.extend(self._chunk(jobs[at : at + _CHUNK], moods))
        out: list[list[EmotionResult | Mood]] = []
        for texts, first, unique in layout:
            done = dict(zip(unique, results[first : first + len(unique)], strict=True))
            out.append([done[t] if t in done else _empty() for t in texts])
        return out

    def _chunk(self, jobs: list[tuple[Normalized, bool]], moods: bool = False) -> list[EmotionResult | Mood]:
        """Results of (message, with evidence?) pairs, with one model pass for all of them;
        ``moods``: a :class:`Mood` for each message without evidence."""
        scans = [self._matcher.scan(n.text) for n, _ in jobs]
        feats = np.log1p(np.array([s for s, _ in scans], dtype=np.float64))
        probs = softmax(self._model.logits_many([n.text for n, _ in jobs], feats)).tolist()
        return [
            Mood(*_tier_and_intensity(sc[1], p)) if moods and not ev else self._result(n, sc[1], p, ev)
            for (n, ev), sc, p in zip(jobs, scans, probs, strict=True)
        ]

    def _result(
        self, norm: Normalized, hits: list[CueHit], p: list[float], with_evidence: bool = True
    ) -> EmotionResult:
        tier, intensity = _tier_and_intensity(hits, p)
        best = TIERS.index(tier)
        original, offsets = norm.original, norm.offsets
        evidence = []
        for h in hits if with_evidence else ():
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
        if with_evidence and best != _CALM and not any(h.tier == tier for h in hits):
            evidence.extend(self._model_evidence(norm, best, hits))
        if len(evidence) > 1:
            evidence.sort(key=_position)
        scores = dict(zip(TIERS, p))
        return build(EmotionResult, tier=tier, scores=scores, intensity=intensity, evidence=evidence)

    def _model_evidence(self, norm: Normalized, best: int, hits: list[CueHit]) -> list[Evidence]:
        """The n-grams that pushed hardest toward the winning tier, as evidence spans.

        Needed only when no cue speaks for the winner, so the n-grams' positions are found
        again here rather than kept for every message.
        """
        first: dict[int, int] = {}  # n-gram -> last index of its first occurrence
        for last, gram in self._model.ngrams(norm.text):
            if gram not in first:
                first[gram] = last
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


def _tier_and_intensity(hits: list[CueHit], p: list[float]) -> tuple[str, float]:
    """The tier (the first of equal highest probabilities) and the intensity, rounded."""
    tier = TIERS[p.index(max(p))]
    strength = sum([h.weight for h in hits if h.tier != "calm"]) if hits else 0
    shape = _INTENSITY_FLOOR + (1 - _INTENSITY_FLOOR) * (1 - math.exp(-strength / _INTENSITY_SCALE))
    return tier, round((1.0 - p[_CALM]) * shape, 4)


def _position(e: Evidence) -> tuple[int, int]:
    return e.start, e.end


def _empty() -> EmotionResult:
    scores = {t: (1.0 if t == "calm" else 0.0) for t in TIERS}
    return build(EmotionResult, tier="calm", scores=scores, intensity=0.0, evidence=[])
