"""End to end: the real app in a real terminal (tmux), a spike appended to a live log, and the
finding and the plot found on the screen with `tmux capture-pane`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from app_support import append_lines, curve, write_run

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

LAUNCH = (
    "import sys; from pathlib import Path; from tui.app import make_app; "
    "make_app([Path(sys.argv[1])]).run()"
)


@pytest.fixture
def tmux() -> Iterator[Callable[..., str]]:
    socket = f"tunetop-test-{uuid.uuid4().hex[:8]}"  # a private server: no clash with the user's

    def run(*args: str) -> str:
        out = subprocess.run(
            ["tmux", "-L", socket, *args], capture_output=True, text=True, timeout=10
        )
        return out.stdout

    yield run
    subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, timeout=10)


def wait_screen(tmux: Callable[..., str], predicate: Callable[[str], bool], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = tmux("capture-pane", "-p", "-t", "app")
        if predicate(screen):
            return screen
        time.sleep(0.1)  # polling the terminal with a deadline, not synchronising by sleeping
    raise AssertionError(f"not on screen within {timeout} s:\n{screen}")


def test_spike_shows_up_in_tmux(tmp_path: Path, tmux: Callable[..., str]) -> None:
    root = tmp_path / "e2e"
    run = write_run(root / "trial", 300, lr=0.01)
    env = {**os.environ, "PYTHONPATH": str(REPO), "TERM": "xterm-256color"}
    cmd = f"{sys.executable} -c '{LAUNCH}' {root}"
    tmux(
        "new-session",
        "-d",
        "-s",
        "app",
        "-x",
        "200",
        "-y",
        "50",
        "-e",
        f"PYTHONPATH={env['PYTHONPATH']}",
        "-e",
        "TERM=xterm-256color",
        cmd,
    )
    screen = wait_screen(tmux, lambda s: "trial" in s and "loss" in s and "┤" in s, 30)
    assert "grad_norm histogram" in screen
    before_top = _top_tick(screen)
    records = [curve(s) for s in range(300, 420)]
    for r in records[60:62]:
        r["loss"] = 60.0  # a spike far above the curve
    append_lines(run / "metrics.jsonl", records)
    # the plot: the y axis of the loss plot now reaches the spike
    screen = wait_screen(tmux, lambda s: _top_tick(s) > max(before_top, 20), 15)
    screen = wait_screen(tmux, lambda s: "loss_spike" in s, 15)
    assert "R13" in screen
    tmux("send-keys", "-t", "app", "q")


def _top_tick(screen: str) -> float:
    """The largest y tick label of the loss plot (the first plot, left half of the screen)."""
    best = 0.0
    for line in screen.splitlines()[1:20]:
        cut = line.find("┤")
        if 0 < cut < 60:
            label = line[:cut].split("│")[-1].strip()
            try:
                best = max(best, float(label))
            except ValueError:
                continue
    return best
