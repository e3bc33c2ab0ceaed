from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agent_assist import Assistant, Phrasebook, PhrasebookError
from agent_assist.phrasebook import bundled_phrasebooks, check_linear_regex


def _copy_default(tmp_path: Path) -> Path:
    target = tmp_path / "pb"
    shutil.copytree(bundled_phrasebooks(), target)
    return target


def test_bundled_phrasebooks_load_and_validate():
    Phrasebook().validate()


def test_every_shipped_yaml_file_parses(tmp_path):
    import yaml

    files = list(bundled_phrasebooks().rglob("*.yaml"))
    assert files
    for f in files:
        assert yaml.safe_load(f.read_text(encoding="utf-8")) is not None, f


def test_bad_yaml_names_file_and_line(tmp_path):
    d = _copy_default(tmp_path)
    (d / "emotion.yaml").write_text("version: 1\nnegation: [unclosed\n", encoding="utf-8")
    with pytest.raises(PhrasebookError) as e:
        Phrasebook(d).validate()
    assert "emotion.yaml" in str(e.value) and e.value.line is not None


def test_unknown_key_names_the_key_and_line(tmp_path):
    d = _copy_default(tmp_path)
    text = (d / "emotion.yaml").read_text(encoding="utf-8")
    (d / "emotion.yaml").write_text(text.replace("  - id: panic.core\n", "  - id: panic.core\n    colour: red\n"), encoding="utf-8")
    with pytest.raises(PhrasebookError) as e:
        Phrasebook(d).validate()
    assert e.value.key == "groups.0.colour"
    assert e.value.line is not None and e.value.line > 1


def test_duplicate_id_is_rejected(tmp_path):
    d = _copy_default(tmp_path)
    text = (d / "emotion.yaml").read_text(encoding="utf-8")
    (d / "emotion.yaml").write_text(text.replace("id: anger.threat", "id: anger.core"), encoding="utf-8")
    with pytest.raises(PhrasebookError, match="duplicate id 'anger.core'"):
        Phrasebook(d).validate()


def test_term_listed_twice_is_rejected(tmp_path):
    d = _copy_default(tmp_path)
    text = (d / "emotion.yaml").read_text(encoding="utf-8")
    (d / "emotion.yaml").write_text(text.replace("terms: [失望,", "terms: [算了, 失望,"), encoding="utf-8")
    with pytest.raises(PhrasebookError, match="appears twice"):
        Assistant(d).detect_emotion("算了")


@pytest.mark.parametrize("pattern", [r"(a+)+", r"(\d*)*x", r"(?=a)b", r"(a)\1"])
def test_risky_regexes_are_rejected(pattern):
    with pytest.raises(ValueError):
        check_linear_regex(pattern)


@pytest.mark.parametrize("pattern", [r"!{2,}", r"第\s*[二三\d]+\s*次", r"(等|拖)了\d+(天|周)"])
def test_linear_regexes_are_accepted(pattern):
    check_linear_regex(pattern)


def test_custom_directory_extends_default(tmp_path):
    d = tmp_path / "company"
    d.mkdir()
    src = (bundled_phrasebooks() / "emotion.yaml").read_text(encoding="utf-8")
    (d / "emotion.yaml").write_text(src.replace("terms: [失望,", "terms: [心里拔凉拔凉, 失望,"), encoding="utf-8")
    custom = Assistant(d).detect_emotion("心里拔凉拔凉的")
    assert any(e.cue == "disappointment.core:心里拔凉拔凉" for e in custom.evidence)
    # script tables were not copied: they come from the bundled default
    assert Phrasebook(d).file("script/t2s.tsv").parent.parent == bundled_phrasebooks()


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(PhrasebookError, match="not a directory"):
        Phrasebook(tmp_path / "nope")
