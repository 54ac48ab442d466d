"""A stage's own peak memory: after a reset, the peak of a block that held a large buffer is at least its size,
and the next block's peak does not carry it (where the platform can reset; the running peak elsewhere)."""

from __future__ import annotations

import sys

import pytest

from neuronscope.peak_memory import peak_bytes, reset_peak


def test_peak_covers_a_large_buffer_and_resets() -> None:
    size = 200 * 2**20
    reset_peak()
    buf = bytearray(size)
    buf[::4096] = b"x" * len(buf[::4096])  # touch every page, so it is resident
    held = peak_bytes()
    del buf
    assert held is not None and held >= size
    if not sys.platform.startswith("linux"):
        pytest.skip("only Linux resets the peak")
    assert reset_peak()
    after = peak_bytes()
    assert after is not None and after <= held - size // 2
