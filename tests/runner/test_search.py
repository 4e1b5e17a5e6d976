"""runner.search: grid, list and quasi-random (R9) trials of a study."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import qmc

from runner.search import trial_specs, trials
from runner.spec import RunSpec, SpecError, StudySection, StudySpec, loads


def _study(table: str, base: str = "") -> StudySpec:
    spec = loads(base + "[study]\n" + table)
    assert isinstance(spec, StudySpec)
    return spec


def test_grid_product_size_and_order() -> None:
    study = _study(
        "search = 'grid'\n"
        "grid = { 'optimizer.lr' = [0.1, 0.01, 0.001], batch_size = [32, 64], seed = [0, 1] }\n"
    )
    got = trials(study)
    assert len(got) == 3 * 2 * 2
    assert list(got[0]) == ["optimizer.lr", "batch_size", "seed"]  # keys in the order given
    # the first key varies slowest, the last fastest
    assert [t["seed"] for t in got[:4]] == [0, 1, 0, 1]
    assert [t["batch_size"] for t in got[:4]] == [32, 32, 64, 64]
    assert [t["optimizer.lr"] for t in got[::4]] == [0.1, 0.01, 0.001]
    assert len({tuple(t.values()) for t in got}) == 12
    specs = trial_specs(study)
    assert [s.optimizer.lr for s in specs[::4]] == [0.1, 0.01, 0.001]
    assert specs[3].batch_size == 64 and specs[3].seed == 1


def test_list_as_given_warmup_study() -> None:
    study = _study(
        "search = 'list'\nlist = ["
        "{ 'schedule.warmup_steps' = 10, 'schedule.post_warmup_steps' = 20 },"
        "{ 'schedule.warmup_steps' = 100, 'schedule.post_warmup_steps' = 200 },"
        "{ warmup_steps = 1000, 'schedule.post_warmup_steps' = 2000, lr = 0.5 } ]\n",
        base="max_train_steps = 0\n[schedule]\nkind = 'constant'\n",
    )
    assert trials(study) == study.study.list
    specs = trial_specs(study)
    assert [s.schedule.warmup_steps for s in specs] == [10, 100, 1000]
    assert [s.total_steps for s in specs] == [30, 300, 3000]
    assert specs[2].optimizer.lr == 0.5
    assert specs[0].optimizer.lr == study.base.optimizer.lr


QR = (
    "search = 'quasi_random'\ntrials = {n}\nseed = {seed}\nspace = {{ "
    "'optimizer.lr' = {{ min = 1e-4, max = 1e-1, scale = 'log' }}, "
    "'optimizer.beta1' = {{ min = 0.8, max = 0.99, scale = 'linear' }}, "
    "batch_size = {{ values = [32, 64, 128] }}, "
    "'schedule.warmup_steps' = {{ min = 10, max = 1000, scale = 'log' }} }}\n"
)


def test_quasi_random_reproducible_with_seed() -> None:
    a = trials(_study(QR.format(n=16, seed=3)))
    b = trials(_study(QR.format(n=16, seed=3)))
    c = trials(_study(QR.format(n=16, seed=4)))
    assert a == b
    assert a != c
    assert len(a) == 16
    assert list(a[0]) == ["optimizer.lr", "optimizer.beta1", "batch_size", "schedule.warmup_steps"]


def test_quasi_random_is_scrambled_halton_drawn_at_once() -> None:
    """R9: qmc.Halton(d, scramble=True, seed=seed).random(n), mapped dimension by dimension."""
    n, seed = 20, 7
    got = trials(_study(QR.format(n=n, seed=seed)))
    u = qmc.Halton(4, scramble=True, seed=seed).random(n)
    lr = [t["optimizer.lr"] for t in got]
    np.testing.assert_allclose(np.log(lr), np.log(1e-4) + u[:, 0] * np.log(1e3), rtol=1e-12)
    beta1 = [t["optimizer.beta1"] for t in got]
    np.testing.assert_allclose(beta1, 0.8 + u[:, 1] * 0.19, rtol=1e-12)
    assert [t["batch_size"] for t in got] == [[32, 64, 128][int(x * 3)] for x in u[:, 2]]
    warm = [t["schedule.warmup_steps"] for t in got]
    assert warm == [round(10 * 100**x) for x in u[:, 3]]


def test_quasi_random_within_bounds_and_log_scale() -> None:
    got = trials(_study(QR.format(n=256, seed=0)))
    lr = np.array([t["optimizer.lr"] for t in got])
    beta1 = np.array([t["optimizer.beta1"] for t in got])
    warm = [t["schedule.warmup_steps"] for t in got]
    assert np.all((lr >= 1e-4) & (lr <= 1e-1))
    assert np.all((beta1 >= 0.8) & (beta1 <= 0.99))
    assert all(isinstance(w, int) and 10 <= w <= 1000 for w in warm)
    # log-uniform: half the trials below the geometric mid point (uniform would put ~0.3% there)
    below = np.mean(lr < math.sqrt(1e-4 * 1e-1))
    assert 0.45 < below < 0.55
    # each decade gets about a third of the trials
    decades = np.histogram(np.log10(lr), bins=[-4, -3, -2, -1])[0]
    assert np.all(np.abs(decades - 256 / 3) < 8)
    # linear: uniform in value
    assert 0.45 < np.mean(beta1 < 0.895) < 0.55


def test_discrete_values_all_reachable() -> None:
    study = _study(
        "search = 'quasi_random'\ntrials = 8\nseed = 1\n"
        "space = { batch_size = { values = [8, 16, 32, 64, 128] }, "
        "'workload_options.act' = { values = ['relu', 'gelu', 'tanh'] } }\n"
    )
    got = trials(study)
    assert {t["batch_size"] for t in got} == {8, 16, 32, 64, 128}
    assert {t["workload_options.act"] for t in got} == {"relu", "gelu", "tanh"}
    specs = trial_specs(study)
    assert {s.workload_options["act"] for s in specs} == {"relu", "gelu", "tanh"}


def test_quasi_random_specs_are_valid_runspecs() -> None:
    specs = trial_specs(_study(QR.format(n=10, seed=0)))
    assert len(specs) == 10 and all(isinstance(s, RunSpec) for s in specs)
    assert all(isinstance(s.schedule.warmup_steps, int) for s in specs)


def test_trial_specs_error_names_the_trial_and_key() -> None:
    base = RunSpec()
    study = StudySpec(base, StudySection(search="list", list=[{"lr": 0.1}, {"lr": "x"}]))
    with pytest.raises(SpecError, match=r"t001.*optimizer\.lr"):
        trial_specs(study)
