"""Fixtures for the dashboard tests (their helpers are in app_support.py): `async def` tests
run on asyncio, the sample runs, a frozen cursor blink and a private state folder."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest
from app_support import write_run


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run `async def` tests here with asyncio.run (no pytest-asyncio dependency: the project's
    dev extra does not carry one, and Pilot only needs a running loop)."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}
    asyncio.run(pyfuncitem.obj(**kwargs))
    return True


@pytest.fixture
def sample_root(tmp_path: Path) -> Path:
    """A study of three learning rates and one lone run with a spike."""
    root = tmp_path / "runs"
    for lr in (0.001, 0.01, 0.1):
        write_run(
            root / "lr_sweep" / f"lr={lr}",
            300,
            lr=lr,
            diverge_at=150 if lr == 0.1 else None,
        )
    write_run(root / "baseline", 300, lr=0.01, spike_at=200)
    return root


@pytest.fixture
def single_run(tmp_path: Path) -> Path:
    root = tmp_path / "one"
    write_run(root / "run", 200, lr=0.01)
    return root


@pytest.fixture(autouse=True)
def _freeze_cursor_blink(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A blinking cursor makes snapshots flaky (harlequin's fixture)."""
    from textual.widgets import Input

    monkeypatch.setattr(Input, "cursor_blink", False, raising=False)
    yield


@pytest.fixture(autouse=True)
def _state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The Supervisor's spec and log files go to the test's folder, not ~/.local/state."""
    state = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    return state
