"""The playbook rules (R1-R24) that findings cite, shipped with the package.

RULES.md beside this file is a copy of the project's playbook/RULES.md; it is package data, read
with importlib.resources so that an installed wheel has it too. `tunetop rules [ID]` prints it,
and each rule with the finding kinds that cite it (tui.diagnose.findings.KINDS).
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from functools import cache
from importlib import resources

_RULE = re.compile(r"^- \*\*(R\d+)\b\s*(.*?)\*\*\s*(.*)$")


@dataclass(frozen=True)
class Rule:
    id: str  # "R13"
    title: str  # "Two kinds of instability." (may be empty: R18-R24 have none)
    text: str  # the rule's body, one paragraph
    section: str  # the heading it stands under


def rules_markdown() -> str:
    return resources.files(__package__).joinpath("RULES.md").read_text(encoding="utf-8")


@cache
def rules() -> dict[str, Rule]:
    """Every rule of RULES.md by id, in the file's order."""
    out: dict[str, Rule] = {}
    section = ""
    current: list[str] | None = None
    head: tuple[str, str] = ("", "")

    def flush() -> None:
        if current is not None:
            out[head[0]] = Rule(head[0], head[1], " ".join(current).strip(), section)

    for line in rules_markdown().splitlines():
        match = _RULE.match(line)
        if match:
            flush()
            head = (match.group(1), match.group(2).strip())
            current = [match.group(3)]
        elif current is not None and line.startswith("  ") and line.strip():
            current.append(line.strip())
        else:
            flush()
            current = None
            if line.startswith("## "):
                section = line[3:].strip()
    flush()
    return out


def normalise_id(text: str) -> str:
    """'r13', 'R13', '13' -> 'R13'."""
    text = text.strip().upper()
    return text if text.startswith("R") else f"R{text}"


def citing_kinds(rule_id: str) -> list[str]:
    """The finding kinds whose rule is this one (a kind may cite several: 'R12, R13')."""
    from tui.diagnose.findings import KINDS

    return [k for k, (rule, _sev) in KINDS.items() if rule_id in re.findall(r"R\d+", rule)]


def describe(rule: Rule, width: int = 100) -> str:
    """A rule as `tunetop rules` prints it: id and title, its text, the findings that cite it."""
    from tui.diagnose.findings import KINDS

    title = f" {rule.title}" if rule.title else ""
    lines = [f"{rule.id}{title} ({rule.section})"]
    lines += textwrap.wrap(rule.text, width, initial_indent="  ", subsequent_indent="  ")
    kinds = citing_kinds(rule.id)
    if kinds:
        cited = "findings that cite it: " + ", ".join(f"{k} ({KINDS[k][1]})" for k in kinds)
        lines += textwrap.wrap(cited, width, initial_indent="  ", subsequent_indent="    ")
    return "\n".join(lines)
