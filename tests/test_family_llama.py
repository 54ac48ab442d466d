"""Llama (grouped-query attention: fewer k/v heads than q heads; the toy model's and SmolLM2's family).

Every family check of tests/family_checks.py, on a tiny random checkpoint.
"""

from __future__ import annotations

import pytest
from family_checks import *  # noqa: F403  (the shared checks, collected here for this family)
from family_checks import (
    check_bf16_attribution_is_finite_and_close_to_float32,
    check_cli_attribute_against_a_block_perturbed_copy,
)


@pytest.fixture(scope="module")
def family() -> str:
    return "llama"


test_cli_attribute_against_a_block_perturbed_copy = check_cli_attribute_against_a_block_perturbed_copy

test_bf16_attribution_is_finite_and_close_to_float32 = check_bf16_attribution_is_finite_and_close_to_float32
