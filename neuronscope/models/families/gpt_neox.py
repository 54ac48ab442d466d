"""GPT-NeoX (Pythia): one fused query_key_value, laid out per head [q_h | k_h | v_h]; an ungated MLP
(dense_h_to_4h in, dense_4h_to_h out). The bridge's boot-time q/k/v split (copies) is replaced by live slices."""

from neuronscope.models.families.registry import register
from neuronscope.models.families.spec import FamilySpec

GPT_NEOX = register(FamilySpec(
    model_type="gpt_neox", blocks="gpt_neox.layers", final_norm="gpt_neox.final_layer_norm",
    hf_projections={"q": "attention.query_key_value", "k": "attention.query_key_value",
                    "v": "attention.query_key_value", "o": "attention.dense", "in": "mlp.dense_h_to_4h",
                    "out": "mlp.dense_4h_to_h"},
    fused_qkv=True))
