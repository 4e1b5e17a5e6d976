"""Remediation plans: the study a key (or `tunetop plan KIND TARGET`) would launch.

Every plan is a study spec exactly as the runner is given it (DESIGN.md "tunetop plan --json"):
a warmup sweep (R18, R19), warmup applied to the baseline (R20, R21), a clipping study (R22-R24),
an early-instability probe (R15), a steps-to-fit sweep (R4) or a longer round (R6). Where the
relaunch source is unknown, the spec holds what is known and `missing` says what is needed.

What gets relaunched: runs made by the runner, from their run.json's resolved spec; runs from
other tools, through the launch template of a `tunetop.toml` (`[launch] command`). Nothing read
from a log is executed: a template value becomes one argv element, never shell text.

Trust (tui/trust.py has the model): run.json's `spec.command`, a `file.py:fn` or `pkg.module:fn`
workload (importing a module runs it) and a `[launch] command` decide what runs, so they are
used only when the file they come from passes the trust check; otherwise the plan still computes
everything and `missing` says why it cannot launch and how to trust it. Only a built-in
workload name is safe from an untrusted run.json. The same check picks a study's baseline: an
untrusted trial never becomes it, and warmup-apply follows `remedy.baseline` only inside the
root and only from a trusted trial. `tunetop plan --trust` trusts the root's files for one plan.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from runner import spec as rspec
from tui import trust
from tui.config import load_config
from tui.diagnose.findings import Finding
from tui.logs.model import Run, Study
from tui.logs.workspace import Workspace

KINDS = ("warmup", "warmup-apply", "clip", "probe", "fit", "extend")

# R19: warmup trials over orders of magnitude, the largest at most this share of max_train_steps
WARMUP_MAX_SHARE = 0.10
# R21: a chosen warmup longer than this share says max_train_steps probably needs increasing
WARMUP_LONG_SHARE = 0.05
PROBE_STEPS = 500  # R15: "about 500 steps"
UNSTABLE_KINDS = ("divergence", "unstable_training")

NO_SOURCE = (
    "a relaunch source: a run made by the runner (run.json), or a [launch] command "
    "template in tunetop.toml"
)


@dataclass
class Plan:
    kind: str
    target: str
    computed: dict[str, Any] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    out: str = ""
    spec: rspec.StudySpec | None = None
    partial: dict[str, Any] = field(default_factory=dict)  # what is known when spec is None
    notes: list[str] = field(default_factory=list)  # one line each: why these values
    remedy: dict[str, Any] = field(default_factory=dict)  # goes into each trial's run.json
    root: str = ""  # the watched root: the trust check climbs to it, the baseline stays in it
    trusted_by_flag: bool = False  # `tunetop plan --trust`
    # where what runs comes from, when a file decides it: {"path", "what", "in_tree", "trust"}
    source: dict[str, Any] | None = None
    refusals: list[str] = field(default_factory=list)  # trust lines (also in missing)
    allow: tuple[str, ...] = ()  # [trust] roots of the user's own tunetop.toml

    @property
    def launchable(self) -> bool:
        return self.spec is not None and not self.missing

    @property
    def policy(self) -> trust.Policy:
        return trust.Policy(Path(self.root), self.allow, self.trusted_by_flag)

    def refuse(self, line: str) -> None:
        """A trust refusal: the plan is computed in full, but cannot be launched."""
        if line not in self.refusals:
            self.refusals.append(line)
        if line not in self.missing:
            self.missing.append(line)

    def spec_dict(self) -> dict[str, Any]:
        return rspec.to_dict(self.spec) if self.spec is not None else dict(self.partial)

    def trials(self) -> list[dict[str, Any]]:
        d = self.spec_dict().get("study", {})
        return list(d.get("list", []))

    def to_json(self) -> dict[str, Any]:
        plan = {
            "kind": self.kind,
            "target": self.target,
            "computed": self.computed,
            "missing": list(self.missing),
            "out": self.out,
        }
        if self.notes:
            plan["notes"] = list(self.notes)
        from tui.remedy.preview import preview  # what will run, shown before it runs

        shown = preview(self)
        plan["launch"] = shown.to_json() if shown is not None else None
        return {"plan": plan, "spec": self.spec_dict()}


# -- what the target is ----------------------------------------------------------------------


@dataclass
class Target:
    """A run or study folder, read once and diagnosed."""

    path: Path
    runs: list[Run]
    study: Study | None
    findings: dict[str, list[Finding]]
    best_run: str | None
    infeasible: list[str]


def load_target(path: Path) -> Target:
    from tui.check import analyse

    ws = Workspace([path], load_config(path if path.is_dir() else path.parent))
    ws.refresh()
    ws.close()
    runs_rep, studies_rep = analyse(ws)
    findings = {r.run.id: r.findings for r in runs_rep}
    runs = [r.run for r in runs_rep]
    # the target is a study when it directly holds two or more runs
    study_rep = next((s for s in studies_rep if s.study.id == "."), None)
    if study_rep is not None:
        return Target(
            path,
            study_rep.study.runs,
            study_rep.study,
            findings,
            study_rep.best_run,
            study_rep.infeasible_runs,
        )
    if len(runs) == 1:
        return Target(path, runs, None, findings, runs[0].id, [])
    if not runs:
        return Target(path, [], None, findings, None, [])
    # a folder of several unrelated runs: judge by the best of the whole
    return Target(path, runs, None, findings, None, [])


def run_lr(run: Run) -> float | None:
    for key in ("lr",):
        v = run.hparams.get(key)
        if isinstance(v, int | float) and not isinstance(v, bool) and v > 0:
            return float(v)
    if run.run_json and isinstance(run.run_json.get("spec"), dict):
        v = run.run_json["spec"].get("optimizer", {}).get("lr")
        if isinstance(v, int | float) and v > 0:
            return float(v)
    if run.store.has("lr"):
        s = run.store.series("lr").values
        s = s[np.isfinite(s)]
        if s.size:
            # the peak rate; the store keeps float32, whose shortest repr is what was logged
            return float(str(np.float32(s.max())))
    return None


def _name(run: Run) -> str:
    """A run as a person names it: its id, or its folder's name when it is the target itself."""
    return run.path.name if run.id in (".", "") else run.id


