"""`tunetop check` on hostile folders (issue 14, attacks 6-8 and 10): no traceback, no hang,
exit codes as DESIGN.md says, every good run next to a bad file still read, every string on
stdout/stderr inert and encodable.

The command runs as a real child process (`python -m tui check`) under a deadline: a hang
fails the test instead of hanging it. The memory caps (5 GB sparse file, 1 GB line, an event
file rewritten over its steps) are the slow tests at the end, measured by
tests/bench/bench_hostile_memory.py's child.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEADLINE_S = 120


def check(
    path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    full = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "tui", "check", str(path), *args],
        capture_output=True,
        timeout=DEADLINE_S,
        cwd=ROOT,
        env=full,
        check=False,
    )


def a_run(folder: Path, n: int = 120, loss: str = "2.0 / (1 + 0.05 * s)") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "metrics.jsonl", "w") as fh:
        for s in range(n):
            fh.write(json.dumps({"step": s, "loss": eval(loss)}) + "\n")  # a formula of s
    return folder


def no_traceback(proc: subprocess.CompletedProcess[bytes]) -> None:
    assert b"Traceback" not in proc.stderr, proc.stderr.decode(errors="replace")[-3000:]


def test_bad_run_json_values_cost_only_themselves(tmp_path: Path) -> None:
    """One study: a good run, and runs whose run.json holds `"total_steps": Infinity`,
    `"remedy": "s"`, `"spec": {"optimizer": "s", "study": "s"}`, `"status": 3`: no traceback,
    exit 0 or 1 (a finding, never a crash), every run reported with its points, one error line
    per bad value."""
    study = tmp_path / "sweep"
    a_run(study / "trial_0")  # trial names: a study although no configuration is known
    bad = {
        "trial_1": '{"total_steps": Infinity, "status": "finished"}',
        "trial_2": '{"remedy": "s", "status": "finished"}',
        "trial_3": '{"optimizer": "s", "spec": {"optimizer": "s", "study": "s"}}',
        "trial_4": '{"status": 3, "total_steps": -5}',
    }
    for name, text in bad.items():
        a_run(study / name)
        (study / name / "run.json").write_text(text)
    proc = check(tmp_path, "--json")
    no_traceback(proc)
    assert proc.returncode in (0, 1)
    report = json.loads(proc.stdout)
    runs = {r["id"]: r for r in report["runs"]}
    assert set(runs) == {f"sweep/{n}" for n in ["trial_0", *bad]}
    assert all(r["metrics"]["loss"]["count"] == 120 for r in runs.values())
    assert runs["sweep/trial_1"]["total_steps"] == 120  # Infinity ignored: the data's own length
    messages = " | ".join(e["message"] for e in report["errors"])
    for what in ("total_steps = inf", "remedy = 's'", "spec.optimizer = 's'", "spec.study"):
        assert what in messages
    assert "status = 3" in messages and "total_steps = -5" in messages
    assert [s["id"] for s in report["studies"]] == ["sweep"]


def test_deeply_nested_files_are_errors_not_crashes(tmp_path: Path) -> None:
    """A 100,000-deep JSON line in a log, a 100,000-deep run.json, a 100,000-deep
    tunetop.toml at the root: each is an error entry; the good run is read."""
    a_run(tmp_path / "good")
    deep_log = a_run(tmp_path / "deeplog")
    with open(deep_log / "metrics.jsonl", "a") as fh:
        fh.write("[" * 100_000 + "]" * 100_000 + "\n")
    a_run(tmp_path / "deepjson")
    (tmp_path / "deepjson" / "run.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp_path / "tunetop.toml").write_text("a = " + "[" * 100_000 + "]" * 100_000)
    proc = check(tmp_path, "--json")
    no_traceback(proc)
    assert proc.returncode in (0, 1)
    report = json.loads(proc.stdout)
    ids = {r["id"] for r in report["runs"]}
    assert {"good", "deeplog"} <= ids
    errors = {Path(e["path"]).name: e["message"] for e in report["errors"]}
    assert "nested too deeply" in errors["tunetop.toml"]
    assert "nested too deeply" in errors["metrics.jsonl"]
    # the deep run.json costs its run folder today (workspace.py reads it; see the report)
    # or only itself once that read goes through safe_io: either way, one error entry
    assert "deepjson" in ids or "RecursionError" in errors.get("deepjson", "")


@pytest.mark.parametrize("kind", ["fifo", "dev_zero"])
def test_special_tunetop_toml_does_not_hang(tmp_path: Path, kind: str) -> None:
    a_run(tmp_path / "good")
    toml = tmp_path / "tunetop.toml"
    if kind == "fifo":
        os.mkfifo(toml)
    else:
        toml.symlink_to("/dev/zero")
    proc = check(tmp_path, "--json")  # a FIFO opened plainly blocks forever: the deadline
    no_traceback(proc)
    report = json.loads(proc.stdout)
    assert [r["id"] for r in report["runs"]] == ["good"]
    (err,) = [e for e in report["errors"] if e["path"].endswith("tunetop.toml")]
    assert ("FIFO" if kind == "fifo" else "symbolic link") in err["message"]


def test_a_special_log_file_does_not_hang(tmp_path: Path) -> None:
    """A metrics.jsonl swapped for a FIFO after discovery saw it as a file: refused by the
    reader (O_NONBLOCK + fstat), an error entry, the other run read."""
    from tui.check import main
    from tui.logs.workspace import Workspace

    a_run(tmp_path / "good")
    swapped = a_run(tmp_path / "swapped")
    ws = Workspace([tmp_path])
    ws.refresh()
    (swapped / "metrics.jsonl").unlink()
    os.mkfifo(swapped / "metrics.jsonl")
    ws.poll()
    assert any("FIFO" in m for _, m in ws.errors)
    ws.close()
    out = io.StringIO()
    assert main(str(tmp_path), True, "error", out=out) in (0, 1)
    assert "good" in {r["id"] for r in json.loads(out.getvalue())["runs"]}


def test_one_run_whose_diagnosis_fails_costs_only_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tui.diagnose.run_checks as rc
    from tui.check import main

    a_run(tmp_path / "a", loss="float('nan') if s > 60 else 1.0")
    a_run(tmp_path / "b")
    real = rc.diagnose_run

    def flaky(run):  # type: ignore[no-untyped-def]
        if run.id == "b":
            raise RuntimeError("boom\x1b[2J")
        return real(run)

    monkeypatch.setattr(rc, "diagnose_run", flaky)
    out = io.StringIO()
    code = main(str(tmp_path), True, "info", out=out)
    report = json.loads(out.getvalue())
    assert code == 1  # a finding, not 2: the failure was one run's, not check's
    (a,) = [r for r in report["runs"] if r["id"] == "a"]
    assert "divergence" in {f["kind"] for f in a["findings"]}  # run a still diagnosed
    (err,) = [e for e in report["errors"] if e["path"].endswith("/b")]
    assert err["message"] == "diagnosis failed: RuntimeError: boom\\x1b[2J"
    assert {r["id"] for r in report["runs"]} == {"a", "b"}


def test_internal_error_exits_2_never_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tui.check as check_mod

    a_run(tmp_path / "good")

    def broken(path: str) -> None:
        raise KeyError("internal")

    monkeypatch.setattr(check_mod, "run_check", broken)
    assert check_mod.main(str(tmp_path), True, "warning", out=io.StringIO()) == 2


def hostile_names(root: Path) -> None:
    for raw in (b"bad\x9b[2J\xff", b"\xc2\x9b31m-c1", b"esc\x1b]0;pwn\x07", b"ok"):
        a_run(Path(os.fsdecode(root)) / os.fsdecode(raw))


@pytest.mark.parametrize(
    "env",
    [
        {"PYTHONIOENCODING": "utf-8:strict"},
        {"LC_ALL": "C", "LANG": "C"},
        {"PYTHONIOENCODING": "ascii:strict"},
    ],
    ids=["utf8-strict", "lc-all-c", "ascii-strict"],
)
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_names_that_are_not_utf8_never_crash_any_output(
    tmp_path: Path, env: dict[str, str], as_json: bool
) -> None:
    """Folder names with a raw 0x9b byte (a C1 CSI when a terminal reads it as Latin-1), a UTF-8
    encoded C1 CSI, an OSC title sequence: no crash under any output encoding, no control byte
    on stdout, and the JSON is valid UTF-8 (lone surrogates shown as \\xNN)."""
    hostile_names(tmp_path)
    proc = check(tmp_path, *(["--json"] if as_json else []), env=env)
    no_traceback(proc)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    out = proc.stdout
    for byte in (b"\x1b", b"\x9b", b"\x07", b"\xc2\x9b"):
        assert byte not in out
    text = out.decode("utf-8")  # strict: valid UTF-8
    if as_json:
        ids = {r["id"] for r in json.loads(text)["runs"]}
        # bytes that are not UTF-8 shown as \xNN; real characters kept (JSON escapes them)
        assert ids == {"bad\\x9b[2J\\xff", "\x9b31m-c1", "esc\x1b]0;pwn\x07", "ok"}
    else:
        assert "bad\\x9b[2J\\xff" in text and "esc\\x1b]0;pwn\\x07" in text


def test_missing_root_message_is_inert(tmp_path: Path) -> None:
    gone = tmp_path / "no\x1b]0;x\x07pe"
    proc = check(gone)
    assert proc.returncode == 2
    assert b"\x1b" not in proc.stderr and b"no\\x1b]0;x\\x07pe" in proc.stderr


def test_closed_pipe_is_quiet(tmp_path: Path) -> None:
    for i in range(30):
        a_run(tmp_path / f"r{i:02d}", n=50)
    proc = subprocess.run(
        f"{sys.executable} -m tui check {tmp_path} | head -c 10",
        shell=True,
        capture_output=True,
        timeout=DEADLINE_S,
        cwd=ROOT,
        check=False,
    )
    assert b"Traceback" not in proc.stderr and b"BrokenPipe" not in proc.stderr


# -- memory caps (item 6): slow ----------------------------------------------------------------
CAP = 400e6


def _bench():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(ROOT / "tests" / "bench"))
    import bench_hostile_memory

    return bench_hostile_memory


def _hostile_case(tmp_path: Path, case: str, **kw: float) -> tuple[dict, dict]:  # type: ignore[type-arg]
    bench = _bench()
    base = tmp_path / "baseline"
    bench.good_run(base / "good")
    root = tmp_path / case
    bench.good_run(root / "good")
    getattr(bench, f"make_{case}")(root, *kw.values())
    return bench.measure(base), bench.measure(root)


@pytest.mark.slow
def test_5gb_sparse_jsonl_stays_under_the_cap(tmp_path: Path) -> None:
    base, got = _hostile_case(tmp_path, "sparse", gb=5.0)
    assert got["hwm"] - base["hwm"] <= CAP
    assert sorted(got["runs"]) == ["good", "hostile"]
    assert any("NUL bytes skipped" in e["message"] for e in got["errors"])
    assert got["wall_s"] < 60


@pytest.mark.slow
def test_1gb_line_stays_under_the_cap(tmp_path: Path) -> None:
    base, got = _hostile_case(tmp_path, "line", gb=1.0)
    assert got["hwm"] - base["hwm"] <= CAP
    assert sorted(got["runs"]) == ["good", "hostile"]
    assert any("over-long line" in e["message"] for e in got["errors"])
    assert got["wall_s"] < 120


@pytest.mark.slow
def test_event_file_rewritten_over_its_steps_stays_under_the_cap(tmp_path: Path) -> None:
    """200 passes over the same 100,000 steps (20M records, 600 MB): the old reader kept every
    row; now the memory is that of one pass."""
    base, got = _hostile_case(tmp_path, "rewrite", passes=200)
    assert got["hwm"] - base["hwm"] <= CAP
    assert sorted(got["runs"]) == ["good", "hostile"]
    assert got["wall_s"] < 300
