"""The installed package: public API, shipped data, and use from any directory."""

from __future__ import annotations

import doctest
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import agent_assist
from agent_assist.phrasebook import bundled_models, bundled_phrasebooks


def test_all_matches_exports():
    public = {name for name in dir(agent_assist) if not name.startswith("_")}
    modules = {n for n in public if isinstance(getattr(agent_assist, n), type(agent_assist))}
    assert set(agent_assist.__all__) == (public - modules - {"annotations", "logging"}) | {"__version__"}


def test_py_typed_and_data_ship_with_the_package():
    root = Path(agent_assist.__file__).parent
    assert (root / "py.typed").is_file()
    assert (bundled_phrasebooks() / "emotion.yaml").is_file()
    assert (bundled_phrasebooks() / "script" / "t2s.tsv").is_file()
    assert (bundled_models() / "emotion" / "emotion.npz").is_file()
    assert (bundled_models() / "emotion" / "MODEL_CARD.md").is_file()


def test_works_from_another_working_directory(tmp_path):
    code = (
        "import agent_assist, json;"
        "r = agent_assist.detect_emotion('算了，随便吧');"
        "print(json.dumps([agent_assist.__file__, r.tier]))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    where, tier = json.loads(out.stdout)
    assert tier == "indifference"
    assert Path(where).is_file()


def test_cli_emotion(tmp_path):
    f = tmp_path / "m.txt"
    f.write_text("气死我了！！\n\n你好，想问下发票\n", encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "agent_assist", "emotion", "--file", str(f), "--json"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    )
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["tier"] for r in rows] == ["anger", "calm"]
    assert rows[0]["evidence"][0]["text"] in rows[0]["text"]


def test_cli_reports_bad_phrasebook_dir(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "agent_assist", "--phrasebooks", str(tmp_path / "no"), "emotion", "x"],
        capture_output=True, text=True,
    )
    assert out.returncode == 2 and "not a directory" in out.stderr


MODULES = ["agent_assist", "agent_assist.assistant", "agent_assist.text", "agent_assist.phrasebook"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_readme_examples_run():
    readme = Path(__file__).resolve().parent.parent / "README.md"
    if not readme.is_file():
        pytest.skip("README not beside the tests")
    parser = doctest.DocTestParser()
    test = parser.get_doctest(readme.read_text(encoding="utf-8"), {}, "README", str(readme), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.failures == 0


def test_no_pickles_ship():
    import numpy as np

    root = Path(agent_assist.__file__).parent
    shipped = [p for base in (root, bundled_models(), bundled_phrasebooks()) for p in base.rglob("*") if p.is_file()]
    assert not [p for p in shipped if p.suffix in {".pkl", ".pickle", ".joblib"}]
    for npz in bundled_models().rglob("*.npz"):
        with np.load(npz, allow_pickle=False) as z:  # raises if any array needs pickle
            for key in z.files:
                assert z[key].dtype != object
