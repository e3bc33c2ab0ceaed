"""Training and export: the shipped inference reproduces scikit-learn exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")

from agent_assist.datasets import Example
from agent_assist.emotion_model import EmotionModel
from agent_assist.phrasebook import TIERS, Phrasebook
from agent_assist.train import _featurize, export, fit


def _rows() -> list[Example]:
    texts = {
        "calm": ["请问发票怎么开", "想查一下物流", "你好，在吗", "会员怎么续费", "地址可以改吗", "几点营业"],
        "panic": [
            "冒烟了怎么办",
            "钱被盗刷了怎么办",
            "孩子发烧了急死了",
            "会不会爆炸",
            "账户被冻结了",
            "救命啊",
        ],
        "anger": ["气死我了", "我要投诉你们", "什么破服务", "第三次打电话了！！", "骗子公司", "呵呵真行"],
        "disappointment": ["太失望了", "还以为你们不一样", "白等了三天", "再也不信了", "很难过", "说好的呢"],
        "indifference": ["算了", "随便吧", "不用了", "无所谓了", "懒得说", "你们看着办"],
    }
    return [Example(t, tier, "test") for tier, ts in texts.items() for t in ts]


def test_export_reproduces_sklearn(tmp_path):
    from scipy import sparse

    pb = Phrasebook()
    rows = _rows()
    vec, clf = fit(rows, [True] * len(rows), pb=pb, c=1.0, domain_weight=1.0, max_features=5000)
    export(vec, clf, tmp_path, {"trained": "test"})
    model = EmotionModel(tmp_path)
    probe = ["我要投诉，气死了", "请问在吗", "随便吧算了", "完全没见过的句子"]
    norm, feats = _featurize([Example(t, "calm", "x") for t in probe], pb)
    x = sparse.hstack([vec.transform(norm), sparse.csr_matrix(feats)]).tocsr()
    expected = clf.decision_function(x)[:, [list(clf.classes_).index(t) for t in TIERS]]
    for i, text in enumerate(norm):
        got = model.logits(model.ngram_ids(text), list(feats[i]))
        np.testing.assert_allclose(got, expected[i], rtol=1e-4, atol=1e-5)
    batch = model.logits_many(norm, feats)
    np.testing.assert_allclose(batch, expected, rtol=1e-4, atol=1e-5)


def test_training_is_deterministic(tmp_path):
    pb = Phrasebook()
    rows = _rows()
    for name in ("a", "b"):
        vec, clf = fit(rows, [True] * len(rows), pb=pb, c=1.0, domain_weight=1.0, max_features=5000)
        export(vec, clf, tmp_path / name, {"trained": "test"})
    a, b = (np.load(tmp_path / n / "emotion.npz") for n in ("a", "b"))
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key])


def test_the_shipped_minefield_model_is_what_training_builds(tmp_path):
    """``python -m agent_assist.train minefields`` on the committed data and rules rebuilds
    the committed model (its card byte for byte; its weights to within liblinear's stopping
    tolerance, which moves the last digits between scikit-learn releases), and the runtime
    scores it as scikit-learn would."""
    from agent_assist.minefield_model import MinefieldModel, model_text
    from agent_assist.phrasebook import bundled_models
    from agent_assist.train import main

    shipped = bundled_models() / "minefields"
    card = json.loads((shipped / "minefields.json").read_text(encoding="utf-8"))
    data = Path(__file__).parent / "data"
    assert (
        main(["minefields", "--data-dir", str(data), "--out", str(tmp_path), "--date", card["trained"]]) == 0
    )
    name = "minefields.json"
    assert (tmp_path / name).read_bytes() == (shipped / name).read_bytes()
    built, kept = np.load(tmp_path / "minefields.npz"), np.load(shipped / "minefields.npz")
    assert sorted(built.files) == sorted(kept.files)
    for key in kept.files:
        if kept[key].dtype.kind == "f":
            np.testing.assert_allclose(built[key], kept[key], rtol=0, atol=1e-3, err_msg=key)
        else:
            np.testing.assert_array_equal(built[key], kept[key], err_msg=key)

    import agent_assist.train_minefields as tm

    texts = ["您别生气。", "这是物流的问题，和我们无关。", "好的，我马上为您处理。", ""]
    rows = [{"norm": model_text(t)} for t in texts]  # what training feeds the vectoriser
    model = MinefieldModel(shipped)
    vec = tm.Vectorizer([])  # the vocabulary of the shipped model, coefficients as shipped
    vec.vocab = {g: i for i, g in enumerate(model.grams)}
    expected = tm.scores((vec, model.coef, np.array(model._intercept)), rows)
    for row, want in zip(rows, expected, strict=True):
        np.testing.assert_allclose(model.scores(row["norm"]), want, atol=1e-9)
    assert model.scores(texts[1]) == model.scores(rows[1]["norm"])
