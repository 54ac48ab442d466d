"""The toy model's scratch directory: needed while the model lives (the bridge reads its config), gone after."""

from __future__ import annotations

import gc

from conftest import TINY_TOY

from neuronscope.base_model import new_toy_model
from neuronscope.data.schema import QADataset


def test_scratch_directory_lives_with_the_model_and_its_clones_then_is_removed(tiny_world: QADataset) -> None:
    model = new_toy_model(tiny_world, TINY_TOY, seed=0)
    scratch = model.source
    assert (scratch / "config.json").is_file() and (scratch / "tokenizer.json").is_file()
    clone = model.clone()
    del model
    gc.collect()
    assert (scratch / "config.json").is_file(), "a clone still uses the directory"
    assert clone.bridge is not None  # the bridge boots from the directory after the original is gone
    del clone
    gc.collect()
    assert not scratch.exists()
