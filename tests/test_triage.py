"""Complaint triage: one test per rule kind of phrasebooks/triage.yaml, plus the fixture."""

from __future__ import annotations

import shutil
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import read_jsonl
from pydantic import ValidationError

import agent_assist
from agent_assist import Assistant, Deadlines, Phrasebook, PhrasebookError, Triage, Turn
from agent_assist.phrasebook import bundled_phrasebooks
from agent_assist.results import EmotionResult, Evidence
from agent_assist.triage import TriageBook, Triager, triager


@pytest.fixture(scope="module")
def t() -> Triager:
    return triager(Phrasebook())


def _emotion(text: str, tier: str, intensity: float, cues: dict[str, str] | None = None) -> EmotionResult:
    """A hand-made EmotionResult for ``text`` with evidence on each cue word."""
    evidence = []
    for word, cue in (cues or {}).items():
        start = text.index(word)
        evidence.append(
            Evidence(
                start=start, end=start + len(word), text=word, cue=cue, rule="lexicon", tier=tier, weight=1.0
            )
        )
    scores = {k: 0.0 for k in ("calm", "panic", "anger", "disappointment", "indifference")}
    scores[tier] = 1.0
    return EmotionResult(tier=tier, scores=scores, intensity=intensity, evidence=evidence)


def _copy_default(tmp_path: Path) -> Path:
    target = tmp_path / "pb"
    shutil.copytree(bundled_phrasebooks(), target)
    return target


# --- categories and subcategories -------------------------------------------------------


@pytest.mark.parametrize(
    "text, category, subcategory",
    [
        ("手机才用了一个月屏幕就黑屏了", "product_quality", "malfunction"),
        ("这款椅子设计不合理，坐久了腰疼", "product_quality", "design_defect"),
        ("新买的裤子开线了，做工太粗糙", "product_quality", "manufacturing_defect"),
        ("毛巾用了两次就掉色起球", "product_quality", "material"),
        ("快递箱子压扁了，里面的碗碎了", "product_quality", "packaging"),
        ("说明书看不懂，全是英文", "product_quality", "labelling"),
        ("客服态度很差，说两句就把电话挂了", "service", "cold_attitude"),
        ("你们的销售一问三不知", "service", "unprofessional"),
        ("在线客服一直没人回复", "service", "slow_response"),
        ("反映了三次问题，你们互相推诿", "service", "poor_resolution"),
        ("付款一周了还没发货", "delivery", "production_delay"),
        ("说有现货，结果又说缺货要等", "delivery", "supply_chain"),
        ("物流五天没更新了", "delivery", "logistics_delay"),
        ("发错货了，我买的是白色", "delivery", "wrong_or_lost"),
        ("冰箱报修一周了师傅还没上门", "after_sales", "repair"),
        ("申请退货五天了没人处理", "after_sales", "return_exchange"),
        ("保修期内却说人为损坏不给保修", "after_sales", "warranty"),
        ("安装师傅把墙打了个洞就走了", "after_sales", "installation"),
        ("取消了自动续费还是被扣了钱", "billing", "wrong_charge"),
        ("退款半个月了还没到账", "billing", "refund_delay"),
        ("会员说好的免运费没兑现", "billing", "membership"),
        ("提前还款为什么要收手续费", "billing", "fees"),
        ("发票申请了两周还没开出来", "billing", "invoice"),
        ("天天有推销电话打给我", "other", "harassment"),
        ("你们是不是泄露了我的个人信息", "other", "privacy"),
        ("账号注销的入口在哪里", "other", "account"),
        ("你好", "other", "general"),  # nothing named: the fallback
        ("", "other", "general"),
    ],
)
def test_category_and_subcategory(t, text, category, subcategory):
    r = t.triage(text)
    assert (r.category, r.subcategory) == (category, subcategory)
    if text and text != "你好":
        assert any(e.rule == "category" for e in r.evidence)


def test_category_ties_go_to_the_first_listed(t):
    # 坏了 (product quality) and 报修 (after-sales) weigh the same: after-sales is listed first.
    assert t.triage("洗衣机坏了，报修没人来").category == "after_sales"


