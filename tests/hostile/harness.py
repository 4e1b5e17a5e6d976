"""The hostile-folder suite's tools (issue 14, Deliver 10): a second Unix user who plants files,
the victim's commands run under a deadline with their peak memory, canaries, good runs.

The victim is this process's user (root in CI) running tunetop; the attacker is an unprivileged
system user who can write into a shared team folder of the watched root and nothing else. Files
are planted by a separate process running as the attacker (`subprocess` with `user=`/`group=`),
so ownership and permissions are the real ones the trust check must judge.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ATTACKER = "tt_attacker"
BIN = Path(sys.executable).parent
# the console script, as a user runs it: its sys.path[0] is the venv's bin folder, not the
# cwd (`python -m tui` would put the cwd first and prove nothing about attack 3)
TUNETOP = str(BIN / "tunetop") if (BIN / "tunetop").exists() else "tunetop"
DEADLINE = 60.0  # seconds a command may take before it counts as hung
MiB = 1 << 20

# One batch of file operations, run as the attacker. Stdlib only: the attacker's interpreter
# is the system python, not the project's venv (under /root, not readable by others).
PLANTER = r"""
import base64, json, os, shutil, sys
for op in json.load(sys.stdin):
    kind, path = op[0], op[1]
    if kind in ("write", "sparse", "fifo", "symlink", "repeat"):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    if kind == "mkdir":
        os.makedirs(path, exist_ok=True)
    elif kind == "write":
        with open(path, "wb") as fh:
            fh.write(base64.b64decode(op[2]))
    elif kind == "repeat":  # op[4] then op[2] written op[3] times: big files, little stdin
        block = base64.b64decode(op[2])
        with open(path, "wb") as fh:
            fh.write(base64.b64decode(op[4]))
            for _ in range(op[3]):
                fh.write(block)
    elif kind == "sparse":  # op[2] bytes, a hole but for op[3] (base64) at the start
        with open(path, "wb") as fh:
            fh.write(base64.b64decode(op[3]))
            fh.truncate(op[2])
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink":
        os.symlink(op[2], path)
    elif kind == "rename":
        os.rename(path, op[2])
    elif kind == "rmtree":
        shutil.rmtree(path)
    elif kind == "chmod":
        os.chmod(path, op[2])
    elif kind == "deep":  # op[2] nested folders below path, returns nothing
        p = path
        for i in range(op[2]):
            p = os.path.join(p, f"d{i}")
        os.makedirs(p, exist_ok=True)
    else:
        raise SystemExit(f"unknown op {kind}")
