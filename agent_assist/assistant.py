"""The :class:`Assistant`: one phrasebook and its models, and the module-level shortcuts.

Everything loads lazily and once: building an ``Assistant`` is free, the first call that
needs the emotion model loads it (thread-safely), and every later call reuses it. The
module-level functions share one default ``Assistant`` built from the bundled data.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from .emotion import EmotionDetector
from .emotion_model import EmotionModel
from .phrasebook import Phrasebook, _Lazy, bundled_models
from .results import EmotionResult


class Assistant:
    """Analysers bound to one phrasebook directory (default: the bundled one).

    >>> from agent_assist import Assistant
    >>> a = Assistant()                 # or Assistant("my_company_phrasebooks/")
    >>> a.detect_emotion("算了，随便吧").tier
    'indifference'
    """

    def __init__(
        self,
        phrasebooks: str | Path | Phrasebook | None = None,
        *,
        models: str | Path | None = None,
    ) -> None:
        self.phrasebook = phrasebooks if isinstance(phrasebooks, Phrasebook) else Phrasebook(phrasebooks)
        self._models = Path(models) if models is not None else None
        self._lazy = _Lazy()

    @property
    def emotion(self) -> EmotionDetector:
        """The emotion detector (built on first use)."""
        return self._lazy.get(
            "emotion",
            lambda: EmotionDetector(self.phrasebook, _load_model(self._models)),
        )

    def detect_emotion(self, text: str) -> EmotionResult:
        """See :func:`agent_assist.detect_emotion`."""
        return self.emotion.detect(text)

    def detect_emotions(self, texts: Sequence[str]) -> list[EmotionResult]:
        """See :func:`agent_assist.detect_emotions`."""
        return self.emotion.detect_many(texts)


_models_lock = threading.Lock()
_models_cache: dict[Path, EmotionModel] = {}


def _load_model(directory: Path | None) -> EmotionModel:
    # Models are keyed by directory so several Assistants (one per tenant phrasebook)
    # share one copy of the weights.
    path = (directory or bundled_models() / "emotion").resolve()
    with _models_lock:
        if path not in _models_cache:
            _models_cache[path] = EmotionModel(path)
        return _models_cache[path]


_default: Assistant | None = None
_default_lock = threading.Lock()


def default_assistant() -> Assistant:
    """The shared :class:`Assistant` over the bundled phrasebook and models."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Assistant()
    return _default


def detect_emotion(text: str) -> EmotionResult:
    """How the customer feels in one message: tier, scores, intensity and evidence.

    >>> from agent_assist import detect_emotion
    >>> r = detect_emotion("第三次打电话了，到底有没有人管？！")
    >>> r.tier
    'anger'
    >>> [e.text for e in r.evidence][:2]
    ['第三次', '到底']
    """
    return default_assistant().emotion.detect(text)


def detect_emotions(texts: Sequence[str]) -> list[EmotionResult]:
    """:func:`detect_emotion` for a list, faster per message than a loop.

    >>> from agent_assist import detect_emotions
    >>> [r.tier for r in detect_emotions(["在吗？想问下发票怎么开", "气死我了！！"])]
    ['calm', 'anger']
    """
    return default_assistant().emotion.detect_many(texts)
