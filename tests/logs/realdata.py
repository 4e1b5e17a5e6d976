"""Real logs from public repositories, laid out for a test from the repository snapshots.

The files are not committed (data taken from a fetched snapshot stays out of developers'
commits): each is named here by repository, commit, path and git blob id, and written from the
snapshot's git directory (`git cat-file blob`: the repository's exact bytes), cut to its first
`lines` lines where only an excerpt is used. Where the snapshot is not on this machine the test
is skipped, saying so. tests/logs/data/README.md gives what each file is.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

MIRROR = Path(os.environ.get("TUNETOP_REALWORLD_MIRROR", "/work/.mirror"))


@dataclass(frozen=True)
class RealFile:
    repo: str
    commit: str
    path: str
    blob: str
    lines: int | None = None  # the first N lines only; None: the whole file


SOURCES: dict[str, list[tuple[str, RealFile]]] = {
    # detectron2 DefaultTrainer output/: metrics.json (JSON lines) and its event file
    "detectron2": [
        (
            "metrics.json",
            RealFile(
                "Kevindic0214/detectron2_training",
                "e44fceec8fceafb47b2a9940a1f9f9769dff9054",
                "output/metrics.json",
                "0c3a78f0728aaf9740ec428dd8124a2f555f6307",
            ),
        ),
        (
            "events.out.tfevents.1737378888.LAPTOP-1BH8GF02.2695.0",
            RealFile(
                "Kevindic0214/detectron2_training",
                "e44fceec8fceafb47b2a9940a1f9f9769dff9054",
                "output/events.out.tfevents.1737378888.LAPTOP-1BH8GF02.2695.0",
                "561ad1cda7803dee4dab26aee841c7958df01da1",
            ),
        ),
    ],
    # mmengine LocalVisBackend: vis_data/<timestamp>.json and vis_data/scalars.json
    "mmengine": [
        (
            "vis_data/20241205_152037.json",
            RealFile(
                "PKurnikov/mmdetection",
                "5772592edd6481b5826e3e1a90b7519699b622ad",
                "vis_data/20241205_152037.json",
                "7539c3be44c9b1da08e458b1eb696aaee099f231",
            ),
        ),
        (
            "vis_data/scalars.json",
            RealFile(
                "PKurnikov/mmdetection",
                "5772592edd6481b5826e3e1a90b7519699b622ad",
                "vis_data/scalars.json",
                "e6573ca804121dbf49434642221392a5223b6a36",
                lines=12,
            ),
        ),
    ],
    # LLaMA-Factory's LogCallback: trainer_log.jsonl
    "llamafactory": [
        (
            "trainer_log.jsonl",
            RealFile(
                "rameyjm7/SFT-Training-LLM",
                "dbf63c44f77e9ea16fa8df916c1c3238826c3ec2",
                "trainer_log.jsonl",
                "f4a9dd8853346b0c4f1b8a44e139b02716461e1d",
                lines=120,
            ),
        ),
    ],
}


def _blob(f: RealFile) -> bytes:
    git_dir = MIRROR / f.repo.replace("/", "+") / "repo"
    if not git_dir.is_dir():
        pytest.skip(f"snapshot of {f.repo} not on this machine (under {MIRROR})")
    proc = subprocess.run(
        ["git", f"--git-dir={git_dir}", "cat-file", "blob", f.blob],
        capture_output=True,
        timeout=60,
    )
    if proc.returncode != 0:
        pytest.skip(f"{f.repo}@{f.commit[:12]}:{f.path} not in the snapshot here")
    data = proc.stdout
    if f.lines is not None:
        data = b"".join(data.splitlines(keepends=True)[: f.lines])
    return data


def lay_out(name: str, dest: Path) -> Path:
    """The files of SOURCES[name] under dest/name, in their layout; returns that folder."""
    folder = dest / name
    for rel, f in SOURCES[name]:
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(_blob(f))
    return folder
