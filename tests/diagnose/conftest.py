"""Diagnosis tests: the evaluation set's scorer (tests/diagnose/evalset) and the helpers
module are importable from the test modules."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for p in (HERE, HERE / "evalset"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))
