"""The whole pipeline on a tiny random checkpoint of one HF family: the checks every family file runs.

Each `tests/test_family_<name>.py` imports these and defines the `family` fixture; a family that takes part in a
check run only on some families (`check_*`) binds it to a test name there. Every check compares with something
computed independently: plain HF models loaded with transformers alone, torch forward hooks on the HF modules
named in `family_helpers.HF_MODULES` (fused q/k/v sliced by hand), autograd through the plain HF model, or a
before/after measurement of the quantity a stage exists to move.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch
from family_helpers import (
    FAMILIES,
    GATED,
    GEMMA2_FINAL_SOFTCAP,
    HEAD_DIM,
    HF_BLOCKS,
    HF_FINAL_NORM,
    HF_MODULES,
    N_HEADS,
    N_KV_HEADS,
    N_LAYERS,
    build_family_checkpoint,
    expected_modules,
    hf_block_module,
    hf_block_outputs,
    hf_slice,
)
from torch import Tensor
from transformers import AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerFast
from typer.testing import CliRunner

from neuronscope.attacks import AttackConfig, attack
from neuronscope.attribution import attribution_scores
from neuronscope.batching import Batch, encode
from neuronscope.cli import app
from neuronscope.data.schema import QADataset, QAItem
from neuronscope.lens import lens_logits, logit_lens
from neuronscope.models.families import SPECS, spec_for
from neuronscope.models.handle import Model, load_model
from neuronscope.models.projections import projections
from neuronscope.models.tokenizer import build_word_tokenizer
from neuronscope.scoring import answer_logprobs, answer_probabilities
from neuronscope.unlearn import METHODS, UnlearnConfig, unlearn

Key = tuple[int, str]  # (layer, module)
# float64 agreement between the bridge and the plain HF model. HF's GPT-NeoX attention takes its softmax in float32
# whatever the model dtype (the bridge keeps float64), so that family agrees only to float32 rounding.
F64_RTOL = {family: 1e-9 for family in FAMILIES} | {"gpt_neox": 1e-5}


class Checkpoints:
    """Each family's tiny checkpoint, built on first use into its own temporary directory, then reused."""

    def __init__(self, tok: PreTrainedTokenizerFast, factory: pytest.TempPathFactory):
        self.tok, self.factory = tok, factory
        self.paths: dict[str, Path] = {}

    def __getitem__(self, family: str) -> Path:
        if family not in self.paths:
            self.paths[family] = build_family_checkpoint(family, self.tok, self.factory.mktemp(family) / family)
        return self.paths[family]


@pytest.fixture(scope="module")
def tok(tiny_world: QADataset) -> PreTrainedTokenizerFast:
    return build_word_tokenizer(tiny_world.all_text())


@pytest.fixture(scope="module")
def ckpts(tok: PreTrainedTokenizerFast, tmp_path_factory: pytest.TempPathFactory) -> Checkpoints:
    return Checkpoints(tok, tmp_path_factory)


@pytest.fixture(scope="module")
def forget(tiny_world: QADataset) -> list[QAItem]:
    return tiny_world.items("forget", "base")


def plain_model(path: Path, dtype: torch.dtype = torch.float32) -> PreTrainedModel:
    """The checkpoint through transformers alone: no bridge, no neuronscope code."""
    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation="eager").eval()


def batch_of(model: Model, items: list[QAItem]) -> Batch:
    return encode(model.tokenizer, [it.question for it in items], [it.answer for it in items])


def encode_one(tok: PreTrainedTokenizerFast, item: QAItem) -> tuple[Tensor, int]:
    """(ids of prompt + answer, prompt length) of one unpadded example, tokenised by hand."""
    p_ids = tok(item.question)["input_ids"]
    a_ids = tok(" " + item.answer, add_special_tokens=False)["input_ids"]
    return torch.tensor([p_ids + a_ids]), len(p_ids)


def log_p_answer(logits: Tensor, ids: Tensor, n_prompt: int) -> Tensor:
    """log P(answer | prompt) of one example (the logit at position j - 1 predicts token j)."""
    logp = torch.log_softmax(logits[0, :-1].double(), dim=-1)
    pos = torch.arange(n_prompt - 1, ids.shape[1] - 1)
    return logp[pos, ids[0, pos + 1]].sum()


