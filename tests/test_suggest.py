"""Reply suggestions: phrasebooks/replies.yaml, agent_assist/suggest.py and the CLI."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import read_jsonl

import agent_assist
from agent_assist import Assistant, PhrasebookError, ReplyCandidate, Suggestion, Turn, WatchOut
from agent_assist.phrasebook import TIERS, bundled_phrasebooks
from agent_assist.suggest import (
    STEPS,
    SUBJECT_FIELDS,
    Suggester,
    chinese_number,
    join_choices,
    script_converter,
    suggester,
    within,
)
from agent_assist.triage import TriageBook, _check_triage

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "messages.txt"
HEDGES = ("尽力", "争取", "预计")
DEADLINE = re.compile(r"[0-9]+(分钟|小时|天)内")


@pytest.fixture(scope="module")
def a() -> Assistant:
    return Assistant()


@pytest.fixture(scope="module")
def sg(a: Assistant) -> Suggester:
    return a.suggester


def _examples() -> list[str]:
    return [t for t in EXAMPLES.read_text(encoding="utf-8").splitlines() if t.strip()]


def _domain_texts() -> list[str]:
    return [r["text"] for r in read_jsonl("emotion_domain.jsonl")] + [
        r["text"] for r in read_jsonl("triage_domain.jsonl")
    ]


def _copy_default(tmp_path: Path) -> Path:
    target = tmp_path / "pb"
    shutil.copytree(bundled_phrasebooks(), target)
    return target


# --- every template × a spread of values × every tier: the check_reply floor ------------------

SLOT_SPREADS = [
    dict(product="", wait="", amount="", order_tail="", symptom="", contacts="", contact_count=0),
    dict(product="A3音箱", wait="12天", amount="", order_tail="", symptom="", contacts="三", contact_count=3),
    dict(
        product="冰箱",
        wait="一个多月",
        amount="两千块",
        order_tail="5678",
        symptom="冒烟",
        contacts="",
        contact_count=0,
    ),
    dict(
        product="手机充电器",
        wait="三个星期",
        amount="¥29.9",
        order_tail="A123",
        symptom="异味",
        contacts="十二",
        contact_count=12,
    ),
]
DEADLINE_ROWS = [  # acknowledge, first solution, final, follow-up: the P4, P2 and P1+safety rows
    (timedelta(hours=2), timedelta(hours=4), timedelta(hours=24), timedelta(hours=72)),
    (timedelta(hours=1), timedelta(hours=4), timedelta(hours=24), timedelta(hours=72)),
    (timedelta(minutes=30), timedelta(hours=2), timedelta(hours=24), timedelta(hours=72)),
]


def _value_sets(sg: Suggester):
    """Template values for every (category, subcategory) × slot spread × deadline row × owner
    × tier × register, with the subject fields rendered from them as suggest does."""
    book = sg.phrasebook.book("triage.yaml", TriageBook, _check_triage)
    for c in book.categories:
        for sub in c.subcategories:
            for slots, row, owner, tier, register in itertools.product(
                SLOT_SPREADS, DEADLINE_ROWS, ("", "小王"), TIERS, ("normal", "escalated")
            ):
                v = dict(slots)
                v.update(
                    tier=tier,
                    register=register,
                    category=c.id,
                    subcategory=sub.id,
                    category_label=c.label,
                    subcategory_label=sub.label,
                    nature=sub.nature,
                    level="P2",
                    safety=False,
                    repeat=bool(v["contacts"]),
                    escalated=register == "escalated",
                    known=True,
                    asking=False,
                    owner=owner,
                    ack_within=within(row[0]),
                    solution_within=within(row[1]),
                    final_within=within(row[2]),
                    follow_up_within=within(row[3]),
                    commit_within=within(row[0] if register == "escalated" else row[1]),
                    choices=sg._choices.get(f"{c.id}.{sub.id}") or sg._choices.get(c.id, ""),
                )
                for f, (_, t) in zip(SUBJECT_FIELDS, sg._subjects[(c.id, sub.id)], strict=True):
                    v[f] = t.render(v)
                yield v


@pytest.fixture(scope="module")
def renderings(sg: Suggester) -> dict[tuple[str, str], set[str]]:
    """(step, template id) → every distinct text it renders over the spread."""
    out: dict[tuple[str, str], set[str]] = {}
    seen = set()
    for v in _value_sets(sg):
        for step in STEPS:
            for t in sg._steps[step]:
                if not all(v[r] for r in t.requires):
                    continue
                key = (t.id, tuple(v[n] for n in sorted(t.names)))
                if key not in seen:
                    seen.add(key)
                    out.setdefault((step, t.id), set()).add(t.render(v))
    return out


def test_every_template_renders_over_the_spread(sg, renderings):
    ids = {(step, t.id) for step in STEPS for t in sg._steps[step]}
    assert ids == set(renderings)  # every template rendered at least once
    for (_, ident), texts in renderings.items():
        for text in texts:
            assert text.strip() == text and text, (ident, text)
            assert text[-1] in "。？！", (ident, text)  # a step ends a sentence: no trigger crosses steps
            assert "{" not in text and "}" not in text, (ident, text)


def test_every_template_passes_check_reply(a, sg, renderings):
    """The floor: every wording suggest can produce, Simplified and Traditional, has no hit.

    Each step is checked alone, which is stricter than the joined reply: minefield triggers
    never cross a sentence end, and context only clears hits.
    """
    convert = script_converter(a.phrasebook).to_traditional
    bad = []
    for (_, ident), texts in sorted(renderings.items()):
        for text in sorted(texts):
            for version in (text, convert(text)):
                r = a.check_reply(version)
                if not r.ok:
                    bad.append((ident, version, [(h.kind, h.text) for h in r.hits]))
    assert not bad, bad[:10]


def test_every_solution_has_a_deadline_and_a_hedge(renderings):
    for (step, ident), texts in renderings.items():
        if step != "solution":
            continue
        for text in texts:
            assert DEADLINE.search(text), (ident, text)
            assert any(h in text for h in HEDGES), (ident, text)


def test_compensation_solutions_offer_choices(a):
    s = a.suggest("新买的手机才用了三天就黑屏了，太失望了")
    assert s.triage.nature == "compensation"
    assert all("免费维修、换货还是退货退款" in r.solution for r in s.replies)


def test_compensation_type_complaints_get_choices(a):
    """Every compensation-type complaint offers the customer a choice of remedies, in every
    register (not a safety one: safety comes first; nor a calm question: it gets an answer)."""
    seen = 0
    for text in _domain_texts():
        for history in (None, ["这已经是我第三次联系你们了"]):
            s = a.suggest(text, history=history)
            t = s.triage
            if t.nature != "compensation" or t.safety or t.category == "other":
                continue
            if any(i.startswith("so.calm.topic") for r in s.replies for i in r.template_ids):
                continue  # a calm question gets an answer, not a menu of remedies
            seen += 1
            for r in s.replies:
                assert "还是" in r.solution or "還是" in r.solution, (text, r.solution)
    assert seen > 100


def test_traditional_conversion_matches_opencc(a, renderings):
    opencc = pytest.importorskip("opencc")
    cc = opencc.OpenCC("s2t")
    convert = script_converter(a.phrasebook).to_traditional
    # OpenCC forms that Taiwan and Hong Kong usage does not share (see s2t_phrases.tsv).
    accepted = {("核", "覈"), ("了", "瞭"), ("並", "併"), ("吃", "喫")}
    wrong = set()
    for texts in renderings.values():
        for text in texts:
            ours, theirs = convert(text), cc.convert(text)
            assert len(ours) == len(theirs)
            wrong |= {(x, y) for x, y in zip(ours, theirs, strict=True) if x != y} - accepted
    assert not wrong


def test_end_to_end_replies_pass_check_reply(a):
    """Every reply suggest gives on the domain sets (n=10) is clean in context."""
    bad = []
    for text in _domain_texts():
        s = a.suggest(text, n=10)
        assert s.replies
        for r in s.replies:
            check = a.check_reply(r.text, customer_text=text)
            if not check.ok:
                bad.append((text, r.text, [(h.kind, h.text) for h in check.hits]))
            assert r.text == r.listen_confirm + r.empathize + r.solution
    assert not bad, bad[:5]


# --- listen and confirm -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, facts",
    [
        ("A3音箱等了12天还没到，太失望了", ["A3音箱", "12天"]),
        ("我的冰箱送修已经等了两周了，还是没人管，气死了", ["冰箱", "两周"]),
        ("退款等了一个多月还没到账，你们太让人失望了", ["退款", "一个多月"]),
        ("银行卡突然被扣了两千块，我什么都没买，怎么办", ["两千块"]),
        ("充电器冒烟了，还有股焦味，会不会爆炸啊", ["充电器", "冒烟"]),
    ],
)
def test_listen_confirm_restates_the_facts(a, text, facts):
    s = a.suggest(text)
    for r in s.replies:
        for fact in facts:
            assert fact in r.listen_confirm, (fact, r.listen_confirm)
        assert r.listen_confirm.endswith("？")
        assert "您的问题" not in r.listen_confirm


def test_a_promise_is_not_restated_as_a_wait(a):
    s = a.suggest("说好的七天无理由退货，现在又说拆了包装就不能退，太气人了")
    assert all("七天" not in r.listen_confirm for r in s.replies)


def test_a_negated_symptom_is_not_restated(a):
    s = a.suggest("充电器没有冒烟，就是充不进电，气死了")
    assert all("冒烟" not in r.listen_confirm for r in s.replies)


def test_sensitive_numbers_are_never_echoed(a):
    text = "我的手机号13812345678，订单号是202405120001234，银行卡6222021234567890123被扣了两千块，怎么办"
    s = a.suggest(text, n=10)
    for r in s.replies:
        for digits in ("13812345678", "6222021234567890123", "202405120001234", "5678", "0123"):
            assert digits not in r.text


def test_a_question_restates_the_topic(a):
    s = a.suggest("你好，想问一下我的订单什么时候发货？")
    assert all("订单的发货和配送进度" in r.listen_confirm for r in s.replies)
    assert s.emotion.tier == "calm"


# --- script --------------------------------------------------------------------------------------


def test_traditional_in_traditional_out(a):
    convert = script_converter(a.phrasebook).to_traditional
    normalizer = a.phrasebook.normalizer
    texts = [r["text"] for r in read_jsonl("emotion_domain.jsonl") if r["script"] == "traditional"]
    assert len(texts) > 20
    for text in texts:
        s = a.suggest(text)
        assert s.script == "traditional"
        for r in s.replies:
            assert normalizer.script(r.text) == "traditional", r.text
            assert convert(r.text) == r.text  # nothing left to convert: no Simplified-only character


def test_simplified_in_simplified_out(a):
    s = a.suggest("还没收到货，客服也不回，真的很失望")
    assert s.script == "simplified"
    assert "没有" in s.replies[0].text or "还" in s.replies[0].text
    assert a.phrasebook.normalizer.script(s.replies[0].text) == "simplified"


def test_phrase_fixes_apply_before_characters(a):
    convert = script_converter(a.phrasebook).to_traditional
    assert convert("30分钟内联系您，签收后回复") == "30分鐘內聯繫您，簽收後回覆"


# --- variants, distinctness, tiers ------------------------------------------------------------------


def test_bundled_examples_give_distinct_replies(a):
    for text in _examples():
        for n in (3, 10):
            s = a.suggest(text, n=n)
            texts = [r.text for r in s.replies]
            assert len(texts) == len(set(texts))
            assert len(texts) == (3 if n == 3 else len(texts)) and len(texts) >= 3, text


def test_empathize_differs_across_tiers(a, sg, renderings):
    by_tier: dict[str, set[str]] = {}
    for text in _examples() + _domain_texts()[:120]:
        s = a.suggest(text)
        by_tier.setdefault(s.emotion.tier, set()).update(_emp(sg, r) for r in s.replies)
    assert set(by_tier) == set(TIERS)
    for x, y in itertools.combinations(TIERS, 2):
        assert not by_tier[x] & by_tier[y], (x, y)
    # and structurally: every empathize template serves exactly one tier
    owners: dict[str, str] = {}
    for t in sg._steps["empathize"]:
        assert t.when.tiers is not None and len(t.when.tiers) == 1, t.id
        for text in renderings[("empathize", t.id)]:
            assert owners.setdefault(text, t.when.tiers[0]) == t.when.tiers[0], text


def _emp(sg: Suggester, r: ReplyCandidate) -> str:
    """The empathize template's own text (without the repeat-contact apology before it)."""
    ident = next(i for i in r.template_ids if i.startswith("em."))
    t = next(t for t in sg._steps["empathize"] if t.id == ident)
    return t.constant[0] if t.constant[0] in r.empathize else t.constant[1]


