"""`tunetop report PATH -o FILE.md|FILE.html`: one file a person attaches to an issue or a message.

It holds what `tunetop check` found: a summary, every finding with its rule (R1-R24, the rule's
text at the end) and the remedies that apply (the dashboard's keys and the `tunetop plan KIND
TARGET` command each one runs), the studies, the runs, and the plotext plots of each flagged run
(tui/static_plot.py) in a fenced text block (Markdown) or a `<pre>` (HTML).

Everything that comes from the logs (run and study ids, metric and hyperparameter names and
values, messages, paths, error texts) is untrusted: it goes through tui.sanitize.clean (no
control character or escape sequence) and then through the format's escaping (Markdown's
backslash escapes and HTML entities; HTML's escaping for HTML), so a run named
`<script>` or `[x](javascript:...)` or one holding a code fence is shown as text, never markup.
The document is first built as a few plain elements, then rendered by one of two writers.
"""

from __future__ import annotations

import html
import os
import re
import shlex
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tui.check import CheckReport, RunReport, run_check
from tui.diagnose.findings import Finding, jsonable
from tui.sanitize import clean
from tui.static_plot import PlotOptions, flagged, mark_lines, plot_run

# the dashboard's remedy keys -> the `tunetop plan` kind each one computes (README "Remedies")
KEY_PLANS = {"w": "warmup", "c": "clip", "e": "probe", "l": "extend"}
PLOT_LEVEL = "warning"  # runs with a finding at or above it get their plots


# -- the document: a few plain elements ---------------------------------------------------


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Commands:
    """Shell commands, shown as code."""

    lines: tuple[str, ...]


@dataclass(frozen=True)
class Pre:
    """Preformatted text (the plots)."""

    text: str


Element = Heading | Para | Table | Commands | Pre


def remedies(f: Finding, target: str) -> list[tuple[str, str]]:
    """(key, `tunetop plan ...` command) for each remedy that applies to a finding."""
    from tui.widgets.findings_panel import remedy_keys  # the dashboard's one definition

    keys = remedy_keys(f).split()
    if f.kind == "best_step_late":
        keys.append("l")  # R6: a longer round (`l` in the dashboard, `plan extend`)
    out = []
    for key in keys:
        kind = KEY_PLANS.get(key)
        if kind:
            out.append((key, f"tunetop plan {kind} {shlex.quote(target)}"))
    return out


def _finding_rows(source: str, target: str, findings: Sequence[Finding]) -> list[tuple[str, ...]]:
    rows = []
    for f in findings:
        plans = remedies(f, target)
        remedy = ", ".join(f"{k}: {cmd}" for k, cmd in plans) or "-"
        step = "-" if f.step is None else str(f.step)
        rows.append((source, f.severity, f.kind, f.rule, step, f.message, remedy))
    return rows


def _target(report: CheckReport, run_id: str) -> str:
    return report.root if run_id == "." else os.path.join(report.root, run_id)


def _best(rep: RunReport) -> str:
    b = rep.best
    if not b:
        return "-"
    return f"{b['metric']} {b['value']:.4g} at step {b['step']} ({b['fraction']:.0%})"


def _cited_rules(findings: Sequence[Finding]) -> list[str]:
    ids = {r for f in findings for r in re.findall(r"R\d+", f.rule)}
    return sorted(ids, key=lambda r: int(r[1:]))


