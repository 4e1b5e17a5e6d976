"""Hyperparameters that torch's `SummaryWriter.add_hparams` wrote into an event file.

add_hparams writes a new event file into `<log_dir>/<time.time()>/`: the hparams plugin's
`session_start_info` (name -> number, string or bool) and one scalar per metric. Hugging Face's
TensorBoard callback calls it once per run, under `runs/<date_host>/`. Discovery makes that
subfolder part of its run (issue 15: it was a phantom run); this module gives the run its
hyperparameters. The file is small: it is read whole through safe_io under the config cap, and
parsed record by record with the event protobufs; a damaged record ends the read, nothing more.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError
from tensorboard.compat.proto import event_pb2
from tensorboard.plugins.hparams import plugin_data_pb2

from tui.logs.safe_io import UnsafeFile, read_small

_PLUGIN = "hparams"


def _records(data: bytes) -> list[bytes]:
    out: list[bytes] = []
    pos = 0
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from("<Q", data, pos)
        start = pos + 12
        end = start + length
        if end + 4 > len(data):
            break
        out.append(data[start:end])
        pos = end + 4
    return out


def _value(v: Any) -> Any:
    kind = v.WhichOneof("kind")
    if kind == "number_value":
        number = float(v.number_value)
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    if kind == "string_value":
        return v.string_value
    if kind == "bool_value":
        return bool(v.bool_value)
    return None


def read_tb_hparams(path: Path) -> dict[str, Any]:
    """The hparams of an add_hparams event file ({} when it holds none). Raises UnsafeFile
    when the file cannot be read."""
    data = read_small(path)
    found: dict[str, Any] = {}
    for record in _records(data):
        event = event_pb2.Event()
        try:
            event.ParseFromString(record)
        except (DecodeError, RecursionError, ValueError):
            break  # damage: what came before stands
        if not event.HasField("summary"):
            continue
        for value in event.summary.value:
            meta = value.metadata.plugin_data
            if meta.plugin_name != _PLUGIN:
                continue
            plugin = plugin_data_pb2.HParamsPluginData()
            try:
                plugin.ParseFromString(meta.content)
            except (DecodeError, RecursionError, ValueError):
                continue
            if plugin.HasField("session_start_info"):
                for name, v in plugin.session_start_info.hparams.items():
                    got = _value(v)
                    if got is not None:
                        found.setdefault(name, got)
    return found


def hparams_of_files(paths: list[Path], errors: list[tuple[str, str]] | None = None) -> list[dict]:
    """The hparams of each add_hparams event file that holds some; unreadable ones are errors."""
    out: list[dict] = []
    for path in paths:
        try:
            got = read_tb_hparams(path)
        except UnsafeFile as exc:
            if errors is not None:
                errors.append((str(path), f"cannot read hyperparameters: {exc.reason}"))
            continue
        if got:
            out.append(got)
    return out