def test_choice_is_deterministic(a):
    text = "A3音箱等了12天还没到，太失望了"
    assert a.suggest(text) == a.suggest(text)
    assert Assistant().suggest(text).replies == a.suggest(text).replies


def test_repeated_calls_in_a_conversation_do_not_repeat_themselves(a):
    text = "都三天了还没发货，你们到底怎么回事？！"
    history: list[dict] = []
    sent = []
    for _ in range(4):
        s = a.suggest(text, history=history)
        reply = s.replies[0].text
        assert reply not in sent
        sent.append(reply)
        history += [{"speaker": "customer", "text": text}, {"speaker": "agent", "text": reply}]


# --- history ---------------------------------------------------------------------------------------


def test_repeat_contact_is_acknowledged(a):
    s = a.suggest("这已经是我第三次打电话了，到底有没有人管？！")
    assert s.repeat_contact and s.escalated
    for r in s.replies:
        assert any(i.startswith("rp.") for i in r.template_ids)
    assert any("第三次" in r.empathize or "三次" in r.empathize for r in s.replies)
    history = [
        {"speaker": "customer", "text": "我的订单还没有发货"},
        {"speaker": "agent", "text": "我帮您查询一下，今天18点前给您回复。"},
    ]
    s = a.suggest("又来问了，还是没有发货", history=history)
    assert s.repeat_contact and s.escalated
    assert all(any(i.startswith("rp.") for i in r.template_ids) for r in s.replies)
    # a repeat word without an earlier agent reply is not a repeat contact (又坏了 is a recurrence)
    assert not a.suggest("冰箱又坏了").repeat_contact