def test_labels_come_from_the_phrasebook(t):
    r = t.triage("物流五天没更新了")
    assert (r.category_label, r.subcategory_label) == ("交付", "物流配送延迟")


# --- nature -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, nature",
    [
        ("手机屏幕出现绿线", "compensation"),  # the subcategory's nature
        ("物流五天没更新了", "process"),
        ("说明书写得太乱了", "cognition"),
        ("手机屏幕出现绿线，不知道怎么设置才能恢复", "cognition"),  # a cognition cue overrides
        ("维修三次还是坏，我要求换新机", "compensation"),  # a compensation cue overrides
        ("衣服标签写着纯棉，其实是化纤，虚假宣传", "compensation"),  # misrepresentation
    ],
)
def test_nature(t, text, nature):
    assert t.triage(text).nature == nature


def test_a_nature_group_votes_once_however_many_terms_fire(t):
    # Two weak process cues do not outvote the subcategory's compensation nature.
    assert t.triage("发错货了，到现在还没人处理，一直没回复").nature == "compensation"


# --- severity and safety ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, severity, safety",
    [
        ("孩子用了你们的电暖器被烫伤了，送了急诊", "critical", True),  # injury
        ("充电器用着用着突然起火了", "critical", True),  # fire
        ("插座一插上就冒烟，有焦味", "high", True),  # hazard
        ("电脑开不了机，完全不能用", "high", False),  # major function failure
        ("耳机左边声音小，有点故障", "medium", False),  # the subcategory's baseline
        ("客服说话不太礼貌", "low", False),
        ("热水器漏水了，还好没有人受伤", "medium", False),  # a denial shadows 受伤
    ],
)
def test_severity_and_safety(t, text, severity, safety):
    r = t.triage(text)
    assert (r.severity, r.safety) == (severity, safety)
    if safety:
        assert any(e.rule == "safety" for e in r.evidence)
    if severity in ("high", "critical"):
        assert any(e.rule == "severity" and e.label == severity for e in r.evidence)


# --- urgency ------------------------------------------------------------------------------------


def test_urgency_default_and_cues(t):
    assert t.triage("发票申请了两周还没开出来").urgency == "low"
    assert t.triage("明天就要用，快递到现在还没到").urgency == "high"  # a deadline
    assert t.triage("路由器坏了，家里断网了").urgency == "high"  # core use blocked
    assert t.triage("再不退款我就打12315").urgency == "high"  # escalation
    assert t.triage("退款请尽快处理").urgency == "medium"


def test_safety_makes_urgency_high(t):
    assert t.triage("电热毯有焦味").urgency == "high"


def test_emotion_raises_urgency_with_its_evidence(t):
    text = "气死了，快递五天没更新"
    low = t.triage(text)
    assert low.urgency == "low"
    hot = t.triage(text, emotion=_emotion(text, "anger", 0.9, {"气死了": "anger.core:气死了"}))
    assert hot.urgency == "high"
    ev = [e for e in hot.evidence if e.rule == "urgency"]
    assert ev and ev[0].text == "气死了" and ev[0].cue == "emotion:anger.core:气死了"
    mild = t.triage(text, emotion=_emotion(text, "anger", 0.3, {"气死了": "anger.core:气死了"}))
    assert mild.urgency == "medium"
    assert t.triage(text, emotion=_emotion(text, "indifference", 0.4)).urgency == "medium"
    assert t.triage(text, emotion=_emotion(text, "calm", 0.0)).urgency == "low"


def test_emotion_cues_raise_urgency(t):
    text = "等了12天，快递还没到"
    calm_but_waiting = _emotion(text, "calm", 0.1, {"等了12天": "wait.elapsed:等了12天"})
    r = t.triage(text, emotion=calm_but_waiting)
    assert r.urgency == "medium"
    assert [e.text for e in r.evidence if e.rule == "urgency"] == ["等了12天"]


def test_emotion_of_another_text_is_ignored(t):
    stale = _emotion("气死了", "anger", 0.9, {"气死了": "anger.core:气死了"})
    r = t.triage("快递五天没更新，气死", emotion=stale)
    assert all(e.text == "快递五天没更新，气死"[e.start : e.end] for e in r.evidence)


