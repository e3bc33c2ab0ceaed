"""Minefield checks on agent replies: one test per kind, per context condition, per rule of
the data format, and the guarantees of ``suggested_reply``."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest
from pydantic import ValidationError

from agent_assist import Assistant, MinefieldHit, Phrasebook, PhrasebookError, ReplyCheck, Turn, check_reply
from agent_assist.minefields import (
    KINDS,
    MinefieldBook,
    anchor_words,
    check_minefield_book,
    expand_pattern,
    minefield_checker,
    minefield_rules_only,
)
from agent_assist.phrasebook import bundled_phrasebooks

DATA = Path(__file__).parent / "data"


def kinds(reply: str, **kw) -> set[str]:
    return {h.kind for h in check_reply(reply, **kw).hits}


def read_jsonl(name: str) -> list[dict]:
    with (DATA / name).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# --- one reply per kind; each fails if that kind's rules are removed ---------------------

PER_KIND = {
    "blame_shifting": "这是物流的问题，和我们无关。",
    "lecturing": "您应该先仔细阅读说明书再使用。",
    "over_promising": "您放心，这个问题我们一定给您解决。",
    "arguing": "这不可能，您说的不对。",
    "dismissing_feelings": "您不要激动，这有什么好生气的。",
    "blaming_customer": "是您自己操作不当导致的。",
    "perfunctory": "稍后会有人联系您。",
    "premature_compensation": "非常抱歉，我们送您一张20元优惠券作为补偿。",
    "pressuring": "您不接受的话就没办法了，最多只能这样。",
    "impatience": "我已经说过很多遍了，您听不懂吗？",
    "badmouthing": "那个部门一直这样，我们公司就是这么差。",
}


def test_every_kind_has_an_example():
    assert set(PER_KIND) == set(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_kind_is_detected(kind):
    r = check_reply(PER_KIND[kind])
    assert not r.ok
    assert kind in {h.kind for h in r.hits}
    for h in r.hits:
        assert h.severity in ("low", "medium", "high")
        assert h.principle.endswith("。") and h.rewrite and h.rule


def test_clean_reply_is_ok():
    reply = "我完全理解您的心情，我们马上为您核实物流信息，1小时内回复您。"
    r = check_reply(reply)
    assert r.ok and r.hits == [] and r.suggested_reply == reply


def test_empty_reply():
    r = check_reply("")
    assert r.ok and r.suggested_reply == ""


# --- context conditions: each pair fails if the condition is removed from its rules -------


def test_negated_disowning_is_not_blame_shifting():
    assert "blame_shifting" in kinds("这和我们无关。")
    assert kinds("我们绝不会推卸责任，也不会说这和我们无关。") == set()


def test_negated_guarantee_is_honest_not_over_promising():
    assert "over_promising" in kinds("我保证一定修好。")
    assert "over_promising" not in kinds("我不能保证一定修好，但会安排最好的师傅，48小时内给您结果。")


def test_negation_blockers_do_not_negate():
    # 能不能 asks, it does not negate: the impatience still counts.
    assert "impatience" in kinds("您能不能先听我说完？")
    # 不是 right before 您的问题 clears blaming the customer.
    assert "blaming_customer" in kinds("这是您的问题。")
    assert "blaming_customer" not in kinds("这不是您的问题，是我们的疏忽。")


def test_hedged_promise_is_not_over_promising():
    assert "over_promising" in kinds("我们保证今天修好。")
    assert kinds("我会尽力在今天18点前给您结果。") == set()
    assert "over_promising" not in kinds("我们会尽量保证今天修好。")


def test_concrete_time_clears_vague_contact():
    assert "perfunctory" in kinds("稍后联系您。")
    assert kinds("2小时内给您回电。") == set()
    assert "perfunctory" not in kinds("稍后30分钟内会有工程师联系您。")


def test_concrete_time_anywhere_in_the_reply_by_default_or_in_the_sentence(tmp_path):
    assert "perfunctory" not in kinds("我们会尽快给您答复。明天中午12点前给您回电。")
    pb = _custom(tmp_path, "    scope: reply\n", "    scope: sentence\n")
    got = {h.kind for h in Assistant(pb).check_reply("我们会尽快给您答复。明天中午12点前给您回电。").hits}
    assert "perfunctory" in got


def test_concrete_time_clears_a_personal_guarantee():
    assert "over_promising" in kinds("我向您保证。")
    assert "over_promising" not in kinds("我保证在30分钟内给您回电。")


def test_naming_the_carrier_while_taking_ownership_is_not_blame_shifting():
    assert "blame_shifting" in kinds("物流延误了，这是快递的问题。")
    assert kinds("物流延误了，我们已经催促并全程跟进。") == set()
    assert "blame_shifting" not in kinds("这是快递的问题，不过我们已经联系快递加急，会全程跟进。")


def test_redirect_with_ownership_is_not_blame_shifting():
    assert "blame_shifting" in kinds("您去找厂家吧。")
    assert "blame_shifting" not in kinds("您不用自己去找厂家，我们来对接，24小时内给您答复。")


def test_compensation_is_premature_only_if_not_asked():
    reply = "非常抱歉，我们给您补偿一张50元优惠券。"
    assert "premature_compensation" in kinds(reply, customer_text="快递一周了还没到！")
    assert "premature_compensation" not in kinds(reply, customer_text="你们打算怎么赔偿我的损失？")


def test_compensation_request_in_history_counts():
    reply = "我们给您补偿一个月会员。"
    history = [
        Turn(speaker="customer", text="东西一直不到，你们怎么赔？"),
        Turn(speaker="agent", text="我马上查。"),
    ]
    assert "premature_compensation" not in kinds(reply, customer_text="快点吧", history=history)
    as_dicts = [t.model_dump() for t in history]
    assert "premature_compensation" not in kinds(reply, customer_text="快点吧", history=as_dicts)
    agent_only = [{"speaker": "agent", "text": "需要的话可以赔偿您"}]
    assert "premature_compensation" in kinds(reply, customer_text="快点吧", history=agent_only)


def test_refusing_compensation_is_not_asking_for_it():
    refused = "我不要什么补偿，只要能用。"
    assert "premature_compensation" in kinds("我们给您补偿一张优惠券。", customer_text=refused)


def test_manual_referral_is_perfunctory_only_as_the_whole_answer():
    assert "perfunctory" in kinds("请参考使用手册。")
    helped = "您先按住电源键10秒重启，如果还不行，请参考使用手册第12页，我也可以远程帮您操作。"
    assert "perfunctory" not in kinds(helped)


def test_reassurance_is_not_dismissing_feelings():
    assert "dismissing_feelings" in kinds("您别担心。")
    assert kinds("请您放心，我们已经安排师傅明天上午上门。") == set()
    assert "dismissing_feelings" not in kinds("您别担心，我们已经为您冻结了这笔扣款。")
    # Telling someone not to be angry is never reassurance, whatever follows.
    assert "dismissing_feelings" in kinds("别生气，我们已经在处理了。")
    assert "dismissing_feelings" in kinds("您不要激动。")


def test_bare_acknowledgement_is_perfunctory_only_as_the_whole_answer():
    assert "perfunctory" in kinds("嗯，知道了。")
    assert "perfunctory" not in kinds("嗯，我马上帮您查一下，5分钟内回复您。")
    assert "perfunctory" not in kinds("我们先确认可行的方案，今天18点前回复您。")


def test_yields_to_a_more_specific_kind_in_the_same_clause():
    got = kinds("您不接受的话我们也没办法了。")
    assert "pressuring" in got and "perfunctory" not in got


def test_exceptions_clear_overlapping_triggers():
    assert "over_promising" not in kinds("您一定要保存好凭证，我们今天18点前回复您。")
    assert "arguing" not in kinds("我们不可能让您白跑一趟，这次上门费我们承担。")


# --- offsets, scripts, suggestions ----------------------------------------------------------


def test_offsets_index_the_original_traditional_reply():
    reply = "您別生氣！這是物流的問題，和我們無關。"
    r = check_reply(reply)
    assert {h.kind for h in r.hits} == {"dismissing_feelings", "blame_shifting"}
    for h in r.hits:
        assert reply[h.start : h.end] == h.text
    assert r.hits[0].text == "別生氣"
    # Rewrites come back in the reply's script.
    assert "們" in r.suggested_reply or "這" in r.suggested_reply or "應" in r.suggested_reply
    assert all("们" not in h.rewrite for h in r.hits)


def test_offsets_survive_full_width_and_dropped_characters():
    reply = "ＯＫ，您\u200b别生气，　稍后联系您。"
    r = check_reply(reply)
    assert {h.kind for h in r.hits} == {"dismissing_feelings", "perfunctory"}
    for h in r.hits:
        assert reply[h.start : h.end] == h.text
    assert check_reply("２小時內給您回電。").ok


def test_you_is_folded():
    assert "blaming_customer" in kinds("是你自己操作不当导致的。")


def test_suggested_reply_replaces_the_clause_and_is_clean():
    r = check_reply("您别生气，这是物流的问题，和我们无关。")
    assert "别生气" not in r.suggested_reply and "无关" not in r.suggested_reply
    assert check_reply(r.suggested_reply).ok


@pytest.mark.parametrize("name", ["replies.jsonl", "replies_dev.jsonl", "replies_dev2.jsonl"])
def test_suggested_reply_is_clean_for_every_positive(name):
    a = Assistant()
    bad = []
    for row in read_jsonl(name):
        if not row["kinds"]:
            continue
        kw = {"customer_text": row.get("customer") or None, "history": row.get("history") or None}
        r = a.check_reply(row["reply"], **kw)
        again = a.check_reply(r.suggested_reply, **kw)
        if not again.ok:
            bad.append((row["reply"], r.suggested_reply, [h.kind for h in again.hits]))
    assert bad == []


def test_every_rewrite_is_free_of_hits():
    book = Phrasebook().book("minefields.yaml", MinefieldBook, check_minefield_book)
    texts = [k.rewrite for k in book.kinds.values()] + [r.rewrite for r in book.rules if r.rewrite]
    for t in texts:
        assert check_reply(t).ok, t


# --- API ----------------------------------------------------------------------------------------


def test_result_models_are_frozen_and_explain_themselves():
    r = check_reply("这是物流的问题，和我们无关。")
    assert isinstance(r, ReplyCheck) and isinstance(r.hits[0], MinefieldHit)
    with pytest.raises(ValidationError):
        r.hits[0].start = 3  # type: ignore[misc]
    dumped = r.model_dump()
    assert set(dumped) == {"ok", "hits", "suggested_reply", "truncated"}
    fields = {"kind", "start", "end", "text", "severity", "principle", "rewrite", "rule"}
    assert set(dumped["hits"][0]) == fields
    assert ReplyCheck.model_validate(dumped) == r


def test_bad_input_types():
    with pytest.raises(TypeError):
        check_reply(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        check_reply("好的", customer_text=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"history\[0\]"):
        check_reply("好的", history=[{"who": "customer"}])


def test_checker_is_built_once_and_shared_between_threads():
    pb = Phrasebook()
    assert minefield_checker(pb) is minefield_checker(pb)
    a = Assistant(pb)
    expected = a.check_reply(PER_KIND["perfunctory"])
    results = []

    def work():
        for _ in range(50):
            results.append(a.check_reply(PER_KIND["perfunctory"]) == expected)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results) and len(results) == 200


def test_pattern_expansion_and_anchoring():
    expected = ["和我们无关", "和我们这边无关", "跟我们无关", "跟我们这边无关"]
    assert expand_pattern("(和|跟)我们(这边)?无关") == expected
    assert expand_pattern("您[^,]{0,8}应该") is None
    words, at_start = anchor_words("您[^,.]{0,8}(就|早就)(应该|该)")
    assert not at_start and "就应该" in words and "您" not in words
    words, at_start = anchor_words("(再|多)?送您[^,]{0,8}券")
    assert at_start and set(words) == {"再送您", "多送您", "送您"}


# --- phrasebook validation -------------------------------------------------------------------


def _custom(tmp_path: Path, old: str, new: str) -> Phrasebook:
    d = tmp_path / "pb"
    shutil.copytree(bundled_phrasebooks(), d)
    f = d / "minefields.yaml"
    text = f.read_text(encoding="utf-8")
    assert old in text
    f.write_text(text.replace(old, new, 1), encoding="utf-8")
    return Phrasebook(d)


def _load(pb: Phrasebook) -> None:
    minefield_checker(pb)


def test_bad_regex_names_file_and_key(tmp_path):
    pb = _custom(tmp_path, "      - '不在(我们|", "      - '(不在+)+(我们|")
    with pytest.raises(PhrasebookError) as e:
        _load(pb)
    assert "minefields.yaml" in str(e.value) and e.value.key is not None and e.value.key.startswith("rules.")
    assert "nests quantifiers" in str(e.value)


def test_unknown_kind_names_file_and_key(tmp_path):
    pb = _custom(tmp_path, "    kind: lecturing\n", "    kind: sermonising\n")
    with pytest.raises(PhrasebookError) as e:
        _load(pb)
    assert "minefields.yaml" in str(e.value) and e.value.key is not None
    assert e.value.key.endswith(".kind") and e.value.line is not None


def test_duplicate_id_names_file_and_key(tmp_path):
    pb = _custom(tmp_path, "  - id: blame.third_party\n", "  - id: blame.disown\n")
    with pytest.raises(PhrasebookError, match="duplicate id 'blame.disown'") as e:
        _load(pb)
    assert "minefields.yaml" in str(e.value) and e.value.key.startswith("rules.")


def test_unknown_condition_is_rejected(tmp_path):
    pb = _custom(tmp_path, "    unless: [negated, ownership]\n", "    unless: [negated, moon_phase]\n")
    with pytest.raises(PhrasebookError) as e:
        _load(pb)
    assert "unless" in (e.value.key or "")


def test_rewrite_containing_a_trigger_is_rejected(tmp_path):
    pb = _custom(
        tmp_path,
        "    rewrite: 谢谢您告诉我这个情况，我马上核实一下具体原因\n",
        "    rewrite: 这和我们无关\n",
    )
    with pytest.raises(PhrasebookError, match="itself contains") as e:
        _load(pb)
    assert e.value.key == "kinds.arguing.rewrite"


def test_principle_must_be_one_sentence(tmp_path):
    pb = _custom(
        tmp_path,
        "    principle: 和客户争辩对错只会激化矛盾，即使有理也会失去客户。\n",
        "    principle: 不要争辩。也不要反驳。\n",
    )
    with pytest.raises(PhrasebookError, match="one sentence"):
        _load(pb)


def test_gapped_pattern_needs_a_leading_word(tmp_path):
    pb = _custom(tmp_path, "      - '您[^,.!?;]{0,8}(就|早就|本来就|早)(应该|应当|该)'",
                 "      - '[^,.!?;]{0,8}(就|早就|本来就|早)(应该|应当|该)'")
    with pytest.raises(PhrasebookError, match="must start with a fixed word"):
        _load(pb)


def test_missing_kind_is_rejected(tmp_path):
    old, new = "  badmouthing:\n    severity: medium\n", "  badmouthing_x:\n    severity: medium\n"
    pb = _custom(tmp_path, old, new)
    with pytest.raises(PhrasebookError):
        _load(pb)


# --- command line and evaluation -------------------------------------------------------------


def test_cli_check(capsys):
    from agent_assist.cli import main

    assert main(["check", "您别生气，稍后联系您。", "--customer", "快递还没到"]) == 1
    out = capsys.readouterr().out
    assert "dismissing_feelings" in out and "perfunctory" in out and "suggested:" in out
    assert main(["check", "2小时内给您回电。", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_evaluate_replies_on_the_dev_file(capsys, tmp_path):
    from agent_assist.evaluate import main

    out_json = tmp_path / "m.json"
    assert main(["replies", str(DATA / "replies_dev.jsonl"), "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    assert "overall (micro)" in text and "suggested_reply still has hits: 0" in text
    m = json.loads(out_json.read_text(encoding="utf-8"))
    assert set(m["per_kind"]) == set(KINDS) and m["precision"] > 0.9


# --- broader families (written from replies_dev2.jsonl); each fails if its rule goes -------

BROADER = [
    ("blame.elsewhere", "blame_shifting", "餐是商家做的，平台只是提供一个下单渠道。"),
    ("blame.elsewhere", "blame_shifting", "这个延误卡在航空公司，我们这边也没法左右。"),
    ("blame.elsewhere", "blame_shifting", "票是航司超售的，怎么处理得航司来定。"),
    ("lecturing.general", "lecturing", "租房合同签字前每一条都要逐字读完才行。"),
    ("lecturing.general", "lecturing", "这次就当买个教训吧，以后多注意。"),
    ("over.certain", "over_promising", "您的行李我们一定找得回来，请放心。"),
    ("over.certain", "over_promising", "签证交给我们，包过，没有办不下来的。"),
    ("arguing.contradict", "arguing", "您描述的情况跟我们的后台数据完全对不上。"),
    ("arguing.contradict", "arguing", "当时房间里并没有您说的霉味。"),
    ("dismiss.minimise", "dismissing_feelings", "就晚了半天，您没必要这么上纲上线吧。"),
    ("dismiss.minimise", "dismissing_feelings", "一顿饭送错了而已，您放宽心。"),
    ("blaming.cause", "blaming_customer", "卡被锁是因为您连续输错了五次密码。"),
    ("blaming.cause", "blaming_customer", "屏幕碎成这样明显是摔过的。"),
    ("perfunctory.later", "perfunctory", "我们会研究一下您的建议的。"),
    ("compensation.gift", "premature_compensation", "给您升级成豪华房型，您看可以吗？"),
    ("pressuring.no_choice", "pressuring", "您要是不满意，可以去别家试试。"),
    ("pressuring.no_choice", "pressuring", "这个方案您不要的话，就视同您放弃了。"),
    ("impatience.again", "impatience", "我再说最后一次，退款需要七个工作日。"),
    ("impatience.again", "impatience", "这个操作我已经手把手教过您两回了。"),
    ("badmouthing.people", "badmouthing", "财务部门办事特别磨叽，退款总是很慢。"),
    ("badmouthing.people", "badmouthing", "说句不好听的，我们的培训就是走个形式。"),
    ("badmouthing.people", "badmouthing", "那个主管就会甩锅，您找他也白搭。"),
    ("pressuring.no_choice", "pressuring", "您再纠缠的话，我们只能把账号列入黑名单。"),
    ("impatience.again", "impatience", "您能不能别再打断我了，我还没说完。"),
    ("arguing.contradict", "arguing", "您说客服态度差，可录音里他一直很客气。"),
    ("dismiss.minimise", "dismissing_feelings", "退款在路上了，您犯不着天天打电话来催。"),
    ("badmouthing.people", "badmouthing", "我们仓库的管理一直稀里糊涂的。"),
    ("arguing.contradict", "arguing", "那是您个人的感受，其他客户都觉得挺好。"),
    ("pressuring.no_choice", "pressuring", "退一步讲，您也没别的选择。"),
    ("impatience.again", "impatience", "这个问题翻来覆去地问，结果还是一样。"),
]


@pytest.fixture(scope="module")
def rules_only():
    return minefield_rules_only(Phrasebook())


@pytest.mark.parametrize(("rule", "kind", "reply"), BROADER)
def test_broader_family(rules_only, rule, kind, reply):
    # The rule families themselves; whether the model lets each hit stand is its own test.
    hits = rules_only.check(reply).hits
    assert any(h.rule == rule and h.kind == kind for h in hits), [(h.rule, h.text) for h in hits]


@pytest.mark.parametrize(
    "reply",
    [
        "您已经说得很清楚了，我完全理解，我们马上处理。",  # the customer said it clearly
        "之前让您重复说了好几遍，真的很抱歉，这次我一次帮您处理完。",  # we made them repeat it
        "我也很想马上给您解决，但需要技术确认，我约了他们今天四点回电。",  # a wish, not a promise
        "我们不会像您担心的那样随便处理，我现在就帮您核实。",
        "这不是您的问题，是我们系统出了故障。",
    ],
)
def test_broader_families_spare_honest_replies(reply):
    assert check_reply(reply).ok, [(h.rule, h.text) for h in check_reply(reply).hits]


def test_second_dev_set_keeps_its_level():
    """replies_dev2.jsonl was written after the first rules, to measure unseen wording."""
    rows = read_jsonl("replies_dev2.jsonl")
    tp = fp = fn = 0
    for r in rows:
        got = kinds(r["reply"], customer_text=r["customer"] or None)
        gold = set(r["kinds"])
        tp, fp, fn = tp + len(got & gold), fp + len(got - gold), fn + len(gold - got)
    assert tp / (tp + fp) >= 0.93 and tp / (tp + fn) >= 0.90


@pytest.mark.parametrize(
    ("customer", "reply", "perfunctory"),
    [
        # a bare acknowledgement answers a close, not a complaint
        ("快递还没到，怎么回事？", "好的。", True),
        ("好的，谢谢。", "好的。", False),
        ("嗯，没有了，再见", "好的呢，祝您生活愉快", False),
        # office formulas as the whole answer
        ("我要投诉你们营业厅", "给您带来不便，敬请谅解。", True),
        ("我要投诉你们营业厅", "给您带来不便，敬请谅解，我马上为您登记投诉，今天18点前回电。", False),
        ("电费涨了好多", "问题已提交，请您知悉。", True),
        # sent elsewhere, or "the rule decides", with nothing else
        ("信用卡分期怎么操作？", "您可以在APP上自助办理。", True),
        ("怎么办副卡", "您可以在App里点“业务办理-副卡”，按提示填写信息就能申请。", False),
        ("官网价格和结账价格不一样！", "一切以結帳頁面顯示為準喔。", True),
        ("寄件多少钱", "同城首重是12元，续重每公斤2元，具体以揽收时称重为准哦。", False),
        # "cannot find it" with what the agent does about it, and when
        ("我的包裹五天没更新了", "这边暂时查不到呢。", True),
        ("我的包裹五天没更新了", "这边暂时查不到，我已经联系仓库核实，今天下午5点前给您回电。", False),
    ],
)
def test_perfunctory_depends_on_what_else_is_said(rules_only, customer, reply, perfunctory):
    kinds = {h.kind for h in rules_only.check(reply, customer_text=customer).hits}
    assert ("perfunctory" in kinds) is perfunctory


def test_a_phrase_cleared_by_what_follows_leaves_the_model_its_say():
    # 好的 is cleared because more follows, which says nothing about the rest of the reply:
    # the model may still read it as perfunctory. A negation does judge the reply.
    from agent_assist.minefields import _Call

    checker = Assistant().minefields
    perfunctory = KINDS.index("perfunctory")
    for reply, judged in (("好的，我马上帮您查。", False), ("我们不会让您等通知的。", True)):
        call = _Call(checker, checker._normalize(reply), None)
        assert call.hits() == []
        assert (perfunctory in call.cleared) is judged, reply


@pytest.mark.parametrize(
    ("customer", "reply", "kind", "flagged"),
    [
        # what an ordinary call says: a close answered by a close, a transfer, a confirmation
        ("好的谢谢", "后续有问题随时联系我们", "perfunctory", False),
        ("快递丢了你们管不管？", "后续有问题随时联系我们", "perfunctory", True),
        ("好的，那我等着", "好的，那先这样，感谢您的耐心，再见", "perfunctory", False),
        ("我想问下技术上的问题", "帮您转接技术支持，请稍候", "perfunctory", False),
        ("我刚才说的你听清楚了吗", "听清楚了，您是说上午打不开账户，我现在帮您查原因。", "impatience", False),
        ("你说什么？", "我再说一遍，您听清楚了吗？", "impatience", True),
    ],
)
def test_ordinary_call_turns(rules_only, customer, reply, kind, flagged):
    kinds = {h.kind for h in rules_only.check(reply, customer_text=customer).hits}
    assert (kind in kinds) is flagged
