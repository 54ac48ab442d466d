"""transformers' own progress bars ("Loading weights", "Writing model shards") off while neuronscope loads and saves.

In a notebook every load and save of the grid drew two tqdm bars; neuronscope reports its own progress. The
previous setting is restored afterwards, so a caller's own use of transformers keeps its bars.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def quiet_bars(fn: F) -> F:
    """Run `fn` with transformers' progress bars disabled, then restore them as they were."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from transformers.utils import logging as hf_logging

        was = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            return fn(*args, **kwargs)
        finally:
            if was:
                hf_logging.enable_progress_bar()

    return wrapper  # type: ignore[return-value]
