"""Write analyses/erase_or_hide.ipynb (run from the repository root): the notebook is generated, not hand-edited."""

import nbformat as nbf

nb = nbf.v4.new_notebook()
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
nb.cells = [
md("""# Erased or hidden? A walkthrough on the embedded default

This notebook runs the whole neuronscope check on the synthetic knowledge world and the toy Llama model, through
the same public API as the CLI: build the world, train a base model and an oracle (a model that never saw the
facts to forget), look inside with TransformerLens hooks, unlearn with GD and Ssiuu, compare neuron attributions
(D+ / D-), probe the layers with the logit lens, and attack with relearning. After each result a cell says in plain
words what it means, and where it disagrees with the paper (*Erase or Hide?*, Yang et al., ICLR 2026).

Figures are shown with `neuronscope.plots.notebook.show`: interactive where plotly runs, and a static PNG copy
that survives nbconvert and GitHub (it needs the `[export]` extra and Chromium).

Set `NEURONSCOPE_NOTEBOOK_SMALL=1` to run it on a tiny world in seconds (the tests do)."""),
code("""import dataclasses
import math
import os

import torch

from neuronscope.base_model import BaseTrainConfig, train_base
from neuronscope.data.world import WorldConfig, build_world
from neuronscope.models.toy import ToyConfig
from neuronscope.plots.notebook import show

torch.set_num_threads(1)
SMALL = os.environ.get("NEURONSCOPE_NOTEBOOK_SMALL") == "1"
if SMALL:
    world_cfg = WorldConfig(people=24, forget=0.25, retain=0.25, test=0.5, cities=6, countries=4, companies=6,
                            universities=6, arithmetic=3)
    train_cfg = BaseTrainConfig(toy=ToyConfig(d_model=64, n_layers=2, n_heads=4, d_mlp=128), lr=3e-3, check_every=5)
else:
    world_cfg, train_cfg = WorldConfig(), BaseTrainConfig()
ds = build_world(world_cfg)
base = train_base(ds, train_cfg)
oracle = train_base(ds, dataclasses.replace(train_cfg, exclude_splits=("forget",)))
print(f"base model: {base.n_params:,} parameters, {base.epochs} epochs")
print(f"base   FS {base.report.fs:.3f}  RS {base.report.rs:.3f}  US {base.report.us:.3f}")
print(f"oracle FS {oracle.report.fs:.3f}  RS {oracle.report.rs:.3f}  US {oracle.report.us:.3f}")"""),
md("""The base model knows its facts (FS and RS near 1). The oracle was trained on everything except the forget
facts, so its FS is what a model that never learned them scores: the floor an *erased* model should match."""),
md("""## Inside the model, the TransformerLens way

Every loaded model carries `model.bridge`, a TransformerLens `TransformerBridge` over the same weights: the
`run_with_cache`, hook names and `ActivationCache` methods TransformerLens users know all work. neuronscope's own
attribution and lens read these same hook points (`blocks.{l}.attn.{q,k,v,o}.hook_out`,
`blocks.{l}.mlp.{gate,in,out}.hook_out`, `blocks.{l}.hook_resid_post`)."""),
code("""model = base.model
bridge = model.bridge
item = ds.items("forget")[0]
tokens = model.tokenizer(item.question, return_tensors="pt")["input_ids"]
logits, cache = bridge.run_with_cache(tokens)
print("question:", item.question, "| gold:", item.answer, "| options:", item.options)
print("tokens:", bridge.to_str_tokens(tokens))
print("hook points of block 0:", [n for n in bridge.hook_dict if n.startswith("blocks.0.") and n.endswith("hook_out")])
print("MLP output neurons of block 0:", tuple(cache["blocks.0.mlp.out.hook_out"].shape), "(batch, position, neuron)")
resid, labels = cache.accumulated_resid(apply_ln=True, return_labels=True)
print("accumulated residual stream:", tuple(resid.shape), labels)"""),
md("""`accumulated_resid(apply_ln=True)` gives the residual stream before each block and after the last, through
the final norm: unembedding it is the logit lens. By hand, for this one question, the log-probability of the gold
answer's first token against the first distractor's at the last position:"""),
code("""lens_logits = bridge.unembed(resid)  # (layer, batch, position, vocab)
assert torch.allclose(lens_logits[-1], logits, atol=1e-4)  # the last entry is the model's own output
first = lambda text: model.tokenizer(text, add_special_tokens=False)["input_ids"][0]  # noqa: E731
gold, distractor = first(item.answer), first(next(o for o in item.options if o != item.answer))
logp = lens_logits[:, 0, -1].log_softmax(-1)
for label, row in zip(labels, logp, strict=True):
    print(f"{label:>10s}: log p(gold) {row[gold]:7.3f}   log p(distractor) {row[distractor]:7.3f}")"""),
md("""## Unlearn

Each method trains a clone in place and stops as soon as forget accuracy reaches chance (1/3)."""),
code("""from neuronscope.unlearn import UnlearnConfig, unlearn

lr = 1e-3 if SMALL else 1e-4
models = {}
for method in ["gd", "ssiuu"]:
    result = unlearn(base.model.clone(), ds, method, UnlearnConfig(lr=lr))
    models[method] = result.model
    print(f"{method:6s} steps {result.steps:4d}  reached {result.reached}  "
          f"FS {result.fs:.3f}  RS {result.rs:.3f}  US {result.us:.3f}")"""),
md("""Both methods now answer the forget questions at chance. That is where the paper's question starts: is the
knowledge gone, or only suppressed?"""),
md("""## Attribution: lost positive influence (D+, erase) vs gained negative influence (D-, hide)"""),
code("""from neuronscope.attribution import attribute_neurons, cumulative_curves, influence_variation, top_m_sum
from neuronscope.plots.influence import figure3_cumulative

forget = ds.items("forget")
base_table = attribute_neurons(base.model, forget)
curves, tops = {}, {}
for method, m in models.items():
    influence = influence_variation(base_table, attribute_neurons(m, forget))
    curves[method] = cumulative_curves(influence)
    tops[method] = top_m_sum(influence)
show(figure3_cumulative(curves))"""),
code("""# What the attribution says, in words
PAPER_D = {"gd": "hide (D- grows: neurons that push against the answer)",
           "ssiuu": "erase (Ssiuu is built to stop D- from growing)"}
for method, top in tops.items():
    rule = "erase" if top["d_plus"] > top["d_minus"] else "hide"
    ratio = top["d_minus"] / top["d_plus"] if top["d_plus"] else float("inf")
    agrees = PAPER_D[method].startswith(rule)
    print(f"{method}: top-100 D+ {top['d_plus']:.3g}, D- {top['d_minus']:.3g} (D-/D+ = {ratio:.2f}); the paper's "
          f"rule says {rule}. The paper expects {PAPER_D[method]}: this run "
          f"{'agrees' if agrees else 'DISAGREES'}.")"""),
md("""**How to read this.** D+ is influence the forget answers lost (knowledge removed), D- influence that now works
against them (knowledge suppressed). The paper calls a model that gained more D- than it lost D+ "hidden". The rule
is confounded by how far unlearning moved the model: a method that changed many weights shows large D+ and D-
alike. So a disagreement here is a prompt to look at the relearning test below, which compares against the
oracle, not a result on its own."""),
md("""## Logit lens: does a deep layer still prefer the gold answer?"""),
code("""import pandas as pd

from neuronscope.lens import logit_lens
from neuronscope.plots.lens import figure4_lens

everyone = {"base": base.model, "oracle": oracle.model, **models}
lens = pd.concat([logit_lens(m, forget).assign(model=name) for name, m in everyone.items()])
show(figure4_lens(lens))"""),
code("""# What the lens says at the last layer, in words (chance is 0.5: gold vs one distractor)
last = int(lens["layer"].max())
margin = 2 * math.sqrt(0.25 / len(forget))  # two binomial standard errors at chance
PAPER_LENS = {"gd": "below chance", "ssiuu": "at chance"}
for name in ["oracle", *models]:
    acc = float(lens[(lens["model"] == name) & (lens["layer"] == last)]["accuracy"].iloc[0])
    state = ("below chance" if acc < 0.5 - margin else "above chance" if acc > 0.5 + margin else "at chance")
    meaning = {"below chance": "the layer still tells gold from distractor and steers away from the gold: hidden",
               "above chance": "the layer still prefers the gold answer: the fact is still readable there",
               "at chance": "the layer no longer separates gold from distractor"}[state]
    line = f"{name}: last-layer lens accuracy {acc:.2f} ({state}, chance 0.5 ± {margin:.2f}) - {meaning}."
    if name in PAPER_LENS:
        agrees = PAPER_LENS[name] == state
        line += f" The paper has it {PAPER_LENS[name]}: this run {'agrees' if agrees else 'DISAGREES'}."
    print(line)"""),
md("""**How to read this.** The paper finds GD-style baselines below chance in deep layers (the model still "knows"
and avoids the answer) and Ssiuu at chance. On this toy model the lens is noisy (a few dozen questions, two or four
layers), so a model at or below chance where the paper says otherwise is worth stating, not over-reading: the
oracle's line shows what a model that never learned the facts does at each layer, and a method below the oracle is
the stronger sign of hiding."""),
md("""## Relearning: a harmful attack (10% of the forget facts) against the oracle's floor

Recovery is the maximum forget accuracy while retraining, measured on forget questions the attack did not train
on. The oracle takes the same attack: it can only learn those facts from scratch."""),
code("""from neuronscope.attacks import AttackConfig, attack

cfg = AttackConfig(kind="harmful", p=0.1, steps=10 if SMALL else 30, seed=0)
recovered, n_eval = {}, {}
for name, m in {"oracle": oracle.model, **models}.items():
    res = attack(m.clone(), ds, cfg)
    recovered[name], n_eval[name] = res.max_fs, len(res.eval_ids)  # measured on held-out forget questions
    print(f"{name:6s} recovered FS {res.max_fs:.3f}  trajectory {[round(p['fs'], 3) for p in res.trajectory]}")"""),
code("""# What this one relearning run reads, in words (one seed: a reading, not a verdict)
floor = recovered["oracle"]
for method in models:
    gap = recovered[method] - floor
    p, n = (recovered[method] + floor) / 2, min(n_eval[method], n_eval["oracle"])
    noise = 2 * math.sqrt(max(p * (1 - p), 1e-9) * 2 / n)  # two standard errors of a difference
    reading = ("came back faster than the oracle could learn them" if gap > noise else
               "came back slower than for the oracle" if gap < -noise else
               "came back about as fast as for the oracle")
    print(f"{method}: recovered {recovered[method]:.2f} vs oracle {floor:.2f} (gap {gap:+.2f}, noise ±{noise:.2f} "
          f"on {n} questions) - the facts {reading}.")"""),
md("""## The calibrated verdict

Each reading above is one analysis. neuronscope's verdict combines the calibrated ones, each against the oracle
as the floor, with intervals (relearning over seeds, the lens item by item): **hide** if any finds the facts above
the floor, **erase** if every one rules them out, **undetermined** otherwise. The rule was checked on models whose
answer is known by construction (`neuronscope calibrate`, docs/verdict.md); the paper's D+/D- rule is listed beside
it for information only, because it calls a model that hides by construction "erase"."""),
code("""from neuronscope.verdict.checkpoint import checkpoint_verdict

for method, m in models.items():
    paper = {"influence": {"top100_d_plus": tops[method]["d_plus"], "top100_d_minus": tops[method]["d_minus"]}}
    v = checkpoint_verdict(m, base.model, oracle.model, ds, attribution=paper, attacks=[cfg], seeds=(0, 1, 2))
    print(f"{method}: {v.label.upper()} - {v.reason}")
    for e in v.evidence:
        used = "used" if e.calibrated else "shown only"
        print(f"    {e.analysis:34s} {e.says:13s} ({used}) {e.detail}")"""),
md("""## Where this leaves the question

The verdict above is the answer this toolkit gives; the attribution and lens cells say *where* a hidden fact might
sit, and they can disagree with the paper on a toy model (the cells say so when they do). For the full grid with
every method, more seeds and the attribution evidence beside the verdict, run `neuronscope demo` and open its
`figures/report.html`."""),
]
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbf.write(nb, "analyses/erase_or_hide.ipynb")
