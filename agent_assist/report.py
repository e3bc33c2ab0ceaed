"""A self-contained HTML report of a QA run: charts a QA lead would rather look at than read.

Built incrementally while results stream past (:meth:`Report.add`), so a run over millions
of transcripts keeps only counters, a bounded sample of customer sentences for the word
cloud and the few worst transcripts. Charts are inline SVG drawn here: no JavaScript, no
CDN, nothing fetched when the file is opened. Transcript text reaches the page only as
autoescaped values of a fixed template, never as template source.
"""

from __future__ import annotations

import heapq
import html
import math
import random
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from .qa import QAResult

TIERS = ("calm", "panic", "anger", "disappointment", "indifference")
TIER_ZH = {"calm": "平静", "panic": "恐慌", "anger": "愤怒", "disappointment": "失望", "indifference": "冷漠"}
TIER_COLOUR = {
    "calm": "#4caf50",
    "panic": "#9c27b0",
    "anger": "#e53935",
    "disappointment": "#1e88e5",
    "indifference": "#757575",
}
PALETTE = [
    "#1e88e5",
    "#e53935",
    "#43a047",
    "#fb8c00",
    "#8e24aa",
    "#00897b",
    "#6d4c41",
    "#3949ab",
    "#c0ca33",
    "#757575",
]
_WORST = 10
_SAMPLE = 3000  # customer sentences kept for the word cloud (reservoir sample)


