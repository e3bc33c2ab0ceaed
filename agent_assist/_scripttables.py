"""Regenerate ``phrasebooks/script/*.tsv`` from OpenCC's character dictionaries.

Run once by a developer (``pip install opencc-python-reimplemented`` first)::

    python -m agent_assist._scripttables phrasebooks/script

Only one-to-one character pairs are kept, so converting never changes a string's length
and every offset into the converted text is an offset into the original.
"""

from __future__ import annotations

import sys
from pathlib import Path


def _pairs(path: Path) -> list[tuple[str, str]]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        src, _, targets = line.partition("\t")
        first = targets.split(" ")[0]
        # Multi-character entries would shift offsets; OpenCC's character files have none,
        # but guard anyway so a future upstream change cannot slip one in.
        if len(src) == 1 and len(first) == 1 and src != first:
            out.append((src, first))
    return sorted(out)


def main(argv: list[str]) -> int:
    import opencc  # dev-only dependency

    dictionary = Path(opencc.__file__).parent / "dictionary"
    target = Path(argv[0] if argv else "phrasebooks/script")
    target.mkdir(parents=True, exist_ok=True)
    for name, source in (("t2s.tsv", "TSCharacters.txt"), ("s2t.tsv", "STCharacters.txt")):
        rows = _pairs(dictionary / source)
        text = "".join(f"{a}\t{b}\n" for a, b in rows)
        (target / name).write_text(text, encoding="utf-8")
        print(f"{name}: {len(rows)} pairs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
