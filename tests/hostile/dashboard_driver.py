"""The dashboard under attack, driven through Textual's Pilot in a process of its own, so that a
hang (a FIFO opened blocking, a frozen watcher) is killed at the test's deadline instead of
hanging pytest. Run as `python dashboard_driver.py SCENARIO ARGS_JSON`; prints one JSON line.

Scenarios (tests/hostile/test_dashboard.py drives them):
  show      open the root, wait until the expected runs are shown, report their point counts,
            press q and report whether the app quit
  stop_all  wait for the tree to be read and adoption to settle; `k` (confirming any question),
            then q with "stop all"; report what was adopted
  restart   wait for a run's points, let the attacker truncate and rewrite it, report the
            count the live store settles on
  new_run   wait for the tree, let the attacker add a run, report how long until it is shown
  readonly  report whether the app is read-only
  idle      wait for the tree, measure this process's CPU over a quiet window, then new_run
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for hostile.harness

from hostile.harness import Attacker

SIZE = (160, 48)


async def until(pilot: Any, predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await pilot.pause(0.05)
    return True


def counts(app: Any, metric: str = "loss") -> dict[str, int]:
    return {rid: int(run.store.count(metric)) for rid, run in app.runs.items()}


async def quit_app(pilot: Any, app: Any, stop_all: bool) -> bool:
    from tui.widgets.screens import QuitScreen

    await pilot.press("q")
    await until(pilot, lambda: isinstance(app.screen, QuitScreen) or not app.is_running, 3)
    if isinstance(app.screen, QuitScreen):
        await pilot.press("s" if stop_all else "l")
    return await until(pilot, lambda: not app.is_running or app._exit_renderables is not None, 30)


def settled(app: Any, group: str) -> bool:
    return all(w.is_finished for w in app.workers if w.group == group)


async def main(scenario: str, args: dict[str, Any]) -> dict[str, Any]:
    from tui.app import make_app

    root = Path(args["root"])
    expect = set(args.get("expect", []))
    attacker = Attacker(**args["attacker"]) if "attacker" in args else None
    result: dict[str, Any] = {"scenario": scenario}
    app = make_app([root])
    result["started"] = True
    print(json.dumps({"progress": "app made"}), flush=True)
    async with app.run_test(size=SIZE) as pilot:
        shown = await until(pilot, lambda: expect <= set(app.runs) and app.rounds >= 1, 30)
        result["shown"] = shown
        result["runs"] = sorted(app.runs)
        result["counts"] = counts(app)
        if scenario == "show":
            result["quit"] = await quit_app(pilot, app, stop_all=False)
        elif scenario == "stop_all":
            from tui.widgets.screens import ConfirmScreen

            # the planted run.json files were read with the tree: whatever adoption they start
            # (a worker of group "adopt") has begun by now; let it finish
            await until(pilot, lambda: settled(app, "adopt"), 10)
            result["adopted"] = sorted(app.supervisor.jobs)
            await pilot.press("k")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 2)
            result["confirm_asked"] = isinstance(app.screen, ConfirmScreen)
            if result["confirm_asked"]:
                await pilot.press("y")
                await pilot.pause(0.2)
                await until(pilot, lambda: settled(app, "stop"), 30)
            result["quit"] = await quit_app(pilot, app, stop_all=True)
        elif scenario == "restart":
            rid = args["run"]
            assert attacker is not None
            for ops in args["phases"]:  # each phase seen by a read round before the next
                r0 = app.rounds
                attacker.plant(*ops)
                await until(pilot, lambda r0=r0: app.rounds > r0, 5)
            target = args["count"]
            ok = await until(pilot, lambda: counts(app).get(rid) == target, 20)
            result["settled"] = ok
            result["count"] = counts(app).get(rid)
            run = app.runs.get(rid)
            if run is not None:
                import numpy as np

                values = run.store.series("loss").values
                result["non_finite"] = int(np.sum(~np.isfinite(values)))
            result["quit"] = await quit_app(pilot, app, stop_all=False)
        elif scenario in ("new_run", "idle"):
            assert attacker is not None
            if scenario == "idle":
                await pilot.pause(args.get("settle", 5.0))
                u0 = resource.getrusage(resource.RUSAGE_SELF)
                t0 = time.monotonic()
                await pilot.pause(args.get("window", 10.0))
                u1 = resource.getrusage(resource.RUSAGE_SELF)
                cpu = (u1.ru_utime + u1.ru_stime) - (u0.ru_utime + u0.ru_stime)
                result["idle_cpu_share"] = cpu / (time.monotonic() - t0)
            rid = args["run"]
            t0 = time.monotonic()
            attacker.plant(*args["ops"])
            result["new_shown"] = await until(pilot, lambda: rid in app.runs, args["within"])
            result["new_after_s"] = time.monotonic() - t0
            result["quit"] = await quit_app(pilot, app, stop_all=False)
        elif scenario == "readonly":
            result["readonly"] = bool(app.readonly)
            result["quit"] = await quit_app(pilot, app, stop_all=False)
    return result


if __name__ == "__main__":
    out = asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))
    print(json.dumps(out), flush=True)