def build(report: CheckReport, width: int = 100) -> list[Element]:
    """The report's elements, in reading order."""
    from tui.cli import version
    from tui.rules import rules

    findings = report.all_findings()
    counts = Counter(f.severity for f in findings)
    doc: list[Element] = [
        Heading(1, f"tunetop report: {report.root}"),
        Para(
            f"{len(report.runs)} runs, {len(report.studies)} studies; findings: "
            f"{counts['error']} error, {counts['warning']} warning, {counts['info']} info; "
            f"{len(report.errors)} read errors. tunetop {version()}, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}."
        ),
    ]
    headers = ("run or study", "severity", "kind", "rule", "step", "message", "remedy")
    rows: list[tuple[str, ...]] = []
    for rep in report.runs:
        rows += _finding_rows(rep.run.id, _target(report, rep.run.id), rep.findings)
    for srep in report.studies:
        sid = srep.study.id
        rows += _finding_rows(f"study {sid}", _target(report, sid), srep.findings)
    doc.append(Heading(2, "Findings"))
    doc.append(Table(headers, tuple(rows)) if rows else Para("No findings."))

    if report.studies:
        doc.append(Heading(2, "Studies"))
        srows = []
        for srep in report.studies:
            st = srep.study
            param = st.param or ("+".join(st.swept) or "-")
            values = (
                ", ".join(str(jsonable(v)) for v in st.swept.get(st.param, [])) if st.param else ""
            )
            srows.append(
                (
                    st.id,
                    str(len(st.runs)),
                    param,
                    values or "-",
                    str(srep.best_run or "-"),
                    ", ".join(srep.infeasible_runs) or "-",
                    str(len(srep.findings)),
                )
            )
        doc.append(
            Table(
                ("study", "runs", "swept", "values", "best run", "infeasible", "findings"),
                tuple(srows),
            )
        )

    doc.append(Heading(2, "Runs"))
    rrows = []
    for rep in report.runs:
        run = rep.run
        hp = ", ".join(f"{k}={jsonable(v)}" for k, v in list(run.hparams.items())[:8])
        rrows.append(
            (
                run.id,
                run.format,
                f"{run.max_step}/{run.total_steps}",
                _best(rep),
                hp or "-",
                str(len(rep.findings)),
            )
        )
    doc.append(
        Table(("run", "format", "steps", "best (R1)", "hyperparameters", "findings"), tuple(rrows))
    )

    plotted = [r for r in report.runs if r.findings and flagged(r.findings, PLOT_LEVEL)]
    if plotted:
        doc.append(Heading(2, "Plots"))
        doc.append(
            Para(
                f"Runs with a finding at {PLOT_LEVEL} or above: raw loss, validation loss and "
                "gradient norm, min/max downsampled as the dashboard draws them; x marks a "
                "finding's step."
            )
        )
        opt = PlotOptions(width=width, color=False)
        for rep in plotted:
            label = _target(report, rep.run.id) if rep.run.id == "." else rep.run.id
            text = plot_run(rep.run, rep.findings, opt, label)
            if not text:
                continue
            doc.append(Heading(3, label))
            doc.append(Pre(text + "\n".join(mark_lines(rep.findings, width))))
            commands = sorted(
                {cmd for f in rep.findings for _k, cmd in remedies(f, _target(report, rep.run.id))}
            )
            if commands:
                doc.append(Commands(tuple(commands)))

    cited = _cited_rules(findings)
    if cited:
        table = rules()
        doc.append(Heading(2, "Rules cited"))
        doc.append(
            Para("From the Deep Learning Tuning Playbook as tunetop states it (`tunetop rules`).")
        )
        for rid in cited:
            rule = table.get(rid)
            if rule:
                doc.append(Para(f"{rule.id} {rule.title} {rule.text}".replace("  ", " ")))

    if report.errors:
        doc.append(Heading(2, "Read errors"))
        doc.append(Table(("path", "message"), tuple((p, m) for p, m in report.errors)))
    return doc


# -- writers ------------------------------------------------------------------------------

# what can start markup anywhere in a line (emphasis, code, links, tables, strikethrough)
_MD_INLINE = re.compile(r"([\\`*_\[\]|~])")
# what starts a block only at the start of a line (headings, lists, quotes, rules)
_MD_LEADING = re.compile(r"^(\s*)([#+\-=>!]|\d+[.)])")


def md_text(value: object) -> str:
    """Untrusted text as literal Markdown: inert, one line, every markup character escaped,
    and `<`, `>`, `&` as entities, so no raw HTML reaches a renderer."""
    text = clean(value, limit=2000)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_INLINE.sub(r"\\\1", text)
    return _MD_LEADING.sub(lambda m: m.group(1) + "\\" + m.group(2), text)


def _fence(text: str, char: str = "`", least: int = 3) -> str:
    """A fence longer than any run of `char` in `text` (CommonMark): it cannot close early."""
    longest = max((len(m) for m in re.findall(re.escape(char) + "+", text)), default=0)
    return char * max(least, longest + 1)


