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


def test_fifo_under_the_name_is_an_error_not_a_hang(tmp_path: Path) -> None:
    """A FIFO planted as the log (or swapped in for it) is refused at once; when a regular
    file is back, it is read from its start."""
    p = tmp_path / "m.jsonl"
    p.write_bytes(b"a\n")
    t = FileTail(p)
    assert t.lines().data == b"a\n"
    p.unlink()
    os.mkfifo(p)
    got = t.lines()  # would block forever without O_NONBLOCK
    assert got.missing and "FIFO" in (got.error or "")
    assert t.read_bytes(10).missing
    p.unlink()
    p.write_bytes(b"b\n")
    got = t.lines()
    assert got.reset and got.data == b"b\n"


def test_symlink_under_the_name_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.jsonl"
    target.write_bytes(b"secret\n")
    p = tmp_path / "m.jsonl"
    p.symlink_to(target)
    got = FileTail(p).lines()
    assert got.missing and "symbolic link" in (got.error or "") and got.data == b""


def test_lines_come_in_bounded_windows(tmp_path: Path) -> None:
    p = tmp_path / "m.jsonl"
    lines = [b"%07d\n" % i for i in range(400_000)]  # 3.2 MB: several 1 MiB chunks
    p.write_bytes(b"".join(lines))
    t = FileTail(p)
    got_all: list[bytes] = []
    calls = 0
    while True:
        got = t.lines(max_bytes=64 * 1024)
        calls += 1
        # a window is about max_bytes: at most one more pread chunk
        assert len(got.data) <= 64 * 1024 + 1024 * 1024
        got_all.append(got.data)
        if not got.more:
            break
    assert b"".join(got_all) == b"".join(lines)
    assert calls >= 4


def test_a_long_line_costs_a_chunk_not_its_length(tmp_path: Path, monkeypatch) -> None:
    """A 64 MiB line (MAX_LINE lowered to 1 MiB) is skipped while the reader's memory stays
    within a few chunks; the lines around it are kept."""
    import tracemalloc

    import tui.logs.tail as tail

    monkeypatch.setattr(tail, "MAX_LINE", 1 << 20)
    p = tmp_path / "m.jsonl"
    with open(p, "wb") as fh:
        fh.write(b"before\n")
        block = b"x" * (1 << 20)
        for _ in range(64):
            fh.write(block)
        fh.write(b"\nafter\n")
    t = FileTail(p)
    tracemalloc.start()
    try:
        got = t.lines()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got.data == b"before\nafter\n"
    assert got.skipped == 64 * (1 << 20) + 1
    assert peak < 8 * (1 << 20), f"peak {peak / 2**20:.1f} MiB"


def test_sparse_hole_is_scanned_once(tmp_path: Path) -> None:
    """`truncate -s` then real lines: the zeros are dropped and counted, the lines kept, and
    a second read does not scan the hole again (the offset is past it)."""
    p = tmp_path / "m.jsonl"
    with open(p, "wb") as fh:
        fh.truncate(64 << 20)
    with open(p, "ab") as fh:
        fh.write(b'{"step": 1}\n{"step": 2}\n')
    t = FileTail(p)
    got = t.lines()
    assert got.data == b'{"step": 1}\n{"step": 2}\n'
    assert got.nul == 64 << 20 and got.nul_at == 0
    assert t.offset == p.stat().st_size
    again = t.lines()
    assert again.data == b"" and again.nul == 0


def test_zeros_at_the_end_of_a_sparse_file_are_given_up_past_the_hold(tmp_path: Path) -> None:
    import tui.logs.tail as tail

    p = tmp_path / "m.jsonl"
    p.write_bytes(b"a\n")
    with open(p, "r+b") as fh:
        fh.truncate(2 + tail.NUL_HOLD + 4096)
    t = FileTail(p)
    got = t.lines()
    assert got.data == b"a\n" and t.offset > tail.NUL_HOLD  # not re-read every poll
