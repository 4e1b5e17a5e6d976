"""The reader interface every log format implements.

A reader owns one file. `read()` returns only what the file gained since the last call, as a
ColumnBatch keyed by the file's own metric names (the run assembly maps them onto canonical
names). It never raises for bad input: damage becomes `errors` (one line each, naming the file
and, where it helps, the byte offset or line), and every good record before and after it is
kept. `reset` says the file was replaced or truncated and the batch re-reads it from its start
(the run store lets re-read points supersede the earlier ones at the same steps).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tui.logs.batch import ColumnBatch


@dataclass
class ReadResult:
    batch: ColumnBatch = field(default_factory=ColumnBatch.empty)
    errors: list[str] = field(default_factory=list)
    reset: bool = False


class Reader(Protocol):
    path: Path
    format: str  # "jsonl" | "csv" | "tfevents" | "hf_trainer_state"

    def read(self) -> ReadResult: ...
