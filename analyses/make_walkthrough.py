"""Write analyses/erase_or_hide.ipynb (run from the repository root): the notebook is generated, not hand-edited."""

import nbformat as nbf

nb = nbf.v4.new_notebook()
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
nb.cells = [
md("""# Erased or hidden? A walkthrough on the embedded default

This notebook runs the whole neuronscope check on the synthetic knowledge world and the toy Llama model, through
the same public API as the CLI: build the world, train a base model, unlearn with GD and Ssiuu, compare neuron
attributions (D+ / D-), probe the layers with the logit lens, and attack with relearning.

Set `NEURONSCOPE_NOTEBOOK_SMALL=1` to run it on a tiny world in seconds (the tests do)."""),
code("""import os

import torch

from neuronscope.base_model import BaseTrainConfig, train_base
from neuronscope.data.world import WorldConfig, build_world
from neuronscope.models.toy import ToyConfig

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
print(f"base model: {base.n_params:,} parameters, {base.epochs} epochs")
print(f"FS {base.report.fs:.3f}  RS {base.report.rs:.3f}  US {base.report.us:.3f}")"""),
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
md("""## Attribution: lost positive influence (D+, erase) vs gained negative influence (D-, hide)"""),
code("""from neuronscope.attribution import attribute_neurons, cumulative_curves, influence_variation, top_m_sum
from neuronscope.plots.influence import figure3_cumulative

forget = ds.items("forget")
base_table = attribute_neurons(base.model, forget)
curves = {}
for method, model in models.items():
    influence = influence_variation(base_table, attribute_neurons(model, forget))
    curves[method] = cumulative_curves(influence)
    print(method, {k: round(v, 4) for k, v in top_m_sum(influence).items()})
figure3_cumulative(curves)"""),
md("""## Logit lens: does a deep layer still prefer the gold answer?"""),
code("""import pandas as pd

from neuronscope.lens import logit_lens
from neuronscope.plots.lens import figure4_lens

lens = pd.concat([logit_lens(m, forget).assign(model=name) for name, m in {"base": base.model, **models}.items()])
figure4_lens(lens)"""),
md("""## Relearning: a benign fine-tune on unrelated instructions

Recovery is the maximum forget accuracy during retraining. Compare it with an oracle that never saw the forget
facts (`neuronscope demo` trains one) before calling anything erased."""),
code("""from neuronscope.attacks import AttackConfig, attack

for method, model in models.items():
    res = attack(model.clone(), ds, AttackConfig(kind="benign", steps=10 if SMALL else 30, seed=0))
    print(method, "recovered FS", round(res.max_fs, 3), [round(p["fs"], 3) for p in res.trajectory])"""),
]
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbf.write(nb, "analyses/erase_or_hide.ipynb")
