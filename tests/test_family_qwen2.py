"""Qwen2 (Llama's layout with q, k, v biases: the hook checks cover them).

Every family check of tests/family_checks.py, on a tiny random checkpoint.
"""

from __future__ import annotations

import pytest
from family_checks import *  # noqa: F403  (the shared checks, collected here for this family)


@pytest.fixture(scope="module")
def family() -> str:
    return "qwen2"
