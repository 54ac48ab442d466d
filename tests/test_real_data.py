"""Real-data protocol: `prepare` (FaithUn / TOFU / Alpaca), `finetune` (TOFU's first step), configs/faithun.toml and
configs/tofu.toml checked key by key, and both grids run end to end on the tiny world written as real files."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
import torch
from realdata_helpers import world_as_alpaca, world_as_faithun, world_as_tofu
from typer.testing import CliRunner

from neuronscope.base_model import FinetuneConfig, finetune_base, finetune_items
from neuronscope.cli import app
from neuronscope.data.schema import QADataset, load_dataset
from neuronscope.experiment.config import parse_config
from neuronscope.experiment.grid import run_grid
from neuronscope.models.handle import load_model
from neuronscope.rouge import TOFU_ROUGE_THRESHOLD
from neuronscope.scoring import answer_probabilities, stop_threshold

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture(scope="module")
def files(tiny_world: QADataset, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("real")
    return {"faithun": world_as_faithun(tiny_world, tmp / "faithun").parent,
            "tofu": world_as_tofu(tiny_world, tmp / "tofu"),
            "alpaca": world_as_alpaca(tiny_world, tmp / "alpaca_data.json")}


def test_prepare_faithun_mcqa_with_benign(files: dict[str, Path], tiny_world: QADataset, tmp_path: Path) -> None:
    out = tmp_path / "prepared"
    r = runner.invoke(app, ["prepare", "--data", str(files["faithun"]), "--prompt", "mcqa", "--benign",
                            str(files["alpaca"]), "--benign-n", "20", "--out", str(out)])
    assert r.exit_code == 0, r.output
    ds = load_dataset(out)
    assert len(ds.items("forget")) == len(tiny_world.items("forget"))  # one cluster per base fact, split kept
    first = ds.items("forget")[0]
    assert first.question.startswith("Question: ") and first.question.endswith("\nAnswer:")
    assert f". {first.answer}\n" in first.question + "\n"
    assert len(ds.benign) == 20 and ds.meta["prompt"]["template"].startswith("Question:")
    assert stop_threshold(ds) == 1 / 3 and "stops at FS <= 0.3333" in r.output


def test_prepare_tofu_keeps_rouge_through_disk(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "tofu"
    assert runner.invoke(app, ["prepare", "--data", str(files["tofu"]), "--out", str(out)]).exit_code == 0
    ds = load_dataset(out)
    assert ds.meta["metric"] == "rouge" and stop_threshold(ds) == TOFU_ROUGE_THRESHOLD
    assert set(ds.splits) == {"forget", "retain"} and all(not it.options for it in ds.items("forget"))


@pytest.mark.parametrize(("args", "message"), [
    (["--chat"], "--chat needs --tokenizer-from"),
    (["--prompt", "nope"], "unknown prompt format"),
    (["--benign", "missing.json"], "missing.json: file not found"),
])
def test_prepare_bad_input_is_one_line(files: dict[str, Path], tmp_path: Path, args: list[str], message: str
                                       ) -> None:
    out = tmp_path / "never"
    r = runner.invoke(app, ["prepare", "--data", str(files["faithun"]), "--out", str(out), *args])
    assert r.exit_code == 2 and message in r.output and not out.exists()


def test_finetune_trains_every_base_item_for_the_epochs(tiny_ckpt: Path, tiny_world: QADataset) -> None:
    model = load_model(tiny_ckpt, bridge=False)
    with torch.no_grad():
        for p in model.hf.parameters():  # a "pretrained" model that does not know the facts
            p.add_(torch.randn_like(p) * 0.05)
    items = finetune_items(tiny_world, ("forget",))
    assert items and all(it.kind == "base" and it.cluster not in {f.cluster for f in tiny_world.items("forget")}
                         for it in items)
    before = answer_probabilities(model, items).log().mean()
    result = finetune_base(model, tiny_world, FinetuneConfig(lr=1e-3, epochs=2, batch_size=16,
                                                             exclude_splits=("forget",)))
    assert result.steps == 2 * -(-len(items) // 16)  # whole epochs, no early stop
    assert answer_probabilities(model, items).log().mean() > before


def test_finetune_cli(tiny_ckpt: Path, tiny_world_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ft"
    r = runner.invoke(app, ["finetune", "--ckpt", str(tiny_ckpt), "--data", str(tiny_world_dir), "--out", str(out),
                            "--lr", "1e-4", "--epochs", "1", "--exclude", "forget"])
    assert r.exit_code == 0, r.output
    assert (out / "model.safetensors").is_file() and (out / "neuronscope_finetune.json").is_file()
    r = runner.invoke(app, ["finetune", "--ckpt", str(tmp_path / "nope"), "--data", str(tiny_world_dir),
                            "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "checkpoint directory not found" in r.output


def _config(name: str, swap: dict[str, Any]) -> dict[str, Any]:
    """configs/<name>.toml with its data and model paths swapped for fixtures; everything else as shipped."""
    doc = tomllib.loads((ROOT / "configs" / f"{name}.toml").read_text())
    for dotted, value in swap.items():
        *parents, leaf = dotted.split(".")
        table = doc
        for p in parents:
            table = table.setdefault(p, {})
        table[leaf] = value
    return doc


def _tiny(files: dict[str, Path], ckpt: Path, name: str) -> dict[str, Any]:
    return {"data.path": str(files[name]), "data.benign": str(files["alpaca"]), "base.ckpt": str(ckpt),
            "data.chat": False, "data.benign_n": 20, "run.device": "cpu", "run.dtype": "float32"}


@pytest.mark.parametrize("name", ["faithun", "tofu"])
def test_shipped_configs_parse(name: str, files: dict[str, Path], tiny_ckpt: Path) -> None:
    shipped = _config(name, {})
    assert shipped["run"]["dtype"] == "float32" and shipped["run"]["device"] == "cuda"
    cfg = parse_config(_config(name, _tiny(files, tiny_ckpt, name)), name)
    assert cfg.data.format == name and cfg.base_ckpt == str(tiny_ckpt.resolve())
    if name == "tofu":
        assert cfg.finetune == FinetuneConfig(lr=1e-5, epochs=5, batch_size=16) and cfg.oracle
        assert cfg.patching is False
    else:
        assert cfg.finetune is None and not cfg.oracle and cfg.data.prompt == "mcqa"
    assert len(cfg.utility.lm_eval) == 5 and cfg.utility.limit == 500  # the paper's US: five benchmarks, 500 each
    # chat needs a tokenizer with a chat template: the tiny word-level one has none
    chat = _config(name, _tiny(files, tiny_ckpt, name) | {"data.chat": True})
    assert parse_config(chat, name).data.chat


@pytest.fixture(scope="module")
def blank_ckpt(tiny_world: QADataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained toy model: the "pretrained" start of TOFU, which knows no fictitious author."""
    from conftest import TINY_TOY

    from neuronscope.base_model import new_toy_model

    return new_toy_model(tiny_world, TINY_TOY, seed=0).save(tmp_path_factory.mktemp("blank") / "blank")


