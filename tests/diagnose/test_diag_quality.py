"""Quality, measured (issue 3): the detectors on the labelled set of real CPU training runs
(tests/diagnose/evalset: generate.py made evalset.jsonl.gz; evalset_eval.py scores it).

Spike recall >= 0.95 and precision >= 0.9 (a finding within 3 logged steps of an induced spike
is a hit), no warning on the clean runs, every sweep classified right, every slowly unstable
run caught, no unstable_training on runs whose spikes recover."""

from __future__ import annotations

import pytest
from evalset_eval import COMMITTED, Report, evaluate, load


@pytest.fixture(scope="module")
def report() -> Report:
    if not COMMITTED.exists():
        pytest.skip("evaluation set not generated")
    return evaluate(load(COMMITTED))


def test_spike_recall_and_precision(report: Report) -> None:
    """Issue 3's bar (measured on the committed set: recall 0.952, precision 0.976; OLMo-core's
    rule 0.929 / 0.661; over 26 generated sets, seeds 0-25, 1,092 induced spikes: recall 0.967,
    precision 0.971, per set 0.88-1.0 — tests/bench/eval_detectors.py)."""
    # every induced event counts: generate.py calibrates each until it is observable
    # (generate.observable, a rule that does not use the detector)
    assert report.ours.spikes >= 30
    assert report.ours.observable == report.ours.spikes, report.lines()
    assert report.ours.recall >= 0.95, report.lines()
    assert report.ours.precision >= 0.9, report.lines()
    assert report.ours.precision > report.olmo.precision


def test_no_warning_on_clean_runs(report: Report) -> None:
    assert report.clean_warnings == [], report.lines()


def test_every_sweep_classified_right(report: Report) -> None:
    assert report.sweeps and report.sweeps_right == len(report.sweeps), report.lines()


def test_slow_instability_found_and_recovering_spikes_left_alone(report: Report) -> None:
    assert report.unstable_missed == [], report.lines()
    assert report.unstable_false == [], report.lines()
