"""The `tunetop` command line (DESIGN.md "Command line").

`tunetop [PATH ...]` opens the dashboard; `check`, `plan`, `run` and `demo` are subcommands.
Heavy imports (Textual, torch) are deferred to the subcommand that needs them, so `tunetop
check` starts fast and the monitor never imports torch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

SUBCOMMANDS = ("check", "plan", "run", "demo")
PLAN_KINDS = ("warmup", "warmup-apply", "clip", "probe", "fit", "extend")


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on usage errors, which is DESIGN.md's usage-error code too."""


def _dashboard_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="tunetop",
        description="top for training runs: live curves and playbook diagnosis. "
        "Subcommands: check, plan, run, demo (tunetop SUBCOMMAND --help).",
    )
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


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    _unbreakable_output()
    if args and args[0] in SUBCOMMANDS:
        cmd, rest = args[0], args[1:]
        if cmd == "check":
            ns = _check_parser().parse_args(rest)
            from tui.check import main as check_main

            return check_main(ns.path, ns.json, ns.fail_on)
        if cmd == "plan":
            ns = _plan_parser().parse_args(rest)
            from tui.remedy.cli import main as plan_main

            return plan_main(ns)
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