def test_contacts_in_history_count(a):
    history = ["这是我第四次联系你们了，订单还是没到"]
    s = a.suggest("还是没有消息", history=history)
    assert s.repeat_contact
    assert any("四" in r.empathize for r in a.suggest("还是没有消息", history=history, n=10).replies)


def test_an_earlier_reply_is_not_offered_again(a):
    for text in _examples():
        first = a.suggest(text)
        earlier = first.replies[0]
        history = [Turn(speaker="customer", text=text), Turn(speaker="agent", text=earlier.text)]
        again = a.suggest(text, history=history)
        assert all(r.text != earlier.text for r in again.replies)
        r = again.replies[0]
        assert r.listen_confirm != earlier.listen_confirm or r.empathize != earlier.empathize


def test_worsening_tier_escalates_the_register(a):
    text = "都三天了还没发货，你们到底怎么回事？！"
    plain = a.suggest(text)
    assert plain.emotion.tier == "anger" and not plain.escalated
    history = [
        {"speaker": "customer", "text": "你好，想问一下我的订单什么时候发货？"},
        {"speaker": "agent", "text": "您好，我帮您查询一下订单的发货进度，今天18点前给您回复。"},
    ]
    worse = a.suggest(text, history=history)
    assert worse.escalated
    for r in worse.replies:
        assert all("escalated" in i for i in r.template_ids if i.startswith(("lc.", "em.", "so.")))
    # the escalated register commits to the earlier deadline (acknowledge, not first solution)
    ack, first = within(worse.triage.deadlines.acknowledge), within(worse.triage.deadlines.first_solution)
    assert ack != first
    assert all(ack in r.solution for r in worse.replies)
    assert all(first in r.solution for r in plain.replies)
    # more apology
    assert sum(r.text.count("抱歉") + r.text.count("道歉") for r in worse.replies) >= 3


