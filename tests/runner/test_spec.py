"""runner.spec: loading, validation (errors name the key), TOML round trip, flatten,
overrides and command placeholders (DESIGN.md "The runner's spec")."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from runner import spec as S
from runner.spec import (
    OptimizerSpec,
    RunSpec,
    ScheduleSpec,
    SpecError,
    StudySpec,
    apply_overrides,
    flatten,
    format_placeholders,
    from_dict,
    load,
    loads,
    to_dict,
    to_toml,
)

FULL = """
workload = "tiny_transformer"
name = "run"
max_train_steps = 2000
batch_size = 64
seed = 0
device = "auto"
precision = "fp32"
compile = false
eval_every = 50
checkpoint_every = 500
clip_norm = 1.0

[optimizer]
name = "adam"
lr = 1e-3
beta1 = 0.9
beta2 = 0.98
eps = 1e-9

[schedule]
kind = "cosine"
warmup_steps = 100
post_warmup_steps = 200

[workload_options]
depth = 2
dropout = 0.1
act = "gelu"
sizes = [1, 2, 3]
inner = { a = 1, b = "x y" }
"""

STUDY = (
    FULL
    + """
[study]
name = "lr_sweep"
search = "grid"
grid = { "optimizer.lr" = [1e-4, 1e-3, 1e-2], batch_size = [32, 64] }
parallel = 2
"""
)


def _run(text: str) -> RunSpec:
    spec = loads(text)
    assert isinstance(spec, RunSpec)
    return spec


def _error(text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        loads(text)
    return info.value


# ------------------------------------------------------------------------------------------
# Loading


def test_full_spec_loads_with_every_field() -> None:
    spec = _run(FULL)
    assert spec.workload == "tiny_transformer"
    assert spec.command is None
    assert spec.clip_norm == 1.0 and isinstance(spec.clip_norm, float)
    assert spec.optimizer == OptimizerSpec(name="adam", lr=1e-3, beta1=0.9, beta2=0.98, eps=1e-9)
    assert spec.schedule == ScheduleSpec(kind="cosine", warmup_steps=100, post_warmup_steps=200)
    assert spec.workload_options["inner"] == {"a": 1, "b": "x y"}
    assert spec.total_steps == 100 + 200 + 2000


def test_defaults_and_int_accepted_for_float() -> None:
    spec = _run("[optimizer]\nlr = 1\n")
    assert spec.optimizer.lr == 1.0 and isinstance(spec.optimizer.lr, float)
    assert spec.workload == "digits_mlp"
    assert spec.clip_norm is None  # R22: absent means no clipping
    assert spec == RunSpec(optimizer=OptimizerSpec(lr=1.0))


def test_study_file_makes_studyspec_with_base(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(STUDY)
    spec = load(path)
    assert isinstance(spec, StudySpec)
    assert spec.base == _run(FULL)
    assert spec.study.name == "lr_sweep"
    assert spec.study.grid == {"optimizer.lr": [1e-4, 1e-3, 1e-2], "batch_size": [32, 64]}
    assert spec.study.parallel == 2


def test_command_instead_of_workload() -> None:
    spec = _run('command = ["python", "train.py", "--lr", "{optimizer.lr}"]\n')
    assert spec.workload is None
    assert spec.command == ["python", "train.py", "--lr", "{optimizer.lr}"]


# ------------------------------------------------------------------------------------------
# Errors name the key


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("max_train_step = 10\n", "max_train_step"),  # unknown top-level key
        ("[optimizer]\nbeta3 = 0.9\n", "optimizer.beta3"),  # unknown nested key
        ("[schedule]\nwarmup = 10\n", "schedule.warmup"),
        ("[study]\nsearch = 'grid'\ngrids = {}\n", "study.grids"),
        ("[bogus]\nx = 1\n", "bogus"),
        ('max_train_steps = "10"\n', "max_train_steps"),  # wrong type
        ("max_train_steps = 10.0\n", "max_train_steps"),
        ("batch_size = true\n", "batch_size"),
        ("compile = 1\n", "compile"),
        ('[optimizer]\nlr = "fast"\n', "optimizer.lr"),
        ("[optimizer]\nlr = true\n", "optimizer.lr"),
        ("[schedule]\nwarmup_steps = 1.5\n", "schedule.warmup_steps"),
        ("optimizer = 3\n", "optimizer"),
        ('command = "python train.py"\n', "command"),
        ("command = ['python', 3]\n", "command"),
        ('[optimizer]\nname = "adamax"\n', "optimizer.name"),  # bad enum values
        ('[schedule]\nkind = "step"\n', "schedule.kind"),
        ('device = "gpu"\n', "device"),
        ('device = "cuda:x"\n', "device"),
        ('precision = "fp8"\n', "precision"),
        ('[study]\nsearch = "random"\n', "study.search"),
        ("max_train_steps = -1\n", "max_train_steps"),  # negative steps
        ("[schedule]\nwarmup_steps = -5\n", "schedule.warmup_steps"),
        ("[schedule]\npost_warmup_steps = -5\n", "schedule.post_warmup_steps"),
        ("checkpoint_every = -1\n", "checkpoint_every"),
        ("eval_every = 0\n", "eval_every"),
        ("batch_size = 0\n", "batch_size"),
        ("clip_norm = 0.0\n", "clip_norm"),
        ("clip_norm = -1.0\n", "clip_norm"),
        ("[optimizer]\nlr = -0.1\n", "optimizer.lr"),
        ("[optimizer]\nlr = nan\n", "optimizer.lr"),
        ("[optimizer]\nbeta1 = 1.0\n", "optimizer.beta1"),
        ('name = "a/b"\n', "name"),
        ('workload = "x"\ncommand = ["python", "t.py"]\n', "command"),  # both given
        ('[optimizer]\nname = "sgd"\nbeta1 = 0.9\n', "optimizer.beta1"),  # does not apply
        ('[optimizer]\nname = "adam"\nmomentum = 0.9\n', "optimizer.momentum"),
    ],
)
def test_errors_name_the_key(text: str, key: str) -> None:
    err = _error(text)
    assert key in str(err)
    assert err.key == key


def test_errors_are_value_errors() -> None:
    assert issubclass(SpecError, ValueError)


def test_unknown_key_message_is_readable() -> None:
    assert str(_error("[optimizer]\nbeta3 = 0.9\n")) == "unknown key optimizer.beta3"


def test_invalid_toml_and_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="invalid TOML"):
        loads("x = = 1")
    with pytest.raises(SpecError, match=r"missing\.toml"):
        load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[optimizer]\nlr = 'x'\n")
    with pytest.raises(SpecError, match=r"bad\.toml.*optimizer\.lr"):
        load(bad)


@pytest.mark.parametrize(
    ("study", "key"),
    [
        ("search = 'grid'\n", "study.grid"),  # grid search without a grid
        ("search = 'grid'\ngrid = { 'optimizer.lrr' = [1] }\n", "optimizer.lrr"),
        ("search = 'grid'\ngrid = { 'optimizer.lr' = [] }\n", "study.grid.optimizer.lr"),
        ("search = 'grid'\ngrid = { 'optimizer.lr' = ['x'] }\n", "optimizer.lr"),
        ("search = 'grid'\ngrid = { batch_size = [1] }\nlist = [{}]\n", "study.list"),
        ("search = 'list'\n", "study.list"),
        ("search = 'list'\nlist = [{ 'schedule.warmup_steps' = -1 }]\n", "schedule.warmup_steps"),
        ("search = 'list'\nlist = [3]\n", "study.list[0]"),
        ("search = 'quasi_random'\n", "study.space"),
        (
            "search = 'quasi_random'\ntrials = 0\nspace = { lr = { values = [1] } }\n",
            "study.trials",
        ),
        (
            "search = 'quasi_random'\nspace = { lr = { min = 0.0, max = 1.0, scale = 'log' } }\n",
            "study.space.lr.min",
        ),
        (
            "search = 'quasi_random'\nspace = { lr = { min = 1e-3, max = 1.0, scale = 'ln' } }\n",
            "study.space.lr.scale",
        ),
        ("search = 'quasi_random'\nspace = { lr = { min = 1e-3 } }\n", "study.space.lr.max"),
        (
            "search = 'quasi_random'\nspace = { lr = { min = 1e-3, max = 1.0, step = 2 } }\n",
            "study.space.lr.step",
        ),
        ("search = 'quasi_random'\nspace = { bogus = { values = [1] } }\n", "bogus"),
        ("search = 'grid'\ngrid = { lr = [1e-3] }\nparallel = 0\n", "study.parallel"),
    ],
)
def test_study_errors_name_the_key(study: str, key: str) -> None:
    err = _error("[study]\n" + study)
    assert key in str(err)


# ------------------------------------------------------------------------------------------
# Round trip


@pytest.mark.parametrize("text", [FULL, STUDY, 'command = ["a b", "{lr}"]\n', ""])
def test_toml_round_trip(text: str) -> None:
    spec = loads(text)
    out = to_toml(spec)
    tomllib.loads(out)  # a valid TOML document
    assert loads(out) == spec
    assert from_dict(to_dict(spec)) == spec


@pytest.mark.parametrize(
    "study",
    [
        "search = 'list'\nlist = [{ 'schedule.warmup_steps' = 10, 'schedule.post_warmup_steps' "
        "= 20 }, { 'schedule.warmup_steps' = 100, 'schedule.post_warmup_steps' = 200 }]\n",
        "search = 'quasi_random'\ntrials = 7\nseed = 3\nspace = { 'optimizer.lr' = { min = 1e-4,"
        " max = 0.1, scale = 'log' }, 'optimizer.beta1' = { min = 0.8, max = 0.99 },"
        " batch_size = { values = [32, 64, 128] } }\n",
    ],
)
def test_study_round_trip(study: str) -> None:
    spec = loads(FULL + "[study]\n" + study)
    assert isinstance(spec, StudySpec)
    assert loads(to_toml(spec)) == spec


def test_round_trip_awkward_values() -> None:
    spec = RunSpec(
        name="a-b_c",
        clip_norm=1e-5,
        optimizer=OptimizerSpec(name="sgd", lr=1e16),
        workload_options={
            'quote"back\\slash': "tab\tnew\nline\x7f\x01 ü",
            "big": 1e300,
            "neg": -0.0,
            "empty": {},
            "list_of_tables": [{"a": 1}, {"b": [True, False]}],
        },
    )
    assert loads(to_toml(spec)) == spec


def test_to_dict_omits_none_and_keeps_layout() -> None:
    d = to_dict(RunSpec())
    assert "clip_norm" not in d and "command" not in d
    assert d["optimizer"] == {"name": "adam", "lr": 1e-3}
    assert d["schedule"] == {"kind": "cosine", "warmup_steps": 0, "post_warmup_steps": 0}
    c = to_dict(_run('command = ["x"]\n'))
    assert "workload" not in c and c["command"] == ["x"]


# ------------------------------------------------------------------------------------------
# flatten and overrides


def test_flatten() -> None:
    flat = flatten(_run(FULL))
    assert flat["optimizer.lr"] == 1e-3
    assert flat["optimizer.beta2"] == 0.98
    assert flat["schedule.warmup_steps"] == 100
    assert flat["schedule.post_warmup_steps"] == 200
    assert flat["schedule.kind"] == "cosine"
    assert flat["max_train_steps"] == 2000
    assert flat["batch_size"] == 64
    assert flat["clip_norm"] == 1.0
    assert flat["workload_options.depth"] == 2
    assert flat["workload_options.inner.b"] == "x y"
    assert "workload_options.sizes" not in flat  # not a scalar
    assert "optimizer.momentum" not in flat  # unset
    assert all(isinstance(v, (bool, int, float, str)) for v in flat.values())


def test_apply_overrides_dotted_and_aliases() -> None:
    base = _run(FULL)
    new = apply_overrides(
        base,
        {
            "lr": 0.1,
            "warmup_steps": 7,
            "batch_size": 8,
            "max_train_steps": 30,
            "clip_norm": 2,
            "schedule.post_warmup_steps": 14,
            "schedule.kind": "constant",
            "workload_options.depth": 4,
            "workload_options.new.deep": "x",
        },
    )
    assert new.optimizer.lr == 0.1
    assert new.schedule == ScheduleSpec(kind="constant", warmup_steps=7, post_warmup_steps=14)
    assert (new.batch_size, new.max_train_steps, new.clip_norm) == (8, 30, 2.0)
    assert new.workload_options["depth"] == 4
    assert new.workload_options["new"] == {"deep": "x"}
    assert base.optimizer.lr == 1e-3 and base.workload_options["depth"] == 2  # unchanged
    assert apply_overrides(base, {"learning_rate": 0.5}).optimizer.lr == 0.5
    assert apply_overrides(base, {"clip_norm": None}).clip_norm is None


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"optimizer.lrr": 1.0}, "optimizer.lrr"),
        ({"lr": "x"}, "optimizer.lr"),
        ({"schedule.kind": "step"}, "schedule.kind"),
        ({"max_train_steps": -1}, "max_train_steps"),
        ({"lr": 0.1, "optimizer.lr": 0.2}, "lr"),
        ({"batch_size.x": 1}, "batch_size.x"),
    ],
)
def test_apply_overrides_errors(overrides: dict[str, object], key: str) -> None:
    with pytest.raises(SpecError, match=key.replace(".", r"\.")):
        apply_overrides(_run(FULL), overrides)


def test_override_command_replaces_workload() -> None:
    new = apply_overrides(_run(FULL), {"command": ["python", "t.py"]})
    assert new.workload is None and new.command == ["python", "t.py"]


# ------------------------------------------------------------------------------------------
# Placeholders


def test_placeholders() -> None:
    spec = apply_overrides(_run(FULL), {"workload_options.act": "a b; rm -rf /"})
    argv = format_placeholders(
        [
            "python",
            "train.py",
            "--lr",
            "{optimizer.lr}",
            "--lr2={lr}",
            "--warmup",
            "{warmup_steps}",
            "{schedule.post_warmup_steps}",
            "{batch_size}",
            "{max_train_steps}",
            "{clip_norm}",
            "--act",
            "{workload_options.act}",
            "--out",
            "{run_dir}",
            "{compile}",
            '{"json": 1}',
        ],
        spec,
        "/tmp/runs/my run;x",
    )
    assert argv == [
        "python",
        "train.py",
        "--lr",
        "0.001",
        "--lr2=0.001",
        "--warmup",
        "100",
        "200",
        "64",
        "2000",
        "1.0",
        "--act",
        "a b; rm -rf /",  # one argument: never split, never a shell
        "--out",
        "/tmp/runs/my run;x",
        "false",
        '{"json": 1}',
    ]


def test_placeholder_values_reach_a_process_as_one_argument(tmp_path: Path) -> None:
    spec = apply_overrides(RunSpec(), {"workload_options.msg": "a b;echo hi"})
    argv = format_placeholders(
        [sys.executable, "-c", "import sys; print(sys.argv[1:])", "{workload_options.msg}"],
        spec,
        str(tmp_path),
    )
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['a b;echo hi']"


@pytest.mark.parametrize("template", ["{optimizer.lrr}", "--x={nope}", "{optimizer}"])
def test_unknown_placeholder_is_an_error(template: str) -> None:
    with pytest.raises(SpecError, match="placeholder"):
        format_placeholders(["python", template], RunSpec(), "/tmp/x")


def test_unset_placeholder_is_an_error() -> None:
    with pytest.raises(SpecError, match="clip_norm"):
        format_placeholders(["{clip_norm}"], RunSpec(), "/tmp/x")


# ------------------------------------------------------------------------------------------
# Misc


def test_optimizer_hparams_defaults() -> None:
    h = S.optimizer_hparams(OptimizerSpec(name="adam", lr=0.1, beta1=0.8))
    assert h == {"lr": 0.1, "beta1": 0.8, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0}
    assert S.optimizer_hparams(OptimizerSpec(name="sgd", lr=0.1)) == {
        "lr": 0.1,
        "weight_decay": 0.0,
    }


def test_key_type() -> None:
    assert S.key_type("lr") is float
    assert S.key_type("schedule.warmup_steps") is int
    assert S.key_type("batch_size") is int
    assert S.key_type("workload_options.x") is None
    with pytest.raises(SpecError, match=r"optimizer\.foo"):
        S.key_type("optimizer.foo")


def test_spec_module_imports_no_torch() -> None:
    code = "import sys, runner.spec, runner.schedule; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_design_examples_load() -> None:
    """The spec block of DESIGN.md and the `tunetop plan --json` spec example are valid."""
    design = """
