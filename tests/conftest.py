"""Shared test set-up: run from the repository root so `lib` imports and app paths resolve."""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from streamlit import config as _streamlit_config

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.chdir(ROOT)

# Tests never touch the repository's own store (data/): unless a test points JOINEDUP_DB at its own
# fixture store, the app sees an empty throw-away one, and no first-start dataset is built.
_SESSION_STORE = Path(tempfile.mkdtemp(prefix="joinedup-tests-")) / "empty.duckdb"
os.environ.setdefault("JOINEDUP_DB", str(_SESSION_STORE))

# Issue 7: without sign-in the app runs only as a demo on synthetic data. Test stores are synthetic or
# hand-built, so the tests declare them so, and no accounts file is configured unless a test sets one
# (tests of sign-in point JOINEDUP_ACCOUNTS at their own file). Pages then run as the demo's default
# role, the safeguarding lead, unless a test (or the module map below) chooses another.
os.environ.setdefault("JOINEDUP_SYNTHETIC_STORE", "1")
# Users see no error details (.streamlit/config.toml); a failing test should show the whole error.
# tests/test_browser_offline.py starts its server with the users' setting.
os.environ.setdefault("STREAMLIT_CLIENT_SHOW_ERROR_DETAILS", "full")  # servers the tests start
_streamlit_config.set_option("client.showErrorDetails", "full")  # AppTest, in this process
os.environ.setdefault("JOINEDUP_ACCOUNTS", str(_SESSION_STORE.with_name("no-accounts.json")))
# Writes keep the Scenario's default simulation in the store (lib.scenario.stored), once per store key: every test
# store has its own random key, so each would pay a simulation (8-14 s). Off here; tests/test_scenario_stored.py
# switches it on and checks it, and the view twin simulates when the store holds none (never a stale result).
os.environ.setdefault("JOINEDUP_STORED_SCENARIO", "0")

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

# Hypothesis is deterministic here (issue 14): a fixed profile, so a run cannot pass or fail by luck.
# "ci" (the default, used by .ci/run): derandomised (examples follow from each test's code), no example
# database (nothing carried between runs but the explicit @example regressions in the tests), a fixed
# number of examples. "explore": random and ten times longer, to look for new failures by hand
# (HYPOTHESIS_PROFILE=explore python -m pytest tests/test_upload_fuzz*.py); keep each one found as @example.
_FUZZ_HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]
settings.register_profile("ci", derandomize=True, database=None, max_examples=150, deadline=None,
                          print_blob=True, suppress_health_check=_FUZZ_HEALTH)
settings.register_profile("explore", derandomize=False, database=None, max_examples=1_500, deadline=None,
                          print_blob=True, suppress_health_check=_FUZZ_HEALTH)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Page tests written before roles existed, for pages only another role may open.
_MODULE_ROLE = {"tests.test_records_page": "analyst",
                "tests.test_app_across::test_unlinked_store_offers_linkage_with_progress": "analyst"}


@pytest.fixture(autouse=True)
def _demo_role_for_module(request, monkeypatch):
    module = request.module.__name__
    role = _MODULE_ROLE.get(f"{module}::{request.node.originalname}", _MODULE_ROLE.get(module))
    if role:
        monkeypatch.setenv("JOINEDUP_DEMO_ROLE", role)
    yield
