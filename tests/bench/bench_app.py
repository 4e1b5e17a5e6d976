"""Benchmark of the dashboard (issue 5 item 5): prints each figure beside its target.

    python tests/bench/bench_app.py [--anchor-points N] [--idle-seconds S]

Figures: redraw of one plot of 10 runs x 1,000,000 points; redraw of the whole screen; CPU
while idle watching 1,000 run folders; CPU while following one run logging 100 steps/s; resident
memory for 10 runs x 1,000,000 steps x 4 metrics; latency from a flushed write to the point on
screen. The anchor: plotext drawing raw points, timed in the same run (plotext is linear in the
points it is given; the default anchor size keeps the benchmark under a few minutes).
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
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tui.app import make_app  # noqa: E402
from tui.engine import RunDiscovered  # noqa: E402
from tui.logs.batch import Column, ColumnBatch  # noqa: E402
from tui.logs.model import Run  # noqa: E402
from tui.widgets.plots import MetricPlot, PlotSettings, SmoothCache  # noqa: E402

N_RUNS = 10
N_STEPS = 1_000_000
PLOT_W, PLOT_H = 96, 22  # one plot of a 200x50 terminal


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_runs(n_runs: int, n_steps: int) -> list[Run]:
    rng = np.random.default_rng(0)
    runs = []
    for i in range(n_runs):
        run = Run(f"run{i:02d}", Path(f"/nonexistent/run{i:02d}"), "jsonl")
        steps = np.arange(n_steps, dtype=np.int64)
        chunk = 250_000  # appended in chunks, as a reader would
        for a in range(0, n_steps, chunk):
            s = steps[a : a + chunk]
            loss = 3.0 * np.exp(-s / 2e5) + 0.2 + 0.05 * rng.standard_normal(s.shape[0])
            cols = {
                "loss": Column(loss),
                "grad_norm": Column(1 + 0.2 * rng.standard_normal(s.shape[0])),
                "lr": Column(np.full(s.shape[0], 1e-3)),
                "val_loss": Column(loss + 0.1),
            }
            run.store.append(ColumnBatch(s, 1.7e9 + s * 0.1, cols), "metrics.jsonl")
        run.store.series("loss").values[n_steps // 3] = 50.0  # one spike
        runs.append(run)
    return runs


def bench_plot(runs: list[Run]) -> tuple[float, float, float]:
    cache = SmoothCache()
    plot = MetricPlot("loss", ("loss",), cache)
    plot.runs = runs
    plot.settings = PlotSettings(smoothing=0.6)
    t = time.perf_counter()
    plot.draw(PLOT_W, PLOT_H)  # first draw: smooths 10 x 1M points once
    first = time.perf_counter() - t
    times = []
    for _ in range(5):
        t = time.perf_counter()
        plot.draw(PLOT_W, PLOT_H)
        times.append(time.perf_counter() - t)
    # after an append to every run: smoothing extends incrementally
    for run in runs:
        last = run.store.last_step or 0
        s = np.arange(last + 1, last + 101, dtype=np.int64)
        cols = {k: Column(np.ones(100)) for k in ("loss", "grad_norm", "lr", "val_loss")}
        run.store.append(ColumnBatch(s, 1.7e9 + s * 0.1, cols), "metrics.jsonl")
    t = time.perf_counter()
    plot.draw(PLOT_W, PLOT_H)
    after_append = time.perf_counter() - t
    return first, statistics.median(times), after_append


def bench_plotext_anchor(points: int) -> float:
    import plotext as plt

    x = np.arange(points)
    y = np.random.default_rng(0).random(points)
    t = time.perf_counter()
    plt.clear_figure()
    plt.plotsize(PLOT_W, PLOT_H)
    plt.plot(x.tolist(), y.tolist(), marker="braille")
    plt.build()
    return time.perf_counter() - t


def bench_plotext_downsampled(runs: list[Run]) -> float:
    """plotext drawing what tunetop draws (10 downsampled curves): the canvas cost alone."""
    import plotext as plt

    from tui.plotting import minmax_downsample

    t = time.perf_counter()
    plt.clear_figure()
    plt.plotsize(PLOT_W, PLOT_H)
    for run in runs:
        s = run.store.series("loss")
        xs, ys = minmax_downsample(s.steps, s.values, 2 * PLOT_W)
        plt.plot(xs.tolist(), ys.tolist(), marker="braille")
    plt.build()
    return time.perf_counter() - t


async def bench_screen(runs: list[Run]) -> float:
    with tempfile.TemporaryDirectory() as d:
        app = make_app([Path(d)], poll=3600)
        async with app.run_test(size=(200, 50)) as pilot:
            app.post_message(RunDiscovered(runs, {}))
            for r in runs:
                app.marked.append(r.id)  # overlay all ten
            await pilot.pause(0.5)
            app.refresh_plots()
            await pilot.pause(0.5)
            times = []
            for _ in range(5):
                for plot in app.query("#plots > *"):
                    plot.replot()  # type: ignore[attr-defined]
                t = time.perf_counter()
                app.screen._compositor.render_strips()  # every widget rendered afresh
                times.append(time.perf_counter() - t)
            return statistics.median(times)


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def bench_idle(folders: int, seconds: float) -> float:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        for i in range(folders):
            f = root / f"study{i // 50:02d}" / f"t{i:04d}"
            f.mkdir(parents=True)
            with open(f / "metrics.jsonl", "w") as fh:
                for s in range(20):
                    fh.write(json.dumps({"step": s, "time": 1.7e9 + s, "loss": 1.0 / (s + 1)}))
                    fh.write("\n")
        app = make_app([root])
        async with app.run_test(size=(200, 50)) as pilot:
            deadline = time.monotonic() + 120
            while len(app.runs) < folders and time.monotonic() < deadline:
                await pilot.pause(0.2)
            await pilot.pause(2.0)  # the first reads and diagnosis settle
            c0, t0 = cpu_seconds(), time.monotonic()
            await asyncio.sleep(seconds)
            return (cpu_seconds() - c0) / (time.monotonic() - t0) * 100


def record(step: int) -> str:
    """One line of the followed run's log."""
    point = {"step": step, "time": 1.7e9 + step, "loss": 1.0, "grad_norm": 1.0, "lr": 1e-3}
    return json.dumps(point) + "\n"


