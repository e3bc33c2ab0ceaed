"""``agent-assist serve``: the local HTTP service for desk plugins (see :mod:`agent_assist.server`).

Hooked into :mod:`agent_assist.cli` with :func:`add_serve_parser`. FastAPI and uvicorn are
imported only when the command runs, so the rest of the CLI works without the ``[server]`` extra.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from .assistant import Assistant

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def add_serve_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Register the ``serve`` subcommand on ``agent-assist``'s subparsers."""
    s: argparse.ArgumentParser = sub.add_parser(
        "serve", help="HTTP service for desk plugins (needs the [server] extra)"
    )
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, loopback only)")
    s.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    # SUPPRESS: without the flag here, `agent-assist --phrasebooks DIR serve` still applies.
    s.add_argument("--phrasebooks", default=argparse.SUPPRESS, help="your own phrasebook directory")
    s.add_argument(
        "--api-key",
        help="require this key (X-API-Key or Authorization: Bearer) on /v1/ endpoints; "
        "prefer the AGENT_ASSIST_API_KEY environment variable, which other users cannot see in ps",
    )
    s.add_argument(
        "--cors-origin",
        action="append",
        metavar="ORIGIN",
        help="allow browser calls from this origin (repeatable), e.g. chrome-extension://<id>; "
        "default: no CORS",
    )
    s.add_argument("--max-body-bytes", type=int, default=256_000, help="request body cap (default 256000)")
    s.add_argument("--max-field-chars", type=int, default=5_000, help="cap per text field (default 5000)")
    s.add_argument("--access-log", action="store_true", help="log every request")
    s.set_defaults(run=cmd_serve)
    return s


def cmd_serve(args: argparse.Namespace, assistant: Assistant) -> int:
    try:
        from .server import API_KEY_ENV, serve
    except ImportError as e:
        print(
            f"agent-assist serve: the HTTP service needs the server extra ({e.name} is missing): "
            "pip install 'agent_assist[server]'",
            file=sys.stderr,
        )
        return 2
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    if not api_key and args.host not in _LOOPBACK:
        print(
            f"agent-assist serve: warning: {args.host} is reachable from other machines and there is "
            f"no API key (--api-key or {API_KEY_ENV})",
            file=sys.stderr,
        )
    # The library logs to "agent_assist" with a NullHandler; a server run should show its errors.
    log = logging.getLogger("agent_assist")
    if not any(isinstance(h, logging.StreamHandler) for h in log.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:  %(message)s"))
        log.addHandler(handler)
    where = f"[{args.host}]" if ":" in args.host else args.host
    print(
        f"agent-assist serve: http://{where}:{args.port}/v1/ "
        f"(API key {'required' if api_key else 'off'}, CORS {'on' if args.cors_origin else 'off'})",
        file=sys.stderr,
    )
    serve(
        assistant,
        host=args.host,
        port=args.port,
        api_key=api_key,
        cors_origins=args.cors_origin,
        max_body_bytes=args.max_body_bytes,
        max_field_chars=args.max_field_chars,
        access_log=args.access_log,
    )
    return 0