def test_a_cue_inside_a_number_is_no_cue(t):
    # 12315 (the consumer hotline) inside a phone number is not an escalation threat.
    assert t.triage("我的电话是13812315678，快递没到").urgency == "low"
    text = "电话13812345678，快递没到"
    leak = _emotion(text, "anger", 0.9, {"12345": "anger.threat:12345"})
    assert not [e for e in t.triage(text, emotion=leak).evidence if e.rule == "urgency"]


def test_assistant_triage_computes_the_emotion():
    r = Assistant().triage("孩子还被困在电梯里，怎么办啊")
    assert r.urgency == "high"


# --- scope ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, scope",
    [
        ("我买的杯子碎了", "single"),
        ("我们小区好多户都遇到了同样的漏水", "batch"),
        ("公司采购的50台电脑都没到", "batch"),  # the digit pattern
        ("二十台打印机坏了一半", "batch"),
        ("我已经发微博曝光你们了", "media"),
        ("电视台记者已经联系我了", "media"),
    ],
)
def test_scope(t, text, scope):
    r = t.triage(text)
    assert r.scope == scope
    if scope != "single":
        assert any(e.rule == "scope" and e.label == scope for e in r.evidence)


def test_three_people_are_not_a_batch(t):
    assert t.triage("我们3个人的订单都没到").scope == "single"


# --- priority level ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, level, rule",
    [
        ("插座冒烟了", "P1", "safety"),
        ("你们再不处理我就找记者曝光", "P1", "media"),
        ("电脑开不了机", "P2", "high_severity"),
        ("明天就要用，快递还没到", "P2", "high_urgency"),
        ("我们小区好多户的账单都多扣了钱", "P2", "batch"),
        ("手机屏幕有一条绿线", "P3", "medium_severity"),
        ("发票开了两周还没开出来，请尽快", "P3", "medium_urgency"),
        ("发票开了两周还没开出来", "P4", None),
    ],
)
def test_level_rules(t, text, level, rule):
    r = t.triage(text)
    assert (r.level, r.level_rule) == (level, rule)


# --- deadlines --------------------------------------------------------------------------------


def test_deadlines_follow_the_table(t):
    p4 = t.triage("发票开了两周还没开出来").deadlines
    assert (p4.basis, p4.acknowledge, p4.first_solution, p4.final, p4.follow_up) == (
        "P4",
        timedelta(hours=2),
        timedelta(hours=4),
        timedelta(hours=24),
        timedelta(hours=72),
    )
    assert p4.acknowledge_by is None
    assert t.triage("电脑开不了机").deadlines.acknowledge == timedelta(hours=1)  # P2 row
    p1 = t.triage("你们再不处理我就找记者曝光").deadlines
    assert (p1.basis, p1.acknowledge, p1.first_solution) == ("P1", timedelta(minutes=30), timedelta(hours=2))
    safety = t.triage("插座冒烟了").deadlines
    assert (safety.basis, safety.acknowledge) == ("P1+safety", timedelta(minutes=30))


@pytest.mark.parametrize("now", [datetime(2025, 3, 1, 9, 0), datetime(2025, 3, 1, 9, 0, tzinfo=timezone.utc)])
def test_deadlines_with_now(t, now):
    d = t.triage("插座冒烟了", now=now).deadlines
    assert d.acknowledge_by == now + timedelta(minutes=30)
    assert d.first_solution_by == now + timedelta(hours=2)
    assert d.final_by == now + timedelta(hours=24)
    assert d.follow_up_by == d.final_by + timedelta(hours=72)  # counted from the final result


# --- evidence and offsets ---------------------------------------------------------------------


def test_evidence_offsets_point_into_the_original(t):
    for row in read_jsonl("triage_domain.jsonl"):
        text = row["text"]
        for e in t.triage(text).evidence:
            assert text[e.start : e.end] == e.text, (text, e)


def test_offsets_survive_non_identity_normalisation(t):
    text = "冰箱  坏\u200b了，\t报修一周\u3000了师傅还没上门！！"
    r = t.triage(text)
    assert r.category == "after_sales"
    for e in r.evidence:
        assert text[e.start : e.end] == e.text


