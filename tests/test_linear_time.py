"""Every analyser runs in time linear in the length of its input.

Each analyser is called directly, so no ``max_chars`` cut applies, on pathological inputs of
50,000 and 100,000 characters measured in the same run. Doubling the length must less than
triple the time: a linear analyser takes about 2x, while the quadratic paths this guards
against (a regex retried at every digit of a long number, a list scanned once per match)
took 3x-5x per doubling, and minutes at these sizes. Each size is timed as the minimum of
several interleaved runs with the garbage collector off; there are no wall-clock bounds, so
a slow or busy machine does not fail. The whole file takes about 50 s on two cores.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

import pytest

from agent_assist import Assistant

SMALL, LARGE = 50_000, 100_000
MAX_RATIO = 3.0
MIN_RUNS = 3
MIN_SECONDS = 0.05  # runs go on (up to MAX_RUNS) until each size has had this much time
MAX_RUNS = 15


def _repeat(unit: str) -> Callable[[int], str]:
    """Whole copies of ``unit`` (a cut copy at the end would differ between the two sizes)."""
    return lambda n: unit * (n // len(unit))


# Input families: the runs that make a backtracking regex or a per-match scan blow up.
FAMILIES: dict[str, Callable[[int], str]] = {
    "digits": _repeat("1"),
    "ascii_letter": _repeat("a"),
    "cjk_char": _repeat("好"),
    "chinese_numeral": _repeat("三"),
    "exclamation": _repeat("!"),
    "question": _repeat("?"),
    "spaces": _repeat(" "),
    "zero_width": _repeat("\u200b"),
    "emoji": _repeat("😡"),
    "wait_cue": _repeat("等了1天"),
    "negator": _repeat("不"),
    "ordinal_cue": _repeat("第三次"),
    "a_dot": _repeat("a."),
    "a_at": _repeat("a@"),
    "digit_dash": _repeat("1-"),
    "digit_comma": _repeat("1,"),
    "digit_space": _repeat("1 "),
    "amount_cue": _repeat("1元"),
    "date_cue": _repeat("12号"),
    "order_keyword": _repeat("订单号12345，"),
    "model_codes": _repeat("a1 "),
    "mixed_token": lambda n: "SF" + ("1234567890" * n)[: n - 2],
    "minimal_reply": _repeat("嗯嗯好的"),
    "yielding_hits": _repeat("我们不知道"),
    "trigger_then_number": lambda n: "稍后联系您" + "1" * (n - 5),
    "refused_request": _repeat("不要赔偿"),
}


@pytest.fixture(scope="module")
def assistant() -> Assistant:
    return Assistant()


def _transcript(text: str) -> dict[str, object]:
    return {
        "id": "linear",
        "turns": [{"speaker": "customer", "text": text}, {"speaker": "agent", "text": text}],
    }


def _score_transcript(a: Assistant, text: str) -> None:
    result = a.score_transcript(_transcript(text))
    assert result.error is None, result.error  # timing an error path would prove nothing


# Each analyser as called by the library, on the whole text (no max_chars cut).
ANALYSERS: dict[str, Callable[[Assistant, str], object]] = {
    "triage": lambda a, t: a.triager.triage(t),
    "triage_history": lambda a, t: a.triager.triage("快递还没到", history=[t]),
    "extract_slots": lambda a, t: a.slots.extract(t),
    "mask_sensitive": lambda a, t: a.slots.mask(t),
    "detect_emotion": lambda a, t: a.emotion.detect(t),
    "check_reply": lambda a, t: a.minefields.check(t),
    "check_reply_customer_text": lambda a, t: a.minefields.check("我们给您赔偿50元", customer_text=t),
    "score_transcript": _score_transcript,
}


def _best_times(small: Callable[[], object], large: Callable[[], object]) -> tuple[float, float]:
    """Minimum time of each call, the two runs interleaved so that a busy machine slows both."""
    best = [float("inf"), float("inf")]
    spent = [0.0, 0.0]
    runs = 0
    gc.collect()
    while runs < MIN_RUNS or (min(spent) < MIN_SECONDS and runs < MAX_RUNS):
        for i, call in enumerate((small, large)):
            gc.disable()
            try:
                start = time.perf_counter()
                call()
                elapsed = time.perf_counter() - start
            finally:
                gc.enable()
            best[i] = min(best[i], elapsed)
            spent[i] += elapsed
        runs += 1
    return best[0], best[1]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("analyser", ANALYSERS)
def test_time_is_linear_in_the_input_length(assistant: Assistant, analyser: str, family: str) -> None:
    fn, make = ANALYSERS[analyser], FAMILIES[family]
    small, large = make(SMALL), make(LARGE)
    assert len(large) >= 1.99 * len(small)
    fn(assistant, "你好，我的订单12345还没到")  # load lazily built resources outside the timing
    t_small, t_large = _best_times(lambda: fn(assistant, small), lambda: fn(assistant, large))
    ratio = t_large / t_small
    assert ratio < MAX_RATIO, (
        f"{analyser} on {family}: {t_small * 1000:.1f} ms at {len(small):,} chars, "
        f"{t_large * 1000:.1f} ms at {len(large):,} chars ({ratio:.1f}x for 2x the length)"
    )
