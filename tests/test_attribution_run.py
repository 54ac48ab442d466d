"""The attribute analysis returns objects and writes nothing; the report layer writes exactly those objects."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from attribution_helpers import unlearn_blocks

from neuronscope.attribution import AttributeSettings, attribute_checkpoint, select_items
from neuronscope.attribution.run import SettingError
from neuronscope.data.schema import QADataset
from neuronscope.models import load_model
from neuronscope.plots.attribution_files import write_attribution


def test_the_analysis_writes_nothing_and_the_writer_writes_its_tables(
        tiny_ckpt: Path, tiny_world: QADataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = load_model(tiny_ckpt)
    unlearned = load_model(tiny_ckpt)
    unlearn_blocks(unlearned, tiny_world.items("forget"), steps=2)
    items = select_items(tiny_world, "forget", "base")
    monkeypatch.chdir(tmp_path)
    result = attribute_checkpoint(unlearned, items, AttributeSettings(batch_size=8, patch_ms=(0, 10)), base=base)
    assert list(tmp_path.iterdir()) == []  # nothing written anywhere the analysis could reach by a relative path
    assert result.summary["n_items"] == len(items) and result.summary["verdict"] == "undetermined"
    assert set(result.tables()) == {"attribution", "attribution_base", "influence", "curves", "module_layer",
                                    "patching"}
    assert result.patching is not None and list(result.patching.curves["m"].unique()) == [0, 10]
    out = tmp_path / "out"
    out.mkdir()
    files = write_attribution(result, out, report=False)
    for name, table in result.tables().items():
        pd.testing.assert_frame_equal(pd.read_parquet(files[name]), table.reset_index(drop=True),
                                      check_dtype=False)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["influence"] == json.loads(json.dumps(result.summary["influence"]))
    assert sorted(os.listdir(out)) == sorted(f"{n}.parquet" for n in result.tables()) + ["summary.json"]


def test_setting_errors_name_the_setting_and_the_caller_renames_it(tiny_world: QADataset) -> None:
    with pytest.raises(SettingError, match="^batch_size must be at least 1, got 0$") as e:
        AttributeSettings(batch_size=0).check()
    assert str(e.value.named("--batch-size")) == "--batch-size must be at least 1, got 0"
    with pytest.raises(SettingError, match="^positions must be one of prompt, all, last, got 'x'$"):
        AttributeSettings(positions="x").check()
    with pytest.raises(SettingError, match="^target must be") as e:
        AttributeSettings(also_targets=("logit",)).check()
    assert str(e.value.named("attribution.target")).startswith("attribution.target must be")
    with pytest.raises(SettingError, match=r"^split 'nope' is not in the data \(has: forget"):
        select_items(tiny_world, "nope", "base")