def test_traditional_script_triages_like_simplified(t):
    simp = t.triage("冰箱报修一个星期了，师傅一直说忙不上门，电话也打不通")
    trad = t.triage("冰箱報修一個星期了，師傅一直說忙不上門，電話也打不通")
    assert (trad.category, trad.subcategory, trad.nature, trad.level) == (
        simp.category,
        simp.subcategory,
        simp.nature,
        simp.level,
    )
    assert "報修" in [e.text for e in trad.evidence]


# --- history ----------------------------------------------------------------------------------


def test_history_supplies_the_category(t):
    history = [
        "冰箱坏了，报修一个星期了",
        Turn(speaker="agent", text="您好，我们已经为您催促维修"),
        {"speaker": "customer", "text": "好的"},
    ]
    r = t.triage("到底还要等多久？", history=history)
    assert (r.category, r.subcategory) == ("after_sales", "repair")
    from_history = [e for e in r.evidence if e.turn is not None]
    assert from_history and all(e.turn == 0 for e in from_history)
    for e in from_history:
        assert history[0][e.start : e.end] == e.text


def test_history_keeps_safety_raised(t):
    r = t.triage("你们什么时候派人来？", history=["插座冒烟了，还有焦味"])
    assert r.safety and r.level == "P1"


def test_the_message_wins_over_history_for_the_category(t):
    assert t.triage("退款什么时候到账", history=["冰箱报修一周了"]).category == "billing"


def test_agent_turns_are_skipped(t):
    r = t.triage("嗯", history=[Turn(speaker="agent", text="插座冒烟请先断电")])
    assert not r.safety and r.category == "other"


def test_bad_input_types(t):
    with pytest.raises(TypeError):
        t.triage(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        t.triage("快递没到", history=[3])  # type: ignore[list-item]


# --- the result model -------------------------------------------------------------------------


def test_result_round_trips_through_validation(t):
    r = t.triage("插座冒烟了，已经第三次了", now=datetime(2025, 1, 1, 8, 0))
    assert Triage.model_validate(r.model_dump()) == r
    assert Triage.model_validate_json(r.model_dump_json()) == r
    assert isinstance(r.deadlines, Deadlines)
    with pytest.raises(ValidationError):
        r.level = "P4"  # type: ignore[misc]


def test_module_level_function_and_exports():
    r = agent_assist.triage("插座冒烟了", now=datetime(2025, 1, 1))
    assert r.safety and r.deadlines.acknowledge_by == datetime(2025, 1, 1, 0, 30)
    for name in ("triage", "Triage", "Deadlines"):
        assert name in agent_assist.__all__


def test_thread_safe(t):
    texts = [row["text"] for row in read_jsonl("triage_domain.jsonl")]
    expected = [t.triage(x) for x in texts]
    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(t.triage, texts)) == expected


# --- a company's own phrasebook directory -----------------------------------------------------


def test_custom_directory_with_its_own_deadlines_and_category(tmp_path):
    d = tmp_path / "company"
    d.mkdir()
    src = (bundled_phrasebooks() / "triage.yaml").read_text(encoding="utf-8")
    src = src.replace(
        "  default: {acknowledge: 2h, first_solution: 4h, final: 24h, follow_up: 72h}",
        "  default: {acknowledge: 1h, first_solution: 3h, final: 48h, follow_up: 1d}",
    ).replace("  safety: {acknowledge: 30m}", "  safety: {acknowledge: 15m, first_solution: 1h}")
    src = src.replace(
        "  - id: other\n",
        "  - id: charging\n    label: 充电桩\n    subcategories:\n"
        "      - {id: station_fault, label: 充电桩故障, nature: process, severity: medium,\n"
        "         terms: [充电桩, 充不上电]}\n"
        "  - id: other\n",
    )
    (d / "triage.yaml").write_text(src, encoding="utf-8")
    a = Assistant(d)
    r = a.triager.triage("小区的充电桩又充不上电了")
    assert (r.category, r.subcategory, r.category_label) == ("charging", "station_fault", "充电桩")
    low = a.triager.triage("发票开了两周还没开出来").deadlines
    assert (low.acknowledge, low.final, low.follow_up) == (
        timedelta(hours=1),
        timedelta(hours=48),
        timedelta(days=1),
    )
    safe = a.triager.triage("插座冒烟了").deadlines
    assert (safe.acknowledge, safe.first_solution) == (timedelta(minutes=15), timedelta(hours=1))
    # Files the directory lacks come from the bundled default.
    assert a.phrasebook.file("emotion.yaml").parent == bundled_phrasebooks()