def test_improving_tier_does_not_escalate(a):
    history = [
        "气死我了，你们到底管不管？！",
        {"speaker": "agent", "text": "非常抱歉，我马上处理，今天18点前给您回复。"},
    ]
    s = a.suggest("好的，那我等你们消息，想问一下大概什么时候能处理完？", history=history)
    assert s.emotion.tier == "calm" and not s.escalated


def test_escalated_replies_name_the_owner(a):
    s = a.suggest("这已经是我第三次打电话了，到底有没有人管？！", n=10, agent_name="小王")
    assert any("小王" in r.solution for r in s.replies)


def test_history_accepts_strings_turns_and_dicts(a):
    history = [
        "我的订单还没到",
        Turn(speaker="agent", text="我帮您查一下。"),
        {"speaker": "customer", "text": "好"},
    ]
    assert a.suggest("怎么还没有消息", history=history).replies
    with pytest.raises(TypeError):
        a.suggest("还没到", history=[42])
    with pytest.raises(TypeError):
        a.suggest("还没到", history=[{"speaker": "agent", "text": None}])


# --- sandbox -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template, expect",
    [
        ("{{ ''.__class__ }}", "__class__"),
        ("{{ product.__class__.__mro__ }}", "__mro__"),
        ("{{ product['__globals__'] }}", "__globals__"),
        ("{{ product|attr('__class__') }}", "attr"),
        ("{{ range(10) }}", "calls a function"),
        ("{% for x in product %}{{ x }}{% endfor %}", "For"),
        ("{% set x = 1 %}{{ x }}", "Assign"),
        ("{% include 'other' %}", "Include"),
        ("{{ customer_text }}", "unknown variable"),
        ("{{ product ", "template"),
    ],
)
def test_unsafe_or_broken_templates_are_rejected_at_load(tmp_path, template, expect):
    pb = _copy_default(tmp_path)
    path = pb / "replies.yaml"
    source = path.read_text(encoding="utf-8")
    quoted = "'" + template.replace("'", "''") + "'"
    assert "text: '好的，这个我来帮您处理。'" in source
    path.write_text(source.replace("text: '好的，这个我来帮您处理。'", f"text: {quoted}"), encoding="utf-8")
    with pytest.raises(PhrasebookError) as info:
        Assistant(pb).suggest("你好")
    message = str(info.value)
    assert str(path) in message and "em.calm.1" in message and expect in message
    assert info.value.line is not None


