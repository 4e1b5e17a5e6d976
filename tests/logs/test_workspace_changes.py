"""Files that change under the reader (issue 8 item 2), through the whole workspace: each
case recovers within two polls and what was read stays."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tui.logs.workspace import Workspace


def rows(start: int, stop: int, scale: float = 1.0) -> str:
    return "".join(
        json.dumps({"step": s, "time": 1e9 + s, "loss": scale / (s + 1)}) + "\n"
        for s in range(start, stop)
    )


def polls_until(ws: Workspace, predicate: Callable[[], bool], limit: int = 2) -> int:
    """Refresh until predicate() holds; returns the number of polls it took (fails past
    `limit`)."""
    for n in range(1, limit + 1):
        ws.refresh()
        if predicate():
            return n
    raise AssertionError(f"not recovered within {limit} polls")


def one_run(root: Path, n: int) -> tuple[Path, Workspace]:
    """Run folder `r` under root with n rows of metrics.jsonl, and a workspace that read it."""
    run = root / "r"
    run.mkdir()
    (run / "metrics.jsonl").write_text(rows(0, n))
    ws = Workspace([root])
    ws.refresh()
    return run, ws


def loss_steps(ws: Workspace, run: str) -> list[int]:
    return ws.runs[run].store.series("loss").steps.tolist()


def test_root_that_does_not_exist_yet(tmp_path: Path) -> None:
    root = tmp_path / "later"
    ws = Workspace([root])
    ws.refresh()
    assert ws.runs == {} and any("does not exist" in m for _, m in ws.errors)
    (root / "r").mkdir(parents=True)
    (root / "r" / "metrics.jsonl").write_text(rows(0, 10))
    polls_until(ws, lambda: "r" in ws.runs and len(loss_steps(ws, "r")) == 10)


def test_new_files_and_run_folders_appear(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "metrics.jsonl").write_text(rows(0, 5))
    ws = Workspace([tmp_path])
    ws.refresh()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "metrics.jsonl").write_text(rows(0, 7))
    polls_until(ws, lambda: "b" in ws.runs and len(loss_steps(ws, "b")) == 7)
    assert len(loss_steps(ws, "a")) == 5


def test_rsync_replace_with_more_rows(tmp_path: Path) -> None:
    run, ws = one_run(tmp_path, 50)
    tmp = run / ".metrics.jsonl.XyZ12"  # rsync's temp name, then a rename over the file
    tmp.write_text(rows(0, 80))
    os.replace(tmp, run / "metrics.jsonl")
    polls_until(ws, lambda: loss_steps(ws, "r") == list(range(80)))  # each point once


def test_truncate_to_zero_keeps_what_was_read(tmp_path: Path) -> None:
    run, ws = one_run(tmp_path, 30)
    os.truncate(run / "metrics.jsonl", 0)
    ws.refresh()
    assert loss_steps(ws, "r") == list(range(30))  # data already read stays
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write(rows(30, 40))
    polls_until(ws, lambda: loss_steps(ws, "r") == list(range(40)))


def test_delete_then_recreate_under_the_same_name(tmp_path: Path) -> None:
    run, ws = one_run(tmp_path, 20)
    (run / "metrics.jsonl").unlink()
    ws.refresh()
    assert loss_steps(ws, "r") == list(range(20))
    (run / "metrics.jsonl").write_text(rows(0, 25, scale=2.0))
    polls_until(ws, lambda: loss_steps(ws, "r") == list(range(25)))
    # the re-created file's points supersede the old ones at the same steps
    assert float(ws.runs["r"].store.series("loss").values[0]) == 2.0


def test_restarted_run_supersedes_and_is_marked(tmp_path: Path) -> None:
    run, ws = one_run(tmp_path, 100)
    with open(run / "metrics.jsonl", "a") as fh:  # resumed from the step-60 checkpoint
        fh.write(rows(60, 120, scale=3.0))
    ws.refresh()
    store = ws.runs["r"].store
    assert loss_steps(ws, "r") == list(range(120))
    assert store.series("loss").values[60] == np.float32(3.0 / 61)
    assert [(r.step, r.previous_max) for r in store.restarts] == [(60, 99)]
    assert store.last_step == 119


def test_vanished_run_folder_is_an_error_not_a_crash(tmp_path: Path) -> None:
    run, ws = one_run(tmp_path, 10)
    (run / "metrics.jsonl").unlink()
    run.rmdir()
    ws.refresh()
    assert loss_steps(ws, "r") == list(range(10))


def test_check_marks_the_restart(tmp_path: Path) -> None:
    import io

    from tui.check import main

    run = tmp_path / "r"
    run.mkdir()
    (run / "metrics.jsonl").write_text(rows(0, 100) + rows(60, 120, scale=3.0))
    out = io.StringIO()
    main(str(tmp_path), True, "error", out=out)
    (r,) = json.loads(out.getvalue())["runs"]
    assert r["restarts"] == [{"step": 60, "previous_max": 99}]
    assert r["metrics"]["loss"]["count"] == 120
    text = io.StringIO()
    main(str(tmp_path), False, "error", out=text)
    assert "restarted at step 60" in text.getvalue()
