"""Benchmark: peak memory and time of `tunetop check --json` on hostile files (issue 14 item 6).

    python tests/bench/bench_hostile_memory.py [--case NAME ...] [--sparse-gb 5] [--line-gb 1]
                                               [--passes 200] [--keep DIR]

Cases, each next to one good run (which must still be read):
- sparse:  `truncate -s 5G metrics.jsonl`, then a few real lines (mostly NUL bytes);
- line:    one 1 GB line (no newline until its end), then a few real lines;
- rewrite: an event file that logs the same 100,000 steps `--passes` times while it grows (a
           training restart inside one file: steps going back), 30 bytes a record.
- baseline: the good run alone: the interpreter with check's modules loaded.

Each case runs `tunetop check --json` in a fresh child process, which reports its own peak
resident memory (VmHWM of /proc/self/status) and wall time. Printed per case: peak RSS, peak
above the baseline, time, exit code, runs read and the error entries about the hostile file.
The target (DESIGN.md / issue 14): at most 400 MB above the interpreter, bounded time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

CAP_MB = 400.0

# the child: run check, then report its own high-water mark on stderr's last line
_CHILD = """
import io, json, sys, time
sys.path.insert(0, {root!r})
from tui.check import main
out = io.StringIO()
t0 = time.perf_counter()
rc = main(sys.argv[1], True, "error", out=out)
wall = time.perf_counter() - t0
hwm = 0
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        hwm = int(line.split()[1]) * 1024
data = json.loads(out.getvalue())
print(json.dumps({{"rc": rc, "wall_s": wall, "hwm": hwm, "runs": [r["id"] for r in data["runs"]],
                  "errors": data["errors"]}}), file=sys.stderr)
"""


def good_run(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "metrics.jsonl", "w") as fh:
        for s in range(500):
            fh.write(json.dumps({"step": s, "loss": 2.0 / (1 + 0.01 * s)}) + "\n")


def real_lines(fh: object, start: int = 0, n: int = 3) -> None:
    for s in range(start, start + n):
        fh.write(json.dumps({"step": s, "loss": 1.0}).encode() + b"\n")  # type: ignore[attr-defined]


def make_sparse(root: Path, gb: float) -> None:
    run = root / "hostile"
    run.mkdir(parents=True)
    p = run / "metrics.jsonl"
    with open(p, "wb") as fh:
        fh.truncate(int(gb * (1 << 30)))
    with open(p, "ab") as fh:
        real_lines(fh)


def make_line(root: Path, gb: float) -> None:
    run = root / "hostile"
    run.mkdir(parents=True)
    block = b'{"x": "' + b"a" * ((8 << 20) - 7)
    with open(run / "metrics.jsonl", "wb") as fh:
        real_lines(fh, 0, 1)
        left = int(gb * (1 << 30))
        while left > 0:
            piece = block[: min(len(block), left)]
            fh.write(piece)
            left -= len(piece)
        fh.write(b'"}\n')
        real_lines(fh, 1, 2)


def make_rewrite(root: Path, passes: int, steps: int = 100_000) -> None:
    from tensorboard.compat.proto import event_pb2

    from tui.logs import tfrecord as tr

    run = root / "hostile"
    run.mkdir(parents=True)
    recs = []
    for s in range(steps):
        ev = event_pb2.Event(wall_time=1.7e9 + s, step=s)
        ev.summary.value.add(tag="loss", simple_value=1.0 / (s + 1))
        recs.append(tr.frame_record(ev.SerializeToString()))
    one_pass = b"".join(recs)
    head = event_pb2.Event(wall_time=1.7e9, file_version="brain.Event:2").SerializeToString()
    with open(run / "events.out.tfevents.1700000000.bench", "wb") as fh:
        fh.write(tr.frame_record(head))
        for _ in range(passes):
            fh.write(one_pass)


def measure(root: Path, timeout_s: float = 600.0) -> dict[str, object]:
    """Run check on `root` in a fresh child; its report (rc, wall_s, hwm, runs, errors)."""
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD.format(root=str(ROOT)), str(root)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"check child failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(lines[-1])


def build(case: str, root: Path, args: argparse.Namespace) -> None:
    good_run(root / "good")
    if case == "sparse":
        make_sparse(root, args.sparse_gb)
    elif case == "line":
        make_line(root, args.line_gb)
    elif case == "rewrite":
        make_rewrite(root, args.passes)
    elif case != "baseline":
        raise ValueError(case)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--case", action="append", choices=("sparse", "line", "rewrite"))
    ap.add_argument("--sparse-gb", type=float, default=5.0)
    ap.add_argument("--line-gb", type=float, default=1.0)
    ap.add_argument("--passes", type=int, default=200)
    ap.add_argument("--keep", type=Path, help="build the cases under this folder, keep them")
    args = ap.parse_args()
    cases = ["baseline", *(args.case or ["sparse", "line", "rewrite"])]
    print(
        f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; "
        f"python {sys.version.split()[0]}"
    )
    base_hwm = 0
    with tempfile.TemporaryDirectory(dir=args.keep) as tmp:
        for case in cases:
            root = Path(tmp) / case
            t0 = time.perf_counter()
            build(case, root, args)
            made = time.perf_counter() - t0
            size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
            got = measure(root)
            hwm_mb = int(got["hwm"]) / 1e6  # type: ignore[call-overload]
            if case == "baseline":
                base_hwm = int(got["hwm"])  # type: ignore[call-overload]
            above = (int(got["hwm"]) - base_hwm) / 1e6  # type: ignore[call-overload]
            errs = [e["message"][:90] for e in got["errors"] if "hostile" in e["path"]]  # type: ignore[union-attr]
            print(
                f"{case:9s} files {size / 1e9:6.2f} GB (built in {made:5.1f} s) | check: "
                f"peak RSS {hwm_mb:7.1f} MB, {above:+7.1f} MB above baseline "
                f"(cap {CAP_MB:.0f}), {float(got['wall_s']):6.2f} s, rc {got['rc']}, "  # type: ignore[arg-type]
                f"runs {sorted(got['runs'])}"  # type: ignore[arg-type]
            )
            for e in errs:
                print(f"          error: {e}")
            for p in sorted(root.rglob("*"), reverse=True):  # free the disk before the next
                p.unlink() if p.is_file() else p.rmdir()


if __name__ == "__main__":
    main()
