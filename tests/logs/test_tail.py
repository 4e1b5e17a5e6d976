"""FileTail: complete lines only, NFS zero-filled tails, shrink, replace, vanish."""

from __future__ import annotations

import os
from pathlib import Path

from tui.logs.tail import FileTail


def test_partial_line_waits_for_its_newline(tmp_path: Path) -> None:
    p = tmp_path / "m.jsonl"
    p.write_bytes(b'{"a": 1}\n{"a":')
    t = FileTail(p)
    assert t.lines().data == b'{"a": 1}\n'
    assert t.lines().data == b""
    with open(p, "ab") as fh:
        fh.write(b" 2}\n")
    assert t.lines().data == b'{"a": 2}\n'


def test_zero_filled_tail_is_read_again_when_the_data_lands(tmp_path: Path) -> None:
    """An NFS client may extend a file with zeros before the bytes arrive in place."""
    p = tmp_path / "m.jsonl"
    p.write_bytes(b"line1\n" + b"\0" * 6)
    t = FileTail(p)
    assert t.lines().data == b"line1\n"
    with open(p, "r+b") as fh:  # the real bytes land over the zeros, same inode
        fh.seek(6)
        fh.write(b"line2\n")
    assert t.lines().data == b"line2\n"


def test_shrink_and_replace_restart_from_the_start(tmp_path: Path) -> None:
    p = tmp_path / "m.jsonl"
    p.write_bytes(b"a\nb\nc\n")
    t = FileTail(p)
    t.lines()
    os.truncate(p, 0)
    p.write_bytes(b"x\n")
    got = t.lines()
    assert got.reset and got.data == b"x\n"
    tmp = tmp_path / "new"
    tmp.write_bytes(b"x\ny\nz\nw\n")
    os.replace(tmp, p)  # rsync without --inplace: a new inode
    got = t.lines()
    assert got.reset and got.data == b"x\ny\nz\nw\n"


def test_vanished_file_is_reported_and_read_when_it_returns(tmp_path: Path) -> None:
    p = tmp_path / "m.jsonl"
    p.write_bytes(b"a\n")
    t = FileTail(p)
    t.lines()
    p.unlink()
    got = t.lines()
    assert got.missing and got.error
    p.write_bytes(b"b\n")
    got = t.lines()
    assert got.data == b"b\n" and got.reset


def test_over_long_line_is_dropped_without_buffering(tmp_path: Path, monkeypatch) -> None:
    import tui.logs.tail as tail

    monkeypatch.setattr(tail, "MAX_LINE", 100)
    p = tmp_path / "m.jsonl"
    p.write_bytes(b"ok\n" + b"x" * 500)
    t = FileTail(p)
    got = t.lines()
    assert got.data == b"ok\n" and got.skipped == 500
    with open(p, "ab") as fh:
        fh.write(b"xx\nnext\n")
    got = t.lines()
    assert got.data == b"next\n"
