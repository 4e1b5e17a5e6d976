"""`tunetop report PATH -o FILE.md|FILE.html` (tui/report.py, issue 19 item 4): rendered from the
samples, read back with a real Markdown renderer (markdown-it-py, Rich's own) and Python's HTML
parser; run names that try Markdown or HTML injection stay text."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from tui.check import run_check
from tui.report import md_text, render

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_logs"
ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "table"}
ALLOWED_TAGS |= {"tr", "th", "td", "pre"}


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.pre: list[str] = []
        self._in_pre = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs
        if tag == "pre":
            self._in_pre = True
            self.pre.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre":
            self._in_pre = False

    def handle_data(self, data: str) -> None:
        if self._in_pre:
            self.pre[-1] += data


def md_html(text: str) -> str:
    return MarkdownIt("commonmark").enable("table").render(text)


def tunetop(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui", *args], capture_output=True, text=True, timeout=300, cwd=cwd
    )


@pytest.fixture(scope="module")
def samples() -> object:
    return run_check(str(SAMPLES))


def test_markdown_report_of_the_samples(samples: object) -> None:
    md = render(samples, "md", width=90)  # type: ignore[arg-type]
    for heading in ("## Findings", "## Studies", "## Runs", "## Plots", "## Rules cited"):
        assert f"\n{heading}\n" in md
    for rep in samples.runs:  # type: ignore[attr-defined]
        assert md_text(rep.run.id) in md
    for srep in samples.studies:  # type: ignore[attr-defined]
        assert md_text(srep.study.id) in md
    # findings with their rules and the remedies that apply, as plan commands
    assert "| loss\\_spike | R13 |" in md
    assert md_text(f"c: tunetop plan clip {SAMPLES}/runner/resnet_outliers-20261126-000432") in md
    assert "R13 Two kinds of instability." in md
    # plots in fenced text blocks, which a renderer turns into code blocks holding them
    rendered = md_html(md)
    assert "<script" not in rendered
    assert rendered.count('<code class="language-text">') >= 3
    assert "resnet_outliers-20261126-000432: gradient norm" in rendered
    assert "<table>" in rendered and "<td>loss_spike</td>" in rendered


def test_html_report_of_the_samples(samples: object) -> None:
    page = render(samples, "html", width=90)  # type: ignore[arg-type]
    parser = Tags()
    parser.feed(page)
    assert set(parser.tags) <= ALLOWED_TAGS
    assert parser.tags.count("pre") >= 3
    assert any("runner/resnet_outliers-20261126-000432: loss" in p for p in parser.pre)
    assert page.startswith("<!DOCTYPE html>")


def _hostile_tree(root: Path) -> list[str]:
    names = [
        "<script>alert(1)",
        "<img src=x onerror=alert(1)>",
        "[click](evil.html)",
        "run ```` fence | pipe",
        "# heading *bold* _it_",
        "esc\x1b]0;t\x07",
    ]
    for name in names:
        folder = root / name
        folder.mkdir()
        rows = [{"step": i, "loss": 2.0 - i * 0.01, "grad_norm": 0.5} for i in range(120)]
        rows[70]["loss"] = 40.0  # a spike: a warning, so the run is plotted (its name in a <pre>)
        (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return names


def test_run_names_cannot_inject_markdown_or_html(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    root.mkdir()
    _hostile_tree(root)
    report = run_check(str(root))
    assert len(report.runs) == 6
    md = render(report, "md")
    assert "\x1b" not in md and "\x07" not in md
    rendered = md_html(md)
    assert "<script" not in rendered and "<img" not in rendered
    assert "<a " not in rendered and "<em>" not in rendered and "<strong>" not in rendered
    assert "&lt;script&gt;alert(1)" in rendered  # shown, as text
    assert "[click](evil.html)" in rendered  # literal text, not a link
    # the names in the plots' code blocks cannot close their fence early: every plot block is
    # one code block holding both of its panels
    assert rendered.count("run ```` fence | pipe: gradient norm") == 1
    assert rendered.count('<code class="language-text">') == 6
    page = render(report, "html")
    parser = Tags()
    parser.feed(page)
    assert set(parser.tags) <= ALLOWED_TAGS and not parser.attrs[2:]
    assert any("<script>alert(1): loss" in p for p in parser.pre)  # as text


def test_report_command_writes_one_file(tmp_path: Path) -> None:
    out = tmp_path / "r.md"
    done = tunetop("report", str(SAMPLES), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert out.read_text().startswith("# tunetop report: ")
    mode = stat.S_IMODE(out.stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["r.md"]  # no temp file left
    html_out = tmp_path / "r.html"
    assert tunetop("report", str(SAMPLES), "-o", str(html_out)).returncode == 0
    assert "<pre>" in html_out.read_text()


def test_report_usage_errors(tmp_path: Path) -> None:
    bad = tunetop("report", str(SAMPLES), "-o", str(tmp_path / "r.txt"))
    assert bad.returncode == 2 and "FILE.md or FILE.html" in bad.stderr
    missing = tunetop("report", str(tmp_path / "nope"), "-o", str(tmp_path / "r.md"))
    assert missing.returncode == 2
    assert list(tmp_path.iterdir()) == []
