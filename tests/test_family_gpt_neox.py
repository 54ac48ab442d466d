"""GPT-NeoX (one fused query_key_value laid out per head, parallel residual, partial rotary).

Every family check of tests/family_checks.py, on a tiny random checkpoint.
"""

from __future__ import annotations

import pytest
from family_checks import *  # noqa: F403  (the shared checks, collected here for this family)
from family_checks import check_cli_attribute_against_a_block_perturbed_copy


@pytest.fixture(scope="module")
def family() -> str:
    return "gpt_neox"


test_cli_attribute_against_a_block_perturbed_copy = check_cli_attribute_against_a_block_perturbed_copy