def test_customer_text_is_a_value_never_a_template(a):
    for text in (
        "{{ 7*7 }}",
        "A3音箱{{ 7*7 }}等了12天还没到",
        "{% for x in y %}气死了{% endfor %}",
        "{{ ''.__class__ }}",
    ):
        s = a.suggest(text, n=10)
        for r in s.replies:
            assert "49" not in r.text and "<class" not in r.text
    # a value that looks like a template comes back literally
    s = a.suggest(
        "这已经是我第三次打电话了，到底有没有人管？！", n=10, agent_name="{{ 7*7 }}{% if 1 %}x{% endif %}"
    )
    assert any("{{ 7*7 }}{% if 1 %}x{% endif %}" in r.text for r in s.replies)


# --- custom phrasebooks and load errors ------------------------------------------------------------

CUSTOM = """\
version: 1
subjects:
  - id: acme.default
    problem: '这件事{% if wait %}已经等了{{ wait }}{% else %}还没有处理好{% endif %}'
    topic: '您的问题'
    action: '查一下'
    safety_step: '注意安全'
listen_confirm:
  - {id: acme.lc, when: {register: any}, text: 'ACME确认：{{ problem }}，对吗？'}
repeat:
  - {id: acme.rp, when: {register: any}, text: 'ACME抱歉让您再次联系。'}
empathize:
  - {id: acme.em, when: {register: any}, text: 'ACME理解您的心情。'}
solution:
  - {id: acme.so, when: {register: any}, text: 'ACME会尽力在{{ commit_within }}给您答复。'}
"""


