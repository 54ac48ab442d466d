"""The `neuronscope` command line. Each command lives in its own module and registers itself on `app`."""

from neuronscope.cli import base_commands  # noqa: F401  (registers world, train-base, eval, demo)
from neuronscope.cli.app import app, main

__all__ = ["app", "main"]