workload = "tiny_transformer"
name = "run"
max_train_steps = 2000
batch_size = 64
seed = 0
device = "auto"
precision = "fp32"
compile = false
eval_every = 50
checkpoint_every = 500
clip_norm = 1.0

[optimizer]
name = "adam"
lr = 1e-3

[schedule]
kind = "cosine"
warmup_steps = 0
post_warmup_steps = 0

[workload_options]

[study]
name = "lr_sweep"
search = "grid"
grid = { "optimizer.lr" = [1e-4, 1e-3, 1e-2] }
parallel = 1
"""
    study = loads(design)
    assert isinstance(study, StudySpec) and study.study.grid["optimizer.lr"][2] == 1e-2
    plan = {
        "workload": "tiny_transformer",
        "optimizer": {"name": "sgd", "lr": 10.0},
        "schedule": {"kind": "constant"},
        "study": {
            "name": "warmup",
            "search": "list",
            "list": [
                {"schedule.warmup_steps": 10, "schedule.post_warmup_steps": 20},
                {"schedule.warmup_steps": 100, "schedule.post_warmup_steps": 200},
            ],
        },
    }
    spec = from_dict(plan)
    assert isinstance(spec, StudySpec)
    assert spec.base.optimizer == OptimizerSpec(name="sgd", lr=10.0)
    assert spec.study.list[1]["schedule.post_warmup_steps"] == 200
    assert loads(to_toml(spec)) == spec


def test_numpy_scalars_are_accepted_and_written_as_plain_toml() -> None:
    import numpy as np

    spec = apply_overrides(
        RunSpec(),
        {
            "lr": np.float64(0.01),
            "batch_size": np.int64(32),
            "workload_options.w": np.float32(0.5),
            "workload_options.k": np.int32(3),
        },
    )
    assert type(spec.optimizer.lr) is float and type(spec.batch_size) is int
    text = to_toml(spec)
    assert "np." not in text
    assert loads(text) == spec
    flat = flatten(spec)
    assert type(flat["workload_options.w"]) is float and type(flat["workload_options.k"]) is int
    with pytest.raises(SpecError, match="batch_size"):
        apply_overrides(RunSpec(), {"batch_size": np.float64(32.0)})
    with pytest.raises(SpecError, match="compile"):
        apply_overrides(RunSpec(), {"compile": np.int64(1)})