@pytest.mark.parametrize(
    "old, new, key, message",
    [
        ("acknowledge: 2h,", "acknowledge: 2 hours,", "deadlines.default.acknowledge", "duration"),
        ("  default: P4\n", "  default: P9\n", "levels.default", "P1"),
        (
            "  - id: product_quality\n",
            "  - id: product_quality\n    colour: red\n",
            "categories.3.colour",
            "Extra",
        ),
        ("  category: other\n", "  category: others\n", "fallback.category", "unknown category"),
        ("- '[1-9][0-9]+", "- '([1-9][0-9]+)+", "scope.groups.1.patterns.0", "nests quantifiers"),
        ("id: nature.cognition_weak", "id: nature.cognition", "nature.groups.1.id", "duplicate id"),
    ],
)
def test_yaml_errors_name_the_file_and_key(tmp_path, old, new, key, message):
    d = _copy_default(tmp_path)
    src = (d / "triage.yaml").read_text(encoding="utf-8")
    assert old in src
    (d / "triage.yaml").write_text(src.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(PhrasebookError, match=message) as e:
        triager(Phrasebook(d))
    assert e.value.file.endswith("triage.yaml") and e.value.key == key
    assert "triage.yaml" in str(e.value) and key in str(e.value)


def test_a_term_twice_in_one_dimension_is_rejected(tmp_path):
    d = _copy_default(tmp_path)
    src = (d / "triage.yaml").read_text(encoding="utf-8")
    (d / "triage.yaml").write_text(
        src.replace("terms: [发票, 开票,", "terms: [发票, 退款, 开票,"), encoding="utf-8"
    )
    with pytest.raises(PhrasebookError, match="appears twice") as e:
        triager(Phrasebook(d))
    assert "triage.yaml" in str(e.value)


def test_the_shipped_file_validates():
    book = Phrasebook().book("triage.yaml", TriageBook)
    assert {c.id for c in book.categories} == {
        "product_quality",
        "service",
        "delivery",
        "after_sales",
        "billing",
        "other",
    }


# --- the labelled fixture ---------------------------------------------------------------------


def _accuracy(t: Triager, rows: list[dict]) -> dict[str, float]:
    hits: Counter[str] = Counter()
    for row in rows:
        r = t.triage(row["text"])
        for key in ("category", "nature", "scope", "safety"):
            hits[key] += getattr(r, key) == row[key]
    return {k: round(hits[k] / len(rows), 3) for k in ("category", "nature", "scope", "safety")}


def test_fixture_accuracy(t):
    """tests/data/triage_domain.jsonl: hand-written complaints from ~50 industries, ~20 % Traditional.

    ``split: dev`` rows were written while the cue lists were written and tuned: their
    accuracy is in-sample. ``split: holdout`` rows were written after the lists were frozen
    and never tuned on — keep it that way (add new rows instead), or the figure means
    nothing. The brief's bar (category >= 0.85) applies to the fixture as a whole; the
    holdout floor guards against regressions and says how far the lexicon generalises.
    """
    rows = read_jsonl("triage_domain.jsonl")
    assert len(rows) >= 120
    assert sum(r["script"] == "traditional" for r in rows) / len(rows) >= 0.15
    whole = _accuracy(t, rows)
    dev = _accuracy(t, [r for r in rows if r["split"] == "dev"])
    holdout = _accuracy(t, [r for r in rows if r["split"] == "holdout"])
    print(f"triage fixture accuracy: all {whole}  dev {dev}  holdout {holdout}")
    assert whole["category"] >= 0.85
    assert (whole["nature"], whole["scope"], whole["safety"]) >= (0.8, 0.9, 0.9)
    assert holdout["category"] >= 0.6