"""

Op = list[Any]


def write(path: Path, data: bytes | str) -> Op:
    raw = data.encode() if isinstance(data, str) else data
    return ["write", str(path), base64.b64encode(raw).decode()]


def write_json(path: Path, obj: Any) -> Op:
    return write(path, json.dumps(obj))


def repeat(path: Path, block: bytes, times: int, head: bytes = b"") -> Op:
    b64 = base64.b64encode
    return ["repeat", str(path), b64(block).decode(), times, b64(head).decode()]


def sparse(path: Path, size: int, head: bytes = b"") -> Op:
    return ["sparse", str(path), size, base64.b64encode(head).decode()]


def fifo(path: Path) -> Op:
    return ["fifo", str(path)]


def symlink(path: Path, target: Path | str) -> Op:
    return ["symlink", str(path), str(target)]


def mkdir(path: Path) -> Op:
    return ["mkdir", str(path)]


def rename(src: Path, dst: Path) -> Op:
    return ["rename", str(src), str(dst)]


def chmod(path: Path, mode: int) -> Op:
    return ["chmod", str(path), mode]


@dataclass(frozen=True)
class Attacker:
    name: str
    uid: int
    gid: int
    python: str

    def plant(self, *ops: Op, timeout: float = 120.0) -> None:
        """Do `ops` as the attacker; raises if one fails (a test bug, not a finding)."""
        out = subprocess.run(
            [self.python, "-I", "-c", PLANTER],
            input=json.dumps(list(ops)).encode(),
            capture_output=True,
            user=self.uid,
            group=self.gid,
            extra_groups=[],
            cwd="/",
            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
            timeout=timeout,
        )
        assert out.returncode == 0, f"planting as {self.name} failed: {out.stderr.decode()[-2000:]}"

    def popen(self, code: str, *args: str) -> subprocess.Popen[bytes]:
        """A long-lived attacker process (a race loop), in a session of its own."""
        return subprocess.Popen(
            [self.python, "-I", "-c", code, *args],
            user=self.uid,
            group=self.gid,
            extra_groups=[],
            cwd="/",
            env={"PATH": "/usr/bin:/bin"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )


# -- the victim's commands -------------------------------------------------------------------


@dataclass
class Result:
    argv: list[str]
    rc: int | None  # None: killed at the deadline (hung) or over the memory watchdog
    stdout: bytes
    stderr: bytes
    wall: float
    peak_rss: int  # bytes, the child's own peak (wait4's ru_maxrss)
    timed_out: bool = False
    over_memory: bool = False

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", "replace")

    def json(self) -> dict[str, Any]:
        return json.loads(self.stdout)

    def why(self) -> str:
        """What a failing assertion prints: enough to see the attack's effect."""
        state = "HUNG (killed at the deadline)" if self.timed_out else f"rc={self.rc}"
        if self.over_memory:
            state = "killed by the memory watchdog"
        return (
            f"{' '.join(self.argv)[:300]}\n{state}, {self.wall:.1f} s, peak RSS "
            f"{self.peak_rss / MiB:.0f} MiB\nstderr tail: {self.err[-2500:]}\n"
            f"stdout head: {self.out[:1500]}"
        )


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run(
    argv: Sequence[str],
    *,
    env: dict[str, str],
    cwd: Path | str | None = None,
    timeout: float = DEADLINE,
    rss_kill: int | None = None,
    stdin: bytes | None = None,
) -> Result:
    """Run `argv` as the victim in a session of its own; kill its process group at the deadline
    (a hang is a result, not a stuck test). `rss_kill`: bytes of resident memory past which the
    child is killed, so that a memory attack that works does not take the shared machine down.
    stdout and stderr go to files (no pipe to drain while we wait)."""
    import tempfile

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        if stdin is not None:
            assert proc.stdin is not None
            proc.stdin.write(stdin)
            proc.stdin.close()
        timed_out = over = False
        status = 0
        usage = None
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                break
            if time.monotonic() - t0 > timeout:
                timed_out = True
            elif rss_kill is not None and _rss(proc.pid) > rss_kill:
                over = True
            if timed_out or over:
                kill_group(proc.pid)
                _, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.01)  # polling a child's exit with a deadline: wait4 has no timeout
        wall = time.monotonic() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        kill_group(proc.pid)  # whatever it left in its group (it is a session of its own)
        out.seek(0)
        err.seek(0)
        return Result(
            list(argv),
            None if (timed_out or over) else proc.returncode,
            out.read(),
            err.read(),
            wall,
            (usage.ru_maxrss * 1024) if usage is not None else 0,
            timed_out,
            over,
        )


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def tunetop(*args: str, env: dict[str, str], **kw: Any) -> Result:
    return run([TUNETOP, *args], env=env, **kw)


def pids_mentioning(marker: str) -> list[int]:
    """Live processes whose command line mentions `marker` (each test's unique base folder:
    the studies, trials and planted commands it caused), zombies left out."""
    me = os.getpid()
    found = []
    needle = marker.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmd = fh.read()
            with open(f"/proc/{entry}/stat", "rb") as fh:
                state = fh.read().rsplit(b")", 1)[-1].split()[0]
        except (OSError, IndexError):
            continue
        if needle in cmd and state != b"Z":
            found.append(int(entry))
    return found


def settle(marker: str, until: Callable[[], bool] | None = None, timeout: float = 90.0) -> bool:
    """Wait until nothing the test launched runs any more (or `until()` holds), then kill what
    is left of it. True when it ended on its own (or `until` held)."""
    deadline = time.monotonic() + timeout
    ended = False
    while time.monotonic() < deadline:
        if until is not None and until():
            ended = True
            break
        if not pids_mentioning(marker):
            ended = True
            break
        time.sleep(0.1)  # polling other processes' lifetimes (not ours to wait on)
    for pid in pids_mentioning(marker):
        for kill in (os.killpg, os.kill):
            try:
                kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    return ended


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "") -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# -- good runs and what check must say about them ---------------------------------------------


@dataclass(frozen=True)
class GoodRun:
    name: str  # folder name
    format: str
    counts: dict[str, int]  # canonical metric -> points


