"""Prompt length against the model's context and the memory budget (neuronscope.budget), checked before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from neuronscope.batching import encode, encode_row
from neuronscope.budget import Sizes, check_dataset, context_length, forward_bytes, plan_batches
from neuronscope.cli import app
from neuronscope.data.schema import QAItem, load_dataset, save_dataset
from neuronscope.errors import NeuronscopeError
from neuronscope.models.handle import load_model
from neuronscope.scoring import _logprobs, evaluate

runner = CliRunner()


def test_plan_batches_keeps_chunks_that_fit_and_splits_only_the_others_in_order() -> None:
    widths = [5, 5, 5, 5, 50, 5, 5, 5, 5, 5]

    def fits(n: int, w: int) -> bool:  # a budget of 60 token slots
        return n * w <= 60

    plan = plan_batches(widths, 4, fits)
    # the chunk holding the 50-token item is cut into rows that fit, each padded to that chunk's width
    assert plan == [(range(0, 4), 5), (range(4, 5), 50), (range(5, 6), 50), (range(6, 7), 50), (range(7, 8), 50),
                    (range(8, 10), 5)]
    assert [i for r, _ in plan for i in r] == list(range(len(widths)))  # every item once, in the original order
    assert plan_batches(widths, 4, lambda n, w: True) == [(range(0, 4), 5), (range(4, 8), 50), (range(8, 10), 5)]
    # 10 rows of which at most 4 fit: 3 pieces of at most ceil(10 / 3) = 4 rows, in order
    assert plan_batches([7] * 10, 10, lambda n, w: n <= 4) == [(range(0, 4), 7), (range(4, 8), 7), (range(8, 10), 7)]
    with pytest.raises(NeuronscopeError, match="'q5' of 50 tokens does not fit the memory budget even alone"):
        plan_batches(widths, 4, lambda n, w: n * w <= 40, names=[f"q{i + 1}" for i in range(len(widths))])


def test_forward_bytes_counts_the_real_attention_and_logits_tensors(tiny_ckpt: Path) -> None:
    """The two terms that grow with width, against the sizes of the tensors the model really returns."""
    model = load_model(tiny_ckpt, bridge=False)
    sizes = Sizes.of(model)
    ids = torch.randint(0, sizes.vocab, (3, 20))
    with torch.no_grad():
        out = model.hf(input_ids=ids, output_attentions=True)
    attn = out.attentions[0]  # one layer's probabilities; eager attention also holds the float32 scores
    logits = out.logits
    measured = 2 * attn.numel() * 4 + logits.numel() * (logits.element_size() + 8)
    # only the attention and logits terms: no MLP, no residual stream
    lean = Sizes(hidden=0, layers=sizes.layers, heads=sizes.heads, intermediate=0, vocab=sizes.vocab,
                 dtype_bytes=logits.element_size())
    assert forward_bytes(lean, 3, 20) == measured
    assert forward_bytes(sizes, 3, 20, train=True) > forward_bytes(sizes, 3, 20)
    assert context_length(model.hf.config) == (64, "max_position_embeddings")


def test_split_batches_give_bit_identical_item_scores(tiny_ckpt: Path, tiny_world, monkeypatch) -> None:
    """A batch split by the memory budget scores every item exactly as the unsplit batch does (each piece keeps
    the whole batch's padded width; right padding and a causal model: each row sees only its own tokens), and with
    no budget pressure the batches are the old ones."""
    model = load_model(tiny_ckpt, bridge=False)
    items = tiny_world.items("forget", None) + tiny_world.items("retain", None)
    prompts = [it.question for it in items for _ in it.options]
    answers = [o for it in items for o in it.options]
    whole, _ = _logprobs(model, prompts, answers, 256)
    widest = max(len(encode_row(model.tokenizer, p, a)[0]) for p, a in zip(prompts, answers, strict=True))
    monkeypatch.setenv("NEURONSCOPE_MEMORY_GB", str(forward_bytes(Sizes.of(model), 7, widest) / 1024**3))
    rows = [encode_row(model.tokenizer, p, a) for p, a in zip(prompts, answers, strict=True)]
    from neuronscope.budget import scoring_batches

    parts = scoring_batches(model, rows, 256)
    assert len(parts) > 10 and all(len(r) <= 7 for r, _ in parts)  # the budget really splits the batches
    split, _ = _logprobs(model, prompts, answers, 256)
    assert torch.equal(split, whole)
    # and the unsplit path is the old one: one padded batch of the first 256 rows
    with torch.no_grad():
        batch = encode(model.tokenizer, prompts[:256], answers[:256])
        from neuronscope.scoring import answer_logprobs

        old = answer_logprobs(model.hf(input_ids=batch.input_ids).logits, batch)
    assert torch.equal(whole[:256], old)


def _with_long_question(world: Path, out: Path, words: int) -> Path:
    ds = load_dataset(world)
    first = ds.splits["forget"][0]
    long = QAItem(id="long-1", question=" ".join(["where"] * words) + " ?", answer=first.answer,
                  options=first.options, cluster=first.cluster, kind="base", fact=first.fact)
    ds.splits["forget"].append(long)
    return save_dataset(ds, out)


def test_a_question_longer_than_the_context_is_one_error_before_scoring(tiny_ckpt: Path, tiny_world_dir: Path,
                                                                         tmp_path: Path) -> None:
    """Issue case: a 5,000-word question. It used to be scored past the toy's 64 positions in a batch of 256 rows
    padded to it; now `eval` names it and stops."""
    data = _with_long_question(tiny_world_dir, tmp_path / "long", 5000)
    result = runner.invoke(app, ["eval", "--ckpt", str(tiny_ckpt), "--data", str(data)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output
    assert "forget item 'long-1' is 5003 tokens" in lines[0]
    assert "longer than the model's context of 64 positions (max_position_embeddings)" in lines[0]


@pytest.mark.parametrize("command", ["unlearn", "attack"])
def test_training_commands_check_lengths_before_training(command: str, tiny_ckpt: Path, tiny_world_dir: Path,
                                                         tmp_path: Path) -> None:
    data = _with_long_question(tiny_world_dir, tmp_path / "long", 80)
    args = {"unlearn": ["unlearn", "--method", "ga"], "attack": ["attack", "--kind", "benign"]}[command]
    out = tmp_path / "out"
    result = runner.invoke(app, [*args, "--ckpt", str(tiny_ckpt), "--data", str(data), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "forget item 'long-1' is 83 tokens" in result.stderr and "Traceback" not in result.output
    assert not out.exists() or not any(out.iterdir())


def test_the_cpu_budget_counts_the_memory_the_kernel_gives_back(tmp_path: Path, monkeypatch) -> None:
    """Linux: half of MemAvailable (free pages plus reclaimable page cache), not of the free pages alone, which a
    run's own checkpoints, cached after they are written, shrink towards nothing on a machine with plenty left."""
    from neuronscope import budget

    available_ram = budget.available_ram
    meminfo = tmp_path / "meminfo"  # a 24 GiB machine after a run wrote its checkpoints: 2.2 GiB free, 20 available
    meminfo.write_text("MemTotal:       25165824 kB\nMemFree:         2306048 kB\nMemAvailable:   20971520 kB\n"
                       "Buffers:          102400 kB\nCached:         17825792 kB\n")
    assert available_ram(meminfo) == 20 * 1024**3
    # no MemAvailable line (another OS, an unreadable file): the free pages, as before
    monkeypatch.setattr(budget.os, "sysconf", {"SC_AVPHYS_PAGES": 1000, "SC_PAGE_SIZE": 4096}.__getitem__)
    (tmp_path / "other").write_text("MemTotal: 1024 kB\nMemFree: 512 kB\n")
    assert available_ram(tmp_path / "other") == available_ram(tmp_path / "missing") == 1000 * 4096
    monkeypatch.delenv("NEURONSCOPE_MEMORY_GB", raising=False)
    monkeypatch.setattr(budget, "available_ram", lambda: 20 * 1024**3)
    assert budget.memory_budget("cpu") == 10 * 1024**3


def test_memory_budget_names_the_item_too_long_for_it(tiny_ckpt: Path, tiny_world, monkeypatch) -> None:
    model = load_model(tiny_ckpt, bridge=False)
    monkeypatch.setenv("NEURONSCOPE_MEMORY_GB", "1e-6")  # 1 KiB: no sequence fits
    with pytest.raises(NeuronscopeError, match=r"one forward pass over it needs about .* GiB, over the memory "
                                               r"budget of 0.0 GiB"):
        evaluate(model, tiny_world)
    monkeypatch.setenv("NEURONSCOPE_MEMORY_GB", "lots")
    with pytest.raises(NeuronscopeError, match="NEURONSCOPE_MEMORY_GB must be a positive number"):
        check_dataset(model, tiny_world)


def test_a_training_batch_over_the_budget_is_refused_not_split(tiny_ckpt: Path, tiny_world, monkeypatch) -> None:
    """Training batches are never split (it would change the gradient): too large a one is an error naming the
    flag, raised before the first step."""
    from neuronscope.unlearn import UnlearnConfig, unlearn

    model = load_model(tiny_ckpt, bridge=False)
    widths = [len(encode_row(model.tokenizer, it.question, it.answer)[0]) for it in tiny_world.items("forget")]
    one = forward_bytes(Sizes.of(model), 1, max(widths), train=True)
    monkeypatch.setenv("NEURONSCOPE_MEMORY_GB", json.dumps(3 * one / 1024**3))
    before = [p.detach().clone() for p in model.hf.parameters()]
    with pytest.raises(NeuronscopeError, match="a training batch of 16 sequences .* lower --batch-size"):
        unlearn(model, tiny_world, "ga", UnlearnConfig(batch_size=16))
    assert all(torch.equal(a, b) for a, b in zip(before, model.hf.parameters(), strict=True))


def test_an_attribution_batch_over_the_budget_is_refused_and_the_cli_names_its_flag(
        tiny_ckpt: Path, tiny_world, tiny_world_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """Attribution keeps activations for its gradient and never splits a batch: a batch over the budget is one error
    naming the setting (the library's name; the CLI's flag), before any model work."""
    from typer.testing import CliRunner

    from neuronscope.attribution.run import AttributeSettings, attribute_checkpoint
    from neuronscope.cli import app
    from neuronscope.errors import SettingError

    model = load_model(tiny_ckpt, bridge=False)
    items = tiny_world.items("forget", "base")
    pairs = [(it.question, a) for it in items for a in dict.fromkeys((it.answer, *it.options))]
    widest = max(len(encode_row(model.tokenizer, q, a)[0]) for q, a in pairs)
    one = forward_bytes(Sizes.of(model), 1, widest, train=True)
    monkeypatch.setenv("NEURONSCOPE_MEMORY_GB", json.dumps(3 * one / 1024**3))  # 3 sequences fit, 16 do not
    with pytest.raises(SettingError, match="an attribution batch of 16 sequences .* lower batch_size$"):
        attribute_checkpoint(model, items, AttributeSettings(batch_size=16))
    attribute_checkpoint(model, items[:2], AttributeSettings(batch_size=2, patching=False))  # 2 fit: no error
    result = CliRunner().invoke(app, ["attribute", "--ckpt", str(tiny_ckpt), "--data", str(tiny_world_dir),
                                      "--out", str(tmp_path / "a"), "--batch-size", "16"])
    assert result.exit_code == 2 and result.stderr.strip().endswith("lower --batch-size"), result.output
    assert not (tmp_path / "a").exists()
