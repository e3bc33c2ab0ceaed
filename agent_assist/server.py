"""A local HTTP service for desk plugins: ``agent-assist serve`` (the ``[server]`` extra).

FastAPI on uvicorn, one worker, loopback by default. JSON in and out; responses are the
library's own result models, so ``/openapi.json`` documents exactly what Python callers get::

    POST /v1/emotion   {"text": ...}                                      -> EmotionResult
    POST /v1/triage    {"text": ..., "history": [...], "now": ...}        -> Triage
    POST /v1/check     {"reply": ..., "customer_text": ..., "history": [...]} -> ReplyCheck
    POST /v1/suggest   {"customer_text": ..., "history": [...], "n": 3}   -> Suggestion
    POST /v1/qa        {"transcript": {...}} or the transcript itself      -> QAResult
    GET  /v1/health                                                        -> {"status": "ok", ...}

Limits, all answered with a JSON body ``{"error": ...}`` and never a stack trace: a request
body over ``max_body_bytes`` is refused with 413 before it is parsed (the Content-Length
header is checked, and streamed bytes are counted); a missing, mistyped or over-long field
(``max_field_chars``) is a 422 naming the field; a Content-Type other than JSON is a 415
(so a web page can only call it through CORS); an optional API key (``X-API-Key`` or
``Authorization: Bearer``, compared in constant time) guards everything but ``/v1/health``
and ``/openapi.json`` (401); anything unexpected is a 500 ``{"error": "internal error"}``,
logged to ``logging.getLogger("agent_assist")``. CORS is off unless origins are given.

The analysers take 10-300 µs, so the live endpoints are ``async def`` and run on the event
loop: measured on /v1/check, plain ``def`` (a thread-pool hop per request) gave 2/3 of the
throughput and a far worse p99 at 16 connections. ``/v1/qa`` can take milliseconds on a
long transcript and is a plain ``def``, so the thread pool's GIL switching keeps it from
holding the loop for the whole call.

This module does not use ``from __future__ import annotations``: the request models are built
per app (their length cap is a parameter), and FastAPI needs the endpoints' annotations as
real objects, which string annotations naming function locals cannot be resolved to.
"""

import gc
import hashlib
import hmac
import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from datetime import datetime
from types import SimpleNamespace
from typing import Annotated, Any, Literal

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException
from starlette.requests import Request

from . import __version__
from .assistant import Assistant, default_assistant
from .minefields import ReplyCheck
from .qa import QAResult
from .results import EmotionResult, Turn
from .suggest import MAX_REPLIES, Suggestion
from .triage import Triage

__all__ = ["API_KEY_ENV", "create_app", "serve"]

logger = logging.getLogger("agent_assist")

#: Environment variable read by :func:`serve` (and so ``agent-assist serve``) for the API key.
API_KEY_ENV = "AGENT_ASSIST_API_KEY"

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
#: A 20-turn transcript of long turns is ~10 kB of JSON; 256 kB leaves room for long calls
#: while bounding what one request can make the server hold and parse.
MAX_BODY_BYTES = 256_000
#: A customer message or agent draft is a few hundred characters; 5,000 covers a pasted email.
MAX_FIELD_CHARS = 5_000
#: Turns of ``history`` a live request may carry (the analysers look at recent turns only).
MAX_HISTORY_TURNS = 200
ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


# --- request and error models --------------------------------------------------------------


class ErrorBody(BaseModel):
    """Every non-2xx answer."""

    error: str = Field(description="What went wrong, in one line.")


class FieldError(BaseModel):
    field: str = Field(description="Where in the request body, e.g. 'history[0].speaker'.")
    message: str


class InvalidRequest(ErrorBody):
    """A 422: the body is not JSON, or a field is missing, mistyped or too long."""

    fields: list[FieldError] = Field(description="One entry per offending field.")


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str = Field(description="agent_assist version.")


