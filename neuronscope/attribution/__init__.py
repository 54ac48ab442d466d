"""Attribution: activation x gradient of the answer probability, per neuron (hook points) and per parameter."""

from neuronscope.attribution.influence import (
    cumulative_curves,
    influence_from_scores,
    influence_summary,
    influence_terms,
    influence_variation,
    module_layer_table,
    paper_verdict,
    top_m_sum,
)
from neuronscope.attribution.neurons import (
    NeuronScores,
    aggregate,
    attribute_neurons,
    attribution_scores,
    load_table,
    save_table,
)
from neuronscope.attribution.patching import PatchingResult, patching_curves
from neuronscope.attribution.run import (
    AttributeSettings,
    AttributionResult,
    attribute_checkpoint,
    check_same_architecture,
    select_items,
)
from neuronscope.attribution.shift import attribution_distributions, attribution_shift, correlation_matrix

__all__ = [
    "AttributeSettings",
    "AttributionResult",
    "NeuronScores",
    "PatchingResult",
    "aggregate",
    "attribute_checkpoint",
    "attribute_neurons",
    "attribution_distributions",
    "attribution_scores",
    "attribution_shift",
    "check_same_architecture",
    "correlation_matrix",
    "cumulative_curves",
    "influence_from_scores",
    "influence_summary",
    "influence_terms",
    "influence_variation",
    "load_table",
    "module_layer_table",
    "patching_curves",
    "save_table",
    "select_items",
    "top_m_sum",
    "paper_verdict",
]
