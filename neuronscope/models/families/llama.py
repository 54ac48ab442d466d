"""Llama (and everything saved as model_type "llama": SmolLM2, the embedded toy model).

Separate q, k, v, o linear maps (grouped-query attention: k and v may have fewer heads), a gated SiLU MLP, an RMS
final norm, no logit soft-cap.
"""

from neuronscope.models.families.registry import register
from neuronscope.models.families.spec import FamilySpec

LLAMA_PROJECTIONS = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj",
                     "o": "self_attn.o_proj", "gate": "mlp.gate_proj", "up": "mlp.up_proj",
                     "down": "mlp.down_proj"}

LLAMA = register(FamilySpec(model_type="llama", blocks="model.layers", final_norm="model.norm",
                            hf_projections=LLAMA_PROJECTIONS))
