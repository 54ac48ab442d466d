"""Model handles, the toy model and tokenizer, and the map of hooked projections."""

from neuronscope.models.handle import Model, load_model
from neuronscope.models.projections import Projection, projections

__all__ = ["Model", "Projection", "load_model", "projections"]
