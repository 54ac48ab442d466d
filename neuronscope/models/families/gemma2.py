"""Gemma 2: Llama's projections; its final logits are soft-capped, c tanh(logits / c), with
c = config.final_logit_softcapping (the logit lens must apply the cap too, or its last layer would not equal the
model's own logits)."""

from neuronscope.models.families.llama import LLAMA_PROJECTIONS
from neuronscope.models.families.registry import register
from neuronscope.models.families.spec import FamilySpec

GEMMA2 = register(FamilySpec(model_type="gemma2", blocks="model.layers", final_norm="model.norm",
                             hf_projections=LLAMA_PROJECTIONS, softcap="final_logit_softcapping"))
