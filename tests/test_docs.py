"""The docs hold together: every relative link in the README, the docs and the results page resolves, and
every module the architecture page names exists."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", REPO / "benchmarks" / "RESULTS.md", REPO / "examples" / "README.md",
         *sorted((REPO / "docs").rglob("*.md"))]
INLINE = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
CODE = re.compile(r"`[^`\n]*`")


def _links(text: str):
    text = CODE.sub("", FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text))
    for m in INLINE.finditer(text):
        yield text.count("\n", 0, m.start()) + 1, m.group(1)


def test_relative_links_resolve():
    broken = []
    for page in PAGES:
        for line, target in _links(page.read_text(encoding="utf-8")):
            path = target.split("#", 1)[0]
            if not path or re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
                continue
            if not (page.parent / path).exists():
                broken.append(f"{page.relative_to(REPO)}:{line} -> {target}")
    assert not broken, broken


def test_architecture_names_modules_that_exist():
    """Every ``gridshift.x.y`` in the architecture page is a module or package of the tree, except the old
    paths in its table of deprecated imports."""
    text = (REPO / "docs" / "reference" / "architecture.md").read_text(encoding="utf-8")
    current = text.split("## Deprecated import paths")[0] if "## Deprecated import paths" in text else text
    src = REPO / "src"
    missing = []
    for name in sorted(set(re.findall(r"\bgridshift(?:\.[a-z_]+)+", current))):
        parts = name.split(".")
        found = False
        for k in range(len(parts), 0, -1):  # a trailing part may name a function or class in the module
            base = src.joinpath(*parts[:k])
            if base.with_suffix(".py").exists() or (base / "__init__.py").exists():
                found = k >= len(parts) - 1
                break
        if not found:
            missing.append(name)
    assert not missing, missing