def is_unstable(run: Run, findings: list[Finding]) -> bool:
    return any(f.kind in UNSTABLE_KINDS for f in findings)


# -- relaunch source -------------------------------------------------------------------------


def decides(spec: rspec.RunSpec) -> str | None:
    """What of `spec` decides which code runs: "spec.command", "spec.workload" (a file path or
    a module path: importing runs it), or None for a built-in workload name."""
    if spec.command is not None:
        return "spec.command"
    if spec.workload is not None and ":" in spec.workload:
        return "spec.workload"
    return None  # the runner resolves a name without ':' only among its built-ins


def run_verdict(run: Run, p: Plan) -> trust.Verdict:
    """The trust check of a run: of its run.json, or (without one) of its folder."""
    rj = run.path / "run.json"
    return trust.check(rj if os.path.lexists(rj) else run.path, p.policy)


def base_spec(run: Run, p: Plan) -> tuple[rspec.RunSpec | None, list[str], dict[str, Any]]:
    """The spec that reruns `run` as it was: (spec, missing, known values). What decides the
    code that runs (a command, a workload path, a launch template) is recorded in `p.source`
    and refused (`p.refuse`) when the file it comes from fails the trust check."""
    rj = run.path / "run.json"
    if run.run_json and isinstance(run.run_json.get("spec"), dict):
        if os.path.islink(rj):  # the readers should not have followed it; never a source
            return None, [f"{rj}: a symbolic link, not followed: no relaunch source"], {}
        try:
            spec = rspec.from_dict(run.run_json["spec"])
        except rspec.SpecError as exc:
            return None, [f"a usable spec in {rj}: {exc}"], {}
        if isinstance(spec, rspec.StudySpec):
            spec = spec.base
        what = decides(spec)
        if what is not None:
            verdict = trust.check(rj, p.policy)
            p.source = {"path": str(rj), "what": what, "in_tree": True, "trust": verdict.says(what)}
            if not verdict.trusted:
                p.refuse(verdict.says(what))
        return spec, [], rspec.to_dict(spec)
    known: dict[str, Any] = {"name": _safe_name(run.path.name)}
    lr = run_lr(run)
    if lr is not None:
        known["optimizer"] = {"lr": lr}
    steps = run.hparams.get("max_train_steps") or run.total_steps
    if isinstance(steps, int) and steps > 0:
        known["max_train_steps"] = steps
    for key in ("batch_size", "seed", "clip_norm"):
        v = run.hparams.get(key)
        if isinstance(v, int | float) and not isinstance(v, bool):
            known[key] = v
    warm = run.hparams.get("warmup_steps")
    known["schedule"] = {
        "kind": "constant",
        "warmup_steps": int(warm)
        if isinstance(warm, int | float) and not isinstance(warm, bool)
        else 0,
    }
    cfg = load_config(
        run.path.parent, run.path, trust_root=Path(p.root), force_trust=p.trusted_by_flag
    )
    template = cfg.launch_command
    if template is None and cfg.refused_command is not None and cfg.launch_refused:
        # only an untrusted template: the plan is computed with it, shown, and refused
        template = cfg.refused_command
        p.refuse(cfg.launch_refused)
        p.source = {
            "path": cfg.refused_source,
            "what": "[launch] command",
            "in_tree": True,
            "trust": cfg.launch_refused,
        }
    elif template is not None:
        if cfg.launch_refused:  # a planted template did not replace the user's own
            p.notes.append(f"{cfg.launch_refused} (yours is used)")
        p.source = {
            "path": cfg.launch_source,
            "what": "[launch] command",
            "in_tree": cfg.launch_in_tree,
            "trust": "from your own config folder"
            if not cfg.launch_in_tree
            else trust.check(str(cfg.launch_source), p.policy).says("[launch] command"),
        }
    if template is None:
        return None, [NO_SOURCE], known
    known["command"] = list(template)
    known.pop("workload", None)
    try:
        spec = rspec.from_dict(known)
    except rspec.SpecError as exc:
        return None, [f"values for the launch template: {exc}"], known
    assert isinstance(spec, rspec.RunSpec)
    # the template's values this run does not tell; _finish accepts them only where the
    # plan's trials set them (a spec default must never stand in for the user's value)
    unknown = _template_unknown(list(template), known)
    return spec, [UNKNOWN_PREFIX + k for k in unknown], known