GOOD_RUNS = (
    GoodRun("good_jsonl", "jsonl", {"loss": 60, "val_loss": 6}),
    GoodRun("good_tb", "tfevents", {"loss": 40}),
)

# Written by real libraries: Python's json (as the runner writes metrics.jsonl) and
# torch.utils.tensorboard's SummaryWriter, in a child process (torch stays out of pytest).
MAKE_GOOD = r"""
import json, math, sys
from pathlib import Path
root = Path(sys.argv[1])
j = root / "good_jsonl"
j.mkdir(parents=True)
with open(j / "metrics.jsonl", "w") as fh:
    for s in range(60):
        fh.write(json.dumps({"step": s, "time": 1.7e9 + s, "loss": 2.0 * math.exp(-s / 20) + 0.1,
                             "grad_norm": 1.0 + 0.1 * math.sin(s), "lr": 0.001}) + "\n")
        if s % 10 == 9:
            fh.write(json.dumps({"step": s, "time": 1.7e9 + s, "val_loss": 1.5 - s / 100}) + "\n")
from torch.utils.tensorboard import SummaryWriter
w = SummaryWriter(str(root / "good_tb"))
for s in range(40):
    w.add_scalar("train/loss", 3.0 / (s + 1), s)
w.close()
w = SummaryWriter(str(root / "cycle"))  # 50 steps, repeated by the memory attack
for s in range(50):
    w.add_scalar("loss", 1.0 / (s + 1), s)
w.close()
"""


def split_event_file(path: Path) -> tuple[bytes, bytes]:
    """(the file_version record, every later record) of a TFRecord event file: the body can be
    repeated as it is (each record carries its own CRCs), the same steps written again."""
    data = path.read_bytes()
    first = 8 + 4 + int.from_bytes(data[:8], "little") + 4
    return data[:first], data[first:]


def make_good_template(folder: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", MAKE_GOOD, str(folder)], capture_output=True, timeout=300
    )
    assert out.returncode == 0, out.stderr.decode()[-2000:]


def runs_by_id(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in report.get("runs", [])}


def assert_good_runs(report: dict[str, Any], where: str, res: Result | None = None) -> None:
    """Every good run placed next to the bad files is read, with all its points."""
    runs = runs_by_id(report)
    for good in GOOD_RUNS:
        rid = f"{where}/{good.name}" if where not in ("", ".") else good.name
        assert rid in runs, f"good run {rid} not listed; runs: {sorted(runs)[:20]}" + (
            "\n" + res.why() if res else ""
        )
        for metric, n in good.counts.items():
            got = runs[rid]["metrics"].get(metric, {}).get("count")
            assert got == n, f"{rid}: {metric} has {got} points, {n} written"


def errors_about(report: dict[str, Any], path: Path | str) -> list[dict[str, Any]]:
    """`errors` entries whose path is `path` or lies under it (or above it, for a folder)."""
    p = os.fsdecode(path) if isinstance(path, bytes) else str(path)
    out = []
    for e in report.get("errors", []):
        ep = str(e.get("path", ""))
        if ep == p or ep.startswith(p.rstrip("/") + "/") or p.startswith(ep.rstrip("/") + "/"):
            out.append(e)
    return out


def no_traceback(res: Result) -> None:
    assert "Traceback (most recent call last)" not in res.err, res.why()
    assert "Traceback (most recent call last)" not in res.out, res.why()


def check_ok(res: Result) -> None:
    """`check` ended by itself, with a findings exit code (0 or 1), and no traceback."""
    assert not res.timed_out and not res.over_memory, res.why()
    no_traceback(res)
    assert res.rc in (0, 1), res.why()


# -- payloads ----------------------------------------------------------------------------------


def canary_command(canary: Path) -> list[str]:
    """A planted command: writes the canary if it ever runs (as whoever runs it)."""
    return ["/bin/sh", "-c", f"echo pwned > '{canary}'", "sh", "{run_dir}"]


def canary_python(canary: Path) -> str:
    return f"open({str(canary)!r}, 'w').write('pwned')\n"


def pickle_payload(canary: Path) -> bytes:
    """A pickle that writes the canary when unpickled (what torch.load(weights_only=False)
    does to a planted checkpoint)."""
    import pickle

    class Payload:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, (f"echo pwned > '{canary}'",))

    return pickle.dumps({"model": Payload()}, protocol=2)