def _request_models(max_chars: int) -> SimpleNamespace:
    """Request bodies with ``max_chars`` as the cap on every text field."""
    Text = Annotated[str, Field(max_length=max_chars)]

    class _Request(BaseModel):
        # A misspelt field ("customer" for "customer_text") is an error, not silently ignored.
        model_config = ConfigDict(extra="forbid", frozen=True)

    class HistoryTurn(Turn):
        """A turn of the conversation so far (the library's ``Turn``, with the length cap).

        A plain string is taken as a customer turn, as the library does.
        """

        model_config = ConfigDict(extra="forbid", frozen=True)
        text: Text = Field(description="What was said.")

        @model_validator(mode="before")
        @classmethod
        def _customer_string(cls, data: Any) -> Any:
            # Not a `str | HistoryTurn` union: a union's errors name its members in the path.
            if isinstance(data, str):
                return {"speaker": "customer", "text": data}
            if not isinstance(data, (dict, Turn)):
                raise ValueError('a turn is a string or an object {"speaker": ..., "text": ...}')
            return data

    History = Annotated[list[HistoryTurn], Field(max_length=MAX_HISTORY_TURNS)]
    HISTORY = "The conversation so far, oldest first: turns, or strings (customer messages)."

    class EmotionRequest(_Request):
        text: Text = Field(description="One customer message.")

    class TriageRequest(_Request):
        text: Text = Field(description="The customer's complaint.")
        history: History | None = Field(None, description=HISTORY)
        now: datetime | None = Field(
            None, description="When it was received; deadlines then carry clock times."
        )

    class CheckRequest(_Request):
        reply: Text = Field(description="The agent's draft reply.")
        customer_text: Text | None = Field(None, description="The customer message being answered.")
        history: History | None = Field(None, description=HISTORY)

    class SuggestRequest(_Request):
        customer_text: Text = Field(description="The customer message to answer.")
        history: History | None = Field(None, description=HISTORY)
        n: int = Field(3, ge=1, le=MAX_REPLIES, strict=True, description="How many candidate replies.")
        agent_name: Text | None = Field(
            None, description="The agent's name, for replies that introduce them."
        )

    class TranscriptTurn(BaseModel):
        model_config = ConfigDict(extra="allow", frozen=True)
        speaker: str = Field(
            validation_alias=AliasChoices("speaker", "role"),
            description="customer / agent, or an alias from qa.yaml (客户, 客服, user …).",
        )
        text: Text
        start: float | None = None
        end: float | None = None

    class TranscriptRequest(BaseModel):
        """One transcript, as in a JSONL line of ``agent-assist qa``; ``{"transcript": {...}}`` also works."""

        model_config = ConfigDict(extra="allow", frozen=True)
        id: str | int = Field(description="Conversation id.")
        agent_id: str | int | None = None
        channel: str | None = None
        turns: list[TranscriptTurn] = Field(min_length=1, description="The turns in order.")

        @model_validator(mode="before")
        @classmethod
        def _unwrap(cls, data: Any) -> Any:
            if isinstance(data, dict) and "transcript" in data and "turns" not in data:
                if len(data) > 1:
                    raise ValueError("give either {'transcript': {...}} or the transcript itself, not both")
                return data["transcript"]
            return data

    return SimpleNamespace(
        **{
            c.__name__: c
            for c in (EmotionRequest, TriageRequest, CheckRequest, SuggestRequest, TranscriptRequest)
        }
    )


# --- responses and errors ------------------------------------------------------------------


class _JSON(Response):
    media_type = "application/json"


def _model_json(result: BaseModel, status: int = 200) -> Response:
    # The result is already a validated model: dump it straight to JSON bytes, skipping
    # FastAPI's re-validation and dict round-trip (the response_model is for the OpenAPI doc).
    return _JSON(result.model_dump_json(), status_code=status)


def _loc(loc: tuple[Any, ...]) -> str:
    parts = [p for p in loc if p != "body"]
    out = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".")
    return out or "body"


def _invalid(exc: RequestValidationError) -> JSONResponse:
    fields = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            reason = (err.get("ctx") or {}).get("error", "")
            fields.append(
                {"field": "body", "message": f"not valid JSON ({reason})" if reason else "not valid JSON"}
            )
            continue
        loc = _loc(tuple(err.get("loc", ())))
        if loc == "body" and err.get("type") == "missing":
            fields.append({"field": "body", "message": "empty body; expected a JSON object"})
            continue
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        fields.append({"field": loc, "message": message})
    first = fields[0] if fields else {"field": "body", "message": "invalid"}
    more = f" (and {len(fields) - 1} more)" if len(fields) > 1 else ""
    return JSONResponse(
        {"error": f"invalid request: {first['field']}: {first['message']}{more}", "fields": fields},
        status_code=422,
    )


