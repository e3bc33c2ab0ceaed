"""Command line: ``agent-assist emotion TEXT|--file FILE``, ``agent-assist check REPLY [--customer TEXT]``."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from .analyze_cli import add_analyze_parser
from .assistant import Assistant
from .errors import AgentAssistError
from .filebatch import score_file
from .serve_cli import add_serve_parser
from .suggest_cli import add_suggest_parser

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
        print(
            f"{tier:<15} {r.intensity:.2f}  {_highlight(text, [(e.start, e.end) for e in r.evidence], colour)}"
        )
        for e in r.evidence:
            print(f"    [{e.start}:{e.end}] {e.text}  {e.rule} {e.cue} → {e.tier} ({e.weight:g})")
    return 0


_SEVERITY_COLOURS = {"high": "31", "medium": "33", "low": "36"}


def _bracket(text: str, spans: list[tuple[int, int]]) -> str:
    """Mark spans with 【】 where the terminal cannot show colour (pipes, files)."""
    out, pos = [], 0
    for start, end in sorted(set(spans)):
        if start < pos:
            continue
        out += [text[pos:start], "【", text[start:end], "】"]
        pos = end
    out.append(text[pos:])
    return "".join(out)


def cmd_check(args: argparse.Namespace, assistant: Assistant) -> int:
    """Minefield check of one agent reply: hits with highlighted spans, and a safer reply."""
    r = assistant.check_reply(args.reply, customer_text=args.customer)
    if args.json:
        print(json.dumps({"reply": args.reply, **r.model_dump()}, ensure_ascii=False))
        return 0
    colour = sys.stdout.isatty()
    spans = [(h.start, h.end) for h in r.hits]
    print(_highlight(args.reply, spans, True) if colour else _bracket(args.reply, spans))
    if r.ok:
        print("ok: no minefield found")
        return 0
    for h in r.hits:
        sev = f"\x1b[{_SEVERITY_COLOURS[h.severity]}m{h.severity}\x1b[0m" if colour else h.severity
        print(f"  [{h.start}:{h.end}] {h.text}  {h.kind} ({sev}, {h.rule})")
        print(f"      {h.principle}")
        print(f"      → {h.rewrite}")
    print(f"suggested: {r.suggested_reply}")
    return 1


def cmd_qa(args: argparse.Namespace, assistant: Assistant) -> int:
    try:
        summary = score_file(
            args.input,
            args.output,
            workers=args.workers,
            redact=not args.no_redact,
            report=args.report,
            phrasebooks=args.phrasebooks,
            progress=sys.stderr.isatty(),
        )
    except (ValueError, OSError) as e:  # unreadable input (also found while streaming) or output
        print(f"agent-assist qa: {e}", file=sys.stderr)
        return 2
    scored = summary.count - summary.errors
    print(
        f"scored {scored} of {summary.count} transcripts ({summary.errors} could not be scored) -> {args.output}"
    )
    if summary.mean_score is not None:
        print(
            f"mean score {summary.mean_score:.1f}; lowest: "
            + ", ".join(f"{i} ({s:g})" for i, s in summary.lowest)
        )
    if summary.report is not None:
        print(f"report: {summary.report}")
    return 0


def cmd_validate(args: argparse.Namespace, assistant: Assistant) -> int:
    directory = Path(args.path)
    checked = Assistant(directory)
    checked.validate()  # a PhrasebookError is reported by main() with file, key and line
    own = sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())
    print(
        f"ok: {directory} is a valid phrasebook directory ({len(own)} file(s) of its own: "
        f"{', '.join(own) or 'none'}; the rest from the bundled defaults)"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="agent-assist", description="Customer-service assistant for Chinese complaints."
    )
    p.add_argument("--phrasebooks", help="your own phrasebook directory (default: bundled)")
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("emotion", help="emotion tier of customer messages, with evidence")
    e.add_argument("text", nargs="*", help="messages to analyse")
    e.add_argument("--file", help="a .txt (one message a line) or .jsonl (a 'text' field) file")
    e.add_argument("--json", action="store_true", help="one JSON object a line")
    e.set_defaults(run=cmd_emotion)
    c = sub.add_parser("check", help="minefield check of an agent reply, with a safer suggestion")
    c.add_argument("reply", help="the agent's draft reply")
    c.add_argument("--customer", help="the customer message being answered")
    c.add_argument("--json", action="store_true", help="print the ReplyCheck as JSON")
    c.set_defaults(run=cmd_check)
    v = sub.add_parser("validate", help="check a phrasebook directory: every file loads and compiles")
    v.add_argument("path", help="the directory (files it lacks come from the bundled defaults)")
    v.set_defaults(run=cmd_validate)
    q = sub.add_parser("qa", help="score recorded transcripts (JSONL, CSV or Parquet) in batch")
    q.add_argument("input", help="transcripts: .jsonl (one a line), or long-form .csv / .parquet")
    q.add_argument("-o", "--output", required=True, help="results: .jsonl, .csv or .parquet")
    q.add_argument("--report", help="also write a self-contained HTML report here")
    q.add_argument("--workers", type=int, default=None, help="processes to use (default 1)")
    q.add_argument(
        "--no-redact",
        action="store_true",
        help="keep phone/ID/card numbers, e-mails and plates in the output and report",
    )
    q.set_defaults(run=cmd_qa)
    add_analyze_parser(sub)
    add_suggest_parser(sub)
    add_serve_parser(sub)
    return p


def _terminate(signum: int, frame: object) -> None:
    # SIGTERM unwinds like Ctrl-C, so a half-written output is removed, never left behind.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        assistant = Assistant(args.phrasebooks)
        return int(args.run(args, assistant))
    except KeyboardInterrupt:
        print("agent-assist: interrupted; no output written", file=sys.stderr)
        return 130
    except AgentAssistError as e:
        print(f"agent-assist: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"agent-assist: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