def test_a_custom_phrasebook_directory_with_its_own_replies(tmp_path):
    (tmp_path / "replies.yaml").write_text(CUSTOM, encoding="utf-8")
    acme = Assistant(tmp_path)
    s = acme.suggest("A3音箱等了12天还没到，太失望了")
    assert [r.template_ids for r in s.replies] == [["acme.lc", "acme.default", "acme.em", "acme.so"]]
    assert (
        s.replies[0].text
        == "ACME确认：这件事已经等了12天，对吗？ACME理解您的心情。ACME会尽力在4小时内给您答复。"
    )
    assert acme.suggester is not agent_assist.default_assistant().suggester
    s = acme.suggest("這已經是我第三次打電話了，到底有沒有人管？！")
    assert s.replies[0].empathize.startswith("ACME抱歉讓您再次聯繫。")  # Traditional, with phrase fixes


@pytest.mark.parametrize(
    "old, new, expect",
    [
        (
            "{id: acme.em, when: {register: any}",
            "{id: acme.em, when: {register: normal}",
            "empathize: no template fits",
        ),
        ("id: acme.so,", "id: acme.lc,", "duplicate id 'acme.lc'"),
        (
            "{id: acme.lc, when: {register: any}",
            "{id: acme.lc, when: {register: any, categories: [nowhere]}",
            "unknown category 'nowhere'",
        ),
        ("{id: acme.lc, when: {register: any}", "{id: acme.lc, when: {register: any, colour: red}", "colour"),
        (
            "{id: acme.so, when: {register: any},",
            "{id: acme.so, when: {register: any}, requires: [secret],",
            "unknown variable 'secret'",
        ),
        ("    safety_step: '注意安全'\n", "", "exactly one entry without `for`"),
    ],
)
def test_replies_load_errors_name_the_problem(tmp_path, old, new, expect):
    assert old in CUSTOM
    (tmp_path / "replies.yaml").write_text(CUSTOM.replace(old, new), encoding="utf-8")
    with pytest.raises(PhrasebookError) as info:
        Assistant(tmp_path).suggest("你好")
    assert "replies.yaml" in str(info.value) and expect in str(info.value)


def test_bad_phrase_table_is_rejected(tmp_path):
    (tmp_path / "script").mkdir()
    (tmp_path / "script" / "s2t_phrases.tsv").write_text("分钟\n", encoding="utf-8")
    with pytest.raises(PhrasebookError, match="s2t_phrases.tsv:1"):
        Assistant(tmp_path).suggest("你好")


def test_the_bundled_replies_load_and_validate():
    from agent_assist import Phrasebook

    sg = suggester(Phrasebook())
    assert sum(len(sg._steps[s]) for s in STEPS) > 80


# --- the result and the call ----------------------------------------------------------------------