@contextlib.contextmanager
def hf_outputs(hf: PreTrainedModel, family: str, keep_grad: bool = False) -> Iterator[dict[Key, Tensor]]:
    """Raw outputs of every projection's HF module by (layer, module); fused qkv outputs are kept whole."""
    raw: dict[Key, Tensor] = {}
    handles = []
    for layer in range(N_LAYERS):
        for module in expected_modules(family):
            def keep(mod: torch.nn.Module, args: object, out: Tensor, key: Key = (layer, module)) -> None:
                if keep_grad:
                    out.retain_grad()
                raw[key] = out
            handles.append(hf_block_module(hf, family, layer, module).register_forward_hook(keep))
    try:
        yield raw
    finally:
        for h in handles:
            h.remove()


def projection_outputs(hf: PreTrainedModel, family: str, ids: Tensor) -> dict[Key, Tensor]:
    with torch.no_grad(), hf_outputs(hf, family) as raw:
        hf(input_ids=ids)
    return {key: hf_slice(HF_MODULES[family][key[1]], out) for key, out in raw.items()}


def perturb(model: Model, seed: int, only: str | None = None, scale: float = 0.1) -> None:
    """Move parameters in place, as an optimiser step does (only those whose name starts with `only`)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.hf.named_parameters():
            if only is None or name.startswith(only):
                p.add_(scale * torch.randn(p.shape, generator=gen).to(p.dtype))


# -- the family spec --------------------------------------------------------------------------------------------

def test_family_spec_finds_the_hf_modules(family: str, ckpts: Checkpoints) -> None:
    """The spec's blocks, final norm, MLP parameters and projection modules are the ones the independent table in
    family_helpers names (RMU trains exactly the MLP parameters of its blocks; the lens applies this norm)."""
    model = load_model(ckpts[family], bridge=False)
    spec = spec_for(model)
    assert spec is SPECS[family] and spec.model_type == model.hf.config.model_type == family
    hf = model.hf
    assert spec.decoder_blocks(hf) is hf.get_submodule(HF_BLOCKS[family]) and len(spec.decoder_blocks(hf)) == N_LAYERS
    assert spec.final_norm_module(hf) is hf.get_submodule(HF_FINAL_NORM[family])
    assert spec.modules == expected_modules(family) and spec.gated == (family in GATED)
    assert {m: p for m, p in spec.hf_projections.items()} == {m: s.path for m, s in HF_MODULES[family].items()}
    assert spec.fused_qkv == any(s.part is not None for s in HF_MODULES[family].values())
    for layer in range(N_LAYERS):
        prefix = f"{HF_BLOCKS[family]}.{layer}.mlp."
        got = {n for n, _ in hf.named_parameters() if spec.mlp_layer(n) == layer}
        assert got == {n for n, _ in hf.named_parameters() if n.startswith(prefix)} and got
    assert spec.softcap_value(hf.config) == (GEMMA2_FINAL_SOFTCAP if family == "gemma2" else None)


# -- projection hooks -------------------------------------------------------------------------------------------

def _assert_hooks_match(model: Model, plain: PreTrainedModel, family: str, ids: Tensor) -> None:
    projs = projections(model.bridge)
    want = projection_outputs(plain, family, ids)
    with torch.no_grad():
        logits, cache = model.bridge.run_with_cache(ids, names_filter=lambda n: n in {p.hook for p in projs})
        torch.testing.assert_close(logits, plain(input_ids=ids).logits, rtol=1e-4, atol=1e-5)
    for p in projs:
        got = cache[p.hook]
        if p.module in ("q", "k", "v"):  # per head: (batch, pos, head, head_dim)
            heads = N_KV_HEADS if family in GATED and p.module != "q" else N_HEADS
            assert got.shape[2:] == (heads, HEAD_DIM), (p.hook, got.shape)
        torch.testing.assert_close(got.flatten(2), want[p.layer, p.module], rtol=1e-4, atol=1e-5,
                                   msg=lambda m, p=p: f"{family} {p.hook}: {m}")


def test_projection_hooks_equal_hf_module_outputs(family: str, ckpts: Checkpoints, forget: list[QAItem]) -> None:
    model = load_model(ckpts[family])
    found = [(p.layer, p.module) for p in projections(model.bridge)]
    assert found == [(layer, m) for layer in range(N_LAYERS) for m in expected_modules(family)]
    plain = plain_model(ckpts[family])
    ids = batch_of(model, forget[:8]).input_ids  # right-padded rows of different lengths
    _assert_hooks_match(model, plain, family, ids)
    # Training changes the weights in place after the bridge was booted: hooks must follow (a bridge that split a
    # fused qkv into copies at boot would still report the old q, k, v here).
    perturb(model, seed=1)
    plain.load_state_dict(model.hf.state_dict())
    _assert_hooks_match(model, plain, family, ids)


def test_gradients_through_the_bridge_land_on_hf_parameters(family: str, ckpts: Checkpoints,
                                                            forget: list[QAItem]) -> None:
    """What ssiuu-neuron trains through the bridge must reach exactly the HF parameters the optimiser steps."""
    model = load_model(ckpts[family], dtype=torch.float64)
    plain = plain_model(ckpts[family], torch.float64)
    batch = batch_of(model, forget[:8])
    answer_logprobs(model.bridge(batch.input_ids), batch).sum().backward()
    answer_logprobs(plain(input_ids=batch.input_ids).logits, batch).sum().backward()
    got = dict(model.hf.named_parameters())
    for name, p in plain.named_parameters():
        assert got[name].grad is not None, f"{family}: no gradient reached {name} through the bridge"
        scale = p.grad.abs().max().item()
        torch.testing.assert_close(got[name].grad, p.grad, rtol=F64_RTOL[family], atol=F64_RTOL[family] * scale,
                                   msg=lambda m, n=name: f"{n}: {m}")


# -- attribution ------------------------------------------------------------------------------------------------

def hf_attribution(hf: PreTrainedModel, family: str, tok: PreTrainedTokenizerFast, items: list[QAItem]
                   ) -> dict[Key, tuple[Tensor, Tensor]]:
    """Per item, max and min over prompt positions of h * dP(y|x)/dh, one unpadded example at a time."""
    maxes: dict[Key, list[Tensor]] = {}
    mins: dict[Key, list[Tensor]] = {}
    for it in items:
        ids, n_prompt = encode_one(tok, it)
        with torch.enable_grad(), hf_outputs(hf, family, keep_grad=True) as raw:
            log_p_answer(hf(input_ids=ids).logits, ids, n_prompt).exp().backward()
        for key, out in raw.items():
            a = hf_slice(HF_MODULES[family][key[1]], out.detach() * out.grad)[0, :n_prompt]
            maxes.setdefault(key, []).append(a.max(0).values)
            mins.setdefault(key, []).append(a.min(0).values)
    return {k: (torch.stack(maxes[k]), torch.stack(mins[k])) for k in maxes}


def test_attribution_equals_activation_times_autograd_gradient(family: str, ckpts: Checkpoints,
                                                               tok: PreTrainedTokenizerFast,
                                                               forget: list[QAItem]) -> None:
    items = forget[:6]
    scores = attribution_scores(load_model(ckpts[family], dtype=torch.float64), items, batch_size=4)
    want = hf_attribution(plain_model(ckpts[family], torch.float64), family, tok, items)
    assert {p.module for p in scores.projections} == set(expected_modules(family))
    for p in scores.projections:
        w_max, w_min = want[p.layer, p.module]
        scale = max(w_max.abs().max().item(), w_min.abs().max().item())
        assert scale > 1e-6, f"{family} {p.hook}: attribution is ~0, the comparison would mean nothing"
        # neurons.py stores A as float32, so float64 inputs agree to float32 rounding
        for got, ref in ((scores.max[p.hook], w_max), (scores.min[p.hook], w_min)):
            torch.testing.assert_close(got.double(), ref, rtol=1e-6, atol=1e-6 * scale,
                                       msg=lambda m, p=p: f"{family} {p.hook}: {m}")


# -- logit lens -------------------------------------------------------------------------------------------------

def test_lens_last_layer_is_the_models_own_logits(family: str, ckpts: Checkpoints, tok: PreTrainedTokenizerFast,
                                                  forget: list[QAItem]) -> None:
    model = load_model(ckpts[family])
    plain = plain_model(ckpts[family])
    ids = batch_of(model, forget[:8]).input_ids
    lens = lens_logits(model, ids)
    assert lens.shape[0] == N_LAYERS
    with torch.no_grad():
        logits = plain(input_ids=ids).logits
        torch.testing.assert_close(lens[-1], logits, rtol=1e-5, atol=1e-5)
        # every layer: the HF block output through the final norm and the unembedding (and Gemma 2's cap)
        cap = getattr(plain.config, "final_logit_softcapping", None)
        norm, unembed = plain.get_submodule(HF_FINAL_NORM[family]), plain.get_output_embeddings()
        for layer, resid in enumerate(hf_block_outputs(plain, family, ids)):
            raw = unembed(norm(resid))
            hand = cap * torch.tanh(raw / cap) if cap else raw
            torch.testing.assert_close(lens[layer], hand, rtol=1e-5, atol=1e-5)
        if family == "gemma2":  # the cap must actually bite, or a lens that forgot it would pass too
            assert cap == GEMMA2_FINAL_SOFTCAP
            assert (raw - logits).abs().max() > 0.5 and logits.abs().max() <= cap
    # logit_lens itself, at the last layer: log p of the gold answer's first token after the last prompt token
    items = forget[:8]
    table = logit_lens(model, items, per_item=True)
    last = table[table["layer"] == N_LAYERS - 1].set_index("item")
    for it in items:
        one, n_prompt = encode_one(tok, it)
        with torch.no_grad():
            logp = torch.log_softmax(plain(input_ids=one).logits[0, n_prompt - 1].double(), -1)
        assert last.loc[it.id, "logp_gold"] == pytest.approx(logp[one[0, n_prompt]].item(), abs=1e-4)


# -- unlearning and attacks -------------------------------------------------------------------------------------

STEPS = 3
# AdamW, 3 full-batch steps. 1e-2 lowers the forget log-probability of every answer-level method on every family
# here by 0.4 to 5 nats. DPO and SimNPO run without their retain NLL: on a random model it raises every answer's
# probability, forget answers included (measured +0.9 to +1.2 nats in 3 steps at weight 1), so it would measure
# the retain term, not DPO. RMU's loss (alpha = 100) overshoots above ~3e-4; at 1e-4 it falls at every step.
METHOD_OVERRIDES: dict[str, dict[str, float]] = {"dpo": {"retain_weight": 0.0}, "simnpo": {"retain_weight": 0.0},
                                                "rmu": {"lr": 1e-4}}
def short_unlearn_config(method: str = "ga") -> UnlearnConfig:
    """A fixed number of full-batch steps: threshold 0 never stops early unless forget accuracy hits 0."""
    return UnlearnConfig(**{"lr": 1e-2, "max_steps": STEPS, "threshold": 0.0, "check_every": STEPS,
                            "rs_every": 0, "eval_kinds": ("base",), "batch_size": 32,
                            **METHOD_OVERRIDES.get(method, {})})


def mean_forget_logp(model: Model, items: list[QAItem]) -> float:
    return answer_probabilities(model, items).log().mean().item()


@pytest.mark.parametrize("method", sorted(METHODS))
def test_unlearning_lowers_forget_logprob(family: str, method: str, ckpts: Checkpoints, tiny_world: QADataset,
                                          forget: list[QAItem]) -> None:
    model = load_model(ckpts[family], bridge=False)  # ssiuu-neuron boots the bridge itself
    before = mean_forget_logp(model, forget)
    result = unlearn(model, tiny_world, method, short_unlearn_config(method))
    assert result.steps == STEPS
    if method == "rmu":  # RMU steers a hidden state toward a random vector; its own loss is what must fall
        rows = result.curve[1:]
        losses, forget_mse = [r["loss"] for r in rows], [r["forget_mse"] for r in rows]
        assert all(b < a for a, b in zip(losses, losses[1:], strict=False)), losses
        assert all(b < a for a, b in zip(forget_mse, forget_mse[1:], strict=False)), forget_mse
    else:
        after = mean_forget_logp(model, forget)
        assert after < before - 0.1, (before, after)


@pytest.mark.parametrize("method", ["dpo", "npo", "rmu"])
def test_methods_with_a_reference_start_where_model_equals_reference(family: str, method: str, ckpts: Checkpoints,
                                                                     tiny_world: QADataset) -> None:
    """At step 1 the model is its frozen reference: DPO's term is log 2, NPO's (2 / beta) log 2, RMU's retain 0."""
    model = load_model(ckpts[family], bridge=False)
    cfg = short_unlearn_config(method)
    first = unlearn(model, tiny_world, method, replace(cfg, max_steps=1, check_every=1)).curve[1]
    log2 = torch.log(torch.tensor(2.0)).item()
    if method == "dpo":
        assert first["dpo"] == pytest.approx(log2, abs=1e-6)
    elif method == "npo":
        assert first["npo"] == pytest.approx(2 / cfg.beta * log2, rel=1e-6)
    else:
        assert first["retain_mse"] == 0.0


