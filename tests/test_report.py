from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from agent_assist import read_transcripts, score_transcripts
from agent_assist.report import Report

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "transcripts.jsonl"
CHARTS = ["score-distribution", "tier-distribution", "transitions", "categories", "minefields", "agents",
          "minefields-by-agent"]


def _texts(rec):
    turns = rec.data.get("turns") if rec.data else None
    return [t.get("text") if isinstance(t, dict) and isinstance(t.get("text"), str) else "" for t in turns] \
        if isinstance(turns, list) else None


@pytest.fixture(scope="module")
def report_html(tmp_path_factory) -> Path:
    recs = list(read_transcripts(EXAMPLES))
    evil = {"id": "evil", "agent_id": "<b>A9</b>", "turns": [
        {"speaker": "客户", "text": "<script>alert(1)</script>{{ 7*7 }} 气死我了，什么破服务！！"},
        {"speaker": "客服", "text": "这不归我们管，您去找厂家吧。说了多少遍了，您听不懂吗？"},
    ]}  # a bad enough call to be among the worst ten, whatever the rubric's weights
    report = Report()
    results = list(score_transcripts([*recs, evil]))
    for rec, r in zip(recs, results):
        report.add(r, _texts(rec))
    report.add(results[-1], [t["text"] for t in evil["turns"]])
    path = tmp_path_factory.mktemp("report") / "report.html"
    report.write(path)
    return path


def test_report_is_self_contained(report_html):
    html = report_html.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "url(http" not in html and "<script" not in html.replace("&lt;script", "")
    assert "<link" not in html


def test_report_has_every_chart_and_the_worst_transcripts(report_html):
    html = report_html.read_text(encoding="utf-8")
    for section in CHARTS:
        block = html.split(f'id="{section}"', 1)[1].split("</section>", 1)[0]
        assert "<svg" in block, section
    cloud = html.split('id="word-cloud"', 1)[1].split("</section>", 1)[0]
    assert cloud.count("<span") >= 10
    worst = html.split('id="worst"', 1)[1].split("</section>", 1)[0]
    assert worst.count('class="transcript"') == 10 and "<mark" in worst
    assert "客服质检报告" in html


def test_user_text_is_escaped_never_rendered(report_html):
    html = report_html.read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "{{ 7*7 }}" in html and "49 气死我了" not in html
    assert "&lt;b&gt;A9&lt;/b&gt;" in html


def test_report_renders_in_headless_chromium(report_html, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium not installed (apt-get install chromium)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'u'}"]
    dom = subprocess.run([chromium, *flags, "--dump-dom", report_html.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    for section in CHARTS:
        assert re.search(rf'id="{section}".*?<svg', dom, re.S), section
    shot = tmp_path / "report.png"
    subprocess.run([chromium, *flags, "--window-size=1400,2400", f"--screenshot={shot}", report_html.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 50_000
