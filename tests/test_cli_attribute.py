"""`neuronscope attribute` end to end on the tiny base model: vs itself, vs a perturbed copy, and bad inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from attribution_helpers import unlearn_blocks
from typer.testing import CliRunner

from neuronscope.base_model import new_toy_model
from neuronscope.cli import app
from neuronscope.data.schema import QADataset
from neuronscope.models import load_model
from neuronscope.models.toy import ToyConfig

runner = CliRunner()


def _run(*args: str | Path):
    result = runner.invoke(app, ["attribute", *map(str, args)])
    return result, result.output  # stdout and stderr together


@pytest.fixture(scope="module")
def perturbed_ckpt(tiny_ckpt: Path, tiny_world: QADataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny base model after a few block-only gradient-ascent steps on the forget answers."""
    model = load_model(tiny_ckpt, bridge=False)
    unlearn_blocks(model, tiny_world.items("forget"))
    return model.save(tmp_path_factory.mktemp("perturbed") / "unlearned")


def test_against_a_copy_of_itself_all_d_are_zero(tiny_ckpt: Path, tiny_world_dir: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(tiny_ckpt, tmp_path / "copy"))
    out = tmp_path / "out"
    result, text = _run("--ckpt", copy, "--base", tiny_ckpt, "--data", tiny_world_dir, "--out", out,
                        "--patch-m", "0,100")
    assert result.exit_code == 0, text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["paper_verdict"] == "none"
    assert summary["verdict"] == "undetermined"  # no floor model: no calibrated analysis can speak
    assert summary["influence"]["top100_d_plus"] == 0.0 and summary["influence"]["top100_d_minus"] == 0.0
    inf = pd.read_parquet(out / "influence.parquet")
    assert (inf["d_plus"] == 0).all() and (inf["d_minus"] == 0).all()
    assert (inf["d_plus_raw"] <= 0).all()  # base max minus clipped max of the same values: never positive
    p = summary["patching"]
    assert p["base_accuracy"] == p["unlearned_accuracy"] == p["all_neurons_accuracy"]
    flat = text.replace("\n", "")  # rich wraps long paths at the terminal width
    assert "none" in text and "summary.json" in flat


