"""`tunetop demo`: a live CPU training run that goes unstable, and the dashboard on it.

It trains the runner's tiny post-LN transformer with SGD + momentum at a high learning rate
and no warmup, in a temporary folder, and opens the dashboard on that
folder. A finding appears as the loss misbehaves; pressing `w` plans (and launches) the warmup
study that fixes it (R18), whose trials appear in the run tree as they start.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from runner import spec as rspec
from runner.child import python_argv

DEMO_LR = 0.3  # SGD with momentum: the loss falls, then turns up (an instability, R12)


def demo_spec(lr: float, steps: int) -> rspec.RunSpec:
    spec = rspec.RunSpec(
        workload="tiny_transformer",
        name="demo",
        max_train_steps=steps,
        batch_size=32,
        eval_every=50,
        checkpoint_every=0,
        device="cpu",
    )
    spec.optimizer = rspec.OptimizerSpec(name="momentum", lr=lr, momentum=0.9)
    spec.schedule = rspec.ScheduleSpec(kind="constant")
    return spec


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tunetop demo", description=__doc__.splitlines()[0])
    p.add_argument("--lr", type=float, default=DEMO_LR)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--dir", default=None, help="folder to use (default: a new temporary one)")
    p.add_argument("--keep", action="store_true", help="keep the folder when the demo ends")
    ns = p.parse_args(argv)
    base = Path(ns.dir) if ns.dir else Path(tempfile.mkdtemp(prefix="tunetop-demo-"))
    runs = base / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    spec_path = base / "demo.toml"
    spec_path.write_text(rspec.to_toml(demo_spec(ns.lr, ns.steps)))

    from tui.app import make_app
    from tui.remedy.supervise import Supervisor

    supervisor = Supervisor()
    # the same start as every child (runner/child.py): our interpreter with -P, absolute
    # paths, and the Supervisor's working directory, the user's private state folder (not
    # --dir, which may be a shared folder, nor the cwd)
    argv = python_argv("-m", "runner", str(spec_path.resolve()), "--out", str(runs.resolve()))
    job = supervisor.spawn(argv, "demo", runs.resolve())
    print(f"tunetop demo: training in {runs} (pid {job.pid})", file=sys.stderr)
    try:
        app = make_app([runs], supervisor=supervisor)
        app.run()
    finally:
        keep = bool(ns.keep or ns.dir)
        if not keep:
            # the folder goes away: nothing may go on writing into it, whatever the quit
            # dialog was told
            for j in supervisor.running():
                supervisor.stop(j)
        supervisor.poll()  # reap what ended: no zombies
        if keep:
            left = supervisor.running()
            if left:
                print(f"tunetop demo: {len(left)} job(s) left running", file=sys.stderr)
            print(f"tunetop demo: runs kept in {runs}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)
    return 0
