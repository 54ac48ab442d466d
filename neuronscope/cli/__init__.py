"""The `neuronscope` command line. Each command lives in its own module and registers itself on `app`."""

import neuronscope.cli.figures  # noqa: F401  (registers figures)
import neuronscope.cli.lens  # noqa: F401  (registers lens)
import neuronscope.cli.real_model  # noqa: F401  (registers pull, real-facts)
import neuronscope.cli.run  # noqa: F401  (registers attack, run, demo)
from neuronscope.cli import (
    attribute,  # noqa: F401  (registers attribute)
    base_commands,  # noqa: F401  (registers world, train-base, eval)
    calibrate,  # noqa: F401  (registers calibrate)
    data_commands,  # noqa: F401  (registers prepare, finetune)
    unlearn,  # noqa: F401  (registers unlearn)
)
from neuronscope.cli.app import app, main

__all__ = ["app", "main"]