def test_harmful_attack_raises_forget_logprob_of_an_unlearned_model(family: str, ckpts: Checkpoints,
                                                                    tiny_world: QADataset,
                                                                    forget: list[QAItem]) -> None:
    model = load_model(ckpts[family], bridge=False)
    unlearn(model, tiny_world, "ga", short_unlearn_config("ga"))
    by_id = {it.id: it for it in forget}
    unlearned = model.clone()
    cfg = AttackConfig(kind="harmful", p=0.5, lr=1e-2, steps=4, eval_every=2, batch_size=16)
    result = attack(model, tiny_world, cfg)
    # trajectory: measured at 0, 2, 4 on held-out forget items; trained-on items are disjoint from measured ones
    assert [pt["step"] for pt in result.trajectory] == [0, 2, 4]
    assert set(result.train_ids).isdisjoint(result.eval_ids)
    assert set(result.train_ids) | set(result.eval_ids) == set(by_id)
    assert len(result.train_ids) == round(0.5 * len(forget)) <= result.n_wrong
    n_eval = len(result.eval_ids)
    assert all(0 <= pt["fs"] <= 1 and round(pt["fs"] * n_eval, 6).is_integer() for pt in result.trajectory)
    assert result.max_fs == max(pt["fs"] for pt in result.trajectory[1:])
    assert len(result.losses) == cfg.steps
    # the held-out forget answers come back (relearning generalises from the trained-on forget facts)
    held_out = [by_id[i] for i in result.eval_ids]
    assert mean_forget_logp(model, held_out) > mean_forget_logp(unlearned, held_out) + 0.05


