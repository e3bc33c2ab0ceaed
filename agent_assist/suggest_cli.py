"""``agent-assist suggest``: reply suggestions for one customer message, for a terminal.

Hooked into :mod:`agent_assist.cli` with :func:`add_suggest_parser`. Personal numbers are
masked in the echoed message and in the JSON evidence, as ``analyze`` does.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .assistant import Assistant
from .suggest import MAX_REPLIES, Suggestion


def add_suggest_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Register the ``suggest`` subcommand on ``agent-assist``'s subparsers."""
    s: argparse.ArgumentParser = sub.add_parser(
        "suggest", help="reply suggestions (listen and confirm, empathise, solve) for a customer message"
    )
    s.add_argument("text", help="the customer's message")
    s.add_argument("-n", type=int, default=3, help=f"how many replies (1-{MAX_REPLIES}, default 3)")
    s.add_argument(
        "--history",
        metavar="FILE",
        help='earlier turns: a .json list or .jsonl lines of {"speaker": "customer"|"agent", "text": ...}',
    )
    s.add_argument("--agent", metavar="NAME", help="the agent's name, given as owner in escalated replies")
    s.add_argument("--json", action="store_true", help="print the Suggestion as one JSON object")
    s.set_defaults(run=cmd_suggest)
    return s


def _history(path: str | None) -> list[Any] | None:
    if path is None:
        return None
    text = Path(path).read_text(encoding="utf-8")
    turns: object
    if path.endswith(".jsonl"):
        turns = [json.loads(line) for line in text.splitlines() if line.strip()]
    else:
        turns = json.loads(text)
        if isinstance(turns, dict):
            turns = turns.get("turns")
    if not isinstance(turns, list):
        raise ValueError(f"{path}: expected a list of turns")
    return turns


def _lines(s: Suggestion, shown: str, colour: bool) -> list[str]:
    from .cli import _COLOURS  # here, not at the top: cli imports this module

    e, t = s.emotion, s.triage
    tier = f"\x1b[{_COLOURS[e.tier]}m{e.tier}\x1b[0m" if colour else e.tier
    lines = [
        f"{tier:<15} {e.intensity:.2f}  {shown}",
        f"  triage    {t.level}  {t.category}.{t.subcategory} [{t.category_label}·{t.subcategory_label}]  "
        f"nature={t.nature}" + ("  SAFETY" if t.safety else ""),
        f"  strategy  {s.strategy}",
        f"  register  {'escalated' if s.escalated else 'normal'}"
        + ("  (repeat contact)" if s.repeat_contact else "")
        + (f"  script={s.script}" if s.script != "simplified" else ""),
    ]
    if s.watch_out:
        lines.append("  watch out " + "; ".join(f"{w.kind}: {w.principle}" for w in s.watch_out))
    for i, r in enumerate(s.replies, 1):
        lines.append(f"  reply {i}   {r.text}")
        lines.append(f"            [{' '.join(r.template_ids)}]")
    return lines


def cmd_suggest(args: argparse.Namespace, assistant: Assistant) -> int:
    """Print the suggestion for one message (``--json``: the Suggestion as JSON)."""
    from .analyze_cli import _mask_evidence

    try:
        history = _history(args.history)
        s = assistant.suggest(args.text, history=history, n=args.n, agent_name=args.agent)
    except (ValueError, TypeError) as e:
        print(f"agent-assist suggest: {e}", file=sys.stderr)
        return 2
    shown = assistant.mask_sensitive(args.text)  # same length: every span still fits
    if args.json:
        record = {"text": shown, **s.model_dump(mode="json")}
        _mask_evidence(record, shown)
        print(json.dumps(record, ensure_ascii=False))
        return 0
    for line in _lines(s, shown, sys.stdout.isatty()):
        print(line)
    return 0
