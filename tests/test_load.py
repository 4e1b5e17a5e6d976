"""Load (issue 8 item 4), the full scenario: slow, so it runs in CI's second step."""

from __future__ import annotations

import asyncio
import statistics
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "bench"))

from bench_load import run_load


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_point_arrives_exactly_once_and_keys_stay_responsive(tmp_path: Path) -> None:
    r = asyncio.run(run_load(tmp_path, files=5000, writers=50, rate=100, seconds=60))
    print(r)
    assert r.missing_runs == [] and r.wrong_runs == []
    assert r.arrived_points == r.expected_points
    assert r.key_latency_ms and statistics.median(r.key_latency_ms) < 1000
