"""The `tunetop` command line (DESIGN.md "Command line").

`tunetop [PATH ...]` opens the dashboard; `check`, `plan`, `show`, `report`, `rules`, `run` and
`demo` are subcommands. Heavy imports (Textual, plotext, torch) are deferred to the subcommand
that needs them, so `tunetop check` starts fast and the monitor never imports torch. `run` and
`demo` need the runner extra: without torch they say how to install it and exit 2.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from tui.check import CheckReport

SUBCOMMANDS = ("check", "plan", "show", "report", "rules", "run", "demo")
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
NEEDS_TORCH = (
    "the runner needs PyTorch: pip install 'tunetop[runner]' "
    f"(CPU: pip install torch --index-url {TORCH_CPU_INDEX} first)"
)
PLAN_KINDS = ("warmup", "warmup-apply", "clip", "probe", "fit", "extend")


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on usage errors, which is DESIGN.md's usage-error code too."""


def _dashboard_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="tunetop",
        description="top for training runs: live curves and playbook diagnosis. "
        "Subcommands: check, plan, show, report, rules, run, demo (tunetop SUBCOMMAND --help).",
    )
    p.add_argument("-V", "--version", action="version", version=f"tunetop {version()}")
    p.add_argument(
        "paths",
        nargs="*",
        default=["."],
        metavar="PATH",
        help="folders of runs to watch (default: .)",
    )
    p.add_argument(
        "--poll",
        type=float,
        default=None,
        metavar="SECONDS",
        help="poll every SECONDS instead of inotify (automatic on network filesystems)",
    )
    p.add_argument("--readonly", action="store_true", help="no key starts or stops a process")
    p.add_argument(
        "--smoothing",
        type=float,
        default=0.6,
        help="EMA smoothing weight, 0..0.99 (default 0.6, as TensorBoard)",
    )
    return p


def _check_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="tunetop check",
        description="read every run under PATH once and print the playbook's findings",
    )
    p.add_argument("path", metavar="PATH")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument(
        "--fail-on",
        choices=("info", "warning", "error"),
        default="warning",
        help="exit 1 when a finding is at or above this level (default warning)",
    )
    p.add_argument(
        "--plot",
        action="store_true",
        help="after the text, the curves of each run with a finding at or above --fail-on "
        "(plotext; plain text when stdout is not a terminal)",
    )
    _size_options(p)
    return p


def _size_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--width", type=int, default=None, metavar="COLS", help="plot width (default: terminal)"
    )
    p.add_argument(
        "--height", type=int, default=None, metavar="ROWS", help="rows of one plot panel"
    )


def _show_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="tunetop show",
        description="a run's findings and its loss, validation loss and gradient-norm curves",
    )
    p.add_argument("path", metavar="RUN", help="a run folder (or a folder of runs: each is shown)")
    _size_options(p)
    return p


def _report_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="tunetop report",
        description="runs, studies, findings, remedies and plots as one Markdown or HTML file",
    )
    p.add_argument("path", metavar="PATH")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="FILE.md or FILE.html")
    p.add_argument("--width", type=int, default=100, metavar="COLS", help="plot width (100)")
    return p


def _rules_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tunetop rules", description="the playbook rules the findings cite")
    p.add_argument("ids", nargs="*", metavar="ID", help="R1 ... R24 (default: all)")
    return p


def _plan_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tunetop plan", description="the remediation study a key would launch")
    p.add_argument("kind", choices=PLAN_KINDS)
    p.add_argument("target", metavar="TARGET", help="a run or study folder")
    p.add_argument("--json", action="store_true")
    p.add_argument("--launch", action="store_true", help="launch it")
    p.add_argument("--out", default=None, metavar="DIR", help="where the study folder goes")
    p.add_argument(
        "--trust",
        action="store_true",
        help="let the files under TARGET's folder decide what runs, for this plan only",
    )
    p.add_argument(
        "--factor",
        type=float,
        default=10.0,
        help="warmup: base_learning_rate = factor x unstable rate (R18: 10, or 100; "
        "1 rescues the unstable run at its own rate, R17)",
    )
    return p


