"""Load (issue 8 item 4): a watched tree of 5,000 log files, 50 writers appending 100
lines/s each for 60 s, the dashboard following it. Prints: points expected vs arrived (every
point exactly once), key press -> redraw latency, the app's CPU and peak memory.

    python tests/bench/bench_load.py [--files 5000] [--writers 50] [--rate 100] [--seconds 60]

`tests/test_load.py` (marked slow) runs the same scenario and asserts on it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

WRITER = textwrap.dedent(
    """
    import json, sys, time
    files, rate, seconds = sys.argv[1].split(","), float(sys.argv[2]), float(sys.argv[3])
    handles = [open(f, "a") for f in files]
    counts = [0] * len(files)
    start = time.monotonic()
    tick = 1.0 / rate
    n = 0
    while True:
        due = start + n * tick
        now = time.monotonic()
        if due > start + seconds:
            break
        if due > now:
            time.sleep(due - now)
        for i, fh in enumerate(handles):
            step = 10 + counts[i]
            fh.write(json.dumps({"step": step, "time": time.time(), "loss": 1.0 / (step + 1),
                                 "grad_norm": 1.0, "lr": 0.001}) + "\\n")
            fh.flush()
            counts[i] += 1
        n += 1
    print(json.dumps(dict(zip(files, counts))))
    """
)


@dataclass
class LoadResult:
    expected_points: int
    arrived_points: int
    missing_runs: list[str]
    wrong_runs: list[str]
    key_latency_ms: list[float]
    cpu_percent: float
    peak_rss_mb: float
    catch_up_s: float


def build_tree(root: Path, files: int) -> list[Path]:
    studies = max(1, files // 100)
    paths = []
    for i in range(files):
        run = root / f"study{i % studies:03d}" / f"lr={0.0001 * (1 + i // studies):.4f}"
        run.mkdir(parents=True, exist_ok=True)
        p = run / "metrics.jsonl"
        p.write_text(
            "".join(
                json.dumps(
                    {
                        "step": s,
                        "time": 1.7e9 + s,
                        "loss": 1.0 / (s + 1),
                        "grad_norm": 1.0,
                        "lr": 0.001,
                    }
                )
                + "\n"
                for s in range(10)
            )
        )
        paths.append(p)
    return paths


async def run_load(
    root: Path,
    files: int,
    writers: int,
    rate: float,
    seconds: float,
    processes: int = 5,
    poll: float | None = None,
) -> LoadResult:
    from tui.app import make_app

    paths = build_tree(root, files)
    live = paths[:: max(1, files // writers)][:writers]
    app = make_app([root], poll=poll)
    latencies: list[float] = []
    async with app.run_test(size=(160, 48)) as pilot:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # the first full scan
            eng = app.engine
            if eng is not None and len(eng.workspace.runs) >= files:
                break
            await pilot.pause(0.2)
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.monotonic()
        groups = [live[i::processes] for i in range(processes)]
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER, ",".join(map(str, g)), str(rate), str(seconds)],
                stdout=subprocess.PIPE,
                text=True,
            )
            for g in groups
            if g
        ]
        while any(p.poll() is None for p in procs):
            t = time.perf_counter()
            await pilot.press("down")
            await pilot.pause()
            latencies.append((time.perf_counter() - t) * 1000)
            await pilot.pause(0.5)
        counts: dict[str, int] = {}
        for p in procs:
            out, _ = p.communicate()
            counts.update(json.loads(out))
        written_end = time.monotonic()
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime) / (written_end - t0)

        ws = app.engine.workspace

        def arrived(path: str) -> int:
            run_id = os.path.relpath(Path(path).parent, root)
            run = ws.runs.get(run_id)
            return run.store.count("loss") if run else -1

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if all(arrived(f) == 10 + c for f, c in counts.items()):
                break
            await pilot.pause(0.2)
        catch_up = time.monotonic() - written_end
        missing = [f for f in counts if arrived(f) < 0]
        wrong = [f for f, c in counts.items() if arrived(f) not in (-1, 10 + c)]
        expected = sum(10 + c for c in counts.values())
        got = sum(max(arrived(f), 0) for f in counts)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return LoadResult(expected, got, missing, wrong, latencies, 100 * cpu, peak, catch_up)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--writers", type=int, default=50)
    ap.add_argument("--rate", type=float, default=100)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--poll", type=float, default=None, help="poll instead of inotify")
    ns = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        r = asyncio.run(
            run_load(Path(tmp), ns.files, ns.writers, ns.rate, ns.seconds, poll=ns.poll)
        )
    print(f"files {ns.files}, writers {ns.writers} x {ns.rate:g} lines/s for {ns.seconds:g} s")
    print(
        f"live points expected {r.expected_points}, arrived {r.arrived_points} "
        f"(missing runs {len(r.missing_runs)}, wrong counts {len(r.wrong_runs)})"
    )
    if r.key_latency_ms:
        print(
            f"key press -> redraw: median {statistics.median(r.key_latency_ms):.0f} ms, "
            f"max {max(r.key_latency_ms):.0f} ms over {len(r.key_latency_ms)} presses"
        )
    print(f"app CPU while writers ran: {r.cpu_percent:.1f}% of one core")
    print(f"app peak resident memory: {r.peak_rss_mb:.0f} MB")
    print(f"caught up {r.catch_up_s:.2f} s after the writers stopped")


if __name__ == "__main__":
    main()
