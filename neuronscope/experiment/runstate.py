"""One grid run's state: its artifact cache, progress display, log, per-stage timing and model loading, plus
the cache-key helpers (numerics, fingerprints) every stage uses."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from neuronscope.experiment.cache import Artifact, ArtifactCache
from neuronscope.experiment.config import ExperimentConfig
from neuronscope.io import file_sha256, read_json
from neuronscope.models.handle import Model
from neuronscope.peak_memory import peak_bytes, reset_peak
from neuronscope.progress import LoggedProgress, StepCallback, step_callback

LOCKS_DIR = ".locks"  # per-artifact locks: processes of one run never compute the same artifact twice


@contextmanager
def deterministic() -> Iterator[None]:
    """Deterministic torch kernels for the block (restored afterwards)."""
    prev = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev)


def model_placement(cfg: ExperimentConfig) -> dict[str, Any]:
    """load_model's device, dtype and device_map from [run] (a device map replaces the single device)."""
    if cfg.device_map:
        return {"device": "cpu", "dtype": cfg.dtype, "device_map": cfg.device_map}
    return {"device": cfg.device, "dtype": cfg.dtype}


def numerics(cfg: ExperimentConfig, placed: bool = True) -> dict[str, Any]:
    """What changes a stage's numbers besides its inputs; part of the stage's cache key, so a change recomputes it.

    The torch and transformers versions always; for a model loaded per [run] (`placed`) the resolved weight dtype
    and device kind (and the GPU's name); the torch thread count wherever the cpu computes (the toy base and oracle
    always train there), since the BLAS may split reductions by thread.
    """
    import transformers

    from neuronscope.models.device import map_dtype_device, parse_device_map, resolve_device, resolve_dtype

    out: dict[str, Any] = {"torch": torch.__version__, "transformers": transformers.__version__}
    if not placed:
        return out | {"threads": cfg.threads}
    if cfg.device_map:
        device = map_dtype_device(parse_device_map(cfg.device_map))
        out["device"] = f"{device.type} (device_map {cfg.device_map})"
    else:
        device = resolve_device(cfg.device)
        out["device"] = device.type
    out["dtype"] = str(resolve_dtype(cfg.dtype, device)).removeprefix("torch.")
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    if device.type == "cpu":
        out["threads"] = cfg.threads
    return out


def data_fingerprint(path: Path) -> dict[str, str]:
    """sha256 of a data file, or of every JSON / JSONL / split-index file under a data directory."""
    if path.is_file():
        return {path.name: file_sha256(path)}
    return {str(f.relative_to(path)): file_sha256(f) for f in sorted(path.rglob("*"))
            if f.is_file() and f.suffix in (".json", ".jsonl", ".txt")}


def dir_fingerprint(path: Path, pattern: str) -> dict[str, str]:
    """sha256 of each matching file: the cache key of external inputs (a data dir, a given checkpoint)."""
    return {f.name: file_sha256(f) for f in sorted(path.glob(pattern)) if f.is_file()}


def dir_key(model_dir: Path) -> str:
    """The cache key of the artifact holding `model_dir`, or a content hash for an external checkpoint."""
    parent = model_dir.parent
    if (parent / "_complete.json").is_file():
        return str(read_json(parent / "_complete.json")["key"])
    return hashlib.sha256(str(dir_fingerprint(model_dir, "*.safetensors")).encode()).hexdigest()[:16]


def log_line(log_path: Path, tag: str, msg: str, console: Console) -> None:
    """Print a rich-markup line and append it, timestamped and without markup, to run.log."""
    console.print(f"{tag}{msg}", highlight=False)
    plain = msg
    for markup in ("[dim]", "[green]", "[yellow]", "[/]", "[bold]"):
        plain = plain.replace(markup, "")
    with log_path.open("a", encoding="utf-8") as f:
        f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {tag}{plain}\n")


def stage_kind(artifact: str) -> str:
    """'unlearn-ga' -> 'unlearn', 'attribution-base-vs-ga' -> 'attribution': the rows of the time table."""
    return artifact.split("-", 1)[0]


class GridRun:
    """State of one grid run: the cache, the progress display, the log, the time spent per stage kind."""

    def __init__(self, cfg: ExperimentConfig, out: Path, console: Console,
                 chains: Collection[str] | None = None, tag: str = ""):
        self.cfg, self.out, self.console = cfg, out, console
        self.chains, self.tag = chains, tag  # see run_grid
        self.log_path = out / "run.log"
        self.cache = ArtifactCache(out / "artifacts", self.log, lock_dir=out / LOCKS_DIR)
        self.computed: list[str] = []
        self.skipped: list[str] = []
        self.stage_seconds: dict[str, float] = {}
        self.stage_peak_gib: dict[str, float] = {}  # peak resident memory of the computed stages, per kind
        # a live bar with ETA on a terminal; in a log file, a plain progress line every 30 s (neuronscope.progress)
        self.progress = LoggedProgress(console=console)
        # no ETA over stages: a base model takes minutes, an attack seconds (the current stage's steps have one)
        self.overall = self.progress.add_task("grid", total=None, info="", unit="stages", eta=False)
        self.inner = self.progress.add_task("", total=None, info="", visible=False)

    def log(self, msg: str) -> None:
        log_line(self.log_path, self.tag, msg, self.progress.console)

    def mine(self, chain: str) -> bool:
        """Whether this process computes `chain` ('base' = its lens, 'oracle', or a method): see run_grid."""
        return self.chains is None or chain in self.chains

    def step(self, name: str, inputs: dict[str, Any], compute: Callable[[Path], None], what: str) -> Artifact:
        """The artifact `name` for `inputs`: from the cache, or computed into a temporary directory first."""
        self.progress.update(self.overall, description=what)
        kind = stage_kind(name)

        def measured(tmp: Path) -> None:
            reset_peak()
            compute(tmp)
            if (peak := peak_bytes()) is not None:
                self.stage_peak_gib[kind] = max(self.stage_peak_gib.get(kind, 0.0), round(peak / 2**30, 3))

        t0 = time.perf_counter()
        art = self.cache.get(name, inputs, measured)
        self.stage_seconds[kind] = self.stage_seconds.get(kind, 0.0) + time.perf_counter() - t0
        (self.skipped if art.cached else self.computed).append(art.path.name)
        self.progress.advance(self.overall)
        self.progress.update(self.inner, visible=False)
        return art

    def steps_bar(self, description: str, total: int | None, bound: bool = False) -> StepCallback:
        """A callback for a training loop's steps. `bound`: the total is at most (training that stops early), so
        the ETA says "at most"."""
        self.progress.reset(self.inner, total=total, description=f"  {description}", visible=True, info="",
                            unit="steps", bound=bound)
        return step_callback(self.progress, self.inner)

    def stage_bar(self, prefix: str) -> Callable[[str, int | None, int | None], None]:
        """A callback for an analysis made of named stages: (stage, done, total)."""

        def update(stage: str, done: int | None = None, total: int | None = None) -> None:
            self.progress.update(self.inner, description=f"  {prefix}: {stage}", completed=done, total=total,
                                 visible=True, info="")

        return update

    def load(self, path: Path) -> Model:
        from neuronscope.models.handle import load_model

        return load_model(path, bridge=False, **model_placement(self.cfg))


__all__ = ["GridRun", "data_fingerprint", "deterministic", "dir_fingerprint", "dir_key", "log_line",
           "model_placement", "numerics", "stage_kind"]
