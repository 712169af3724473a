"""Shared test set-up: run from the repository root so `lib` imports and app paths resolve."""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.chdir(ROOT)

# Tests never touch the repository's own store (data/): unless a test points JOINEDUP_DB at its own
# fixture store, the app sees an empty throw-away one, and no first-start dataset is built.
_SESSION_STORE = Path(tempfile.mkdtemp(prefix="joinedup-tests-")) / "empty.duckdb"
os.environ.setdefault("JOINEDUP_DB", str(_SESSION_STORE))
