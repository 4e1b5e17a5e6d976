"""Shared pytest set-up. Each area keeps its own fixtures in tests/<area>/conftest.py."""

from __future__ import annotations

import os

# Tests never need a GPU, and torch must not grab every core of a 2-core CI machine.
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
