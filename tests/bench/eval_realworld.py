"""Benchmark line: tunetop on the real-world corpus (tests/realworld), one line of figures.

    python tests/bench/eval_realworld.py [--verbose]

Lays the corpus out from the repository snapshots if needed (tests.realworld.materialize),
scores `tunetop check --json` against labels.json and prints discovery, reading, finding
precision / recall, noise and study figures, and the wall time of the scoring.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.realworld import materialize, score


def main() -> int:
    missing = materialize.materialize()
    if missing:
        print(f"eval_realworld: {len(missing)} runs lack a snapshot here (scored without them)")
    if not score.available():
        print("eval_realworld: no corpus laid out")
        return 2
    if "--verbose" in sys.argv[1:]:
        score.main(["--verbose"])
    t0 = time.perf_counter()
    fig = score.score().figures
    dt = time.perf_counter() - t0
    print(f"{score.summary_line(fig)}; {fig['slugs']} folders scored in {dt:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
