"""The monitor is a guest (issue 8 item 5): it never unpickles, torch.load-s or yaml.load-s
what it reads, opens no network socket, and writes nothing into the watched folders. An audit
hook (PEP 578) in a fresh interpreter proves it for `tunetop check` (a workspace refresh and
the diagnosis) and the plans. The dashboard app itself is not run under the hook."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

HOOK = textwrap.dedent(
    """
    import os, sys
    ROOT = os.path.realpath(sys.argv[1])
    violations = []

    def inside(path):
        try:
            p = os.path.realpath(os.fsdecode(path))
        except Exception:
            return False
        return p == ROOT or p.startswith(ROOT + os.sep)

    def hook(event, args):
        if event == "pickle.find_class" and "tui" in sys.modules:
            frame = sys._getframe(1)
            while frame is not None:
                if "/runner/" in frame.f_code.co_filename:
                    return
                frame = frame.f_back
            violations.append(event)
        elif event in ("socket.bind", "socket.connect", "socket.listen"):
            violations.append(f"{event} {args[1] if len(args) > 1 else ''}")
        elif event == "open" and args[1] is not None and any(c in str(args[1]) for c in "wax+"):
            if isinstance(args[0], (str, bytes)) and inside(args[0]):
                violations.append(f"write {args[0]}")
        elif event in ("os.remove", "os.rename", "os.mkdir", "os.rmdir", "os.truncate",
                       "os.chmod", "os.link", "os.symlink", "shutil.rmtree"):
            if args and isinstance(args[0], (str, bytes)) and inside(args[0]):
                violations.append(f"{event} {args[0]}")

    sys.addaudithook(hook)
    import pickle
    _loads, _load, _Unpickler = pickle.loads, pickle.load, pickle.Unpickler
    def _record(name):
        if "tui" in sys.modules:
            violations.append(name)
    def loads(*a, **k):
        _record("pickle.loads")
        return _loads(*a, **k)
    def load(*a, **k):
        _record("pickle.load")
        return _load(*a, **k)
    class Unpickler(_Unpickler):
        def __init__(self, *a, **k):
            _record("pickle.Unpickler")
            super().__init__(*a, **k)
    pickle.loads, pickle.load, pickle.Unpickler = loads, load, Unpickler
    import yaml
    SAFE = (yaml.SafeLoader, getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    original_load = yaml.load
    FULL = {id(f) for c in (yaml.constructor.FullConstructor, yaml.constructor.UnsafeConstructor)
            for f in vars(c).values() if callable(f)}
    def safe(loader):
        # a SafeLoader, or a subclass of one that adds no object-making constructor
        if not (isinstance(loader, type) and issubclass(loader, SAFE)):
            return False
        tables = (loader.yaml_constructors, loader.yaml_multi_constructors)
        return not any(id(f) in FULL for t in tables for f in t.values())
    def guarded(stream, Loader=None, **k):
        if not safe(Loader):
            violations.append("yaml.load")
            raise RuntimeError("unsafe yaml load")
        return original_load(stream, Loader)
    def refuse(*a, **k):
        violations.append("yaml.unsafe_load")
        raise RuntimeError("unsafe yaml load")
    yaml.load = guarded
    yaml.unsafe_load = yaml.full_load = refuse
    """
)


def run_guarded(root: Path, body: str) -> list[str]:
    code = HOOK + textwrap.dedent(body) + "\nimport json\nprint(json.dumps(violations))\n"
    out = subprocess.run(
        [sys.executable, "-c", code, str(root)], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def hostile_tree(root: Path) -> None:
    run = root / "sweep" / "lr=0.1"
    run.mkdir(parents=True)
    rows = [{"step": i, "loss": 2.0 / (i + 1), "grad_norm": 1.0, "lr": 0.1} for i in range(50)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "hparams.yaml").write_text("lr: !!python/object/apply:os.system ['touch PWNED']\n")
    ckpt = run / "checkpoints"
    ckpt.mkdir()
    (ckpt / "best.pt").write_bytes(pickle.dumps({"a": 1}))
    (run / "run.json").write_text(json.dumps({"status": "running", "pid": 999999}))
    other = root / "sweep" / "lr=1.0"
    other.mkdir()
    (other / "metrics.jsonl").write_text(
        "".join(
            json.dumps({"step": i, "loss": float("nan") if i > 5 else 1.0}) + "\n"
            for i in range(20)
        )
    )


def test_check_and_plans_read_only_and_never_unpickle(tmp_path: Path) -> None:
    hostile_tree(tmp_path)
    violations = run_guarded(
        tmp_path,
        """
        import io
        from pathlib import Path
        from tui.check import main
        from tui.remedy.plan import plan
        main(ROOT, True, "error", out=io.StringIO())
        for kind in ("warmup", "clip", "probe", "fit", "extend"):
            plan(kind, Path(ROOT) / "sweep")
        """,
    )
    assert violations == []
    assert not (tmp_path / "sweep" / "lr=0.1" / "PWNED").exists()


def test_the_hook_can_fail(tmp_path: Path) -> None:
    """The guard itself catches what it should: a write into the root, an unpickle."""
    violations = run_guarded(
        tmp_path,
        """
        import pickle, os
        import tui
        open(os.path.join(ROOT, "x.txt"), "w").close()
        pickle.loads(pickle.dumps(os.path.join))
        import yaml
        try:
            yaml.unsafe_load("a: 1")
        except RuntimeError:
            pass
        """,
    )
    assert any(v.startswith("write") for v in violations)
    assert "pickle.find_class" in violations and "pickle.loads" in violations
    assert "yaml.unsafe_load" in violations
