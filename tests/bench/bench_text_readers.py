"""Benchmark of the text readers (JSONL, CSV), each beside an anchor timed in the same run.

    python tests/bench/bench_text_readers.py [--steps 1000000] [--dir DIR]

Writes STEPS steps x 3 scalars (loss, grad_norm, lr) + val_loss every 100 steps, as the runner
writes JSONL (one object per line, evaluation rows separate) and as Lightning's CSVLogger writes
metrics.csv (sorted header, sparse rows). Prints, for each reader's first full read of the file,
lines (rows) per second and peak memory above the process's resident size before the read, and
the same for the anchors: a naive `json.loads` loop and `pandas.read_csv`. Each measurement runs
in a forked child so one's memory does not hide another's. Targets (issue 2): JSONL >= 1,000,000
lines/s, CSV >= 3,000,000 rows/s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tui.logs.csvlog import CsvReader
from tui.logs.jsonl import JsonlReader

T0 = 1_795_517_490.0


def write_files(folder: Path, steps: int) -> tuple[Path, Path, int]:
    """The JSONL and CSV files; returns their paths and the number of records (lines/rows)."""
    rng = np.random.default_rng(0)
    s = np.arange(steps)
    loss = 2.3 / (1 + s * 1e-4) + rng.normal(0, 0.01, steps)
    grad = 4.0 + rng.gamma(2.0, 0.3, steps)
    lr = 1e-3 * (1 - s / steps)
    times = T0 + s * 0.01
    # Python floats: their repr is what json.dumps and csv.writer write
    loss, grad, lr, times = loss.tolist(), grad.tolist(), lr.tolist(), times.tolist()
    jsonl = folder / "metrics.jsonl"
    csv = folder / "metrics.csv"
    with open(jsonl, "w") as fj, open(csv, "w") as fc:
        fc.write("epoch,grad_norm,loss,lr,step,val_loss\n")
        for i in range(steps):
            fj.write(
                f'{{"step": {i}, "time": {times[i]!r}, "loss": {loss[i]!r}, '
                f'"grad_norm": {grad[i]!r}, "lr": {lr[i]!r}, "clipped": 0}}\n'
            )
            fc.write(f"{i // 10000},{grad[i]!r},{loss[i]!r},{lr[i]!r},{i},\n")
            if i % 100 == 99:
                v = float(loss[i]) + 0.1
                fj.write(f'{{"step": {i}, "time": {times[i]!r}, "val_loss": {v!r}}}\n')
                fc.write(f"{i // 10000},,,,{i},{v!r}\n")
    return jsonl, csv, steps + steps // 100


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def measure(fn: Callable[[], int]) -> tuple[float, float, int]:
    """(seconds, peak MiB above the starting RSS, records) of fn, run in a forked child."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")  # reset VmHWM to the current RSS (Linux >= 4.0)
        except OSError:
            pass
        code = 0
        try:
            base = _rss_kib("VmRSS")
            t = time.perf_counter()
            n = fn()
            dt = time.perf_counter() - t
            peak = max(_rss_kib("VmHWM") - base, 0) / 1024
            os.write(w, json.dumps([dt, peak, n]).encode())
        except BaseException as exc:  # report, never return into the parent's code
            os.write(w, json.dumps(["error", repr(exc)[:2000], 0]).encode())
            code = 1
        os._exit(code)
    os.close(w)
    out = b""
    while chunk := os.read(r, 4096):
        out += chunk
    os.close(r)
    os.waitpid(pid, 0)
    dt, peak, n = json.loads(out)
    if dt == "error":
        raise RuntimeError(peak)
    return dt, peak, n


def reader_run(reader_cls: type[JsonlReader | CsvReader], path: Path) -> Callable[[], int]:
    """One full read of the file by a fresh reader; returns the rows it gave."""

    def run() -> int:
        res = reader_cls(path).read()
        assert not res.errors, res.errors
        return len(res.batch)

    return run


def naive_json(path: Path) -> Callable[[], int]:
    def run() -> int:
        cols: dict[str, list[float]] = {}
        n = 0
        with open(path) as fh:
            for line in fh:
                rec = json.loads(line)
                for k, v in rec.items():
                    cols.setdefault(k, []).append(v)
                n += 1
        return n

    return run


def arrow_json_alone(path: Path) -> Callable[[], int]:
    """Arrow's JSON parser on the bytes, nothing else: the ceiling of JsonlReader's approach."""

    def run() -> int:
        import pyarrow as pa
        import pyarrow.json as pj

        data = path.read_bytes()
        opts = pj.ReadOptions(block_size=16 << 20)
        return pj.read_json(pa.BufferReader(data), read_options=opts).num_rows

    return run