def _shrink(doc: dict[str, Any], tofu: bool) -> dict[str, Any]:
    assert doc.pop("utility")["lm_eval"] == ["paper"]  # no benchmark data offline; tests/test_lm_eval_utility.py
    doc["unlearn"] = {"methods": ["ga"], "lr": 3e-3, "max_steps": 40, "check_every": 2 if tofu else 1}
    doc["attacks"] = {"seeds": [0], "harmful_p": [0.3], "benign": True, "harmful_lr": [1e-3], "benign_lr": [1e-3],
                      "steps": 2, "eval_every": 1, "batch_size": 8}
    doc["attribution"] = {"enabled": False}
    if tofu:
        doc["base"]["finetune"] = {"lr": 3e-3, "epochs": 40, "batch_size": 16}
    return doc


@pytest.mark.slow
@pytest.mark.parametrize("name", ["faithun", "tofu"])
def test_shipped_protocols_run_end_to_end(name: str, files: dict[str, Path], tiny_ckpt: Path, blank_ckpt: Path,
                                          tmp_path: Path) -> None:
    tofu = name == "tofu"  # TOFU fine-tunes a model that never saw the facts; FaithUn's model already knows them
    swap = _tiny(files, blank_ckpt if tofu else tiny_ckpt, name) | ({} if tofu else {"data.prompt": "plain"})
    cfg = parse_config(_shrink(_config(name, swap), tofu), name)
    result = run_grid(cfg, tmp_path / "run").results
    evals, ga = result["evals"], result["unlearn"]["ga"]
    assert ga["threshold"] == (TOFU_ROUGE_THRESHOLD if tofu else 1 / 3)
    assert evals["ga"]["fs"] < evals["base"]["fs"] and ga["threshold"] < evals["base"]["fs"]
    assert ga["reached"] == (evals["ga"]["fs"] <= ga["threshold"])  # (TOFU's one-word answers can stall at 5/24)
    assert ga["reached"] or ga["steps"] == 40
    if not tofu:
        assert ga["reached"]
    assert set(result["attacks"]["ga"]) == {"harmful p=0.3", "benign"}
    if tofu:  # fine-tuned base and a retain-only oracle, both from the given checkpoint
        assert evals["base"]["train"]["steps"] > 0 and "oracle" in evals
        assert evals["oracle"]["fs"] < evals["base"]["fs"]
    assert (tmp_path / "run" / "table.csv").is_file() and (tmp_path / "run" / "table.md").is_file()
    note = (tmp_path / "run" / "table.md").read_text()
    assert ("mean ROUGE-L recall. Unlearning stopped at FS <= 0.1971" if tofu else
            "multiple-choice accuracy. Unlearning stopped at FS <= 0.3333") in note
    from neuronscope.cli.figures import build_figures

    fig = build_figures(tmp_path / "run")["figure2_recovery"]  # Figure 2 says what FS is and what its line means
    assert ("ROUGE-L recall" in fig.layout.yaxis.title.text) == tofu
    assert [a.text for a in fig.layout.annotations] == ["stop threshold" if tofu else "chance"]
    assert fig.layout.shapes[0].y0 == pytest.approx(ga["threshold"])