# -- checkpoints and the CLI ------------------------------------------------------------------------------------

def test_save_load_round_trip_is_exact(family: str, ckpts: Checkpoints, tok: PreTrainedTokenizerFast,
                                       forget: list[QAItem], tmp_path: Path) -> None:
    model = load_model(ckpts[family])
    perturb(model, seed=2)  # so what is saved is not the file it was loaded from
    again = load_model(model.save(tmp_path / "saved"))
    assert type(again.hf) is type(model.hf)
    ids = batch_of(model, forget[:8]).input_ids
    with torch.no_grad():
        logits = model.hf(input_ids=ids).logits
        assert torch.equal(again.hf(input_ids=ids).logits, logits)
        assert torch.equal(again.bridge(ids), model.bridge(ids))
        assert not torch.allclose(plain_model(ckpts[family])(input_ids=ids).logits, logits)
    for it in forget:
        assert again.tokenizer(it.question)["input_ids"] == tok(it.question)["input_ids"]


def projection_widths(family: str, path: Path) -> dict[Key, int]:
    return {k: v.shape[-1] for k, v in projection_outputs(plain_model(path), family, torch.tensor([[1, 4]])).items()}


def check_cli_attribute_against_a_block_perturbed_copy(family: str, ckpts: Checkpoints, tiny_world_dir: Path,
                                                      forget: list[QAItem], tmp_path: Path) -> None:
    model = load_model(ckpts[family], bridge=False)
    perturb(model, seed=3, only=HF_BLOCKS[family] + ".")
    unlearned = model.save(tmp_path / "unlearned")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["attribute", "--ckpt", str(unlearned), "--base", str(ckpts[family]),
                                      "--data", str(tiny_world_dir), "--out", str(out), "--patch-m", "0,10"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    widths = projection_widths(family, ckpts[family])
    table = pd.read_parquet(out / "attribution.parquet")
    assert table.groupby(["layer", "module"], observed=True).size().to_dict() == widths
    assert summary["n_neurons"] == sum(widths.values()) and summary["n_items"] == len(forget)
    # only block parameters differ, so patching every neuron with the base's activations gives back the base
    p = summary["patching"]
    assert p["outside_blocks_equal"] and p["all_neurons_accuracy"] == p["base_accuracy"]


# -- bfloat16 ---------------------------------------------------------------------------------------------------

BF16_REL_TOL = 0.1  # measured: see docs/architecture.md, "Architectures"


def check_bf16_attribution_is_finite_and_close_to_float32(family: str, ckpts: Checkpoints,
                                                         forget: list[QAItem]) -> None:
    items = forget[:8]
    s32 = attribution_scores(load_model(ckpts[family]), items)
    s16 = attribution_scores(load_model(ckpts[family], dtype=torch.bfloat16), items)
    a32, a16 = torch.cat(s32.stacked(), 1), torch.cat(s16.stacked(), 1)
    assert a16.shape == a32.shape and torch.isfinite(a16).all()
    rel = ((a16 - a32).norm() / a32.norm()).item()
    print(f"{family} bf16 vs float32 attribution: relative L2 error {rel:.4f}")
    assert rel < BF16_REL_TOL