def _unbreakable_output() -> None:
    """stdout and stderr never raise on a character their encoding lacks (LC_ALL=C, an ASCII
    PYTHONIOENCODING): it is written as an escape instead. Strings from files are sanitised
    before they get here (tui/sanitize.py: no lone surrogates, no control characters), so on a
    UTF-8 stream this changes nothing; elsewhere a name such as "café" cannot crash a command."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError):
                pass


def version() -> str:
    try:
        return importlib.metadata.version("tunetop")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout never installed
        return "unknown (not installed)"


def torch_available() -> bool:
    """Whether the runner can start: find_spec looks torch up without importing it."""
    return importlib.util.find_spec("torch") is not None


def _help(rest: list[str]) -> bool:
    return any(a in ("-h", "--help") for a in rest)


def _plotter(
    width: int | None, height: int | None, level: str | None = None
) -> Callable[[CheckReport, TextIO], None]:
    """What `check` calls after its text: the plots of the flagged runs (all when level is
    None), sized to the terminal or to --width."""
    from tui import static_plot

    def draw(report: CheckReport, out: TextIO) -> None:
        opt = static_plot.options_for(out, width, height)
        static_plot.write_report_plots(report, out, opt, level)

    return draw


def rules_main(ids: list[str], out: TextIO | None = None) -> int:
    """`tunetop rules [ID ...]`: every rule, or the ones named; exit 2 for an unknown id."""
    from tui.rules import describe, normalise_id, rules

    stream = sys.stdout if out is None else out
    table = rules()
    wanted = [normalise_id(i) for i in ids] or list(table)
    unknown = [i for i in wanted if i not in table]
    if unknown:
        print(
            f"tunetop rules: no rule {', '.join(unknown)} (there are R1-R{len(table)})",
            file=sys.stderr,
        )
        return 2
    section = None
    try:
        for rid in wanted:
            rule = table[rid]
            if not ids and rule.section != section:
                section = rule.section
                stream.write(f"\n## {section}\n\n")
            stream.write(describe(rule) + "\n")
        stream.flush()
    except BrokenPipeError:  # `tunetop rules | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    _unbreakable_output()
    if args[:1] in (["--version"], ["-V"]):
        print(f"tunetop {version()}")
        return 0
    if args and args[0] in SUBCOMMANDS:
        cmd, rest = args[0], args[1:]
        if cmd == "check":
            ns = _check_parser().parse_args(rest)
            from tui.check import main as check_main

            after = _plotter(ns.width, ns.height, ns.fail_on) if ns.plot else None
            return check_main(ns.path, ns.json, ns.fail_on, after_text=after)
        if cmd == "show":
            ns = _show_parser().parse_args(rest)
            from tui.check import main as check_main

            # every run under RUN, flagged or not; findings never make `show` fail
            code = check_main(ns.path, False, "error", after_text=_plotter(ns.width, ns.height))
            return 2 if code == 2 else 0
        if cmd == "report":
            ns = _report_parser().parse_args(rest)
            from tui.report import main as report_main

            return report_main(ns.path, ns.output, width=ns.width)
        if cmd == "rules":
            ns = _rules_parser().parse_args(rest)
            return rules_main(ns.ids)
        if cmd == "plan":
            ns = _plan_parser().parse_args(rest)
            from tui.remedy.cli import main as plan_main

            return plan_main(ns)
        if cmd in ("run", "demo") and not _help(rest) and not torch_available():
            print(f"tunetop {cmd}: {NEEDS_TORCH}", file=sys.stderr)
            return 2
        if cmd == "run":
            from runner.cli import main as runner_main

            return runner_main(rest)
        if cmd == "demo":
            from tui.demo import main as demo_main

            return demo_main(rest)
    ns = _dashboard_parser().parse_args(args)
    from tui.app import make_app

    app = make_app(
        [Path(p) for p in ns.paths], poll=ns.poll, readonly=ns.readonly, smoothing=ns.smoothing
    )
    app.run()
    return int(app.return_code or 0)


if __name__ == "__main__":
    sys.exit(main())
