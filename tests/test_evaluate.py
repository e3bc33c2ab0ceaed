from __future__ import annotations

import math

from agent_assist.evaluate import metrics


def test_metrics_by_hand():
    gold = ["anger", "anger", "calm", "panic"]
    pred = ["anger", "calm", "calm", "anger"]
    m = metrics(gold, pred)
    assert m["accuracy"] == 0.5
    anger = m["per_tier"]["anger"]
    assert math.isclose(anger["precision"], 0.5) and math.isclose(anger["recall"], 0.5)
    calm = m["per_tier"]["calm"]
    assert math.isclose(calm["precision"], 0.5) and calm["recall"] == 1.0
    assert m["per_tier"]["panic"]["f1"] == 0.0
    # macro over the tiers present in gold only: anger 0.5, calm 2/3, panic 0
    assert math.isclose(m["macro_f1"], (0.5 + 2 / 3 + 0.0) / 3)
    assert m["confusion"]["panic"]["anger"] == 1
