"""The library's exceptions, as one tree::

    AgentAssistError
    ├── PhrasebookError     a phrasebook file is missing, malformed or inconsistent
    └── ModelError          a model artefact is missing, malformed or does not fit the phrasebook

Bad *input text* is never an exception beyond ``TypeError`` for non-strings: analysers
return a result for any string.
"""

from __future__ import annotations


class AgentAssistError(Exception):
    """Base class of every error this library raises on purpose."""


class PhrasebookError(AgentAssistError):
    """A phrasebook file could not be loaded; the message names the file and the key."""

    def __init__(self, file: str, message: str, *, key: str | None = None, line: int | None = None):
        self.file, self.key, self.line = file, key, line
        where = file + (f":{line}" if line else "") + (f" [{key}]" if key else "")
        super().__init__(f"{where}: {message}")


class ModelError(AgentAssistError):
    """A model artefact could not be loaded or does not match the phrasebook."""
