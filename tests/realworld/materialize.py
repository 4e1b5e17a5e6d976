"""Lay the real-world corpus out under tests/realworld/runs/ from the repository snapshots.

sources.json names, for every run, the public repository, the commit and each file's git blob
id. The files themselves are not committed here: the snapshots' own rules keep data taken from
a fetched snapshot out of developers' commits. This writes each file from the snapshot's git
directory (`git cat-file blob BLOB`, so the bytes are exactly the repository's and a mismatch is
impossible to miss) into runs/<slug>/<path>, keeping the run's folder layout.

    python -m tests.realworld.materialize [--mirror DIR] [--force]

Exit status 0 when every run is complete, 1 when some snapshot is missing (listed).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "sources.json"
RUNS = HERE / "runs"
DEFAULT_MIRROR = Path(os.environ.get("TUNETOP_REALWORLD_MIRROR", "/work/.mirror"))


def load_sources() -> list[dict]:
    return json.loads(SOURCES.read_text())["runs"]


def git_dir(mirror: Path, repo: str) -> Path:
    return mirror / repo.replace("/", "+") / "repo"


def is_complete(run: dict, runs_dir: Path = RUNS) -> bool:
    base = runs_dir / run["slug"]
    return all(
        (base / f["path"]).is_file() and (base / f["path"]).stat().st_size == f["size"]
        for f in run["files"]
    )


def materialize(
    mirror: Path = DEFAULT_MIRROR, runs_dir: Path = RUNS, force: bool = False
) -> list[str]:
    """Write every run; return the slugs that could not be written (snapshot missing)."""
    missing: list[str] = []
    for run in load_sources():
        if not force and is_complete(run, runs_dir):
            continue
        g = git_dir(mirror, run["repo"])
        if not g.is_dir():
            missing.append(run["slug"])
            continue
        base = runs_dir / run["slug"]
        for f in run["files"]:
            data = subprocess.run(
                ["git", f"--git-dir={g}", "cat-file", "blob", f["blob"]],
                capture_output=True,
                check=True,
            ).stdout
            if len(data) != f["size"]:
                raise RuntimeError(
                    f"{run['slug']}/{f['path']}: {len(data)} bytes, expected {f['size']}"
                )
            dest = base / f["path"]
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
    return missing


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mirror", type=Path, default=DEFAULT_MIRROR)
    ap.add_argument("--force", action="store_true")
    a = ap.parse_args(argv)
    missing = materialize(a.mirror, RUNS, a.force)
    runs = load_sources()
    print(f"{len(runs) - len(missing)}/{len(runs)} runs under {RUNS}")
    for slug in missing:
        print(f"  missing snapshot for {slug}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
