"""``agent-assist analyze``: emotion, triage and slots of customer messages, for a terminal.

Hooked into :mod:`agent_assist.cli` with :func:`add_analyze_parser`. Personal numbers
(phone, ID, bank card) are masked in everything printed, including the echoed message.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timedelta
from pathlib import Path

from .assistant import Assistant
from .slots import Slots
from .triage import Triage


def add_analyze_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Register the ``analyze`` subcommand on ``agent-assist``'s subparsers."""
    a: argparse.ArgumentParser = sub.add_parser(
        "analyze", help="emotion, complaint triage and slots of customer messages"
    )
    a.add_argument("text", nargs="*", help="messages to analyse")
    a.add_argument("--file", help="a .txt (one message a line) or .jsonl (a 'text' field) file")
    a.add_argument("--json", action="store_true", help="one JSON object a line")
    a.add_argument(
        "--now",
        nargs="?",
        const="now",
        metavar="ISO_TIME",
        help="when the messages were received (default with the flag: now); deadlines get clock times",
    )
    a.set_defaults(run=cmd_analyze)
    return a


def _received(value: str | None) -> datetime | None:
    if value is None:
        return None
    if value == "now":
        return datetime.now().astimezone()
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise SystemExit(f"agent-assist analyze: --now: not an ISO date-time: {value!r}") from None


def _duration(d: timedelta | None) -> str:
    if d is None:
        return "?"
    minutes = d.total_seconds() / 60
    if minutes < 60:
        return f"{minutes:g}m"
    if minutes < 60 * 48:
        return f"{minutes / 60:g}h"
    return f"{minutes / 1440:g}d"


def _triage_lines(t: Triage, shown: str) -> list[str]:
    d = t.deadlines
    lines = [
        f"  triage   {t.level} ({t.level_rule or 'default'})  {t.category}.{t.subcategory} "
        f"[{t.category_label}·{t.subcategory_label}]  nature={t.nature} severity={t.severity} "
        f"urgency={t.urgency} scope={t.scope}" + ("  SAFETY" if t.safety else ""),
        f"  due      acknowledge {_duration(d.acknowledge)}, first solution {_duration(d.first_solution)}, "
        f"final {_duration(d.final)}, follow-up {_duration(d.follow_up)} after final  ({d.basis})",
    ]
    if d.acknowledge_by is not None:
        fmt = "%m-%d %H:%M"
        lines.append(
            f"  by       acknowledge {d.acknowledge_by:{fmt}}, first solution {d.first_solution_by:{fmt}}, "
            f"final {d.final_by:{fmt}}, follow-up {d.follow_up_by:{fmt}}"
        )
    for e in t.evidence:
        where = "" if e.turn is None else f" (history {e.turn})"
        text = shown[e.start : e.end] if e.turn is None else e.text
        lines.append(f"    [{e.start}:{e.end}]{where} {text}  {e.rule} → {e.label}  ({e.cue})")
    return lines


def _mask_evidence(node: object, shown: str) -> None:
    """Replace the text of every span of the message by the same span of the masked message.

    An analyser's span may overlap a phone number (emotion's 12345 cue inside 13812345678);
    masking keeps lengths, so the masked slice is the safe version of the same span.
    """
    if isinstance(node, dict):
        if {"start", "end", "text"} <= node.keys() and node.get("turn") is None:
            node["text"] = shown[node["start"] : node["end"]]
        for v in node.values():
            _mask_evidence(v, shown)
    elif isinstance(node, list):
        for v in node:
            _mask_evidence(v, shown)


def _slot_lines(s: Slots) -> list[str]:
    parts: list[str] = []
    parts += [f"product {p.text}={p.name} ({p.kind})" for p in s.products]
    parts += [f"{o.kind} {o.value}" for o in s.orders]
    parts += [f"wait {w.text}={_duration(w.duration)}{'+' if w.approximate else ''}" for w in s.waits]
    parts += [f"contact {c.text}={c.count if c.count is not None else '?'}" for c in s.contacts]
    parts += [
        f"amount {a.text}={a.value:g} {a.currency}" if a.value is not None else f"amount {a.text}"
        for a in s.amounts
    ]
    parts += [f"date {d.text}" for d in s.dates]
    parts += [f"{x.type} {x.masked}" for x in s.sensitive]
    return [f"  slots    {' · '.join(parts)}"] if parts else []


def cmd_analyze(args: argparse.Namespace, assistant: Assistant) -> int:
    """Print emotion, triage and slots for each message (``--json``: one object a line)."""
    from .cli import _COLOURS, _highlight, _messages  # here, not at the top: cli imports this module

    texts = list(args.text) if args.text else []
    if args.file:
        texts += list(_messages(Path(args.file)))
    if not texts:
        print("agent-assist analyze: give TEXT or --file", file=sys.stderr)
        return 2
    now = _received(getattr(args, "now", None))
    colour = sys.stdout.isatty() and not args.json
    for text, emotion in zip(texts, assistant.detect_emotions(texts), strict=True):
        t = assistant.triage(text, now=now, emotion=emotion)
        s = assistant.extract_slots(text)
        shown = assistant.mask_sensitive(text)  # same length: every span below still fits
        if args.json:
            record = {
                "text": shown,
                "emotion": emotion.model_dump(mode="json"),
                "triage": t.model_dump(mode="json"),
                "slots": s.model_dump(mode="json"),
            }
            _mask_evidence(record, shown)
            print(json.dumps(record, ensure_ascii=False))
            continue
        tier = f"\x1b[{_COLOURS[emotion.tier]}m{emotion.tier}\x1b[0m" if colour else emotion.tier
        spans = [(e.start, e.end) for e in t.evidence if e.turn is None]
        print(f"{tier:<15} {emotion.intensity:.2f}  {_highlight(shown, spans, colour)}")
        for line in _triage_lines(t, shown) + _slot_lines(s):
            print(line)
    return 0
