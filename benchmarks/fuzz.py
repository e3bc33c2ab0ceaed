"""A long fuzzing session over every public function (hypothesis), on demand.

    python benchmarks/fuzz.py --examples 20000          # or --minutes 30

Inputs mix arbitrary Unicode (including lone surrogates, control and zero-width
characters), emoji, HTML, template syntax and both Chinese scripts. Checks: nothing raises,
every span indexes the input, scores sum to 1, results are deterministic and serialisable.
The unit tests run the same properties with a few dozen examples each.
"""

from __future__ import annotations

import argparse
import json
import math
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import agent_assist as aa
from agent_assist.results import to_json

PIECES = ["\u200b", "\ufeff", "\x00", "\ud800", "\udfff", "😀", "<b>", "{{ 7*7 }}", "{% for %}", "還沒到", "气死了！！",
          "算了", "不是不满意", "第三次", "等了12天", "13812345678", "a@b.cn", "粤B12345", "这不归我们管", "一定解决"]
TEXT = st.lists(st.one_of(st.text(alphabet=st.characters(codec=None), max_size=30), st.sampled_from(PIECES)),
                max_size=8).map("".join)


def check(text: str, other: str) -> None:
    e = aa.detect_emotion(text)
    assert math.isclose(sum(e.scores.values()), 1.0, abs_tol=1e-9)
    assert all(x.text == text[x.start : x.end] for x in e.evidence)
    c = aa.check_reply(text, customer_text=other)
    assert all(h.text == text[h.start : h.end] for h in c.hits)
    t = aa.triage(text)
    s = aa.extract_slots(text)
    assert len(aa.redact(text)) == len(text)
    g = aa.suggest(text)
    q = aa.score_transcript({"id": "f", "turns": [{"speaker": "客户", "text": text}, {"speaker": "客服", "text": other}]})
    for r in (e, c, t, s, g, q):
        json.loads(to_json(r))
    assert aa.detect_emotion(text) == e and aa.check_reply(text, customer_text=other) == c


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--examples", type=int, default=5000)
    p.add_argument("--minutes", type=float, default=None, help="run this long instead (overrides --examples)")
    args = p.parse_args()
    # --minutes: rounds of 1,000 examples until the time is up (one endless hypothesis run
    # never reached the summary line).
    examples = 1000 if args.minutes else args.examples
    deadline = time.monotonic() + (args.minutes or 0) * 60
    count = 0

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(TEXT, TEXT)
    def run(text: str, other: str) -> None:
        nonlocal count
        count += 1
        check(text, other)

    t0 = time.monotonic()
    run()
    while args.minutes and time.monotonic() < deadline:
        run()
    print(f"fuzzed {count} input pairs in {time.monotonic() - t0:.0f} s: no failures")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
