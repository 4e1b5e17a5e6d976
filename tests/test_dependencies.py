"""Declared dependencies equal imported ones (issue 19 item 2).

The imports of tui/ and runner/ are walked with `ast` (every `import` and `from ... import`,
at any depth: deferred imports count), mapped to their distributions with
importlib.metadata.packages_distributions(), and compared with pyproject.toml: what the
monitor (tui/) imports is in `dependencies`, what only the runner imports is in the `runner`
extra, and nothing is declared there that the product does not import. An import guarded by
`except ImportError` is optional: it may go undeclared (e.g. a GPU binding used where present).
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OWN = {"tui", "runner"}
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
    assert match, requirement
    return canonical(match.group(0))


def _guarded(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Whether an import sits in a `try` whose handlers catch ImportError."""
    child, parent = node, parents.get(node)
    while parent is not None:
        if isinstance(parent, ast.Try) and child in parent.body:
            for handler in parent.handlers:
                names = ast.unparse(handler.type) if handler.type else "BaseException"
                if "ImportError" in names or "ModuleNotFoundError" in names:
                    return True
        child, parent = parent, parents.get(parent)
    return False


def imports(package: str) -> tuple[set[str], set[str]]:
    """Top-level third-party module names imported under a package: (required, optional)."""
    required: set[str] = set()
    optional: set[str] = set()
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        parents = {c: p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in OWN or top in sys.stdlib_module_names or top == "__future__":
                    continue
                (optional if _guarded(node, parents) else required).add(top)
    return required, optional - required


def distributions(modules: set[str]) -> set[str]:
    """Distribution names for module names, as the environment installed them."""
    table = importlib.metadata.packages_distributions()
    out: set[str] = set()
    for module in modules:
        dists = table.get(module)
        assert dists, f"{module} is imported but no installed distribution provides it"
        # a namespace (`google`) is shared by several distributions: the declared one counts
        out.add(canonical(sorted(dists)[0]) if len(dists) == 1 else "|".join(sorted(dists)))
    return out


def _resolve(found: set[str], declared: set[str]) -> set[str]:
    """Pick, for a module several distributions provide, the one that is declared."""
    out = set()
    for entry in found:
        options = {canonical(d) for d in entry.split("|")}
        hit = options & declared
        out |= hit or {sorted(options)[0]}
    return out


def declared_base() -> set[str]:
    return {requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}


def declared_runner() -> set[str]:
    extras = PYPROJECT["project"]["optional-dependencies"]
    return {requirement_name(r) for r in extras["runner"]}


def test_monitor_dependencies_are_what_tui_imports() -> None:
    required, optional = imports("tui")
    base = declared_base()
    imported = _resolve(distributions(required), base)
    optional_dists = _resolve(distributions(optional), base) if optional else set()
    missing = imported - base
    unused = base - imported - optional_dists
    assert not missing, f"tui/ imports these, undeclared in dependencies: {sorted(missing)}"
    assert not unused, f"declared in dependencies, imported by no module of tui/: {sorted(unused)}"


def test_runner_extra_is_what_only_the_runner_imports() -> None:
    base = declared_base()
    runner = declared_runner()
    required, _optional = imports("runner")
    imported = _resolve(distributions(required), base | runner)
    runner_only = imported - base
    assert runner_only == runner, (
        f"the runner extra should be exactly the runner's own imports beyond the monitor's: "
        f"imported {sorted(runner_only)}, declared {sorted(runner)}"
    )


def test_the_monitor_imports_no_runner_only_package() -> None:
    tui_required, _ = imports("tui")
    assert not tui_required & {"torch", "sklearn", "scipy"}, tui_required


def test_the_walk_finds_deferred_and_guarded_imports(tmp_path: Path) -> None:
    """The walker itself can fail: a deferred import counts, a guarded one is optional."""
    global ROOT
    pkg = tmp_path / "tui"
    pkg.mkdir()
    (pkg / "m.py").write_text(
        "import os\nfrom tui import x\n\ndef f():\n    import numpy.linalg\n\n"
        "try:\n    import pynvml\nexcept ImportError:\n    pynvml = None\n"
    )
    saved, ROOT = ROOT, tmp_path
    try:
        assert imports("tui") == ({"numpy"}, {"pynvml"})
    finally:
        ROOT = saved


def test_design_dependencies_have_a_job() -> None:
    """textual, pandas, plotext and watchdog are the monitor's; torch the runner's (the user's
    design names all five)."""
    tui_required, tui_optional = imports("tui")
    runner_required, _ = imports("runner")
    # watchdog's inotify observer is imported under `except ImportError` (polling where the
    # platform has no inotify): optional as an import, declared all the same
    assert {"textual", "pandas", "plotext"} <= tui_required
    assert "watchdog" in tui_required | tui_optional
    assert "torch" in runner_required
