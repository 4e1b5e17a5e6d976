"""safe_io: the one way a file found in a watched folder is opened (issue 14, attacks 6-8).

Every case is a real special file (mkfifo, a symlink to /dev/zero, /dev/null) or a real hostile
document; a FIFO that blocked would hang the test, so the call runs in a thread joined with a
deadline and the test fails instead of hanging.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tui.logs.safe_io import (
    MAX_CONFIG_BYTES,
    UnsafeFile,
    is_regular,
    load_json,
    load_toml,
    open_regular,
    read_small,
)

DEADLINE_S = 10.0


def within_deadline(fn: Callable[[], Any]) -> Any:
    """fn() run in a thread; fails the test if it has not returned by the deadline (a FIFO
    opened without O_NONBLOCK blocks until a writer comes)."""
    out: dict[str, Any] = {}

    def go() -> None:
        try:
            out["value"] = fn()
        except BaseException as exc:  # handed back to the test thread
            out["error"] = exc

    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(DEADLINE_S)
    assert not t.is_alive(), "blocked: the file was opened as a FIFO would block"
    if "error" in out:
        raise out["error"]
    return out.get("value")


def test_fifo_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "run.json"
    os.mkfifo(fifo)
    with pytest.raises(UnsafeFile, match="a FIFO, not a regular file"):
        within_deadline(lambda: load_json(fifo))
    assert not is_regular(fifo)


def test_symlink_to_dev_zero_is_not_followed(tmp_path: Path) -> None:
    link = tmp_path / "tunetop.toml"
    link.symlink_to("/dev/zero")
    with pytest.raises(UnsafeFile, match="symbolic link"):
        within_deadline(lambda: load_toml(link))
    assert not is_regular(link)


def test_symlink_to_a_private_file_is_not_followed(tmp_path: Path) -> None:
    private = tmp_path / "secret.toml"
    private.write_text('token = "s3cr3t"\n')
    link = tmp_path / "run" / "spec.toml"
    link.parent.mkdir()
    link.symlink_to(private)
    with pytest.raises(UnsafeFile, match="symbolic link"):
        read_small(link)
    assert load_toml(link, follow=True) == {"token": "s3cr3t"}  # the user's own choice only


def test_device_is_refused() -> None:
    with pytest.raises(UnsafeFile, match="a device"):
        within_deadline(lambda: open_regular("/dev/null", follow=True))


def test_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsafeFile, match="a folder"):
        open_regular(tmp_path)


def test_size_cap(tmp_path: Path) -> None:
    big = tmp_path / "config.json"
    with open(big, "wb") as fh:
        fh.truncate(MAX_CONFIG_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(UnsafeFile, match="over the 1,048,576-byte limit"):
        load_json(big)


def test_deeply_nested_json_and_toml_are_one_reason(tmp_path: Path) -> None:
    deep = tmp_path / "run.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(UnsafeFile, match="nested too deeply"):
        load_json(deep)
    toml = tmp_path / "tunetop.toml"
    toml.write_text("a = " + "[" * 100_000 + "]" * 100_000)
    with pytest.raises(UnsafeFile, match="nested too deeply"):
        load_toml(toml)


def test_bad_text_is_a_reason(tmp_path: Path) -> None:
    p = tmp_path / "run.json"
    p.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(UnsafeFile, match=r"not UTF-8|not valid JSON"):
        load_json(p)
    q = tmp_path / "x.toml"
    q.write_text("a = = 1")
    with pytest.raises(UnsafeFile, match="not valid TOML"):
        load_toml(q)


def test_missing_file_keeps_its_errno(tmp_path: Path) -> None:
    import errno

    with pytest.raises(UnsafeFile) as info:
        open_regular(tmp_path / "nope")
    assert info.value.errno == errno.ENOENT


def test_regular_file_reads(tmp_path: Path) -> None:
    p = tmp_path / "run.json"
    p.write_text('{"total_steps": 10, "x": NaN}')
    data = load_json(p)
    assert data["total_steps"] == 10 and data["x"] != data["x"]
