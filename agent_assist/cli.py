"""Command line: ``agent-assist emotion TEXT|--file FILE`` (more commands per capability)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from .assistant import Assistant
from .errors import AgentAssistError

_COLOURS = {"panic": "35", "anger": "31", "disappointment": "34", "indifference": "33", "calm": "32"}


def _messages(path: Path) -> Iterator[str]:
    """Lines of a text file, or the ``text`` field of each JSONL object."""
    with path.open(encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip():
                continue
            if path.suffix == ".jsonl":
                obj = json.loads(line)
                yield obj.get("text", "") if isinstance(obj, dict) else str(obj)
            else:
                yield line


def _highlight(text: str, spans: list[tuple[int, int]], colour: bool) -> str:
    if not colour or not spans:
        return text
    out, pos = [], 0
    for start, end in sorted(set(spans)):
        if start < pos:
            continue
        out += [text[pos:start], "\x1b[1;4m", text[start:end], "\x1b[0m"]
        pos = end
    out.append(text[pos:])
    return "".join(out)


def cmd_emotion(args: argparse.Namespace, assistant: Assistant) -> int:
    texts = list(args.text) if args.text else []
    if args.file:
        texts += list(_messages(Path(args.file)))
    if not texts:
        print("agent-assist emotion: give TEXT or --file", file=sys.stderr)
        return 2
    colour = sys.stdout.isatty() and not args.json
    for text, r in zip(texts, assistant.detect_emotions(texts)):
        if args.json:
            print(json.dumps({"text": text, **r.model_dump()}, ensure_ascii=False))
            continue
        tier = f"\x1b[{_COLOURS[r.tier]}m{r.tier}\x1b[0m" if colour else r.tier
        print(f"{tier:<15} {r.intensity:.2f}  {_highlight(text, [(e.start, e.end) for e in r.evidence], colour)}")
        for e in r.evidence:
            print(f"    [{e.start}:{e.end}] {e.text}  {e.rule} {e.cue} → {e.tier} ({e.weight:g})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="agent-assist", description="Customer-service assistant for Chinese complaints.")
    p.add_argument("--phrasebooks", help="your own phrasebook directory (default: bundled)")
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("emotion", help="emotion tier of customer messages, with evidence")
    e.add_argument("text", nargs="*", help="messages to analyse")
    e.add_argument("--file", help="a .txt (one message a line) or .jsonl (a 'text' field) file")
    e.add_argument("--json", action="store_true", help="one JSON object a line")
    e.set_defaults(run=cmd_emotion)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        assistant = Assistant(args.phrasebooks)
        return int(args.run(args, assistant))
    except AgentAssistError as e:
        print(f"agent-assist: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"agent-assist: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
