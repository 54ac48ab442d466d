"""GPT-2: one fused c_attn [q | k | v], Conv1D weights, an ungated MLP.

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
    return "gpt2"


test_cli_attribute_against_a_block_perturbed_copy = check_cli_attribute_against_a_block_perturbed_copy

test_bf16_attribution_is_finite_and_close_to_float32 = check_bf16_attribution_is_finite_and_close_to_float32
