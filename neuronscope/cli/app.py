"""The typer app, the console, and the rule that a user mistake is one line and a non-zero exit."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from neuronscope.errors import NeuronscopeError
from neuronscope.outdir import discard_empty_outputs

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Tell whether an LLM unlearning run erased the target knowledge or only hid it.")
console = Console(stderr=False)
err_console = Console(stderr=True)


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a NeuronscopeError, or an OSError (disk full, read-only or unreadable path: the machine's state, not a
    bug), into `error: <message>` on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            from neuronscope.progress import line_interval

            line_interval()  # a bad NEURONSCOPE_PROGRESS_SECONDS: one line before the command starts
            return fn(*args, **kwargs)
        except NeuronscopeError as e:
            _print_error(str(e))
            discard_empty_outputs()
            raise typer.Exit(2) from None
        except OSError as e:
            _print_error(os_error_message(e))
            discard_empty_outputs()
            raise typer.Exit(2) from None

    return wrapper


def os_error_message(e: OSError) -> str:
    """`path: reason` for an OSError, on one line."""
    if e.filename is None:
        return (str(e).splitlines() or [type(e).__name__])[0]
    names = f"{e.filename} -> {e.filename2}" if e.filename2 is not None else str(e.filename)
    return f"{names}: {e.strerror or type(e).__name__}"


def _print_error(message: str) -> None:
    # escaped: a message may hold brackets (pip extras, paths) that rich would take for markup
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def metrics_table(title: str, rows: dict[str, dict[str, Any]]) -> Table:
    """A rich table from {row name: {column: value}}; floats shown with 3 decimals."""
    table = Table(title=title)
    columns: list[str] = []
    for values in rows.values():
        columns += [c for c in values if c not in columns]
    table.add_column("")
    for c in columns:
        table.add_column(c, justify="right")
    for name, values in rows.items():
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in (values.get(c, "") for c in columns)]
        table.add_row(name, *cells)
    return table


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    # transformers' own weight-loading bars would clutter every command; transformers starts with its bars off when
    # this is set before it is imported (importing it here would cost `--help` seconds: commands import it lazily)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    app(prog_name="neuronscope")
    sys.exit(0)
