"""Experiment tracking: a run's losses, FS/RS/US curves and final table, written through TensorBoard, W&B or MLflow.

`--track tensorboard|wandb|mlflow` on `unlearn`, `attack`, `run` and `demo`. Everything is offline and stays
under the command's own output directory: TensorBoard event files in `<out>/tensorboard`, a W&B offline run in
`<out>/wandb` (`wandb sync` uploads it later; WANDB_MODE=online logs live instead), an MLflow SQLite store
`<out>/mlflow.db` with artifacts in `<out>/mlartifacts` (`mlflow ui --backend-store-uri sqlite:///<out>/mlflow.db`).
The library is an optional extra (`pip install 'neuronscope[tensorboard]'`, `[wandb]`, `[mlflow]`); a missing one
is one error line before any work.

What is logged is read from what the command wrote, once it is complete: a resumed grid logs the whole grid, and a
run that fails leaves no half-logged curves. Scalars are grouped by a prefix and keyed by their own step:

    unlearn/<method>/loss, .../fs, .../rs        one point per unlearning step (fs where it was checked)
    attack/<model>/<attack>/lr<lr>/seed<s>/fs    the FS trajectory of each relearning attack; .../loss per step
    eval/<model>/fs, rs, us                      the final scores of every model (step 0)
    table                                        Table 1 (text in TensorBoard, a Table in W&B, JSON in MLflow)
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from neuronscope.errors import NeuronscopeError

MLFLOW_DB = "mlflow.db"
TRACKERS: dict[str, tuple[str, str]] = {  # name -> (module that must import, the extra that installs it)
    "tensorboard": ("tensorboard", "tensorboard"),
    "wandb": ("wandb", "wandb"),
    "mlflow": ("mlflow", "mlflow"),
}


def check_tracker(kind: str | None) -> None:
    """A known tracker whose library is installed; else one NeuronscopeError, before any work starts."""
    if kind is None:
        return
    if kind not in TRACKERS:
        raise NeuronscopeError(f"--track must be one of {', '.join(TRACKERS)}, got {kind!r}")
    module, extra = TRACKERS[kind]
    if importlib.util.find_spec(module) is None:
        raise NeuronscopeError(f"--track {kind}: the {module} package is not installed; "
                               f"pip install 'neuronscope[{extra}]'")


def _finite(values: Mapping[str, Any]) -> dict[str, float]:
    """The numeric, finite entries (a curve row also holds None where a score was not measured)."""
    return {k: float(v) for k, v in values.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))}


class Tracker:
    """One tracking run. Subclasses write through their library; this base class is also the no-op tracker."""

    def scalars(self, prefix: str, values: Mapping[str, Any], step: int) -> None:
        """Log the numeric `values` as `<prefix>/<name>` at `step`."""

    def table(self, name: str, rows: list[dict[str, Any]]) -> None:
        """Log a table given as rows of {column: value}."""

    def close(self) -> None:
        pass

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TensorBoardTracker(Tracker):
    def __init__(self, out: Path, name: str, config: Mapping[str, Any]):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(out / "tensorboard"))
        self.writer.add_text("config", "```\n" + json.dumps(config, indent=2, default=str) + "\n```")
        self.name = name

    def scalars(self, prefix: str, values: Mapping[str, Any], step: int) -> None:
        for k, v in _finite(values).items():
            self.writer.add_scalar(f"{prefix}/{k}", v, step)

    def table(self, name: str, rows: list[dict[str, Any]]) -> None:
        self.writer.add_text(name, markdown_table(rows))

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


class WandbTracker(Tracker):
    def __init__(self, out: Path, name: str, config: Mapping[str, Any]):
        import wandb

        (out / "wandb").mkdir(parents=True, exist_ok=True)
        self.wandb = wandb
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "neuronscope"), name=name, dir=str(out),
                              mode=os.environ.get("WANDB_MODE", "offline"), config=dict(config), reinit=True)
        self.prefixes: set[str] = set()

    def scalars(self, prefix: str, values: Mapping[str, Any], step: int) -> None:
        if prefix not in self.prefixes:  # each curve has its own x axis: W&B's global step only ever increases
            self.run.define_metric(f"{prefix}/step")
            self.run.define_metric(f"{prefix}/*", step_metric=f"{prefix}/step")
            self.prefixes.add(prefix)
        self.run.log({f"{prefix}/step": step, **{f"{prefix}/{k}": v for k, v in _finite(values).items()}})

    def table(self, name: str, rows: list[dict[str, Any]]) -> None:
        columns = _columns(rows)
        self.run.log({name: self.wandb.Table(columns=columns, data=[[_cell(r.get(c)) for c in columns]
                                                                    for r in rows])})

    def close(self) -> None:
        self.run.finish()


class MlflowTracker(Tracker):
    """A SQLite store `<out>/mlflow.db` with artifacts in `<out>/mlartifacts`: MLflow 3 refuses its old file store."""

    def __init__(self, out: Path, name: str, config: Mapping[str, Any]):
        import logging

        import mlflow

        logging.getLogger("mlflow").setLevel(logging.WARNING)  # its database set-up lines are not the run's news
        logging.getLogger("alembic").setLevel(logging.WARNING)
        out.mkdir(parents=True, exist_ok=True)
        self.mlflow = mlflow
        self.uri = f"sqlite:///{(out / MLFLOW_DB).resolve()}"
        mlflow.set_tracking_uri(self.uri)
        if mlflow.get_experiment_by_name("neuronscope") is None:
            mlflow.create_experiment("neuronscope", artifact_location=(out / "mlartifacts").resolve().as_uri())
        mlflow.set_experiment("neuronscope")
        self.run = mlflow.start_run(run_name=name)
        flat = {k: json.dumps(v, default=str)[:500] for k, v in config.items()}
        mlflow.log_params(flat)

    def scalars(self, prefix: str, values: Mapping[str, Any], step: int) -> None:
        self.mlflow.log_metrics({f"{prefix}/{k}": v for k, v in _finite(values).items()}, step=step)

    def table(self, name: str, rows: list[dict[str, Any]]) -> None:
        self.mlflow.log_text(json.dumps(rows, indent=2, default=str), f"{name}.json")
        self.mlflow.log_text(markdown_table(rows), f"{name}.md")

    def close(self) -> None:
        self.mlflow.end_run()


_CLASSES: dict[str, type[Tracker]] = {"tensorboard": TensorBoardTracker, "wandb": WandbTracker,
                                      "mlflow": MlflowTracker}


def open_tracker(kind: str | None, out: str | Path, name: str, config: Mapping[str, Any] | None = None
                 ) -> Tracker:
    """The tracker `kind` writing under `out` (None: a tracker that logs nothing)."""
    check_tracker(kind)
    if kind is None:
        return Tracker()
    return _CLASSES[kind](Path(out), name, config or {})


# --- what each command logs ------------------------------------------------------------------------------------


def log_unlearn(tracker: Tracker, method: str, result: Mapping[str, Any]) -> None:
    """An unlearning run (UnlearnResult.to_json()): its per-step curve and its final FS/RS/US."""
    for row in result.get("curve", []):
        tracker.scalars(f"unlearn/{method}", {k: v for k, v in row.items() if k != "step"}, int(row["step"]))
    tracker.scalars(f"eval/{method}", {k: result.get(k) for k in ("fs", "rs", "us")}, 0)


def log_attack(tracker: Tracker, prefix: str, result: Mapping[str, Any]) -> None:
    """One relearning attack (AttackResult.to_json()): FS trajectory, per-step loss, max FS."""
    for point in result.get("trajectory", []):
        tracker.scalars(prefix, {"fs": point["fs"]}, int(point["step"]))
    for step, loss in enumerate(result.get("losses", []), start=1):
        tracker.scalars(prefix, {"loss": loss}, step)
    tracker.scalars(prefix, {"max_fs": result.get("max_fs")}, 0)


def log_grid(tracker: Tracker, out: Path, results: Mapping[str, Any], table_rows: list[dict[str, Any]]) -> None:
    """A finished grid: every model's scores, unlearning curves and attacks (from the artifacts), Table 1."""
    for model, scores in results.get("evals", {}).items():
        tracker.scalars(f"eval/{model}", {k: scores.get(k) for k in ("fs", "rs", "us")}, 0)
    for method, run in results.get("unlearn", {}).items():
        for row in run.get("curve", []):
            tracker.scalars(f"unlearn/{method}", {k: v for k, v in row.items() if k != "step"}, int(row["step"]))
    for model, by_label in results.get("attacks", {}).items():
        for label, runs in by_label.items():
            for r in runs:
                prefix = f"attack/{model}/{label.replace(' ', '_')}/lr{r['lr']:g}/seed{r['seed']}"
                path = out / "artifacts" / str(r.get("artifact", "")) / "attack.json"
                data = json.loads(path.read_text()) if path.is_file() else {"trajectory": r.get("trajectory", []),
                                                                           "max_fs": r.get("max_fs")}
                log_attack(tracker, prefix, data)
    flat = [{c: (v.get("mean") if isinstance(v, dict) else v) for c, v in row.items()} for row in table_rows]
    for row in flat:  # Table 1's numbers as scalars too (attack columns: the mean over seeds)
        tracker.scalars(f"table/{row.get('method')}", {c: v for c, v in row.items() if c != "method"}, 0)
    tracker.table("table", flat)


def _columns(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    return cols


def _cell(v: Any) -> Any:
    return v if isinstance(v, int | float | str) or v is None else str(v)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Rows of {column: value} as a Markdown table (floats with 3 decimals)."""
    if not rows:
        return "(empty)"
    cols = _columns(rows)

    def fmt(v: Any) -> str:
        return f"{v:.3f}" if isinstance(v, float) else ("" if v is None else str(v))

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)
