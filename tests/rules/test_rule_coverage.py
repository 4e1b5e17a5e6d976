"""Every playbook rule R1-R24 (playbook/RULES.md) is cited by code and by a test."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RULES = [f"R{i}" for i in range(1, 25)]


def _cited(folders: list[str]) -> set[str]:
    found: set[str] = set()
    pattern = re.compile(r"\bR(\d{1,2})\b")
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            if path.resolve() == Path(__file__).resolve():
                continue
            for m in pattern.finditer(path.read_text(errors="replace")):
                found.add(f"R{int(m.group(1))}")
    return found


def test_every_rule_is_cited_by_code() -> None:
    missing = [r for r in RULES if r not in _cited(["tui", "runner"])]
    assert missing == [], f"rules no code cites: {missing}"


def test_every_rule_is_cited_by_a_test() -> None:
    missing = [r for r in RULES if r not in _cited(["tests"])]
    assert missing == [], f"rules no test cites: {missing}"


def test_readme_findings_table_names_each_kind_and_rule() -> None:
    from tui.diagnose.findings import KINDS

    readme = (ROOT / "README.md").read_text()
    for kind, (rule, _) in KINDS.items():
        assert re.search(rf"`{kind}`.*\b{rule}\b", readme), f"README lacks {kind} ({rule})"