UNKNOWN_PREFIX = "template value: "


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")


def _template_unknown(template: list[str], known: dict[str, Any]) -> list[str]:
    """Dotted keys the template's placeholders need that this run does not tell."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, d: dict[str, Any]) -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                walk(f"{prefix}{k}.", v)
            else:
                flat[f"{prefix}{k}"] = v

    walk("", known)
    unknown = []
    for part in template:
        for name in _PLACEHOLDER.findall(part):
            key = rspec.canonical_key(name)
            if name != "run_dir" and key not in flat and key not in unknown:
                unknown.append(key)
    return unknown


def _safe_name(name: str) -> str:
    """A folder-name stem from a run name: no separators, no `..`, nothing a shell reads, and
    no leading `-` (a `{name}` placeholder must never become an option)."""
    stem = re.sub(r"[^A-Za-z0-9._=-]+", "_", name).strip("._-") or "run"
    return stem[:60]


def default_out(target: Path) -> Path:
    """New study folders go beside the target, so the watched tree shows them. The target is
    not resolved: a symbolic link to a run elsewhere must not take the new study out of the
    tree (the link's own folder is the one watched)."""
    return Path(os.path.normpath(os.path.abspath(target))).parent


def plan_root(target: Path, root: Path | str | None) -> Path:
    """The watched root a plan's trust checks climb to: `root` when the target is inside it,
    else the target's folder (`tunetop plan` on a folder: its siblings, where the default
    output goes and where a warmup study's baseline lies)."""
    t = Path(os.path.normpath(os.path.abspath(target)))
    if root is not None:
        r = Path(os.path.normpath(os.path.abspath(root)))
        if t != r and t.is_relative_to(r):
            return r
    return t.parent


# a value a program reads as an option: `-x`, `--x`, but not a negative number
_OPTION = re.compile(r"^-(?![0-9.])")


def option_like(template: list[str], argv: list[str]) -> str | None:
    """Where a placeholder's value turned a template element into an option (`{name}` of a
    folder named `--exec=...`): one line, or None."""
    for part, value in zip(template, argv, strict=True):
        if _PLACEHOLDER.search(part) and not _OPTION.match(part) and _OPTION.match(value):
            return (
                f"{part!r} becomes {value!r}, which the program would read as an option: "
                "rename what it comes from (a value must not start with '-')"
            )
    return None


# -- the plans -------------------------------------------------------------------------------


def plan(
    kind: str,
    target: Path | str,
    out: Path | str | None = None,
    factor: float = 10.0,
    *,
    root: Path | str | None = None,
    trust_files: bool = False,
) -> Plan:
    """The plan of `kind` for `target`. `root`: the watched root it lies in (the app's; the
    target's folder by default); `trust_files`: `tunetop plan --trust`."""
    target = Path(target)
    if kind not in KINDS:
        raise ValueError(f"unknown plan kind {kind!r}; one of {', '.join(KINDS)}")
    # absolute: a folder named `--x` given as `--out --x` never reaches the runner as an option
    chosen = os.path.abspath(out) if out else default_out(target)
    p = Plan(kind, str(target), out=str(chosen))
    p.root = str(plan_root(target, root))
    p.trusted_by_flag = trust_files
    p.allow = load_config().trust_roots  # the allowlist: the user's own file only
    if trust_files:
        p.notes.append(
            f"--trust: the files under {p.root} may decide what runs, for this plan only "
            "(their owners and modes are not checked)"
        )
    if not target.exists():
        p.missing.append(f"{target}: no such run or study folder")
        return p
    t = load_target(target)
    if not t.runs:
        p.missing.append(
            f"{target}: no run found (no metrics.jsonl, metrics.csv, event "
            "file or trainer_state.json)"
        )
        return p
    if kind == "warmup":
        _plan_warmup(p, t, factor)
    else:
        _BUILDERS[kind](p, t)
    return p


def _finish(
    p: Plan,
    baseline: Run,
    base: rspec.RunSpec | None,
    known: dict[str, Any],
    missing: list[str],
    trials: list[dict[str, Any]],
    name: str,
    base_overrides: dict[str, Any],
) -> None:
    """Turn a baseline and the trials into the plan's spec (or its partial form)."""
    set_by_plan = {rspec.canonical_key(k) for k in base_overrides}
    if trials:
        set_by_plan |= set.intersection(*({rspec.canonical_key(k) for k in t} for t in trials))
    for m in missing:
        if m.startswith(UNKNOWN_PREFIX):
            key = m[len(UNKNOWN_PREFIX) :]
            if key in set_by_plan:
                continue
            m = f"{key}: the launch template needs it and the run does not tell it"
        if m not in p.missing:
            p.missing.append(m)
    # the runner records it in each trial's run.json as {"kind", "source"}: the source is the
    # run the remedy is for (for a study target, its unstable or best trial)
    source = str(baseline.path.resolve())
    p.remedy = {
        "kind": p.kind,
        "source": source,
        "target": str(Path(p.target).resolve()),
        "baseline": source,
    }
    study = {"name": name, "search": "list", "list": trials}
    # a trust refusal still builds the spec (it is shown, marked, with what would run); every
    # other missing thing leaves only the partial form
    blocking = [m for m in p.missing if m not in p.refusals]
    if base is None or blocking:
        partial = dict(known)
        for key, value in base_overrides.items():
            _set_dotted(partial, key, value)
        partial["study"] = study
        p.partial = partial
        return
    try:
        run = rspec.apply_overrides(base, base_overrides) if base_overrides else base
        spec = rspec.from_dict({**rspec.to_dict(run), "study": study})
        if run.command is not None:  # every trial's command can be filled in
            for i, trial in enumerate(trials or [{}]):
                argv = rspec.format_placeholders(
                    run.command, rspec.apply_overrides(run, trial), "/RUN_DIR"
                )
                wrong = option_like(run.command, argv)
                if wrong:
                    p.missing.append(f"trial t{i:03d}: {wrong}")
                    p.partial = {**known, "study": study}
                    return
    except rspec.SpecError as exc:
        p.missing.append(f"a valid spec: {exc}")
        p.partial = {**known, "study": study}
        return
    assert isinstance(spec, rspec.StudySpec)
    p.spec = spec


def _set_dotted(d: dict[str, Any], key: str, value: Any) -> None:
    key = rspec.canonical_key(key)
    parts = key.split(".")
    node = d
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    if value is None:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value


def _max_train_steps(run: Run, base: rspec.RunSpec | None, known: dict[str, Any]) -> int:
    if base is not None:
        return base.max_train_steps
    v = known.get("max_train_steps") or run.hparams.get("max_train_steps") or run.total_steps
    return int(v) if isinstance(v, int | float) else 0


def warmup_lengths(max_train_steps: int, share: float = WARMUP_MAX_SHARE) -> list[int]:
    """R19: 10, 100, 1,000, ... kept at or below `share` of max_train_steps."""
    out = []
    w = 10
    while w <= share * max_train_steps:
        out.append(w)
        w *= 10
    return out


def _plan_warmup(p: Plan, t: Target, factor: float) -> None:
    """R18/R19: sweep warmup_steps at base_learning_rate = factor x the unstable rate."""
    unstable = [
        r
        for r in t.runs
        if (r.id in t.infeasible or is_unstable(r, t.findings.get(r.id, [])))
        and run_lr(r) is not None
    ]
    if not unstable:
        p.missing.append(
            "an unstable run: no trial of this target diverged or trended up after a decline "
            "(R12); warmup is for runs that are unstable"
        )
        return
    if len(t.runs) > 1:  # a planted trial with the smallest diverging rate must not be chosen
        unstable = _trusted_trials(p, unstable)
        if not unstable:
            return
    baseline = min(unstable, key=lambda r: run_lr(r) or math.inf)
    unstable_lr = run_lr(baseline)
    assert unstable_lr is not None
    base_lr = factor * unstable_lr
    base, missing, known = base_spec(baseline, p)
    steps = _max_train_steps(baseline, base, known)
    lengths = warmup_lengths(steps)
    p.computed = {
        "unstable_lr": unstable_lr,
        "base_lr": base_lr,
        "factor": factor,
        "max_train_steps": steps,
        "warmup_steps": lengths,
        "baseline": _name(baseline),
    }
    if not lengths:
        p.missing.append(
            f"max_train_steps >= 100 (it is {steps}): the shortest warmup tried, "
            "10 steps, must stay within 10% of it (R19)"
        )
    p.notes.append(
        f"R18: base_learning_rate {base_lr:g} = {factor:g} x unstable rate {unstable_lr:g} "
        f"(run {_name(baseline)}); each trial ramps 0 -> {base_lr:g} over W steps, then holds it "
        "2W steps"
    )
    if factor == 1:
        p.notes.append(
            "factor 1: warmup at the unstable rate itself, R17's remedy for that run; R18's "
            "default, 10x, asks whether warmup buys a faster rate"
        )
    trials = [{"schedule.warmup_steps": w, "schedule.post_warmup_steps": 2 * w} for w in lengths]
    _finish(
        p,
        baseline,
        base,
        known,
        missing,
        trials,
        "warmup",
        {
            "optimizer.lr": base_lr,
            "schedule.kind": "constant",
            "max_train_steps": 0,
            "schedule.warmup_steps": 0,
            "schedule.post_warmup_steps": 0,
        },
    )


def collapsed(run: Run, blowup: float = 5.0) -> tuple[bool, str]:
    """A warmup trial collapsed when its training loss became non-finite, rose above
    `blowup` x its first value, or ended no lower than it started (no progress at the held
    rate). Returns (collapsed, why)."""
    s = run.store.series("loss")
    v = s.values.astype(np.float64)
    if v.size < 2:
        return True, "no training loss logged"
    if not np.all(np.isfinite(v)):
        i = int(np.flatnonzero(~np.isfinite(v))[0])
        return True, f"loss non-finite at step {int(s.steps[i])}"
    first = float(v[0])
    if first > 0 and float(v.max()) > blowup * first:
        i = int(np.argmax(v > blowup * first))
        return (
            True,
            f"loss {float(v[i]):.4g} > {blowup:g}x first {first:.4g} at step {int(s.steps[i])}",
        )
    tail = v[-max(1, v.size // 10) :]
    if float(np.mean(tail)) >= first:
        return True, f"final loss {float(np.mean(tail)):.4g} not below first {first:.4g}"
    return False, f"final loss {float(np.mean(tail)):.4g} from {first:.4g}"


def _warmup_of(run: Run) -> int | None:
    spec = (run.run_json or {}).get("spec") or {}
    w = spec.get("schedule", {}).get("warmup_steps")
    if isinstance(w, int):
        return w
    v = run.hparams.get("warmup_steps")
    return int(v) if isinstance(v, int | float) else None


def _plan_warmup_apply(p: Plan, t: Target) -> None:
    """R19-R21: the shortest warmup whose trial did not collapse, prepended to the baseline at
    base_learning_rate, beside a rerun of the baseline; compared by retrospective best (R1)."""
    trials = [r for r in t.runs if (r.remedy or {}).get("kind") == "warmup"]
    if not trials:
        p.missing.append("a finished warmup study (made by `tunetop plan warmup --launch` or w)")
        return
    running = [r.id for r in trials if r.status in (None, "running")]
    if running:
        p.missing.append(f"the warmup study to finish ({len(running)} trial(s) still running)")
    verdicts = []
    for r in sorted(trials, key=lambda r: _warmup_of(r) or 0):
        bad, why = collapsed(r)
        verdicts.append({"run": r.id, "warmup_steps": _warmup_of(r), "collapsed": bad, "why": why})
    p.computed["trials"] = verdicts
    p.notes.append(
        "collapse = training loss non-finite, above 5x its first value, or ending "
        "no lower than it started"
    )
    good = [v for v in verdicts if not v["collapsed"] and v["warmup_steps"] is not None]
    # the baseline is named by a trial's run.json: only a trusted trial may name it
    named_by = _trusted_trials(p, trials)
    first = named_by[0] if named_by else trials[0]
    remedy = first.remedy or {}
    baseline_path = Path(remedy.get("baseline") or remedy.get("source") or "")
    base_lr = (first.run_json or {}).get("spec", {}).get("optimizer", {}).get("lr")
    p.computed["base_lr"] = base_lr
    if not good:
        p.missing.append(
            "a warmup that did not collapse: every trial collapsed; try the "
            "next power of ten, or a smaller base_learning_rate (R19)"
        )
        return
    chosen = int(good[0]["warmup_steps"])
    p.computed["warmup_steps"] = chosen
    if not named_by:
        return
    if not (trust.within(baseline_path, p.root) and trust.within_real(baseline_path, p.root)):
        p.missing.append(
            f"the baseline run {baseline_path} (named in run.json's remedy): outside the "
            f"watched root {p.root}, not followed"
        )
        return
    if not baseline_path.is_dir():
        p.missing.append(f"the baseline run {baseline_path} (named in run.json's remedy)")
        return
    bt = load_target(baseline_path)
    baseline = bt.runs[0] if len(bt.runs) == 1 else None
    if baseline is None:
        p.missing.append(f"the baseline run {baseline_path}: not a single run")
        return
    verdict = run_verdict(baseline, p)
    if not verdict.trusted:
        p.refuse(f"a trusted baseline: {verdict.says('baseline run')}")
    base, missing, known = base_spec(baseline, p)
    steps = _max_train_steps(baseline, base, known)
    p.computed.update(
        {"max_train_steps": steps, "total_steps": steps + chosen, "baseline": str(baseline_path)}
    )
    share = chosen / steps if steps else math.inf
    if share > WARMUP_LONG_SHARE:
        p.notes.append(
            f"warmup_too_long R21: stable training needs {chosen} warmup steps, {share:.0%} "
            "of max_train_steps (> 5%): max_train_steps probably needs increasing"
        )
    old_lr = run_lr(baseline)
    old_warm = base.schedule.warmup_steps if base else 0
    trials_spec = [
        {
            "optimizer.lr": old_lr,
            "schedule.warmup_steps": old_warm,
            "schedule.post_warmup_steps": 0,
        },
        {"optimizer.lr": base_lr, "schedule.warmup_steps": chosen, "schedule.post_warmup_steps": 0},
    ]
    p.notes.append(
        f"R20: {chosen} + {steps} = {chosen + steps} steps; trial 0 reruns the "
        "baseline for comparison by retrospective best (R1)"
    )
    _finish(p, baseline, base, known, missing, trials_spec, "warmup-apply", {})


def clip_thresholds(grad_norms: np.ndarray) -> tuple[float, float]:
    """R23: the 90th percentile of the unclipped norms, and a tighter one (the 75th)."""
    g = grad_norms[np.isfinite(grad_norms)]
    return float(np.percentile(g, 90)), float(np.percentile(g, 75))


def _trusted_trials(p: Plan, runs: list[Run]) -> list[Run]:
    """The trials of a study that may be its baseline: those passing the trust check. Each
    one left out is a note; none left is a refusal (the plan says how to trust them)."""
    kept = []
    for r in runs:
        verdict = run_verdict(r, p)
        if verdict.trusted:
            kept.append(r)
        else:
            p.notes.append(f"not a baseline: {verdict.says('trial')}")
    if not kept and runs:
        p.refuse(
            f"a trusted baseline: {run_verdict(runs[0], p).says('trial')} (and so are the "
            f"other {len(runs) - 1} candidate(s))"
            if len(runs) > 1
            else f"a trusted baseline: {run_verdict(runs[0], p).says('trial')}"
        )
    return kept


def _pick_run(t: Target, p: Plan | None = None) -> Run:
    """The study's best run (or the only run). In a study, an untrusted best run is refused:
    the plan is computed on it but cannot be launched."""
    run = t.runs[0]
    if t.best_run is not None:
        run = next((r for r in t.runs if r.id == t.best_run), run)
    if p is not None and len(t.runs) > 1:
        verdict = run_verdict(run, p)
        if not verdict.trusted:
            p.refuse(f"a trusted baseline: {verdict.says('trial')}")
    return run


def _plan_clip(p: Plan, t: Target) -> None:
    """R22-R24: clip at the p90 of the unclipped gradient norms, with a tighter trial."""
    unstable = [
        r for r in t.runs if is_unstable(r, t.findings.get(r.id, [])) and r.id not in t.infeasible
    ]
    if t.study is None and unstable:
        trusted = _trusted_trials(p, unstable) if len(t.runs) > 1 else unstable
        run = (trusted or unstable)[0]
    else:
        run = _pick_run(t, p)
    if not run.store.has("grad_norm") or run.store.count("grad_norm") < 10:
        p.missing.append("grad_norm: log the unclipped total gradient norm every step (R14)")
        base, missing, known = base_spec(run, p)
        _finish(p, run, base, known, missing, [], "clip", {})
        return
    p90, p75 = clip_thresholds(run.store.series("grad_norm").values.astype(np.float64))
    p.computed = {"run": _name(run), "p90": p90, "p75": p75, "points": run.store.count("grad_norm")}
    p.notes.append(
        f"R23: clip_norm {p90:.4g} = p90 of {run.store.count('grad_norm')} unclipped "
        f"norms; tighter trial {p75:.4g} (p75). Over 50% clipped: lower the learning "
        "rate instead (R24)"
    )
    base, missing, known = base_spec(run, p)
    trials = [{"clip_norm": _round(p90)}, {"clip_norm": _round(p75)}]
    _finish(p, run, base, known, missing, trials, "clip", {})


def _round(x: float) -> float:
    return float(f"{x:.4g}")


def _plan_probe(p: Plan, t: Target) -> None:
    """R15: about 500 steps at 2x the best learning rate, evaluating every step."""
    run = _pick_run(t, p)
    lr = run_lr(run)
    if lr is None:
        p.missing.append("the learning rate of the best run")
        return
    p.computed = {"run": _name(run), "best_lr": lr, "probe_lr": 2 * lr, "steps": PROBE_STEPS}
    base, missing, known = base_spec(run, p)
    steps = min(PROBE_STEPS, _max_train_steps(run, base, known) or PROBE_STEPS)
    p.computed["steps"] = steps
    p.notes.append(
        f"R15: {steps} steps at 2 x {lr:g} = {2 * lr:g}, evaluating every step: "
        "early instability shows as a rise in the first steps"
    )
    _finish(
        p,
        run,
        base,
        known,
        missing,
        [{"optimizer.lr": 2 * lr}],
        "probe",
        {"max_train_steps": steps, "eval_every": 1, "checkpoint_every": 0},
    )


FIT_GRID = (0.1, 0.3, 1.0, 3.0, 10.0)


def _plan_fit(p: Plan, t: Target) -> None:
    """R4: a constant-learning-rate sweep, no regularization, no decay, no clipping, for N
    steps (N = the target's max_train_steps)."""
    run = _pick_run(t, p)
    lr = run_lr(run)
    if lr is None:
        p.missing.append("the learning rate of the target run")
        return
    base, missing, known = base_spec(run, p)
    steps = _max_train_steps(run, base, known)
    grid = [_round(lr * f) for f in FIT_GRID]
    p.computed = {"run": _name(run), "lrs": grid, "max_train_steps": steps}
    p.notes.append(
        "R4: constant rate, no warmup, no decay, no clipping, no weight decay; the "
        "first step the fastest trial fits the training set is the starting "
        "max_train_steps (mind R5 if the best rate is at the grid's edge)"
    )
    overrides = {
        "schedule.kind": "constant",
        "schedule.warmup_steps": 0,
        "schedule.post_warmup_steps": 0,
        "clip_norm": None,
    }
    if base is not None and base.optimizer.weight_decay is not None:
        overrides["optimizer.weight_decay"] = 0.0
    _finish(p, run, base, known, missing, [{"optimizer.lr": v} for v in grid], "fit", overrides)


def _plan_extend(p: Plan, t: Target, factor: float = 2.0) -> None:
    """R6: round two reruns the best configuration longer. Linear decay: keep the decay
    length, lengthen the constant phase before it; cosine: keep the base rate, stretch
    max_train_steps."""
    run = _pick_run(t, p)
    base, missing, known = base_spec(run, p)
    steps = _max_train_steps(run, base, known)
    kind = base.schedule.kind if base is not None else known.get("schedule", {}).get("kind")
    new_steps = int(steps * factor)
    if kind == "linear":
        extra = new_steps - steps
        post = (base.schedule.post_warmup_steps if base else 0) + extra
        trials = [{"schedule.post_warmup_steps": post}]
        how = f"linear: decay length {steps} kept, constant phase lengthened by {extra} steps"
    else:
        trials = [{"max_train_steps": new_steps}]
        how = f"{kind or 'cosine'}: base rate kept, max_train_steps {steps} -> {new_steps}"
    p.computed = {
        "run": _name(run),
        "schedule": kind,
        "old_max_train_steps": steps,
        "new_total_steps": (base.total_steps if base else steps) + new_steps - steps,
    }
    p.notes.append(f"R6: {how} (the source marks this as speculative)")
    _finish(p, run, base, known, missing, trials, "extend", {})


# the plans of every kind but warmup, which also takes the base_learning_rate factor
_BUILDERS: dict[str, Callable[[Plan, Target], None]] = {
    "warmup-apply": _plan_warmup_apply,
    "clip": _plan_clip,
    "probe": _plan_probe,
    "fit": _plan_fit,
    "extend": _plan_extend,
}


def device_for_trials(n: int) -> list[str]:
    """Where the runner will put each trial: one GPU each when there are GPUs, else the CPU.
    Read from the driver's files: the monitor never imports torch."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        gpus = len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        gpus = 0
    if visible is not None:
        gpus = min(gpus, len([v for v in visible.split(",") if v.strip()]))
    if gpus == 0:
        return ["cpu"] * n
    return [f"cuda:{i % gpus}" for i in range(n)]