def test_chat_prepared_data_scores_through_the_template(files: dict[str, Path], tiny_ckpt: Path, tmp_path: Path
                                                        ) -> None:
    """--chat renders with the checkpoint's own template; the rendered prompt keeps one BOS when encoded."""
    import shutil

    from neuronscope.batching import encode
    from neuronscope.models.handle import load_tokenizer
    from neuronscope.scoring import evaluate

    ckpt = tmp_path / "chat-ckpt"
    shutil.copytree(tiny_ckpt, ckpt)
    tok = load_tokenizer(ckpt)
    tok.chat_template = "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}"
    tok.save_pretrained(ckpt)
    out = tmp_path / "chat-data"
    r = runner.invoke(app, ["prepare", "--data", str(files["faithun"]), "--chat", "--tokenizer-from", str(ckpt),
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    ds = load_dataset(out)
    first = ds.items("forget")[0]
    assert first.question.startswith("<bos>") and ds.meta["chat_tokenizer"] == str(ckpt)
    model = load_model(ckpt, bridge=False)
    ids = encode(model.tokenizer, [first.question], [first.answer]).input_ids[0].tolist()
    assert ids.count(model.tokenizer.bos_token_id) == 1
    # this template adds only BOS, so the tiny model sees its training prompts and still knows the facts
    assert evaluate(model, ds).fs >= 0.9
    r = runner.invoke(app, ["prepare", "--data", str(files["faithun"]), "--chat", "--tokenizer-from", str(tiny_ckpt),
                            "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "has no chat template" in r.output


def test_shipped_faithun_config_dry_run_plans_a_3b_model_without_weights(files: dict[str, Path], tiny_ckpt: Path,
                                                                         tmp_path: Path) -> None:
    """configs/faithun.toml as shipped, its paths pointing at a Llama-3.2-3B-shaped config.json (no weights) with a
    chat-template tokenizer and the FaithUn fixture: the plan prints in seconds and names the exact model size."""
    from test_plan import LLAMA_3B

    from neuronscope.models.handle import load_tokenizer

    llama = tmp_path / "Llama-3.2-3B-Instruct"
    llama.mkdir()
    (llama / "config.json").write_text(__import__("json").dumps(LLAMA_3B))
    tok = load_tokenizer(tiny_ckpt)
    tok.chat_template = "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}"
    tok.save_pretrained(llama)
    text = (ROOT / "configs" / "faithun.toml").read_text()
    for old, new in (("../data/faithun", files["faithun"]), ("../data/alpaca_data.json", files["alpaca"]),
                     ("../models/Llama-3.2-3B-Instruct", llama)):
        assert f'"{old}"' in text
        text = text.replace(f'"{old}"', f'"{new}"')
    config = tmp_path / "faithun.toml"
    config.write_text(text)
    r = runner.invoke(app, ["run", str(config), "--dry-run"], terminal_width=200)
    assert r.exit_code == 0, r.output
    assert "3,212,749,824" in r.output and "grid: optimiser steps" in r.output
    assert not list(tmp_path.glob("runs*"))
