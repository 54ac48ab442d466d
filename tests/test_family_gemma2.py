"""Gemma 2 (final logit soft-cap 1.0 so the lens check would catch a lens without it, local/global attention).

Every family check of tests/family_checks.py, on a tiny random checkpoint.
"""

from __future__ import annotations

import pytest
from family_checks import *  # noqa: F403  (the shared checks, collected here for this family)


@pytest.fixture(scope="module")
def family() -> str:
    return "gemma2"
