"""`tunetop check --json` on one event file of 900,000 scalars, start to exit, against
TensorBoard's EventAccumulator loading the same file (DESIGN.md: >= 8x).

    python tests/bench/bench_check.py [--scalars 900000] [--keep DIR]

Both are timed as fresh processes, so interpreter start and imports count on both sides.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tui.logs.tfrecord import frame_record


def write_events(path: Path, scalars: int) -> None:
    """Training-like scalars: loss, grad_norm, lr every step, val_loss every 100 steps."""
    from tensorboard.compat.proto import event_pb2, summary_pb2

    steps = scalars * 100 // 301  # 3 per step + 1 per 100 steps
    out = bytearray()

    def record(ev: event_pb2.Event) -> None:
        out.extend(frame_record(ev.SerializeToString()))

    record(event_pb2.Event(wall_time=1.7e9, file_version="brain.Event:2"))
    for step in range(steps):
        for tag, value in (
            ("train/loss", 2.0 / (1 + step * 1e-3)),
            ("train/grad_norm", 1.5),
            ("train/lr", 1e-3),
        ):
            ev = event_pb2.Event(wall_time=1.7e9 + step * 0.01, step=step)
            ev.summary.value.add(tag=tag, simple_value=value)
            record(ev)
        if step % 100 == 99:
            ev = event_pb2.Event(
                wall_time=1.7e9 + step * 0.01, step=step, summary=summary_pb2.Summary()
            )
            ev.summary.value.add(tag="eval/loss", simple_value=1.0)
            record(ev)
    path.write_bytes(bytes(out))


EA = """
import sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
ea = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
ea.Reload()
print(sum(len(ea.Scalars(t)) for t in ea.Tags()["scalars"]))
"""


def timed(cmd: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if out.returncode not in (0, 1):
        raise SystemExit(f"{cmd[:3]} failed ({out.returncode}): {out.stderr[-2000:]}")
    return dt, out.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scalars", type=int, default=900_000)
    ap.add_argument("--keep", default=None)
    ns = ap.parse_args()
    folder = Path(ns.keep or tempfile.mkdtemp(prefix="bench-check-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "events.out.tfevents.1700000000.bench.1.0"
    if not path.exists():
        t0 = time.perf_counter()
        write_events(path, ns.scalars)
        print(
            f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f}s"
        )
    ea_s, ea_out = timed([sys.executable, "-c", EA, str(path)])
    check_s, check_out = timed([sys.executable, "-m", "tui", "check", str(path), "--json"])
    report = json.loads(check_out)
    counted = sum(m["count"] for r in report["runs"] for m in r["metrics"].values())
    print(f"scalars: EventAccumulator {int(ea_out.strip())}, tunetop check {counted}")
    print(f"EventAccumulator load (process): {ea_s:.2f} s")
    print(f"tunetop check --json (process):  {check_s:.2f} s")
    print(f"ratio: {ea_s / check_s:.1f}x (target >= 8x)")


if __name__ == "__main__":
    main()
