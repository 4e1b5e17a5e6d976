"""Benchmark of the watcher on a big tree (issue 14, attack 9 and "Deliver" item 7).

    python tests/bench/bench_watch_storm.py [--folders N] [--idle-seconds S] [--poll SECONDS]

Makes N empty folders (200 groups of N/200) and a study of a few runs, starts the dashboard
headless (Textual's run_test), waits for the runs, then prints:
- how the watcher watches (the header's words),
- the dashboard's idle CPU, from /proc/self/stat (utime + stime of every thread) over S seconds,
- the time from creating a new run folder with a metrics.jsonl to that run in the app, for a
  run created beside the known ones (a new trial of the study) and for a run created in one of
  the old empty folders, far from every known run.
Targets (DESIGN.md, issue 14): idle under 1% of a core; a new run shown within two polls.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tui.app import TunetopApp, make_app  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds() -> float:
    """utime + stime of this process, all threads (fields 14 and 15 of /proc/self/stat)."""
    with open("/proc/self/stat") as fh:
        stat = fh.read()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / TICKS


def make_tree(root: Path, folders: int, runs: int) -> None:
    per_group = max(1, folders // 200)
    for i in range(folders):
        (root / f"g{i // per_group:03d}" / f"f{i % per_group:03d}").mkdir(parents=True)
    for r in range(runs):
        write_run(root / "study" / f"t{r}")


def write_run(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({"step": s, "time": 1.7e9 + s, "loss": 2.0 / (s + 1), "lr": 1e-3})
        for s in range(50)
    ]
    (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def header(app: TunetopApp) -> str:
    status = app.query_one("#status")
    content = getattr(status, "content", "")
    return str(getattr(content, "plain", content))


async def until(pred: object, timeout: float, pilot: object) -> float | None:
    """Seconds until pred() is true, polled every 20 ms; None past the timeout."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():  # type: ignore[operator]
            return time.monotonic() - t0
        await asyncio.sleep(0.02)
    return None


async def bench(folders: int, runs: int, idle: float, poll: float | None, wait: float) -> None:
    with tempfile.TemporaryDirectory(prefix="tunetop-storm-") as d:
        root = Path(d)
        t = time.perf_counter()
        make_tree(root, folders, runs)
        took = time.perf_counter() - t
        print(f"tree: {folders:,} empty folders + {runs} runs, made in {took:.1f} s")
        app = make_app([root], poll=poll)
        async with app.run_test(size=(160, 48)) as pilot:
            t0 = time.monotonic()
            found = await until(lambda: len(app.runs) >= runs, 120.0, pilot)
            if found is None:
                print(f"the {runs} runs were not shown within 120 s (shown: {len(app.runs)})")
            else:
                print(f"start to the {runs} runs shown: {found:.2f} s")
            await asyncio.sleep(3.0)  # the first reads and diagnosis settle
            watcher = app.watcher
            interval = getattr(watcher, "interval", None)
            print(f"watcher: {getattr(watcher, 'reason', '?')}")
            print(f"header: {header(app)}")
            c0, w0 = cpu_seconds(), time.monotonic()
            await asyncio.sleep(idle)
            cpu = (cpu_seconds() - c0) / (time.monotonic() - w0) * 100
            print(f"idle CPU over {idle:g} s: {cpu:.2f}% of a core   target < 1")
            cases = [
                ("beside the known runs (study/t_new)", root / "study" / "t_new", "study/t_new"),
                (
                    "in an old empty folder (g100/f050)",
                    root / "g100" / f"f{50 % max(1, folders // 200):03d}",
                    f"g100/f{50 % max(1, folders // 200):03d}",
                ),
            ]
            for label, folder, run_id in cases:
                write_run(folder)
                took = await until(lambda rid=run_id: rid in app.runs, wait, pilot)
                if took is None:
                    shown = f"not shown in {wait:g} s"
                elif interval:
                    shown = f"{took:.2f} s = {took / interval:.1f} polls of {interval:g} s"
                else:
                    shown = f"{took:.2f} s"
                print(f"new run {label}: {shown}   target <= 2 polls")
            print(f"header at the end: {header(app)}")
            print(f"total {time.monotonic() - t0:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--folders", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--idle-seconds", type=float, default=20.0)
    ap.add_argument("--poll", type=float, default=None, help="force polling at this interval")
    ap.add_argument("--wait", type=float, default=60.0, help="longest wait for a new run")
    a = ap.parse_args()
    print(f"tunetop watcher benchmark (python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    try:
        with open("/proc/sys/fs/inotify/max_user_watches") as fh:
            print(f"max_user_watches {fh.read().strip()}")
    except OSError:
        pass
    asyncio.run(bench(a.folders, a.runs, a.idle_seconds, a.poll, a.wait))


if __name__ == "__main__":
    main()
