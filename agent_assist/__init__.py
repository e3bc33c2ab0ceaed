"""agent_assist: emotion, triage and reply help for Chinese customer service.

>>> import agent_assist
>>> agent_assist.detect_emotion("孩子还在车里，车门锁了打不开怎么办").tier
'panic'
"""

from __future__ import annotations

import logging

from .assistant import Assistant, default_assistant, detect_emotion, detect_emotions
from .errors import AgentAssistError, ModelError, PhrasebookError
from .phrasebook import Phrasebook
from .results import EmotionResult, Evidence, Turn

__version__ = "0.1.0"

__all__ = [
    "AgentAssistError",
    "Assistant",
    "EmotionResult",
    "Evidence",
    "ModelError",
    "Phrasebook",
    "Turn",
    "PhrasebookError",
    "__version__",
    "default_assistant",
    "detect_emotion",
    "detect_emotions",
]

logging.getLogger("agent_assist").addHandler(logging.NullHandler())