def _clean_block(text: str) -> str:
    """Preformatted text made inert line by line (newlines kept)."""
    return "\n".join(clean(line, limit=10_000) for line in text.rstrip("\n").split("\n"))


def to_markdown(doc: Sequence[Element]) -> str:
    out: list[str] = []
    for el in doc:
        if isinstance(el, Heading):
            out.append(f"{'#' * el.level} {md_text(el.text)}\n")
        elif isinstance(el, Para):
            out.append(md_text(el.text) + "\n")
        elif isinstance(el, Table):
            out.append("| " + " | ".join(md_text(h) for h in el.headers) + " |")
            out.append("|" + " --- |" * len(el.headers))
            for row in el.rows:
                out.append("| " + " | ".join(md_text(c) for c in row) + " |")
            out.append("")
        elif isinstance(el, Commands | Pre):
            body = _clean_block("\n".join(el.lines) if isinstance(el, Commands) else el.text)
            fence = _fence(body)
            lang = "bash" if isinstance(el, Commands) else "text"
            out.append(f"{fence}{lang}\n{body}\n{fence}\n")
    return "\n".join(out).rstrip("\n") + "\n"


_CSS = (
    "body{font-family:sans-serif;max-width:110em;margin:1em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:0.5em 0}"
    "td,th{border:1px solid #ccc;padding:2px 6px;vertical-align:top;text-align:left}"
    "pre{background:#f6f6f6;padding:0.5em;overflow-x:auto;line-height:1.15}"
)


def _h(value: object) -> str:
    return html.escape(clean(value, limit=2000), quote=True)


def to_html(doc: Sequence[Element]) -> str:
    title = next((el.text for el in doc if isinstance(el, Heading)), "tunetop report")
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_h(title)}</title><style>{_CSS}</style></head><body>",
    ]
    for el in doc:
        if isinstance(el, Heading):
            out.append(f"<h{el.level}>{_h(el.text)}</h{el.level}>")
        elif isinstance(el, Para):
            out.append(f"<p>{_h(el.text)}</p>")
        elif isinstance(el, Table):
            out.append("<table><tr>" + "".join(f"<th>{_h(h)}</th>" for h in el.headers) + "</tr>")
            for row in el.rows:
                out.append("<tr>" + "".join(f"<td>{_h(c)}</td>" for c in row) + "</tr>")
            out.append("</table>")
        elif isinstance(el, Commands | Pre):
            body = _clean_block("\n".join(el.lines) if isinstance(el, Commands) else el.text)
            out.append(f"<pre>{html.escape(body, quote=False)}</pre>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def render(report: CheckReport, fmt: str, width: int = 100) -> str:
    doc = build(report, width)
    return to_html(doc) if fmt == "html" else to_markdown(doc)


def format_of(output: str) -> str | None:
    suffix = Path(output).suffix.lower()
    return {".md": "md", ".markdown": "md", ".html": "html", ".htm": "html"}.get(suffix)


def _write_atomic(path: Path, text: str) -> None:
    """Temp file in the same folder, then rename: a reader never sees half a report."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.fchmod(fd, 0o666 & ~umask)  # as `>` would make it, not mkstemp's 0600
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(path: str, output: str, width: int = 100) -> int:
    """Exit 0 when the file is written, 2 on a usage error or a PATH that cannot be read."""
    fmt = format_of(output)
    if fmt is None:
        print(f"tunetop report: {clean(output)}: name it FILE.md or FILE.html", file=sys.stderr)
        return 2
    root = Path(path)
    if not root.exists() or not os.access(root, os.R_OK):
        print(
            f"tunetop report: {clean(path)}: no such file or folder, or unreadable", file=sys.stderr
        )
        return 2
    target = Path(output)
    if not target.parent.is_dir():
        print(f"tunetop report: {clean(target.parent)}: no such folder", file=sys.stderr)
        return 2
    report = run_check(path)
    _write_atomic(target, render(report, fmt, max(int(width), 40)))
    print(f"tunetop report: wrote {clean(output)}", file=sys.stderr)
    return 0