class Report:
    """Collects what the report shows; :meth:`write` renders it."""

    def __init__(self, *, seed: int = 0, redact: Callable[[str], str] | None = None) -> None:
        #: Applied to every transcript text the page shows (worst conversations, word cloud).
        self.redact = redact
        self.n = 0
        self.errors: list[tuple[int | None, str]] = []
        self.n_errors = 0
        self.scores: list[float] = []  # bins only would do; kept for the mean/median of < 10^7
        self.bins = [0] * 10
        self.start_end: Counter[tuple[str, str]] = Counter()
        self.turn_tiers: Counter[str] = Counter()
        self.mines: Counter[str] = Counter()
        self.mines_by_agent: dict[str, Counter[str]] = defaultdict(Counter)
        self.agent_scores: dict[str, list[float]] = defaultdict(list)
        self.categories: Counter[str] = Counter()
        self.flags: Counter[str] = Counter()
        self.cue_words: Counter[str] = Counter()
        self._sample: list[str] = []
        self._seen_sentences = 0
        self._rng = random.Random(seed)
        self._worst: list[tuple[float, int, dict[str, Any]]] = []

    def add(self, r: QAResult, texts: Sequence[str] | None = None) -> None:
        """Count one result; ``texts`` (its turns' text) feed the word cloud and the worst list."""
        self.n += 1
        if r.error is not None or r.score is None:
            self.n_errors += 1
            if len(self.errors) < 20:
                self.errors.append((r.line, r.error or ""))
            return
        self.scores.append(r.score)
        self.bins[min(9, int(r.score // 10))] += 1
        agent = r.agent_id or "(未知)"
        self.agent_scores[agent].append(r.score)
        if r.start_tier and r.end_tier:
            self.start_end[(r.start_tier, r.end_tier)] += 1
        for p in r.trajectory:
            self.turn_tiers[p.tier] += 1
        for it in r.items:
            if it.id.startswith("mine.") and it.evidence:
                self.mines[it.name] += len(it.evidence)
                self.mines_by_agent[agent][it.name] += len(it.evidence)
        if r.triage is not None:
            self.categories[r.triage.category_label] += 1
        for f in r.flags:
            self.flags[f] += 1
        if texts is not None and len(texts) == r.turns:
            if self.redact is not None:
                texts = _LazyRedacted(texts, self.redact)
            self._sample_sentences(r, texts)
            self._keep_if_worst(r, texts)

    def _sample_sentences(self, r: QAResult, texts: Sequence[str]) -> None:
        for p in r.trajectory:
            if p.tier == "calm":
                continue
            self._seen_sentences += 1
            text = texts[p.turn]
            if len(self._sample) < _SAMPLE:
                self._sample.append(text)
            else:
                k = self._rng.randrange(self._seen_sentences)
                if k < _SAMPLE:
                    self._sample[k] = text

    def _keep_if_worst(self, r: QAResult, texts: Sequence[str]) -> None:
        key = -(r.score or 0.0)
        if len(self._worst) == _WORST and key <= self._worst[0][0]:
            return
        marks: dict[int, list[tuple[int, int, str]]] = defaultdict(list)
        for it in r.items:
            if it.passed is False:
                for e in it.evidence:
                    if e.end - e.start < len(texts[e.turn]) or it.id.startswith("mine."):
                        marks[e.turn].append((e.start, e.end, e.note))
        customer = {p.turn for p in r.trajectory}
        entry = {
            "id": r.id,
            "score": r.score,
            "grade": r.grade,
            "agent": r.agent_id or "",
            "flags": r.flags,
            "path": " → ".join(TIER_ZH[p.tier] for p in r.trajectory),
            "failed": [f"{it.name}（-{it.points - it.earned:g}）" for it in r.items if it.passed is False],
            "turns": [
                {"speaker": "客户" if i in customer else "客服", "html": _highlight(text, marks.get(i, []))}
                for i, text in enumerate(texts)
            ],
        }
        item = (key, self.n, entry)
        if len(self._worst) < _WORST:
            heapq.heappush(self._worst, item)
        else:
            heapq.heapreplace(self._worst, item)

    def merge(self, other: Report) -> None:
        """Fold in a report of the records that came after this one's (e.g. a worker's block)."""
        base = self.n
        self.n += other.n
        self.n_errors += other.n_errors
        self.errors = (self.errors + other.errors)[:20]
        self.scores += other.scores
        self.bins = [a + b for a, b in zip(self.bins, other.bins)]
        for mine, theirs in (
            (self.start_end, other.start_end),
            (self.turn_tiers, other.turn_tiers),
            (self.mines, other.mines),
            (self.categories, other.categories),
            (self.flags, other.flags),
            (self.cue_words, other.cue_words),
        ):
            mine.update(theirs)  # type: ignore[attr-defined]
        for agent, counts in other.mines_by_agent.items():
            self.mines_by_agent[agent].update(counts)
        for agent, scores in other.agent_scores.items():
            self.agent_scores[agent] += scores
        self._merge_sample(other)
        for key, n, entry in other._worst:
            item = (key, base + n, entry)
            if len(self._worst) < _WORST:
                heapq.heappush(self._worst, item)
            elif key > self._worst[0][0]:
                heapq.heapreplace(self._worst, item)

    def _merge_sample(self, other: Report) -> None:
        # Two uniform samples of different populations: draw from each in proportion to the
        # population it stands for, so the merged sample is (close to) uniform over both.
        if self._seen_sentences + other._seen_sentences <= _SAMPLE:  # both whole: keep input order
            self._sample += other._sample
            self._seen_sentences += other._seen_sentences
            return
        ours, theirs = self._sample[:], other._sample[:]
        self._rng.shuffle(ours)
        self._rng.shuffle(theirs)
        left_ours, left_theirs = self._seen_sentences, other._seen_sentences
        merged: list[str] = []
        while len(merged) < _SAMPLE and (ours or theirs):
            take_ours = bool(ours) and (
                not theirs or self._rng.random() * (left_ours + left_theirs) < left_ours
            )
            merged.append(ours.pop() if take_ours else theirs.pop())
            if take_ours:
                left_ours -= 1
            else:
                left_theirs -= 1
        self._sample = merged
        self._seen_sentences += other._seen_sentences

    # -- rendering --

    def keywords(self, top: int = 60) -> list[tuple[str, float]]:
        """The customers' emotion words: lexicon cues found in the sampled emotional
        sentences, plus jieba TF-IDF keywords among adjectives, verbs and idioms."""
        if not self._sample:
            return []
        from .assistant import detect_emotions

        cues: Counter[str] = Counter(
            e.text.strip()
            for r in detect_emotions(self._sample)
            for e in r.evidence
            if e.rule in ("lexicon", "negation") and e.tier != "calm" and len(e.text.strip()) > 1
        )
        with warnings.catch_warnings():
            # jieba opens its dictionaries without closing them; not our leak to report.
            warnings.simplefilter("ignore", ResourceWarning)
            import jieba
            import jieba.analyse

            jieba.setLogLevel(60)  # jieba prints its dictionary loading otherwise
            tags = jieba.analyse.extract_tags(
                "。".join(self._sample),
                topK=top,
                withWeight=True,
                allowPOS=("a", "ad", "an", "i", "l", "v", "vn"),
            )
        top_cue = max(cues.values(), default=1)
        top_tag = max((w for _, w in tags), default=1.0) or 1.0
        weight: Counter[str] = Counter({w: c / top_cue for w, c in cues.items()})
        for w, score in tags:
            weight[w] += 0.5 * score / top_tag
        return [(w, float(v)) for w, v in weight.most_common(top)]

    def context(self) -> dict[str, Any]:
        scored = len(self.scores)
        mean = sum(self.scores) / scored if scored else 0.0
        ordered = sorted(self.scores)
        agents = sorted(
            self.agent_scores, key=lambda a: sum(self.agent_scores[a]) / len(self.agent_scores[a])
        )
        kinds = [k for k, _ in self.mines.most_common()]
        return {
            "n": self.n,
            "scored": scored,
            "n_errors": self.n_errors,
            "errors": self.errors,
            "mean": mean,
            "median": ordered[scored // 2] if scored else 0.0,
            "below_60": sum(1 for s in self.scores if s < 60),
            "flags": {
                f: self.flags.get(f, 0)
                for f in ("escalation_threat", "repeat_complaint", "churn_risk", "safety")
            },
            "charts": {
                "scores": svg_bars(
                    [f"{i * 10}-{i * 10 + 9 if i < 9 else 100}" for i in range(10)],
                    self.bins,
                    colours=["#e53935"] * 6 + ["#fb8c00", "#fdd835", "#7cb342", "#43a047"],
                ),
                "tiers": svg_bars(
                    [TIER_ZH[t] for t in TIERS],
                    [self.turn_tiers.get(t, 0) for t in TIERS],
                    colours=[TIER_COLOUR[t] for t in TIERS],
                ),
                "transitions": svg_heatmap(
                    [TIER_ZH[t] for t in TIERS],
                    [TIER_ZH[t] for t in TIERS],
                    [[self.start_end.get((a, b), 0) for b in TIERS] for a in TIERS],
                    row_title="开始",
                    col_title="结束",
                ),
                "mines": svg_bars(kinds, [self.mines[k] for k in kinds], horizontal=True),
                "mines_by_agent": svg_heatmap(
                    agents,
                    kinds,
                    [[self.mines_by_agent[a].get(k, 0) for k in kinds] for a in agents],
                    row_title="客服",
                    col_title="雷区",
                ),
                "agents": svg_bars(
                    agents,
                    [round(sum(self.agent_scores[a]) / len(self.agent_scores[a]), 1) for a in agents],
                    horizontal=True,
                ),
                "categories": svg_pie(self.categories.most_common(8)),
            },
            "cloud": cloud(self.keywords()),
            "worst": [e for _, _, e in sorted(self._worst, key=lambda x: (-x[0], x[1]))],
        }

    def write(self, path: str | Path) -> None:
        """Render to one self-contained HTML file."""
        from jinja2 import select_autoescape
        from jinja2.sandbox import SandboxedEnvironment

        source = (
            resources.files("agent_assist").joinpath("templates/report.html.j2").read_text(encoding="utf-8")
        )
        env = SandboxedEnvironment(autoescape=select_autoescape(default=True, default_for_string=True))
        html_text = env.from_string(source).render(**self.context(), tier_zh=TIER_ZH)
        Path(path).write_text(html_text, encoding="utf-8")


class _LazyRedacted(Sequence[str]):
    """Turn texts, redacted only when read: most turns of most transcripts never are."""

    def __init__(self, texts: Sequence[str], redact: Callable[[str], str]) -> None:
        self._texts, self._redact, self._done = texts, redact, {}

    def __len__(self) -> int:
        return len(self._texts)

    def __getitem__(self, i):  # type: ignore[no-untyped-def, override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i not in self._done:
            self._done[i] = self._redact(self._texts[i])
        return self._done[i]


def _highlight(text: str, marks: list[tuple[int, int, str]]) -> Any:
    from markupsafe import Markup

    out, pos = [], 0
    for start, end, note in sorted(marks):
        if start < pos:
            continue
        out.append(html.escape(text[pos:start]))
        out.append(f'<mark title="{html.escape(note)}">{html.escape(text[start:end])}</mark>')
        pos = end
    out.append(html.escape(text[pos:]))
    return Markup("".join(out))


# --- SVG charts (labels escaped here; the result is trusted markup) ---------------------------


def _markup(svg: str) -> Any:
    from markupsafe import Markup

    return Markup(svg)


def svg_bars(
    labels: list[str], values: list[float], *, colours: list[str] | None = None, horizontal: bool = False
) -> Any:
    """A bar chart; empty data gives a short note instead."""
    if not values or not any(values):
        return _markup('<p class="empty">没有数据</p>')
    top = max(values) or 1
    colours = colours or [PALETTE[i % len(PALETTE)] for i in range(len(values))]
    e = html.escape
    if horizontal:
        row, label_w, width = 26, 120, 520
        h = row * len(values) + 10
        parts = [f'<svg class="chart" viewBox="0 0 {width} {h}" role="img">']
        for i, (lab, v) in enumerate(zip(labels, values)):
            w = (width - label_w - 60) * v / top
            y = 5 + i * row
            parts.append(
                f'<text x="{label_w - 6}" y="{y + 16}" text-anchor="end">{e(str(lab))}</text>'
                f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" fill="{colours[i]}">'
                f"<title>{e(str(lab))}: {v:g}</title></rect>"
                f'<text x="{label_w + w + 4:.1f}" y="{y + 16}">{v:g}</text>'
            )
        parts.append("</svg>")
        return _markup("".join(parts))
    width, height, pad = 520, 220, 30
    slot = (width - 2 * pad) / len(values)
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height + 40}" role="img">']
    for i, (lab, v) in enumerate(zip(labels, values)):
        h = (height - pad) * v / top
        x = pad + i * slot
        parts.append(
            f'<rect x="{x + 4:.1f}" y="{height - h:.1f}" width="{slot - 8:.1f}" height="{h:.1f}" '
            f'fill="{colours[i % len(colours)]}"><title>{e(str(lab))}: {v:g}</title></rect>'
            f'<text x="{x + slot / 2:.1f}" y="{height - h - 4:.1f}" text-anchor="middle">{v:g}</text>'
            f'<text x="{x + slot / 2:.1f}" y="{height + 18}" text-anchor="middle">{e(str(lab))}</text>'
        )
    parts.append("</svg>")
    return _markup("".join(parts))


def svg_heatmap(
    rows: list[str], cols: list[str], matrix: list[list[float]], *, row_title: str = "", col_title: str = ""
) -> Any:
    """A table-like heat map: darker cells hold more."""
    if not rows or not cols or not any(any(r) for r in matrix):
        return _markup('<p class="empty">没有数据</p>')
    cell_w, cell_h, left, top_m = 64, 28, 110, 60
    width, height = left + cell_w * len(cols) + 10, top_m + cell_h * len(rows) + 10
    top = max(max(r) for r in matrix) or 1
    e = html.escape
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" style="max-width: {width * 1.3:.0f}px" role="img">',
        f'<text x="{left}" y="14" class="axis">{e(col_title)} →</text>',
        f'<text x="4" y="{top_m - 8}" class="axis">{e(row_title)} ↓</text>',
    ]
    for j, c in enumerate(cols):
        parts.append(
            f'<text x="{left + j * cell_w + cell_w / 2}" y="{top_m - 8}" text-anchor="middle">{e(c)}</text>'
        )
    for i, r in enumerate(rows):
        y = top_m + i * cell_h
        parts.append(f'<text x="{left - 6}" y="{y + 19}" text-anchor="end">{e(r)}</text>')
        for j, v in enumerate(matrix[i]):
            alpha = 0.08 + 0.92 * (v / top) if v else 0.03
            parts.append(
                f'<rect x="{left + j * cell_w}" y="{y}" width="{cell_w - 2}" height="{cell_h - 2}" '
                f'fill="rgba(229,57,53,{alpha:.2f})"><title>{e(r)} / {e(cols[j])}: {v:g}</title></rect>'
            )
            if v:
                parts.append(
                    f'<text x="{left + j * cell_w + cell_w / 2}" y="{y + 19}" text-anchor="middle">{v:g}</text>'
                )
    parts.append("</svg>")
    return _markup("".join(parts))


def svg_pie(items: list[tuple[str, int]]) -> Any:
    """A pie chart with a legend."""
    total = sum(v for _, v in items)
    if not total:
        return _markup('<p class="empty">没有数据</p>')
    e = html.escape
    cx, cy, rad = 110, 110, 100
    parts = ['<svg class="chart" viewBox="0 0 460 230" role="img">']
    angle = -math.pi / 2
    for i, (lab, v) in enumerate(items):
        sweep = 2 * math.pi * v / total
        colour = PALETTE[i % len(PALETTE)]
        if v == total:
            parts.append(
                f'<circle cx="{cx}" cy="{cy}" r="{rad}" fill="{colour}"><title>{e(lab)}: {v}</title></circle>'
            )
        else:
            x1, y1 = cx + rad * math.cos(angle), cy + rad * math.sin(angle)
            x2, y2 = cx + rad * math.cos(angle + sweep), cy + rad * math.sin(angle + sweep)
            large = 1 if sweep > math.pi else 0
            parts.append(
                f'<path d="M{cx},{cy} L{x1:.1f},{y1:.1f} A{rad},{rad} 0 {large} 1 {x2:.1f},{y2:.1f} Z" '
                f'fill="{colour}"><title>{e(lab)}: {v}</title></path>'
            )
        angle += sweep
        parts.append(
            f'<rect x="240" y="{14 + i * 24}" width="14" height="14" fill="{colour}"/>'
            f'<text x="260" y="{26 + i * 24}">{e(lab)} {v}（{100 * v / total:.0f}%）</text>'
        )
    parts.append("</svg>")
    return _markup("".join(parts))


def cloud(words: list[tuple[str, float]]) -> list[dict[str, Any]]:
    """Word-cloud entries: font size by weight, colour by rank, in a shuffled but fixed order."""
    if not words:
        return []
    top = words[0][1] or 1
    out = [
        {"word": w, "size": round(14 + 34 * math.sqrt(s / top)), "colour": PALETTE[i % len(PALETTE)]}
        for i, (w, s) in enumerate(words)
    ]
    random.Random(len(out)).shuffle(out)
    return out
