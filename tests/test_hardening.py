"""Guarantees for whatever customers type and however the library is called.

Each test here fails if the protection it names is removed (see README "Guarantees").
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import agent_assist as aa

NASTY = ["\u200b", "\ufeff", "\x00", "\x1b[31m", "\ud800", "\udfff", "😀", "👩‍👩‍👧", "<script>alert(1)</script>",
         "{{ 7*7 }}", "{% for x in y %}", "還沒到", "ＡＢＣ！！", "\u202e", "\r\n\t", "13812345678", "a@b.cn", "粤B12345"]
texts = st.lists(st.one_of(st.text(max_size=40), st.sampled_from(NASTY)), max_size=6).map("".join)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _spans_ok(text: str, spans) -> None:
    for e in spans:
        assert 0 <= e.start <= e.end <= len(text)
        assert e.text == text[e.start : e.end]


@FAST
@given(texts)
def test_emotion_never_raises_and_spans_hold(text):
    r = aa.detect_emotion(text)
    assert math.isclose(sum(r.scores.values()), 1.0, abs_tol=1e-9) and set(r.scores) == set(aa.EmotionResult.model_fields["tier"].annotation.__args__)
    _spans_ok(text, r.evidence)
    assert r == aa.detect_emotion(text)  # deterministic


@FAST
@given(texts, texts)
def test_check_reply_never_raises_and_spans_hold(reply, customer):
    r = aa.check_reply(reply, customer_text=customer)
    _spans_ok(reply, r.hits)
    assert r.ok == (not r.hits)
    assert r == aa.check_reply(reply, customer_text=customer)


@FAST
@given(texts)
def test_triage_and_slots_never_raise_and_spans_hold(text):
    t = aa.triage(text)
    _spans_ok(text, [e for e in t.evidence if e.turn is None])
    s = aa.extract_slots(text)
    for group in (s.products, s.orders, s.waits, s.contacts, s.amounts, s.dates):
        _spans_ok(text, group)
    for x in s.sensitive:  # never in clear: only where it is and its masked form
        assert 0 <= x.start < x.end <= len(text) and len(x.masked) == x.end - x.start
    assert t == aa.triage(text) and s == aa.extract_slots(text)


@FAST
@given(texts)
def test_redaction_keeps_length_and_never_raises(text):
    for f in (aa.mask_sensitive, aa.redact):
        out = f(text)
        assert len(out) == len(text)
        assert f(text) == out


@FAST
@given(texts)
def test_suggest_never_raises_or_renders_user_text(text):
    s = aa.suggest(text)
    for reply in s.replies:
        assert "49" not in reply.text or "49" in text  # {{ 7*7 }} is never evaluated
        assert not aa.check_reply(reply.text, customer_text=text).hits


@FAST
@given(st.lists(texts, min_size=1, max_size=5))
def test_score_transcript_never_raises(turns):
    data = {"id": "p", "turns": [{"speaker": "客户" if i % 2 == 0 else "客服", "text": t} for i, t in enumerate(turns)]}
    r = aa.score_transcript(data)
    assert r.error is None and 0 <= r.score <= 100
    from agent_assist.results import to_json

    json.loads(to_json(r))  # serialisable even with lone surrogates


@pytest.mark.parametrize("text", ["等了99999999999天", "第999999999999999999次", "扣了9" * 40 + "元", "1e309元"])
def test_huge_numbers_do_not_overflow(text):
    aa.extract_slots(text), aa.triage(text), aa.suggest(text), aa.detect_emotion(text)


@pytest.mark.parametrize("workers", [None, 2])
def test_lone_surrogates_anywhere_in_a_batch_cost_nothing(tmp_path, workers):
    from agent_assist.output import AtomicOutput

    items = [{"id": "s\ud800", "turns": [{"speaker": "客户\udc80", "text": "气死\ud800了"}]},
             {"id": "ok", "turns": [{"speaker": "客户", "text": "气死\ud800了"}, {"speaker": "客服", "text": "好\udfff"}]},
             None] * 12
    results = list(aa.score_transcripts(items, workers=workers))
    assert len(results) == len(items)
    assert [r.error is None for r in results[:3]] == [False, True, False]
    for suffix in (".jsonl", ".csv", ".parquet"):
        out = AtomicOutput(tmp_path / f"o{suffix}")
        for r in results:
            out.write(r)
        out.commit()


def test_template_syntax_in_customer_text_comes_back_literally():
    s = aa.suggest("你们的A3{{ 7*7 }}{% for x in range(3) %}坏了，等了{{ config }}天")
    joined = " ".join(r.text for r in s.replies)
    assert "49" not in joined and "config" not in joined.replace("{{ config }}", "")


def test_none_in_batches_is_an_error_record_not_a_crash():
    out = aa.detect_emotions(["算了", None, 3])  # type: ignore[list-item]
    assert [r.error is None for r in out] == [True, False, False]
    results = list(aa.score_transcripts([{"id": "a", "turns": [{"speaker": "客户", "text": "hi"}]}, None, 7]))
    assert len(results) == 3 and results[0].error is None and results[1].error and results[2].error


@pytest.mark.parametrize("call", [
    lambda x: aa.detect_emotion(x), lambda x: aa.check_reply(x), lambda x: aa.triage(x),
    lambda x: aa.extract_slots(x), lambda x: aa.redact(x), lambda x: aa.mask_sensitive(x), lambda x: aa.suggest(x),
])
@pytest.mark.parametrize("bad", [None, 5, b"bytes"])
def test_non_strings_raise_a_clear_type_error(call, bad):
    with pytest.raises(TypeError, match="must be str"):
        call(bad)


CONCURRENT = textwrap.dedent("""
    import json, sys, threading
    import agent_assist as aa
    from agent_assist.results import to_json
    texts = %r
    def run_all():
        out = []
        for t in texts:
            out.append(to_json(aa.detect_emotion(t)))
            out.append(to_json(aa.check_reply(t, customer_text=t)))
            out.append(to_json(aa.triage(t).model_copy(update={"deadlines": None})))
            out.append(to_json(aa.extract_slots(t)))
            out.append(aa.redact(t))
            out.append(to_json(aa.suggest(t)))
            out.append(to_json(aa.score_transcript({"id": "c", "turns": [
                {"speaker": "客户", "text": t}, {"speaker": "客服", "text": "抱歉，今天18点前回复您"}]})))
        return out
    results = [None] * 8
    barrier = threading.Barrier(8)
    def worker(i):
        barrier.wait()          # all 8 hit the lazy loaders at the same moment
        results[i] = run_all()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads: t.start()
    for t in threads: t.join()
    single = run_all()
    print(json.dumps({"same": all(r == single for r in results), "n": len(single)}))
