"""Every performance figure of the project, each beside its anchor measured in the same run
(issue 8 item 6): one command.

    python tests/bench/run_all.py            # the figures at the sizes DESIGN.md names
    python tests/bench/run_all.py --quick    # smaller sizes, a few minutes
    python tests/bench/run_all.py --load     # also the 60 s load scenario

Anchors: TensorBoard's EventAccumulator for event files and for `tunetop check`, a naive
json.loads loop and pandas.read_csv for the text readers, a bare PyTorch loop for the runner,
plotext on raw points for drawing; the detectors against OLMo-core's spike rule.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {load:.1f} at start"
    )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--load", action="store_true")
    ns = ap.parse_args()
    q = ns.quick
    benches: list[tuple[str, list[str]]] = [
        (
            "event-file reader vs EventAccumulator",
            ["bench_tfevents.py", "--steps", "200000" if q else "1000000", "--repeat", "1"],
        ),
        (
            "tunetop check --json on one event file vs EventAccumulator",
            ["bench_check.py", "--scalars", "300000" if q else "900000"],
        ),
        (
            "JSONL and CSV readers vs json.loads / pandas.read_csv",
            ["bench_text_readers.py", "--steps", "200000" if q else "1000000"],
        ),
        ("runner vs a bare PyTorch loop", ["bench_runner.py", "--steps", "100" if q else "300"]),
        (
            "dashboard: redraw, idle and following CPU, memory, latency vs plotext",
            [
                "bench_app.py",
                "--anchor-points",
                "20000" if q else "100000",
                "--idle-seconds",
                "4" if q else "10",
            ],
        ),
        (
            "detectors: a round of a big live run",
            ["bench_detect_round.py", "--points", "200000" if q else "1000000"],
        ),
        ("spike detector vs OLMo-core's rule", ["eval_detectors.py"]),
    ]
    if ns.load:
        benches.append(("load: 5,000 files, 50 writers x 100 lines/s", ["bench_load.py"]))
    print(f"tunetop benchmarks on {machine()}\n")
    failed = 0
    for title, (script, *args) in benches:
        print(f"== {title} ({script})", flush=True)
        t0 = time.perf_counter()
        code = subprocess.call([sys.executable, str(HERE / script), *args])
        print(f"   [{time.perf_counter() - t0:.0f} s, exit {code}]\n", flush=True)
        failed += code != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
