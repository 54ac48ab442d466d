"""The verdict rule and each analysis's evidence on hand-built cases whose answer is known; the log-P target
against autograd of log P(y|x)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from neuronscope.attribution.neurons import attribute_neurons
from neuronscope.batching import encode
from neuronscope.data.schema import QADataset
from neuronscope.errors import NeuronscopeError
from neuronscope.models import load_model
from neuronscope.scoring import answer_logprobs
from neuronscope.verdict import TAU, Evidence, classify_gap, decide
from neuronscope.verdict.measures import (
    lens_evidence,
    paper_rule_evidence,
    relearning_evidence,
    visible_evidence,
)


def test_classify_gap_zones() -> None:
    span = 0.8  # the bar is TAU * span = 0.2
    assert classify_gap(0.5, 0.1, span) == "present"  # interval [0.4, 0.6] above 0 and gap >= bar
    assert classify_gap(0.0, 0.1, span) == "absent"  # interval [-0.1, 0.1] below the bar, not above 0
    assert classify_gap(0.15, 0.1, span) == "undetermined"  # [0.05, 0.25]: above 0, but reaches the bar
    assert classify_gap(0.1, 0.05, span) == "undetermined"  # [0.05, 0.15]: a significant trace is never "absent"
    assert classify_gap(0.3, 0.4, span) == "undetermined"  # too wide to say either
    assert classify_gap(0.5, 0.1, 0.0) == "undetermined"  # the base has nothing over the floor: no scale
    assert classify_gap(0.5, math.nan, span) == "undetermined"
    assert TAU * span == pytest.approx(0.2)


def _ev(name: str, says: str, calibrated: bool = True) -> Evidence:
    return Evidence(name, says, calibrated=calibrated)  # type: ignore[arg-type]


def test_decide_truth_table() -> None:
    present, absent, unsure = _ev("a", "present"), _ev("b", "absent"), _ev("c", "undetermined")
    assert decide([absent, present]).label == "hide"  # one detector finding it is enough
    assert decide([absent, _ev("d", "absent")]).label == "erase"
    assert decide([absent, unsure]).label == "undetermined"  # erase needs every detector to rule it out
    assert decide([absent, _ev("e", "not run")]).label == "erase"  # what did not run does not vote
    assert decide([_ev("e", "not run")]).label == "undetermined"
    assert decide([]).label == "undetermined"
    # shown-only analyses never decide: the paper's rule saying "hidden" cannot make the verdict
    assert decide([absent, _ev("paper", "present", calibrated=False)]).label == "erase"
    assert decide([_ev("paper", "absent", calibrated=False)]).label == "undetermined"
    visible = _ev("FS", "present")
    assert decide([absent], visible).label == "not unlearned"
    v = decide([present], _ev("FS", "absent"), {"label": "erase"})
    assert v.label == "hide" and v.paper_rule == {"label": "erase"} and [e.analysis for e in v.evidence] == [
        "FS", "a"]
    assert type(v).from_json(v.to_json()) == v


def _runs(values: list[float], lr: float = 1e-3) -> list[dict]:
    return [{"lr": lr, "seed": i, "max_fs": v} for i, v in enumerate(values)]


def test_relearning_evidence_against_hand_welch() -> None:
    model, floor = [0.70, 0.75, 0.80], [0.35, 0.40, 0.45]
    e = relearning_evidence("harmful p=0.1", _runs(model), _runs(floor), base_fs=1.0)
    # Welch by hand: equal variances 0.0025, n = 3: se = sqrt(2 * 0.0025 / 3); df = 4 -> t = 2.776
    se = math.sqrt(2 * 0.0025 / 3)
    assert e.interval == pytest.approx((0.35 - 2.776 * se, 0.35 + 2.776 * se))
    assert e.says == "present" and e.value == pytest.approx(0.75) and e.reference == pytest.approx(0.40)
    same = relearning_evidence("harmful p=0.1", _runs([0.38, 0.41, 0.40]), _runs(floor), base_fs=1.0)
    assert same.says == "absent"  # within the floor's noise and far below a quarter of the base's margin
    # the strongest learning rate is used for each side, as in Table 1
    mixed = _runs([0.3, 0.3, 0.3], lr=1e-4) + _runs([0.70, 0.75, 0.80])
    assert relearning_evidence("h", mixed, _runs(floor), 1.0).value == pytest.approx(0.75)
    assert relearning_evidence("h", _runs([0.9]), _runs([0.4]), 1.0).says == "undetermined"  # one seed
    assert relearning_evidence("h", [], _runs(floor), 1.0).says == "not run"


def test_seeds_that_all_agree_give_no_interval() -> None:
    """Two seeds each landing on 7/16 against the floor's 4/16 (a real-model run): the spread over seeds is 0, so
    Welch's interval has width 0. That estimates no variance; it is not certainty, so the evidence is
    undetermined, even though the gap (3/16) reaches a quarter of the margin. One seed apart, it is an interval."""
    e = relearning_evidence("benign", _runs([7 / 16, 7 / 16]), _runs([4 / 16, 4 / 16]), base_fs=15 / 16)
    assert e.says == "undetermined" and e.interval is None and "same recovery" in e.detail
    assert e.value == pytest.approx(7 / 16) and e.reference == pytest.approx(4 / 16)
    spread = relearning_evidence("benign", _runs([0.9, 0.95, 1.0]), _runs([0.25, 0.25, 0.25]), base_fs=1.0)
    assert spread.says == "present" and spread.interval[0] > 0.5  # one side varies: a real interval


def test_visible_evidence() -> None:
    assert visible_evidence(0.98, 100, 0.30, 100, 1.0).says == "present"
    assert visible_evidence(0.31, 200, 0.30, 200, 1.0).says == "absent"
    assert visible_evidence(0.5, 0, 0.3, 100, 1.0).says == "not run"


def _layers(accs: list[float], n: int) -> list[dict]:
    return [{"layer": i, "accuracy": a, "n": n} for i, a in enumerate(accs)]


def test_lens_evidence_on_constructed_layers() -> None:
    n = 400  # per-layer half-width ~0.085 (Bonferroni over 3 layers); the bar at layer 0 is 0.25 * 0.45 = 0.11
    base = _layers([0.95, 1.0, 1.0, 1.0], n)
    floor = _layers([0.50, 0.45, 0.45, 0.40], n)
    hidden = _layers([0.95, 1.0, 0.98, 0.30], n)  # the base's reading in the middle, suppressed at the output
    erased = _layers([0.49, 0.46, 0.44, 0.33], n)
    assert lens_evidence(hidden, floor, base).says == "present"
    assert lens_evidence(erased, floor, base).says == "absent"
    # the last layer is the model's output (FS): it alone never makes the lens say "present"
    late_only = _layers([0.50, 0.45, 0.45, 1.0], n)
    assert lens_evidence(late_only, floor, base).says == "absent"
    # a base that is not above the floor at any intermediate layer gives the lens no power
    flat_base = _layers([0.50, 0.45, 0.45, 1.0], n)
    assert lens_evidence(hidden, floor, flat_base).says == "undetermined"
    # paired per-item wins: identical wins mean an exactly-zero difference
    wins = {i: [1.0, 0.0] * (n // 2) for i in range(4)}
    assert lens_evidence(_layers([0.5, 0.5, 0.5, 0.5], n), _layers([0.5, 0.5, 0.5, 0.5], n), base, wins,
                         wins).says == "absent"
    assert lens_evidence(base, floor, []).says == "not run"


def test_paper_rule_evidence_is_shown_not_used() -> None:
    e = paper_rule_evidence({"top100_d_plus": 0.3, "top100_d_minus": 0.05})
    assert e.says == "absent" and not e.calibrated
    assert paper_rule_evidence({"top100_d_plus": 0.1, "top100_d_minus": 0.5}, "logp").says == "present"
    assert paper_rule_evidence(None).says == "not run"


def test_logp_target_against_autograd(tiny_ckpt: Path, tiny_world: QADataset) -> None:
    """target='logp': A = h * d log P(y|x) / dh, checked against plain HF module hooks and autograd of log P."""
    items = tiny_world.forget[:4]
    model = load_model(tiny_ckpt)
    table = attribute_neurons(model, items, batch_size=3, per_example=True, target="logp")
    ref = load_model(tiny_ckpt, bridge=False)
    batch = encode(ref.tokenizer, [it.question for it in items], [it.answer for it in items])
    acts: dict[tuple[int, str], torch.Tensor] = {}
    handles = []
    for layer, block in enumerate(ref.hf.model.layers):
        for module, path in {"q": "self_attn.q_proj", "o": "self_attn.o_proj", "up": "mlp.up_proj",
                             "down": "mlp.down_proj"}.items():
            def keep(mod, inp, out, key=(layer, module)):  # noqa: ANN001, ANN202
                out.retain_grad()
                acts[key] = out
            handles.append(block.get_submodule(path).register_forward_hook(keep))
    answer_logprobs(ref.hf(input_ids=batch.input_ids).logits, batch).sum().backward()
    for h in handles:
        h.remove()
    for (layer, module), h in acts.items():
        a = (h.detach() * h.grad).masked_fill(~batch.prompt_mask.unsqueeze(-1), float("-inf"))
        want_max = a.amax(1)
        got = table[(table.layer == layer) & (table.module == module)]
        got_max = torch.tensor(got["max"].to_numpy()).view(len(items), -1)
        scale = want_max.abs().max().item()
        assert scale > 0
        torch.testing.assert_close(got_max, want_max, atol=1e-5 * scale, rtol=1e-4)
    # and the identity behind it: per item, the log-P attribution is the P attribution divided by P
    p_table = attribute_neurons(model, items, batch_size=3, per_example=True, target="p")
    with torch.no_grad():
        prob = answer_logprobs(ref.hf(input_ids=batch.input_ids).logits, batch).exp()
    ratio = torch.tensor(p_table["max"].to_numpy()).view(len(items), -1) / prob.unsqueeze(-1)
    torch.testing.assert_close(torch.tensor(table["max"].to_numpy()).view(len(items), -1), ratio, rtol=1e-3,
                               atol=1e-6 * ratio.abs().max().item())
    with pytest.raises(NeuronscopeError, match="target"):
        attribute_neurons(model, items, target="log")


def test_never_known_floor_is_shown_but_never_decides() -> None:
    """No oracle (a real pretrained model): recovery against the never-known floor is reported, marked shown only,
    and the headline stays undetermined however large the gap: no exact erasure exists to calibrate that floor."""
    from neuronscope.verdict import model_verdict

    label = "harmful p=0.5"
    results = {"evals": {"base": {"fs": 1.0}, "ga": {"fs": 0.30}}, "attack_labels": [label],
               "attacks": {"ga": {label: _runs([0.90, 0.95, 0.92])}},
               "floor": {label: _runs([0.10, 0.12, 0.08])}, "analyses": {}}
    v = model_verdict("ga", results)
    (shown,) = [e for e in v.evidence if "never-known" in e.analysis]
    assert shown.says == "present" and not shown.calibrated
    assert shown.value == pytest.approx(0.9233, abs=1e-4) and shown.reference == pytest.approx(0.10)
    assert v.label == "undetermined"
    without = model_verdict("ga", {**results, "floor": None})
    assert not any("never-known" in e.analysis for e in without.evidence) and without.label == "undetermined"


def test_never_known_floor_compares_gains_not_starting_points() -> None:
    """Never-known facts start near 0, unlearned ones near chance: an attack that teaches nothing (FS stays at
    its start) must not look like recovery above that floor. Compared as gains over each run's own start, it
    does not; an attack that does bring the facts back shows a gain above the floor's, by hand."""
    from neuronscope.verdict import model_verdict

    def runs(pairs: list[tuple[float, float]]) -> list[dict]:
        return [{"lr": 1e-3, "seed": i, "start_fs": s, "max_fs": m} for i, (s, m) in enumerate(pairs)]

    label = "benign"
    results = {"evals": {"base": {"fs": 1.0}, "ga": {"fs": 0.33}}, "attack_labels": [label],
               "attacks": {"ga": {label: runs([(0.33, 0.33), (0.33, 0.34), (0.33, 0.33)])}},
               "floor": {label: runs([(0.0, 0.02), (0.0, 0.0), (0.0, 0.01)])}, "analyses": {}}
    (shown,) = [e for e in model_verdict("ga", results).evidence if "never-known" in e.analysis]
    assert shown.says != "present" and not shown.calibrated
    assert shown.value == pytest.approx(0.01 / 3) and shown.reference == pytest.approx(0.01)
    assert "gain +0.003 from a start of 0.330" in shown.detail
    back = {**results, "attacks": {"ga": {label: runs([(0.33, 0.90), (0.33, 0.95), (0.33, 0.92)])}}}
    (found,) = [e for e in model_verdict("ga", back).evidence if "never-known" in e.analysis]
    # gains 0.57, 0.62, 0.59 against 0.02, 0, 0.01; the margin is 1 - 0.33, so a quarter of it is 0.1675
    assert found.says == "present" and found.value == pytest.approx(0.5933, abs=1e-4)
    assert model_verdict("ga", back).label == "undetermined"  # shown only: it never decides