# -- runs the victim made with the runner -------------------------------------------------------


def runner_spec(steps: int = 30, lr: float = 0.001, **top: Any) -> dict[str, Any]:
    """A resolved runner spec as run.json stores it: a tiny CPU digits MLP."""
    from runner import spec as rspec

    spec = rspec.RunSpec(
        workload="digits_mlp",
        name="base",
        max_train_steps=steps,
        batch_size=32,
        eval_every=10,
        checkpoint_every=0,
        device="cpu",
    )
    spec.optimizer = rspec.OptimizerSpec(name="adam", lr=lr)
    spec.schedule = rspec.ScheduleSpec(kind="constant")
    d = rspec.to_dict(spec)
    d.update(top)
    return d


def run_json(spec: dict[str, Any], status: str = "finished", **extra: Any) -> dict[str, Any]:
    steps = spec.get("max_train_steps", 30)
    d: dict[str, Any] = {
        "spec": spec,
        "hparams": {"optimizer.lr": spec.get("optimizer", {}).get("lr"), "max_train_steps": steps},
        "max_train_steps": steps,
        "total_steps": steps,
        "status": status,
        "pid": 1,
        "started": 1.7e9,
        "ended": 1.7e9 + 100,
        "exit_code": 0,
        "remedy": None,
    }
    d.update(extra)
    return d


def metrics_lines(
    steps: int,
    lr: float = 0.001,
    diverge_at: int | None = None,
    extra: Iterable[str] = (),
    start: int = 0,
) -> str:
    """metrics.jsonl text as the runner writes it; NaN loss from `diverge_at` (an unstable
    run: the warmup plan's baseline)."""
    import math

    out = []
    for s in range(start, start + steps):
        loss: float = 2.0 * math.exp(-s / 30) + 0.2 + 0.02 * math.sin(s)
        if diverge_at is not None and s >= diverge_at:
            loss = float("nan")
        out.append(
            json.dumps(
                {
                    "step": s,
                    "time": 1.7e9 + s,
                    "loss": loss,
                    "grad_norm": 1.0 + (s % 7) / 10,
                    "lr": lr,
                    "clipped": 0,
                }
            )
        )
    out.extend(extra)
    return "\n".join(out) + "\n"


def write_victim_run(
    folder: Path,
    steps: int = 120,
    lr: float = 0.001,
    diverge_at: int | None = None,
    spec: dict[str, Any] | None = None,
) -> Path:
    """A run the victim made with the runner, owned by the victim (this process)."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = spec or runner_spec(steps, lr)
    (folder / "metrics.jsonl").write_text(metrics_lines(steps, lr, diverge_at))
    (folder / "run.json").write_text(json.dumps(run_json(spec)))
    return folder


ESC_OR_CSI = re.compile(rb"[\x1b\x9b\x07]")


def raw_controls(data: bytes) -> list[bytes]:
    """Raw ESC, C1 CSI (0x9b, also the second byte of U+009B in UTF-8) and BEL bytes."""
    return ESC_OR_CSI.findall(data)


@dataclass
class Layout:
    """The shared tree: `base` (0755, the test's unique marker), `root` the watched root
    (root-owned 0755), `team` inside it (0777: the team writes there, so does the attacker),
    `home` the victim's private folder (0700: config, state, canary), `outside` a root-owned
    folder beside the watched root."""

    base: Path
    root: Path
    team: Path
    home: Path
    outside: Path
    canary: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def config_dir(self) -> Path:
        return self.home / "config" / "tunetop"

    def user_config(self, text: str) -> Path:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        path = self.config_dir / "tunetop.toml"
        path.write_text(text)
        return path

    def tunetop(self, *args: str, **kw: Any) -> Result:
        kw.setdefault("cwd", self.home)
        kw.setdefault("env", self.env)
        return tunetop(*args, **kw)

    def check_json(
        self, path: Path | str | None = None, **kw: Any
    ) -> tuple[Result, dict[str, Any]]:
        res = self.tunetop("check", os.fsdecode(path or self.team), "--json", **kw)
        check_ok(res)
        try:
            report = res.json()
        except ValueError as exc:
            raise AssertionError(f"stdout is not JSON ({exc})\n{res.why()}") from None
        return res, report

    def launched_settle(
        self, until: Callable[[], bool] | None = None, timeout: float = 90.0
    ) -> bool:
        return settle(str(self.base), until, timeout)
