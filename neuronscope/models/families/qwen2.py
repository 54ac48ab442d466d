"""Qwen2: Llama's layout, with biases on q, k and v."""

from neuronscope.models.families.llama import LLAMA_PROJECTIONS
from neuronscope.models.families.registry import register
from neuronscope.models.families.spec import FamilySpec

QWEN2 = register(FamilySpec(model_type="qwen2", blocks="model.layers", final_norm="model.norm",
                            hf_projections=LLAMA_PROJECTIONS))