""")


def test_eight_threads_on_a_fresh_import_agree_with_one():
    samples = ["A3音箱等了12天还没到，太失望了", "这不归我们管", "冒烟了怎么办！！", "算了", "還沒退款，我要投訴"]
    out = subprocess.run([sys.executable, "-c", CONCURRENT % samples], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    verdict = json.loads(out.stdout)
    assert verdict == {"same": True, "n": 35}


def _write_batch(path: Path, n: int, bad_every: int = 100) -> int:
    bad = 0
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            if i % bad_every == 7:
                bad += 1
                f.write(["{broken json", '{"id": "x", "turns": []}', '{"id": "y", "turns": [{"speaker": "客户", "text": 5}]}'][i % 3] + "\n")
            else:
                f.write(json.dumps({"id": f"t{i}", "turns": [
                    {"speaker": "客户", "text": f"订单{i}还没到"}, {"speaker": "客服", "text": "抱歉，今天18点前回复您"}]},
                    ensure_ascii=False) + "\n")
    return bad


def test_100k_records_with_1_percent_malformed_give_100k_results(tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    bad = _write_batch(src, 100_000)
    done = subprocess.run([sys.executable, "-m", "agent_assist", "qa", str(src), "-o", str(out), "--workers", "2"],
                          capture_output=True, text=True, timeout=1200, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = 0
    errors = []
    with out.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            lines += 1
            r = json.loads(line)
            assert r["line"] == n
            if r["error"]:
                errors.append(r)
    assert lines == 100_000 and len(errors) == bad == 1000
    assert all(e["error"].startswith(f"line {e['line']}:") for e in errors)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_leaves_no_output_under_the_final_name(tmp_path, sig):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write_batch(src, 200_000)
    proc = subprocess.Popen([sys.executable, "-m", "agent_assist", "qa", str(src), "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    deadline = time.monotonic() + 60
    while not any(p.name.endswith(".tmp") for p in tmp_path.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0, err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_validate_command_names_file_key_and_line(tmp_path):
    (tmp_path / "qa.yaml").write_text("version: 1\nitems: [\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "agent_assist", "validate", str(tmp_path)],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "qa.yaml:3" in done.stderr
    (tmp_path / "qa.yaml").unlink()
    ok = subprocess.run([sys.executable, "-m", "agent_assist", "validate", str(tmp_path)], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("ok:")


def test_redact_masks_every_kind():
    text = ("手机13812345678 座机010-62345678 身份证110101199003071234 银行卡号6222021234567890123 "
            "4111 1111 1111 1111 a.b@example.com 粤B12345 京A·D12345")
    out = aa.redact(text)
    for secret in ("13812345678", "62345678", "110101199003071234", "6222021234567890123", "1111 1111 1111",
                   "a.b@", "B12345", "D12345"):
        assert secret not in out, secret
    assert len(out) == len(text)


def test_qa_outputs_and_report_are_redacted_by_default(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "p", "agent_id": "A1", "turns": [
        {"speaker": "客户", "text": "快递没到，气死了，我电话13812345678"},
        {"speaker": "客服", "text": "有事请拨打13912345678或写信给zhang@example.com"}]}, ensure_ascii=False) + "\n",
        encoding="utf-8")
    for flag, leaks in (([], False), (["--no-redact"], True)):
        out, rep = tmp_path / "o.jsonl", tmp_path / "r.html"
        done = subprocess.run([sys.executable, "-m", "agent_assist", "qa", str(src), "-o", str(out), "--report", str(rep),
                               *flag], capture_output=True, text=True, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        body = out.read_text(encoding="utf-8") + rep.read_text(encoding="utf-8")
        assert ("13912345678" in body) == leaks and ("zhang@example.com" in body) == leaks


def test_suggestions_never_echo_personal_numbers():
    s = aa.suggest("我的手机13812345678，订单A3还没到，身份证110101199003071234，太失望了")
    for r in s.replies:
        assert "13812345678" not in r.text and "110101199003071234" not in r.text
