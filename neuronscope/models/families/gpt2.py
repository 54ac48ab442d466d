"""GPT-2: one fused c_attn computes [q | k | v]; an ungated MLP (c_fc in, c_proj out); transformers' Conv1D
modules store weights as (in, out). The bridge's boot-time q/k/v split is replaced by live slices."""

from neuronscope.models.families.registry import register
from neuronscope.models.families.spec import FamilySpec

GPT2 = register(FamilySpec(
    model_type="gpt2", blocks="transformer.h", final_norm="transformer.ln_f",
    hf_projections={"q": "attn.c_attn", "k": "attn.c_attn", "v": "attn.c_attn", "o": "attn.c_proj",
                    "in": "mlp.c_fc", "out": "mlp.c_proj"},
    fused_qkv=True))
