"""What a plan will run, shown before it runs (issue 14 item 2).

The exact argv of the study process and of every trial, the interpreter, the working folder,
the environment changes and the output folder, for `tunetop plan` (text and `--json`) and the
plan modal. Marked when the command or workload comes from a file in the watched tree.

Nothing is re-derived here that the launching code computes: the study's argv is the
Supervisor's `launch_argv`, its working folder the Supervisor's (the private state folder) and its
environment runner/child.py's `clean_env`; each trial's argv, working folder and environment come
from runner/study.py's `child_of` (a private spec file stands in as SPEC_FILE's trial twin), its
spec from runner/search.py's `trial_specs` (the runner's own `apply_overrides`), an external
command from runner/spec.py's `format_placeholders`.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner import spec as rspec
from runner.rundir import safe_name
from tui.remedy.plan import Plan, device_for_trials
from tui.sanitize import clean

STAMP = "<YYYYmmdd-HHMMSS>"  # the study folder's timestamp, known only at launch
SPEC_FILE = "<state folder>/<job id>.toml"  # the Supervisor writes the spec there at launch
TRIAL_SPEC_FILE = "<state folder>/trials/<random>.toml"  # each trial's private spec (state.py)
FROM_TREE = "COMMAND FROM A FILE IN THE WATCHED TREE"


@dataclass(frozen=True)
class TrialLaunch:
    name: str  # t000
    device: str  # cpu, cuda:0
    argv: list[str]  # the process the study starts for this trial
    command: list[str] | None  # the external command that trial runs (spec.command), filled in
    env: dict[str, str] = field(default_factory=dict)  # changes for this trial only


@dataclass(frozen=True)
class Launch:
    interpreter: str
    cwd: str
    env: dict[str, str]  # changes to tunetop's own environment, for every child
    out: str
    study_dir: str
    argv: list[str]  # the study process
    trials: list[TrialLaunch]
    workload: str | None  # what the trials import and train, when no command
    source: dict[str, Any] | None  # the file that decided the command or workload
    from_tree: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "interpreter": self.interpreter,
            "cwd": self.cwd,
            "env": dict(self.env),
            "out": self.out,
            "study_dir": self.study_dir,
            "argv": list(self.argv),
            "workload": self.workload,
            "trials": [
                {
                    "name": t.name,
                    "device": t.device,
                    "argv": list(t.argv),
                    "command": None if t.command is None else list(t.command),
                    "env": dict(t.env),
                }
                for t in self.trials
            ],
            "source": self.source,
            "from_tree": self.from_tree,
        }

    def lines(self) -> list[str]:
        """The block as a person reads it: one line each, every string sanitised."""
        out: list[str] = []
        if self.from_tree and self.source is not None:
            out.append(f"{FROM_TREE}: {clean(self.source.get('path'), 300)}")
            out.append(
                f"  ({clean(self.source.get('what'), 40)}; {clean(self.source.get('trust'), 400)})"
            )
        elif self.source is not None:
            out.append(
                f"command from {clean(self.source.get('path'), 300)} "
                f"({clean(self.source.get('what'), 40)})"
            )
        out.append(f"interpreter  {clean(self.interpreter, 300)}")
        out.append(f"cwd          {clean(self.cwd, 300)}")
        env = " ".join(f"{k}={v}" for k, v in self.env.items())
        out.append(f"env          {clean(env, 300)} (the rest: tunetop's own environment)")
        out.append(f"out          {clean(self.out, 300)} -> {clean(self.study_dir, 300)}/")
        out.append(f"study        {clean(shlex.join(self.argv), 600)}")
        if self.workload is not None:
            kind = " (built in)" if ":" not in self.workload else " (code it imports)"
            out.append(f"workload     {clean(self.workload, 200)}{kind}")
        for t in self.trials:
            env_t = " ".join(f"{k}={v}" for k, v in t.env.items())
            extra = f"  [{clean(env_t, 100)}]" if env_t else ""
            out.append(f"{t.name} [{t.device}]{extra}  {clean(shlex.join(t.argv), 600)}")
            if t.command is not None:
                out.append(f"  runs       {clean(shlex.join(t.command), 600)}")
        return out


def interpreter() -> str:
    """The interpreter the Supervisor starts the study with."""
    from tui.remedy.supervise import Supervisor

    return Supervisor().python


def child_cwd() -> str:
    """The working folder the study gets: the Supervisor's default, the private state folder
    (runner/child.py: never the user's cwd, where a runner.py may have been planted)."""
    from runner.state import state_root

    return str(state_root() / "jobs")  # state.jobs_dir() without making it: a plan writes nothing


def launch_dir() -> str:
    """The folder tunetop was started in: the child is told it (LAUNCH_DIR_ENV) so that a
    relative path in the user's own command still means what the user meant."""
    return os.getcwd()


def env_changes() -> dict[str, str]:
    """What the Supervisor changes in the study's environment (runner/child.py `clean_env`),
    removed variables shown as `(unset)`."""
    from runner.child import LAUNCH_DIR_ENV, Child, clean_env

    child = Child([], Path("."), clean_env(extra={LAUNCH_DIR_ENV: launch_dir()}))
    return {k: ("(unset)" if v is None else v) for k, v in sorted(child.env_changes().items())}


def study_argv(plan: Plan, python: str, out: str) -> list[str]:
    """The study process, exactly as the Supervisor starts it (supervise.launch_argv)."""
    from tui.remedy.supervise import launch_argv

    return launch_argv(Path(SPEC_FILE), Path(out), plan.kind, remedy_source(plan), python)


def remedy_source(plan: Plan) -> str:
    return str(plan.remedy.get("baseline") or plan.remedy.get("source", ""))


def _cuda_env(spec: rspec.RunSpec, device: str) -> dict[str, str]:
    """runner/study.py gives each trial its GPU through CUDA_VISIBLE_DEVICES when the spec may
    use CUDA (device auto or cuda); a pinned device keeps the parent's."""
    if not device.startswith("cuda:") or spec.device == "cpu" or spec.device.startswith("cuda:"):
        return {}
    index = int(device.split(":", 1)[1])
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [v for v in visible.split(",") if v.strip()] if visible is not None else []
    return {"CUDA_VISIBLE_DEVICES": ids[index] if index < len(ids) else str(index)}


def preview(plan: Plan, python: str | None = None) -> Launch | None:
    """What launching `plan` runs, or None when the plan has no spec to run."""
    if plan.spec is None:
        return None
    from runner import search, study  # the runner's own argv and trial specs

    python = python or interpreter()
    out = os.path.abspath(plan.out)
    study_dir = Path(out) / f"{safe_name(plan.spec.study.name)}-{STAMP}"
    try:
        specs = search.trial_specs(plan.spec)
    except rspec.SpecError:
        specs = []
    remedy = {"kind": plan.kind, "source": remedy_source(plan)}
    trials = []
    for i, (spec, device) in enumerate(zip(specs, device_for_trials(len(specs)), strict=True)):
        trial_dir = study_dir / f"t{i:03d}"
        command = None
        env = _cuda_env(spec, device)
        if spec.command is not None:  # as runner/study.py run_command builds it
            try:
                cmd = study.command_child(spec, trial_dir, Path(launch_dir()))
                command = cmd.argv
                env["TUNETOP_RUN_DIR"] = cmd.env["TUNETOP_RUN_DIR"]
            except rspec.SpecError as exc:
                command = [f"<cannot be filled in: {exc}>"]
        child = study.child_of(trial_dir, 1, remedy, spec_file=Path(TRIAL_SPEC_FILE))
        # child_of makes the spec path absolute; the placeholder is shown as it stands
        argv = [TRIAL_SPEC_FILE if a == os.path.abspath(TRIAL_SPEC_FILE) else a for a in child.argv]
        trials.append(TrialLaunch(f"t{i:03d}", device, argv, command, env))
    base = plan.spec.base
    source = plan.source
    return Launch(
        interpreter=python,
        cwd=child_cwd(),
        env=env_changes(),
        out=out,
        study_dir=str(study_dir),
        argv=study_argv(plan, python, out),
        trials=trials,
        workload=None if base.command is not None else base.workload,
        source=source,
        from_tree=bool(source and source.get("in_tree")),
    )