async def _send_json(
    send: Callable[[Any], Awaitable[None]],
    status: int,
    payload: dict[str, Any],
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = json.dumps(payload, ensure_ascii=False).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _is_json(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return False


#: What answers without the API key; everything else needs it (secure by default).
_OPEN_PATHS = frozenset({"/v1/health", "/openapi.json"})


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


class _Guard:
    """Pure ASGI middleware in front of the routes: API key, body size cap, last-resort 500.

    Order matters: the key is checked before any body byte is read, and the body is read
    (and counted) before FastAPI parses it. Comparing SHA-256 digests with
    ``hmac.compare_digest`` takes the same time whatever the key's length or content.
    """

    def __init__(self, app: ASGIApp, *, api_key: str | None, max_body_bytes: int) -> None:
        self.app = app
        self._key = _digest(api_key.encode()) if api_key else None
        self._max = max_body_bytes

    def _authorised(self, headers: list[tuple[bytes, bytes]]) -> bool:
        given: bytes | None = None
        for name, value in headers:
            if name == b"x-api-key":
                given = value.strip()
                break
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                given = value[7:].strip()
        ok = hmac.compare_digest(_digest(given or b""), self._key or b"")
        return ok and given is not None

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked_send(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            if (
                self._key is not None
                and scope["path"] not in _OPEN_PATHS
                and not self._authorised(scope["headers"])
            ):
                await _send_json(
                    send,
                    401,
                    {"error": "missing or wrong API key (X-API-Key or Authorization: Bearer)"},
                    [(b"www-authenticate", b'Bearer realm="agent_assist"')],
                )
                return
            if scope["method"] == "POST" and not _is_json(scope["headers"]):
                # Also keeps web pages from posting here cross-site: a JSON content type makes
                # browsers send a CORS preflight, which fails unless --cors-origin allows it.
                await _send_json(send, 415, {"error": "Content-Type must be application/json"})
                return
            body, refused = await self._read_body(scope, receive, send)
            if refused:
                return

            async def replay() -> Any:
                nonlocal body
                if body is not None:
                    message, body = {"type": "http.request", "body": body, "more_body": False}, None
                    return message
                return await receive()

            await self.app(scope, replay, tracked_send)
        except Exception:
            logger.exception(
                "agent_assist server: unhandled error on %s %s", scope.get("method"), scope.get("path")
            )
            if not started:
                await _send_json(send, 500, {"error": "internal error"})

    async def _read_body(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> tuple[bytes | None, bool]:
        """The whole request body (None: nothing to read), or refused=True once a 4xx was sent."""
        too_large = {"error": f"request body larger than {self._max} bytes"}
        close = [(b"connection", b"close")]
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _send_json(send, 400, {"error": "bad Content-Length header"}, close)
                    return None, True
                if declared > self._max:
                    await _send_json(send, 413, too_large, close)
                    return None, True
                if declared == 0:
                    return None, False
                break
        else:
            if scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
                return None, False
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return None, True
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max:
                await _send_json(send, 413, too_large, close)
                return None, True
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), False


# --- the app -------------------------------------------------------------------------------


def _warm(assistant: Assistant) -> None:
    """Load every model and compile every phrasebook now, so the first request is not slow."""
    assistant.validate()
    assistant.check_reply("您好", customer_text="您好")
    assistant.suggest("您好", history=["您好"])


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or wrong API key (when the server has one)."},
    413: {"model": ErrorBody, "description": "Request body too large."},
    415: {"model": ErrorBody, "description": "Content-Type is not application/json."},
    422: {"model": InvalidRequest, "description": "Not JSON, or a field missing, mistyped or too long."},
    500: {"model": ErrorBody, "description": "Internal error (details are in the server log only)."},
}


def create_app(
    assistant: Assistant | None = None,
    *,
    api_key: str | None = None,
    cors_origins: list[str] | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_field_chars: int = MAX_FIELD_CHARS,
) -> FastAPI:
    """The HTTP app over ``assistant`` (default: the bundled phrasebooks).

    ``api_key``: required everywhere but ``/v1/health`` and ``/openapi.json``. ``cors_origins``:
    browser origins allowed to call it (e.g. ``["chrome-extension://<id>"]``); None: no CORS.
    Models are loaded when the app starts (its lifespan), not here.
    """
    a = assistant if assistant is not None else default_assistant()
    m = _request_models(max_field_chars)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        _warm(a)  # before the first connection is accepted
        yield

    app = FastAPI(
        title="agent_assist",
        version=__version__,
        description="Emotion, triage, minefield checks, reply suggestions and QA scoring of Chinese "
        'customer-service text. Errors are JSON: {"error": ...}.'
        + (
            " Everything but /v1/health and /openapi.json needs the API key in X-API-Key or"
            " Authorization: Bearer."
            if api_key
            else ""
        ),
        docs_url=None,  # Swagger UI and ReDoc load scripts from a CDN; this service stays offline
        redoc_url=None,
        lifespan=lifespan,
    )

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _invalid(exc)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.get("/v1/health", response_model=Health, tags=["service"])
    async def health() -> Response:
        """Liveness; never needs the API key."""
        return _model_json(Health(version=__version__))

    @app.post("/v1/emotion", response_model=EmotionResult, responses=_ERRORS, tags=["analysis"])
    async def emotion(req: m.EmotionRequest) -> Response:  # type: ignore[name-defined]
        """How the customer feels: tier, scores, intensity and evidence spans."""
        return _model_json(a.detect_emotion(req.text))

    @app.post("/v1/triage", response_model=Triage, responses=_ERRORS, tags=["analysis"])
    async def triage(req: m.TriageRequest) -> Response:  # type: ignore[name-defined]
        """Category, nature, severity, urgency, scope, level and response deadlines (ISO 8601 durations)."""
        return _model_json(a.triage(req.text, history=req.history, now=req.now))

    @app.post("/v1/check", response_model=ReplyCheck, responses=_ERRORS, tags=["analysis"])
    async def check(req: m.CheckRequest) -> Response:  # type: ignore[name-defined]
        """Minefield check of the agent's draft, with a safer rewrite."""
        return _model_json(a.check_reply(req.reply, customer_text=req.customer_text, history=req.history))

    @app.post("/v1/suggest", response_model=Suggestion, responses=_ERRORS, tags=["analysis"])
    async def suggest(req: m.SuggestRequest) -> Response:  # type: ignore[name-defined]
        """What to say next: up to n three-step replies, with the emotion, triage and slots behind them."""
        return _model_json(
            a.suggest(req.customer_text, history=req.history, n=req.n, agent_name=req.agent_name)
        )

    @app.post("/v1/qa", response_model=QAResult, responses=_ERRORS, tags=["analysis"])
    def qa(req: m.TranscriptRequest) -> Response:  # type: ignore[name-defined]
        """Quality score of one transcript; plain ``def``: a long one takes milliseconds (thread pool)."""
        result = a.score_transcript(req.model_dump(exclude_none=True))
        if result.error is not None:
            return _JSON(
                json.dumps({"error": result.error, "fields": []}, ensure_ascii=False), status_code=422
            )
        return _model_json(result)

    app.add_middleware(_Guard, api_key=api_key, max_body_bytes=max_body_bytes)
    if cors_origins:
        # Added last, so outermost: preflights and 401/413 answers carry the CORS headers too.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "X-API-Key", "Authorization"],
            max_age=600,
        )
    return app


def serve(
    assistant: Assistant | None = None,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    api_key: str | None = None,
    cors_origins: list[str] | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_field_chars: int = MAX_FIELD_CHARS,
    access_log: bool = False,
    log_level: str = "info",
) -> None:
    """Run the app with uvicorn (one worker) until interrupted.

    ``api_key`` None: taken from the ``AGENT_ASSIST_API_KEY`` environment variable, if set.
    """
    import uvicorn

    if api_key is None:
        api_key = os.environ.get(API_KEY_ENV) or None
    if not api_key and host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning("agent_assist server: listening on %s without an API key", host)
    a = assistant if assistant is not None else default_assistant()
    app = create_app(
        a,
        api_key=api_key,
        cors_origins=cors_origins,
        max_body_bytes=max_body_bytes,
        max_field_chars=max_field_chars,
    )
    # This process is the server's own: load everything, then move the loaded phrasebooks and
    # models out of the garbage collector's sight. A full collection otherwise walks them all
    # (85-110 ms measured here), a stall that lands on whichever requests are in flight.
    _warm(a)
    gc.collect()
    gc.freeze()
    uvicorn.run(
        app, host=host, port=port, workers=1, access_log=access_log, log_level=log_level, server_header=False
    )