def arrow_csv_alone(path: Path) -> Callable[[], int]:
    """Arrow's CSV parser on the bytes, nothing else: the ceiling of CsvReader's approach."""

    def run() -> int:
        import pyarrow as pa
        import pyarrow.csv as pcsv

        data = path.read_bytes()
        return pcsv.read_csv(pa.BufferReader(data)).num_rows

    return run


def pandas_csv(path: Path, engine: str) -> Callable[[], int]:
    def run() -> int:
        return len(pd.read_csv(path, engine=engine))  # type: ignore[call-overload]

    return run


def tail_latency(path: Path, lines: list[bytes], reader_cls: type) -> float:
    """Microseconds per read() of a live file growing by 10 lines between reads."""
    path.write_bytes(lines[0])
    reader = reader_cls(path)
    reader.read()
    rounds = 0
    t = time.perf_counter()
    with open(path, "ab") as fh:
        for i in range(1, len(lines) - 10, 10):
            fh.write(b"".join(lines[i : i + 10]))
            fh.flush()
            reader.read()
            rounds += 1
    return (time.perf_counter() - t) / rounds * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory() if args.dir is None else None
    folder = Path(tmp.name) if tmp else args.dir
    folder.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    jsonl, csv, records = write_files(folder, args.steps)
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; files written in {time.perf_counter() - t:.1f} s"
    )
    print(f"# {args.steps:,} steps x 3 scalars + val_loss every 100 steps = {records:,} records")
    print(
        f"# metrics.jsonl {jsonl.stat().st_size / 2**20:.0f} MiB, "
        f"metrics.csv {csv.stat().st_size / 2**20:.0f} MiB"
    )
    print(f"{'what':<34} {'seconds':>8} {'records/s':>12} {'peak MiB':>9} {'vs anchor':>10}")
    figures: dict[str, float] = {}
    rows = [  # each anchor before the reader compared with it
        ("anchor: json.loads per line", naive_json(jsonl), "jsonl_anchor"),
        ("JsonlReader (first full read)", reader_run(JsonlReader, jsonl), "jsonl"),
        ("ceiling: Arrow JSON parse alone", arrow_json_alone(jsonl), "jsonl_ceiling"),
        ("anchor: pandas.read_csv (c)", pandas_csv(csv, "c"), "csv_anchor"),
        ("anchor: pandas.read_csv (pyarrow)", pandas_csv(csv, "pyarrow"), "csv_anchor_pa"),
        ("CsvReader (first full read)", reader_run(CsvReader, csv), "csv"),
        ("ceiling: Arrow CSV parse alone", arrow_csv_alone(csv), "csv_ceiling"),
    ]
    for label, fn, key in rows:
        best = None
        for _ in range(3):  # the best of three: the machine may be shared
            got = measure(fn)
            if best is None or got[0] < best[0]:
                best = got
        assert best is not None
        dt, peak, n = best
        assert n == records, (label, n, records)
        figures[key] = n / dt
        # readers and ceilings are compared with their format's first anchor
        anchor = None if "anchor" in key else figures.get(f"{key.split('_')[0]}_anchor")
        ratio = f"{figures[key] / anchor:.1f}x" if anchor else ""
        print(f"{label:<34} {dt:>8.3f} {n / dt:>12,.0f} {peak:>9.0f} {ratio:>10}")
    print(f"JSONL reader vs json.loads loop:  {figures['jsonl'] / figures['jsonl_anchor']:.1f}x")
    print(f"CSV reader vs pandas.read_csv(c): {figures['csv'] / figures['csv_anchor']:.1f}x")
    ok_j = figures["jsonl"] >= 1_000_000
    ok_c = figures["csv"] >= 3_000_000
    print(f"target JSONL >= 1,000,000 lines/s: {'met' if ok_j else 'NOT met'}")
    print(f"target CSV   >= 3,000,000 rows/s:  {'met' if ok_c else 'NOT met'}")

    # live tailing: what one poll costs when a few lines arrived
    lines = jsonl.read_bytes().splitlines(keepends=True)[:20_001]
    live = folder / "live.jsonl"
    print(f"live JSONL read of 10 new lines:  {tail_latency(live, lines, JsonlReader):.0f} us")
    clines = csv.read_bytes().splitlines(keepends=True)[:20_001]
    livec = folder / "live.csv"
    print(f"live CSV read of 10 new rows:     {tail_latency(livec, clines, CsvReader):.0f} us")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
