"""What one dashboard round costs the detectors of a big live run: a run of --points points
(loss and grad_norm) gains --new points a round; RunDetectors.update + stats, as the engine
calls them every round the run grows.

    python tests/bench/bench_detect_round.py [--points 1000000] [--new 10] [--rounds 200]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tui.diagnose.run_checks import RunDetectors
from tui.logs.batch import Column, ColumnBatch
from tui.logs.store import RunStore


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--new", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=200)
    ns = ap.parse_args()
    rng = np.random.default_rng(0)

    def batch(a: int, b: int) -> ColumnBatch:
        loss = 1.0 + 0.05 * rng.normal(size=b - a)
        grad = np.exp(rng.normal(size=b - a))
        cols = {"loss": Column(loss, None), "grad_norm": Column(grad, None)}
        return ColumnBatch(np.arange(a, b), np.arange(a, b, dtype=np.float64), cols)

    store = RunStore()
    store.append(batch(0, ns.points))
    det = RunDetectors(2 * ns.points, {})
    t0 = time.perf_counter()
    det.update(store)
    det.stats()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for r in range(ns.rounds):
        a = ns.points + r * ns.new
        store.append(batch(a, a + ns.new))
        det.update(store)
        det.stats()
    per_round = (time.perf_counter() - t0) / ns.rounds
    print(f"first read of {ns.points:,} points: {first:.2f} s")
    print(f"a round of {ns.new} new points: {per_round * 1000:.2f} ms (update + stats)")


if __name__ == "__main__":
    main()
