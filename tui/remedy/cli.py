"""`tunetop plan KIND TARGET [--json] [--launch] [--out DIR] [--trust]`.

Prints exactly the study the key would launch (DESIGN.md "tunetop plan --json") and what will
run: the argv of every trial, the interpreter, the working folder, the environment changes and
the output folder (tui/remedy/preview.py), marked when a file in the watched tree decided the
command; with --launch, launches it. `--trust` lets the files under the target's folder decide
what runs for this one plan (tui/trust.py), and the plan says so. Exit 0 when it can be
launched, 1 when something is missing (a trust refusal included), 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from tui.remedy.plan import Plan, device_for_trials, plan
from tui.remedy.preview import preview
from tui.sanitize import clean


def describe(p: Plan) -> str:
    """The plan as a person reads it (the modal shows the same lines)."""
    lines = [f"plan {p.kind} for {clean(p.target, 500)}"]
    for key, value in p.computed.items():
        if key != "trials":
            lines.append(f"  {key}: {clean(value, 300)}")
    for v in p.computed.get("trials", []):
        lines.append(
            f"  trial {clean(v['run'])}: warmup {v['warmup_steps']} "
            f"{'collapsed' if v['collapsed'] else 'ok'} ({clean(v['why'])})"
        )
    trials = p.trials()
    devices = device_for_trials(len(trials))
    if trials:
        lines.append(
            f"  {len(trials)} trial(s) -> {clean(p.out, 500)}/"
            f"{p.spec_dict().get('study', {}).get('name', '?')}-<timestamp>/"
        )
        for i, (t, dev) in enumerate(zip(trials, devices, strict=True)):
            vals = ", ".join(f"{k}={v}" for k, v in t.items()) or "(baseline as is)"
            lines.append(f"    t{i:03d} [{dev}] {clean(vals, 300)}")
    for note in p.notes:
        lines.append(f"  {clean(note, 500)}")
    for m in p.missing:
        lines.append(f"  missing: {clean(m, 500)}")
    shown = preview(p)
    if shown is not None:
        lines.append("what will run" + (" (NOT LAUNCHABLE)" if not p.launchable else "") + ":")
        lines.extend(f"  {line}" for line in shown.lines())
    return "\n".join(lines)


def main(ns: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    p = plan(ns.kind, ns.target, ns.out, factor=ns.factor, trust_files=getattr(ns, "trust", False))
    if ns.json:
        json.dump(p.to_json(), out, indent=1, default=str)
        out.write("\n")
    else:
        out.write(describe(p) + "\n")
    if not p.launchable:
        return 1
    if ns.launch:
        from tui.remedy.supervise import Supervisor

        job = Supervisor().launch(p)
        print(  # the folder names come from the tree: sanitised (issue 14 item 10)
            f"launched {clean(job.kind, 40)} study (pid {job.pid}) into {clean(job.out, 500)}; "
            f"output: {clean(job.log, 500)}",
            file=sys.stderr,
        )
    return 0
