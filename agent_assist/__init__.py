"""agent_assist: emotion, triage and reply help for Chinese customer service.

>>> import agent_assist
>>> agent_assist.detect_emotion("孩子还在车里，车门锁了打不开怎么办").tier
'panic'
"""

from __future__ import annotations

import logging

from .assistant import (
    Assistant,
    check_reply,
    default_assistant,
    detect_emotion,
    detect_emotions,
    extract_slots,
    mask_sensitive,
    redact,
    score_transcript,
    suggest,
    triage,
)
from .batch import score_frame, score_transcripts
from .errors import AgentAssistError, ModelError, PhrasebookError
from .filebatch import BatchSummary, score_file
from .minefields import MinefieldHit, ReplyCheck
from .phrasebook import Phrasebook
from .qa import QAEvidence, QAItem, QAResult, TierPoint
from .results import EmotionResult, Evidence, Turn
from .slots import Slots
from .suggest import ReplyCandidate, Suggestion, WatchOut
from .transcript import Record, Transcript, read_transcripts
from .triage import Deadlines, Triage

__version__ = "0.1.0"

__all__ = [
    "AgentAssistError",
    "Assistant",
    "BatchSummary",
    "Deadlines",
    "EmotionResult",
    "Evidence",
    "MinefieldHit",
    "ModelError",
    "Phrasebook",
    "ReplyCandidate",
    "Suggestion",
    "WatchOut",
    "QAEvidence",
    "QAItem",
    "QAResult",
    "Record",
    "TierPoint",
    "Transcript",
    "Turn",
    "PhrasebookError",
    "ReplyCheck",
    "Slots",
    "Triage",
    "__version__",
    "check_reply",
    "default_assistant",
    "detect_emotion",
    "detect_emotions",
    "extract_slots",
    "mask_sensitive",
    "read_transcripts",
    "redact",
    "score_file",
    "score_frame",
    "score_transcript",
    "score_transcripts",
    "suggest",
    "triage",
]

logging.getLogger("agent_assist").addHandler(logging.NullHandler())