def test_result_validates_and_explains_itself(a):
    for text in _examples():
        s = a.suggest(text)
        assert Suggestion.model_validate(s.model_dump()) == s
        assert s.strategy == a.phrasebook.emotion.strategies[s.emotion.tier]
        assert 1 <= len(s.watch_out) <= 4 and all(isinstance(w, WatchOut) for w in s.watch_out)
        assert all(set(r.template_ids) and r.template_ids[0].startswith("lc.") for r in s.replies)


def test_watch_out_starts_with_the_tier(a):
    s = a.suggest("再不处理我就打12315投诉你们，还要发到网上曝光")
    assert s.emotion.tier == "anger"
    assert [w.kind for w in s.watch_out][:2] == ["arguing", "dismissing_feelings"]
    assert all(w.principle.endswith("。") for w in s.watch_out)
    s = a.suggest("充电器冒烟了，还有股焦味，会不会爆炸啊")
    assert "over_promising" in [w.kind for w in s.watch_out]


def test_arguments_are_checked(a):
    with pytest.raises(TypeError):
        a.suggest(None)  # type: ignore[arg-type]
    for n in (0, 11, 2.0, True):
        with pytest.raises(ValueError):
            a.suggest("你好", n=n)  # type: ignore[arg-type]
    assert len(a.suggest("你好", n=1).replies) == 1
    assert a.suggest("").replies


def test_long_text_is_truncated(a):
    s = Assistant(max_chars=20).suggest("A3音箱等了12天还没到，太失望了" * 10)
    assert s.truncated and s.emotion.truncated and s.triage.truncated and s.slots.truncated
    assert not a.suggest("A3音箱等了12天还没到").truncated


def test_module_function_and_threads(a):
    texts = _examples() * 4
    expected = [a.suggest(t) for t in texts]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(agent_assist.suggest, texts))
    assert [g.replies for g in got] == [e.replies for e in expected]


def test_small_helpers():
    assert within(timedelta(minutes=30)) == "30分钟内"
    assert within(timedelta(hours=2)) == "2小时内"
    assert within(timedelta(hours=1.5)) == "90分钟内"
    assert within(timedelta(hours=72)) == "72小时内"
    assert within(timedelta(days=5)) == "5天内"
    assert [chinese_number(n) for n in (2, 3, 10, 12, 20, 35, 120)] == [
        "二",
        "三",
        "十",
        "十二",
        "二十",
        "三十五",
        "120",
    ]
    assert join_choices(["换货", "退款"]) == "换货还是退款"
    assert join_choices(["免费维修", "换货", "退款"]) == "免费维修、换货还是退款"


# --- CLI ---------------------------------------------------------------------------------------------


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent_assist", *args], capture_output=True, text=True, cwd=cwd
    )


def test_cli_suggest(tmp_path):
    out = _cli("suggest", "这已经是我第三次打电话了，到底有没有人管？！电话13812345678", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "reply 1" in out.stdout and "escalated" in out.stdout
    assert "13812345678" not in out.stdout and "138****5678" in out.stdout
    history = tmp_path / "h.jsonl"
    history.write_text(
        json.dumps({"speaker": "customer", "text": "我的订单还没发货"}, ensure_ascii=False)
        + "\n"
        + json.dumps({"speaker": "agent", "text": "我帮您查一下，今天18点前回复您。"}, ensure_ascii=False)
        + "\n",
        encoding="utf-8",
    )
    out = _cli(
        "suggest", "又来问了，还是没有发货", "--json", "-n", "2", "--history", str(history), cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert len(record["replies"]) == 2 and record["repeat_contact"] is True
    assert _cli("suggest", "你好", "-n", "0", cwd=tmp_path).returncode == 2


def test_cli_analyze(tmp_path):
    out = _cli("analyze", "充电器冒烟了，还有股焦味", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert record["triage"]["safety"] is True and record["emotion"]["tier"] == "panic"