# appends from step 2000 on (the latency probe wrote steps 1000-1009)
WRITER = """
import json, sys, time
path, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
step = 2000
end = time.monotonic() + seconds
with open(path, "a") as fh:
    while time.monotonic() < end:
        fh.write(json.dumps({"step": step, "time": time.time(), "loss": 1.0 + (step % 7) * 0.01,
                             "grad_norm": 1.0, "lr": 1e-3}) + "\\n")
        fh.flush()
        step += 1
        time.sleep(1.0 / rate)
"""


async def bench_follow(seconds: float) -> tuple[float, list[float]]:
    with tempfile.TemporaryDirectory() as d:
        run = Path(d) / "run"
        run.mkdir()
        (run / "metrics.jsonl").write_text("".join(record(s) for s in range(1000)))
        app = make_app([Path(d)])
        async with app.run_test(size=(200, 50)) as pilot:
            while "run" not in app.runs:
                await pilot.pause(0.05)
            await pilot.pause(1.0)
            # latency: a flushed write -> the loss plot drawn with that step
            plot = app.query_one("#plot-loss", MetricPlot)
            lat = []
            for i in range(10):
                step = 1000 + i
                n0 = plot.renders
                with open(run / "metrics.jsonl", "a") as fh:
                    fh.write(record(step))
                    fh.flush()
                t = time.perf_counter()
                while not (plot.renders > n0 and app.runs["run"].store.last_step == step):
                    await asyncio.sleep(0.002)
                    if time.perf_counter() - t > 5:
                        break
                lat.append(time.perf_counter() - t)
                await asyncio.sleep(0.3)
            # CPU while a child process appends 100 steps/s (its own CPU is not counted)
            proc = subprocess.Popen(
                [sys.executable, "-c", WRITER, str(run / "metrics.jsonl"), "100", str(seconds + 1)]
            )
            await asyncio.sleep(1.0)
            c0, t0 = cpu_seconds(), time.monotonic()
            await asyncio.sleep(seconds)
            cpu = (cpu_seconds() - c0) / (time.monotonic() - t0) * 100
            proc.wait()
            return cpu, lat


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--anchor-points", type=int, default=100_000)
    ap.add_argument("--idle-seconds", type=float, default=10.0)
    ap.add_argument("--folders", type=int, default=1000)
    args = ap.parse_args()
    print(
        f"tunetop dashboard benchmark  (python {sys.version.split()[0]}, {os.cpu_count()} CPUs,"
        f" load average {os.getloadavg()[0]:.1f} at start)"
    )
    print(f"plot size {PLOT_W}x{PLOT_H} cells; screen 200x50")

    base = rss_mb()
    runs = make_runs(N_RUNS, N_STEPS)
    loaded = rss_mb()
    first, redraw, after_append = bench_plot(runs)
    drawn = rss_mb()
    print(f"\n1 plot, {N_RUNS} runs x {N_STEPS:,} points (overlay, EMA 0.6):")
    print(f"  first draw (smooths 10M points once)      {first * 1000:8.1f} ms")
    print(f"  redraw                                    {redraw * 1000:8.1f} ms   target <= 50")
    print(f"  redraw after 100 new points in every run  {after_append * 1000:8.1f} ms")
    anchor = bench_plotext_anchor(args.anchor_points)
    per_m = anchor / args.anchor_points * N_STEPS
    print(
        f"  anchor: plotext, 1 run x {args.anchor_points:,} raw points  {anchor * 1000:8.0f} ms"
        f"  (linear: ~{per_m * N_RUNS:,.0f} s for 10 x 1M, {per_m * N_RUNS / redraw:,.0f}x ours)"
    )
    pds = bench_plotext_downsampled(runs)
    print(f"  plotext on our downsampled curves         {pds * 1000:8.1f} ms   (canvas cost alone)")
    print(f"\nresident memory, {N_RUNS} runs x {N_STEPS:,} steps x 4 metrics:")
    print(
        f"  after loading {loaded:6.0f} MB, after drawing {drawn:6.0f} MB "
        f"(interpreter + imports {base:.0f} MB)   target <= 500"
    )

    screen = asyncio.run(bench_screen(runs))
    print(
        f"\nwhole screen redraw (4 plots, tree, findings; 10 x 1M overlay): "
        f"{screen * 1000:.1f} ms   target <= 150"
    )
    del runs

    idle = asyncio.run(bench_idle(args.folders, args.idle_seconds))
    print(f"\nCPU idle, watching {args.folders} run folders: {idle:.2f}% of a core   target <= 0.5")
    cpu, lat = asyncio.run(bench_follow(args.idle_seconds))
    print(f"CPU following one run logging 100 steps/s: {cpu:.1f}% of a core   target <= 10")
    print(
        f"latency flushed write -> point on screen: median {statistics.median(lat) * 1000:.0f}"
        f" ms, max {max(lat) * 1000:.0f} ms   target <= 500"
    )


if __name__ == "__main__":
    main()