def test_against_a_perturbed_copy(tiny_ckpt: Path, perturbed_ckpt: Path, tiny_world: QADataset,
                                  tiny_world_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result, text = _run("--ckpt", perturbed_ckpt, "--base", tiny_ckpt, "--data", tiny_world_dir, "--out", out,
                        "--batch-size", "8", "--patch-m", "0,10,100")
    assert result.exit_code == 0, text
    names = {"attribution.parquet", "attribution_base.parquet", "influence.parquet", "curves.parquet",
             "module_layer.parquet", "patching.parquet", "report.html", "summary.json", ".neuronscope"}
    assert {f.name for f in out.iterdir()} == names  # no temporary files left behind; the marker: neuronscope's
    summary = json.loads((out / "summary.json").read_text())
    inf = summary["influence"]
    assert inf["paper_verdict"] in ("erase", "hide")
    assert inf["paper_verdict"] == ("erase" if inf["top100_d_plus"] > inf["top100_d_minus"] else "hide")
    assert inf["top100_d_plus"] > 0 and inf["top100_d_minus"] > 0
    assert summary["n_items"] == len(tiny_world.items("forget"))
    ml = pd.read_parquet(out / "module_layer.parquet")
    assert len(ml) == 2 * 7 and set(ml["module"]) == {"q", "k", "v", "o", "gate", "up", "down"}
    p = summary["patching"]
    assert p["outside_blocks_equal"] and p["all_neurons_accuracy"] == p["base_accuracy"]
    assert p["unlearned_accuracy"] < p["base_accuracy"]
    table = pd.read_parquet(out / "attribution.parquet")
    assert len(table) == summary["n_neurons"] == len(pd.read_parquet(out / "influence.parquet"))
    html = (out / "report.html").read_text()
    assert html.count("<script type='text/javascript'>") == 1 and "cdn.plot.ly" not in html.split("</head>")[1]
    assert "Figure 3" in html and "Figure 5" in html and "recovery" in html


def test_single_model_without_base(tiny_ckpt: Path, tiny_world_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result, text = _run("--ckpt", tiny_ckpt, "--data", tiny_world_dir / "forget.jsonl", "--out", out,
                        "--positions", "all", "--per-example")
    assert result.exit_code == 0, text
    assert {f.name for f in out.iterdir()} == {"attribution.parquet", "report.html", "summary.json", ".neuronscope"}
    table = pd.read_parquet(out / "attribution.parquet")
    assert {"item", "layer", "module", "neuron", "max", "min"} <= set(table.columns)
    assert json.loads((out / "summary.json").read_text())["positions"] == "all"


@pytest.mark.parametrize("case", ["ckpt", "base", "data", "split", "positions", "patch-m", "arch"])
def test_bad_inputs_one_line_and_nonzero_exit(case: str, tiny_ckpt: Path, tiny_world: QADataset,
                                              tiny_world_dir: Path, tmp_path: Path) -> None:
    args = {"--ckpt": tiny_ckpt, "--data": tiny_world_dir, "--out": tmp_path / "out"}
    extra: list[str | Path] = []
    want = ""
    if case == "ckpt":
        args["--ckpt"], want = tmp_path / "missing", "--ckpt"
    elif case == "base":
        (tmp_path / "f.txt").write_text("x")
        extra, want = ["--base", tmp_path / "f.txt"], "--base"
    elif case == "data":
        args["--data"], want = tmp_path / "nodata", "nodata"
    elif case == "split":
        extra, want = ["--split", "nope"], "--split"
    elif case == "positions":
        extra, want = ["--positions", "answer"], "--positions"
    elif case == "patch-m":
        extra, want = ["--patch-m", "1,x"], "--patch-m"
    else:
        other = new_toy_model(tiny_world, ToyConfig(d_model=32, n_layers=2, n_heads=4, d_mlp=64))
        extra, want = ["--base", other.save(tmp_path / "small")], "different shapes"
    flat = [str(x) for kv in args.items() for x in kv] + [str(x) for x in extra]
    result, text = _run(*flat)
    assert result.exit_code == 2, text
    # transformers' own tqdm bars ("Loading weights") show here because CliRunner bypasses main(), which turns
    # them off; they are not neuronscope's output
    lines = [ln for ln in text.strip().splitlines() if ln.strip() and "it/s]" not in ln]
    assert len(lines) == 1 and lines[0].startswith("error:") and want in lines[0], text
    assert "Traceback" not in text
    assert not (tmp_path / "out" / "summary.json").exists()


@pytest.fixture(scope="module")
def oracle_ckpt(tiny_world: QADataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny recipe trained without the forget facts: the floor of the calibrated verdict."""
    from dataclasses import replace

    from conftest import TINY_TRAIN

    from neuronscope.base_model import train_base

    result = train_base(tiny_world, replace(TINY_TRAIN, exclude_splits=("forget",)))
    assert result.reached_target
    return result.model.save(tmp_path_factory.mktemp("oracle") / "oracle")


def _verdict_run(ckpt: Path, base: Path, oracle: Path, data: Path, out: Path, *extra: str) -> tuple[dict, str]:
    result, text = _run("--ckpt", ckpt, "--base", base, "--oracle", oracle, "--data", data, "--out", out,
                        "--no-patching", *extra)
    assert result.exit_code == 0, text
    return json.loads((out / "summary.json").read_text()), text


def test_verdict_on_models_whose_answer_is_known(tiny_ckpt: Path, oracle_ckpt: Path, tiny_world_dir: Path,
                                                 tmp_path: Path) -> None:
    # the floor itself, unlearned from the base: indistinguishable from a model that never saw the facts
    summary, text = _verdict_run(oracle_ckpt, tiny_ckpt, oracle_ckpt, tiny_world_dir, tmp_path / "erased")
    detail = summary["verdict_detail"]
    assert summary["verdict"] == "erase", detail
    ran = {e["analysis"]: e["says"] for e in detail["evidence"] if e["calibrated"]}
    assert ran["logit lens (intermediate layers)"] == "absent" and ran["relearning (harmful p=0.1)"] == "absent"
    assert "verdict" in text and "ERASE" in text
    assert "Verdict (calibrated)" in (tmp_path / "erased" / "report.html").read_text()
    # the base itself: nothing was unlearned
    summary, _ = _verdict_run(tiny_ckpt, tiny_ckpt, oracle_ckpt, tiny_world_dir, tmp_path / "unchanged")
    assert summary["verdict"] == "not unlearned", summary["verdict_detail"]
    assert summary["paper_verdict"] == "none"  # the paper's rule sees no change at all
    # a calibration of this model that measured the lens wrong: the lens is shown only, the attacks still decide
    record = {"truths": {"planted": "hide"}, "analysis_accuracy": {
        "logit lens (intermediate layers)": {"right": 3, "wrong": ["planted"], "unsure": [], "calibrated": True}}}
    (tmp_path / "calibration.json").write_text(json.dumps(record))
    summary, _ = _verdict_run(oracle_ckpt, tiny_ckpt, oracle_ckpt, tiny_world_dir, tmp_path / "calibrated",
                              "--calibration", str(tmp_path / "calibration.json"))
    evidence = {e["analysis"]: e for e in summary["verdict_detail"]["evidence"]}
    lens = evidence["logit lens (intermediate layers)"]
    assert not lens["calibrated"] and "measured wrong on planted (truth: hide)" in lens["detail"]
    assert evidence["relearning (harmful p=0.1)"]["calibrated"] and summary["verdict"] == "erase"


def test_oracle_needs_base(tiny_ckpt: Path, tiny_world_dir: Path, tmp_path: Path) -> None:
    result, text = _run("--ckpt", tiny_ckpt, "--oracle", tiny_ckpt, "--data", tiny_world_dir, "--out",
                        tmp_path / "o")
    assert result.exit_code == 2 and "--oracle needs --base" in text
    result, text = _run("--ckpt", tiny_ckpt, "--base", tiny_ckpt, "--data", tiny_world_dir, "--out", tmp_path / "t",
                        "--target", "logit")
    assert result.exit_code == 2 and "--target" in text
