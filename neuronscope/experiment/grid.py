"""The experiment grid: base -> oracle -> every method -> every attack -> attribution -> logit lens -> Table 1.

Every step is an artifact of `ArtifactCache` keyed by its inputs (upstream artifacts by their keys), so re-running
skips what is done and a run killed anywhere resumes where it stopped. Each step loads its inputs from disk and
seeds torch itself, so a resumed run computes exactly what an uninterrupted one would (deterministic torch on
CPU, same machine and torch build): the resume and 2-process tests check every number bit for bit. The run uses
`threads` torch threads, 1 by default, the setting those tests check; with several threads the BLAS may split
reductions differently from run to run (MKL's dynamic threading), and the toy model gains little from threads.
"""

from __future__ import annotations

import hashlib
import importlib
import shutil
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from neuronscope.attacks import AttackConfig, AttackResult, attack
from neuronscope.base_model import BaseTrainConfig, FinetuneConfig, finetune_base, train_base
from neuronscope.data.prepare import prepare_dataset
from neuronscope.data.schema import QADataset, load_dataset, save_dataset
from neuronscope.data.world import build_world
from neuronscope.errors import NeuronscopeError
from neuronscope.experiment.cache import Artifact, ArtifactCache, file_sha256
from neuronscope.experiment.config import DataSection, ExperimentConfig
from neuronscope.experiment.lock import LOCK_FILE, run_lock
from neuronscope.io import read_json, write_json
from neuronscope.models.device import map_dtype_device, parse_device_map, resolve_device, resolve_dtype
from neuronscope.models.handle import Model, load_model
from neuronscope.outdir import MARKER, check_output, open_output
from neuronscope.progress import LoggedProgress, step_total
from neuronscope.scoring import EvalReport, evaluate

# --- the unlearning package, behind one adapter (tests may swap it) -------------------------------------------


@dataclass
class UnlearnAPI:
    unlearn: Callable[..., Any]
    config_cls: type
    methods: tuple[str, ...]
    lr_search: Callable[..., Any] | None = None

    def config_fields(self) -> set[str]:
        return {f.name for f in fields(self.config_cls)}

    def config_default(self, name: str) -> Any:
        return getattr(self.config_cls(), name)


def unlearn_api() -> UnlearnAPI:
    """The real `neuronscope.unlearn` (unlearn, UnlearnConfig, METHODS, lr_search)."""
    try:
        mod = importlib.import_module("neuronscope.unlearn")
        return UnlearnAPI(mod.unlearn, mod.UnlearnConfig, tuple(mod.METHODS), getattr(mod, "lr_search", None))
    except (ImportError, AttributeError) as e:
        raise NeuronscopeError(f"the unlearning methods are not available (neuronscope.unlearn: {e})") from None


# --- helpers -------------------------------------------------------------------------------------------------


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


def load_experiment_data(cfg: ExperimentConfig) -> QADataset:
    """The dataset the grid's data stage writes: the embedded world, or the real files prepared per [data]."""
    if cfg.data_dir is None:
        return build_world(cfg.world)
    d = cfg.data
    return prepare_dataset(cfg.data_dir, format=d.format, prompt=d.prompt, template=d.template or None,
                           chat=d.chat, system=d.system, tokenizer_from=cfg.base_ckpt if d.chat else None,
                           benign=d.benign or None, benign_n=d.benign_n, seed=d.seed)


def data_fingerprint(path: Path) -> dict[str, str]:
    """sha256 of a data file, or of every JSON / JSONL / split-index file under a data directory."""
    if path.is_file():
        return {path.name: file_sha256(path)}
    return {str(f.relative_to(path)): file_sha256(f) for f in sorted(path.rglob("*"))
            if f.is_file() and f.suffix in (".json", ".jsonl", ".txt")}


def dir_fingerprint(path: Path, pattern: str) -> dict[str, str]:
    """sha256 of each matching file: the cache key of external inputs (a data dir, a given checkpoint)."""
    return {f.name: file_sha256(f) for f in sorted(path.glob(pattern)) if f.is_file()}


def attack_label(cfg: AttackConfig) -> str:
    return f"harmful p={cfg.p:g}" if cfg.kind == "harmful" else "benign"


@dataclass
class GridResult:
    out: Path
    results: dict[str, Any]
    computed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def log_line(log_path: Path, tag: str, msg: str, console: Console) -> None:
    """Print a rich-markup line and append it, timestamped and without markup, to run.log."""
    console.print(f"{tag}{msg}", highlight=False)
    plain = msg
    for markup in ("[dim]", "[green]", "[yellow]", "[/]", "[bold]"):
        plain = plain.replace(markup, "")
    with log_path.open("a", encoding="utf-8") as f:
        f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {tag}{plain}\n")


class _Run:
    """State of one grid run: the cache, the progress display, the log, lazily loaded models."""

    def __init__(self, cfg: ExperimentConfig, out: Path, console: Console, api: UnlearnAPI | None,
                 chains: Collection[str] | None = None, tag: str = ""):
        self.cfg, self.out, self.console = cfg, out, console
        self.api = api
        self.chains, self.tag = chains, tag  # see run_grid
        self.log_path = out / "run.log"
        self.cache = ArtifactCache(out / "artifacts", self.log)
        self.computed: list[str] = []
        self.skipped: list[str] = []
        # a live bar with ETA on a terminal; in a log file, a plain progress line every 30 s (neuronscope.progress)
        self.progress = LoggedProgress(console=console)
        # no ETA over stages: a base model takes minutes, an attack seconds (the current stage's steps have one)
        self.overall = self.progress.add_task("grid", total=None, info="", unit="stages", eta=False)
        self.inner = self.progress.add_task("", total=None, info="", visible=False)
        self._models: dict[str, Path] = {}

    def log(self, msg: str) -> None:
        log_line(self.log_path, self.tag, msg, self.progress.console)

    def mine(self, chain: str) -> bool:
        """Whether this process computes `chain` ('base' = its lens, 'oracle', or a method): see run_grid."""
        return self.chains is None or chain in self.chains

    def step(self, name: str, inputs: dict[str, Any], compute: Callable[[Path], None], what: str) -> Artifact:
        self.progress.update(self.overall, description=what)
        art = self.cache.get(name, inputs, compute)
        (self.skipped if art.cached else self.computed).append(art.path.name)
        self.progress.advance(self.overall)
        self.progress.update(self.inner, visible=False)
        return art

    def inner_bar(self, description: str, total: int | None, bound: bool = False) -> Callable[[int, float], None]:
        """`bound`: the total is at most (training that stops early), so the ETA says "at most"."""
        self.progress.reset(self.inner, total=total, description=f"  {description}", visible=True, info="",
                            unit="steps", bound=bound)

        def update(step: int, loss: float) -> None:
            self.progress.update(self.inner, completed=step, info=f"loss {loss:.3f}")

        return update

    def load(self, path: Path) -> Model:
        return load_model(path, bridge=False, **model_placement(self.cfg))


def _n_artifacts(cfg: ExperimentConfig) -> int:
    n_models = len(cfg.unlearn.methods) + int(cfg.oracle)
    n = 2 + int(cfg.oracle) + len(cfg.unlearn.methods) + n_models * len(cfg.attacks.configs())
    if cfg.attribution:
        n += n_models + (n_models if _kept_attack(cfg, cfg.attacks.configs()) else 0)
    if cfg.lens:
        n += 1 + n_models
    if cfg.utility.lm_eval:
        n += 1 + n_models
    return n + int(bool(cfg.calibration))


def run_grid(cfg: ExperimentConfig, out: str | Path, console: Console | None = None,
             api: UnlearnAPI | None = None, *, chains: Collection[str] | None = None, tag: str = "",
             fresh: bool = False) -> GridResult:
    """Run (or resume) the whole grid in `out`; returns results.json's content and what was computed/skipped.

    `out` must be new, empty or an earlier run directory (`neuronscope.outdir`); the run holds its lock
    (`experiment.lock`) throughout. `fresh`: clear an earlier run there first (`run --overwrite`).

    `chains` (experiment.distributed) makes this one process of several sharing `out`: after the shared stages
    (data, base, oracle training) it computes only the named per-model chains ('oracle' or a method: unlearning,
    attacks, attribution, lens; 'base': the base model's lens), leaves partial files alone (another process may be
    writing them) and writes no results.json or tables. Such a process takes no lock: the launch's rank 0 holds it
    and has prepared `out`. `tag` prefixes this process's lines in run.log.
    """
    from neuronscope.experiment.config import check_placement

    check_placement(cfg)  # an unavailable [run] device: one line now, before the run directory exists
    out = Path(out)
    if chains is not None:
        return _run_grid(cfg, out, console, api, chains, tag)
    with claimed_run_dir(out, fresh=fresh):
        return _run_grid(cfg, out, console, api, None, tag)


@contextmanager
def claimed_run_dir(out: Path, fresh: bool = False) -> Iterator[None]:
    """Check and mark `out` as a run directory and hold its lock for the block; `fresh` clears an earlier run
    there (a marked directory only, and only under the lock, so never under a live run)."""
    check_output(out, overwrite=fresh, resume=True)
    open_output(out, "run")
    with run_lock(out):
        if fresh:
            for entry in sorted(out.iterdir()):
                if entry.name not in (MARKER, LOCK_FILE):
                    shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        yield


def _run_grid(cfg: ExperimentConfig, out: Path, console: Console | None, api: UnlearnAPI | None,
              chains: Collection[str] | None, tag: str) -> GridResult:
    api = api or unlearn_api()
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own bars say what is happening; HF's per-load bars are noise here
    run = _Run(cfg, out, console or Console(stderr=True), api, chains, tag)
    write_json(out / "config.json", cfg.to_json())
    run.log(f"[bold]run[/] {cfg.name} in {out}")
    if chains is None:
        remove_partial(out, run.log)
    if cfg.utility.lm_eval:  # unknown task or benchmark data missing offline: fail now, not after training
        from neuronscope.lm_eval_utility import check_tasks

        check_tasks(cfg.utility.lm_eval, cfg.utility.include or None, cfg.utility.defaults)
    t0 = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        with deterministic(), run.progress:
            run.progress.update(run.overall, total=_n_artifacts(cfg))
            results = _grid(run, cfg, api)
    finally:
        torch.set_num_threads(threads)
    if chains is not None:  # one part of a distributed run: the final, cached pass assembles the results
        run.log(f"[bold]finished[/] chains {', '.join(chains) or '(shared stages)'}: {len(run.computed)} "
                f"computed, {len(run.skipped)} skipped (cached), {time.perf_counter() - t0:.1f}s")
        return GridResult(out, {}, run.computed, run.skipped)
    from neuronscope.verdict import run_verdicts

    results["verdicts"] = run_verdicts(results)
    results["seconds"] = round(time.perf_counter() - t0, 1)
    results["computed"], results["skipped"] = len(run.computed), len(run.skipped)
    write_json(out / "results.json", results)
    from neuronscope.experiment.table import build_table, threshold_note, write_tables

    write_tables(build_table(results), out, threshold_note(results))
    run.log(f"[bold]finished[/] {len(run.computed)} computed, {len(run.skipped)} skipped (cached), "
            f"{results['seconds']}s")
    return GridResult(out, results, run.computed, run.skipped)


def remove_partial(out: Path, log: Callable[[str], None]) -> None:
    """Delete temporary files left by a run killed mid-write: in the run directory itself (config, results,
    tables), its artifacts and its per-rank records. Only the holder of the run's lock calls this, so no live
    process's files are touched (`neuronscope figures` writing into a subdirectory is not either)."""
    stale_files = [*out.glob(".*.tmp"), *(out / "artifacts").glob(".*.tmp"), *(out / "distributed").glob(".*.tmp")]
    for stale in sorted(stale_files):
        log(f"[yellow]remove[/] partial {stale.relative_to(out)}")
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)


def _grid(run: _Run, cfg: ExperimentConfig, api: UnlearnAPI) -> dict[str, Any]:
    # --- data ---------------------------------------------------------------------------------------------------
    if cfg.data_dir is not None:
        data_inputs: dict[str, Any] = {"dir": cfg.data_dir, "files": data_fingerprint(Path(cfg.data_dir))}
        if cfg.data != DataSection():  # real files: how they were prepared, and what rendered them
            data_inputs["prep"] = asdict(cfg.data)
            if cfg.data.benign:
                data_inputs["benign"] = data_fingerprint(Path(cfg.data.benign))
            if cfg.data.chat:
                ckpt = Path(cfg.base_ckpt)
                data_inputs["tokenizer"] = dir_fingerprint(ckpt, "*token*") | dir_fingerprint(ckpt, "*chat*")
    else:
        data_inputs = {"world": asdict(cfg.world)}

    def make_data(tmp: Path) -> None:
        save_dataset(load_experiment_data(cfg), tmp / "data")

    data = run.step("data", data_inputs, make_data, "data")
    ds = load_dataset(data.path / "data")

    # --- base and oracle ------------------------------------------------------------------------------------------
    def trained(exclude: tuple[str, ...], label: str) -> Callable[[Path], None]:
        def compute(tmp: Path) -> None:
            bcfg = BaseTrainConfig(**{**asdict(cfg.base), "toy": cfg.base.toy, "exclude_splits": exclude})
            most = step_total(len(ds.training_items(exclude)), bcfg.batch_size, bcfg.max_epochs)
            result = train_base(ds, bcfg, progress=run.inner_bar(f"training {label}", most, bound=True))
            if not result.reached_target:
                raise NeuronscopeError(
                    f"the {label} model did not reach base accuracy {bcfg.target:.2f} in {bcfg.max_epochs} epochs "
                    f"(FS {result.report.fs:.3f}, RS {result.report.rs:.3f}); raise base.max_epochs or base.lr")
            result.model.save(tmp / "model")
            _write_eval(result.report, tmp, extra={"train": result.summary()})  # scored once, by the trainer
        return compute

    def finetuned(exclude: tuple[str, ...], label: str) -> Callable[[Path], None]:
        def compute(tmp: Path) -> None:
            assert cfg.finetune is not None and cfg.base_ckpt is not None
            fcfg = FinetuneConfig(**{**asdict(cfg.finetune), "exclude_splits": exclude})
            from neuronscope.base_model import finetune_items

            steps = step_total(len(finetune_items(ds, exclude)), fcfg.batch_size, fcfg.epochs)
            result = finetune_base(run.load(Path(cfg.base_ckpt)), ds, fcfg,
                                   progress=run.inner_bar(f"fine-tuning {label}", steps))
            result.model.save(tmp / "model")
            _write_eval(result.report, tmp, extra={"train": result.summary()})  # scored once, by the trainer
        return compute

    if cfg.base_ckpt is not None and cfg.finetune is not None:  # TOFU: fine-tune the given checkpoint first
        base_inputs = {"data": data.key, "ckpt": cfg.base_ckpt,
                       "files": dir_fingerprint(Path(cfg.base_ckpt), "*.safetensors"),
                       "finetune": asdict(cfg.finetune), "numerics": numerics(cfg)}
        base = run.step("base", base_inputs, finetuned((), "base"), "fine-tuning base")
        base_model_dir = base.path / "model"
    elif cfg.base_ckpt is not None:
        base_inputs = {"data": data.key, "ckpt": cfg.base_ckpt,
                       "files": dir_fingerprint(Path(cfg.base_ckpt), "*.safetensors"), "numerics": numerics(cfg)}

        def given_base(tmp: Path) -> None:
            _save_eval(run.load(Path(cfg.base_ckpt)), ds, tmp)

        base = run.step("base", base_inputs, given_base, "base (given checkpoint)")
        base_model_dir = Path(cfg.base_ckpt)
    else:
        base_inputs = {"data": data.key, "train": _base_json(cfg.base), "numerics": numerics(cfg, placed=False)}
        base = run.step("base", base_inputs, trained((), "base"), "training base")
        base_model_dir = base.path / "model"
    models: dict[str, tuple[Artifact, Path]] = {}  # attacked models: name -> (artifact, checkpoint dir)
    evals: dict[str, dict[str, Any]] = {"base": read_json(base.path / "eval.json")}
    unlearn_runs: dict[str, dict[str, Any]] = {}

    if cfg.oracle and cfg.finetune is not None:
        oracle = run.step("oracle", {**base_inputs, "exclude": ["forget"]}, finetuned(("forget",), "oracle"),
                          "fine-tuning oracle (without the forget facts)")
    elif cfg.oracle:
        oracle = run.step("oracle", {"data": data.key, "train": _base_json(cfg.base), "exclude": ["forget"],
                                     "numerics": numerics(cfg, placed=False)},
                          trained(("forget",), "oracle"), "training oracle (without the forget facts)")
    if cfg.oracle:
        if run.mine("oracle"):
            models["oracle"] = (oracle, oracle.path / "model")
        evals["oracle"] = read_json(oracle.path / "eval.json")

    # --- unlearning -------------------------------------------------------------------------------------------------
    for method in cfg.unlearn.methods:
        if not run.mine(method):
            continue
        params = cfg.unlearn.params_for(method)
        lr_grid = tuple(params.pop("lr_grid", ()))
        ucfg = api.config_cls(**params)
        if hasattr(ucfg, "check"):
            ucfg.check()

        def unlearned(tmp: Path, method: str = method, ucfg: Any = ucfg, lr_grid: tuple[float, ...] = lr_grid
                      ) -> None:
            model = run.load(base_model_dir)
            torch.manual_seed(getattr(ucfg, "seed", 0))
            bar = _progress_adapter(run.inner_bar(f"unlearning {method}", getattr(ucfg, "max_steps", None),
                                                  bound=True))
            if lr_grid:  # the paper's rule: the lowest learning rate of the grid that reaches the threshold
                if api.lr_search is None:
                    raise NeuronscopeError("unlearn.lr_grid needs neuronscope.unlearn.lr_search")
                result = api.lr_search(model, ds, method, ucfg, list(lr_grid), progress=bar)
            else:
                result = api.unlearn(model, ds, method, ucfg, progress=bar)
            for note in getattr(result, "notes", ()):  # an UnlearnAPI result need not carry notes
                run.log(f"[yellow]note[/] {method}: {note}")
            result.model.save(tmp / "model")
            write_json(tmp / "unlearn.json", _jsonable(result.to_json()))
            _save_eval(run.load(tmp / "model"), ds, tmp)

        keyed = ucfg.to_json() if hasattr(ucfg, "to_json") else asdict(ucfg)  # the flat layout runs have recorded
        inputs = {"base": base.key, "data": data.key, "method": method, "cfg": _jsonable(keyed),
                  "numerics": numerics(cfg)}
        if lr_grid:
            inputs["lr_grid"] = list(lr_grid)
        art = run.step(f"unlearn-{method}", inputs, unlearned, f"unlearning {method}")
        models[method] = (art, art.path / "model")
        evals[method] = read_json(art.path / "eval.json")
        unlearn_runs[method] = read_json(art.path / "unlearn.json")

    # --- relearning attacks -----------------------------------------------------------------------------------------
    attack_cfgs = cfg.attacks.configs()
    kept = _kept_attack(cfg, attack_cfgs)
    attacks: dict[str, dict[str, list[dict[str, Any]]]] = {}
    attacked_dirs: dict[str, Path] = {}
    for name, (art, ckpt) in models.items():
        for acfg in attack_cfgs:
            keep = kept is not None and acfg == kept

            def attacked(tmp: Path, ckpt: Path = ckpt, acfg: AttackConfig = acfg, keep: bool = keep,
                         name: str = name) -> None:
                model = run.load(ckpt)
                torch.manual_seed(acfg.seed)
                result = attack(model, ds, acfg, progress=run.inner_bar(
                    f"{name}: {attack_label(acfg)} lr {acfg.lr:g} seed {acfg.seed}", acfg.steps))
                for note in result.notes:
                    run.log(f"[yellow]note[/] {name}: {note}")
                write_json(tmp / "attack.json", result.to_json())
                if keep:
                    model.save(tmp / "model")

            label = attack_label(acfg)
            a = run.step(f"attack-{name}-{acfg.kind}", {"model": art.key, "data": data.key,
                                                        "attack": acfg.to_json(), "keep_model": keep,
                                                        "numerics": numerics(cfg)},
                         attacked, f"attacking {name}: {label}")
            res = AttackResult.from_json(read_json(a.path / "attack.json"))
            attacks.setdefault(name, {}).setdefault(label, []).append(
                {"lr": acfg.lr, "seed": acfg.seed, "max_fs": res.max_fs, "start_fs": res.start_fs,
                 "final_fs": res.final_fs, "trajectory": res.trajectory, "n_train": len(res.train_ids),
                 "n_eval": len(res.eval_ids), "n_wrong": res.n_wrong, "artifact": a.path.name})
            if keep:
                attacked_dirs[name] = a.path / "model"

    floor = None  # no oracle (a pretrained model's own facts): the same attacks on facts it never knew
    if not cfg.oracle and run.mine("base"):
        from neuronscope.experiment.floor import floor_stage

        floor = floor_stage(run, ds, data, base, base_model_dir, attack_cfgs)

    # --- analyses ---------------------------------------------------------------------------------------------------
    analyses: dict[str, Any] = {}
    if cfg.attribution:
        analyses["attribution"] = _attribution_stage(run, ds, data, base_model_dir, models, attacked_dirs)
    own_models = {**({"base": base_model_dir} if run.mine("base") else {}),
                  **{n: ckpt for n, (_, ckpt) in models.items()}}
    if cfg.lens:
        analyses["lens"] = _lens_stage(run, ds, data, own_models)
    if cfg.utility.lm_eval:
        analyses["utility"] = _utility_stage(run, own_models)
    if cfg.calibration and run.chains is None:
        analyses["calibration"] = _calibration_stage(run, cfg.calibration)

    return {"name": cfg.name, "config": cfg.to_json(), "methods": list(cfg.unlearn.methods), "oracle": cfg.oracle,
            "attack_labels": list(dict.fromkeys(attack_label(a) for a in attack_cfgs)),
            "evals": evals, "unlearn": unlearn_runs, "attacks": attacks, "analyses": analyses,
            **({"floor": floor} if floor else {})}


def _kept_attack(cfg: ExperimentConfig, attack_cfgs: list[AttackConfig]) -> AttackConfig | None:
    """The one attack per model whose final checkpoint is kept for 'unlearned vs attacked' attribution."""
    if not cfg.attribution:
        return None
    for a in attack_cfgs:
        if a.kind == cfg.attribution_attack:
            return a
    return None


def _base_json(b: BaseTrainConfig) -> dict[str, Any]:
    d = asdict(b)
    d.pop("exclude_splits")
    return d


def _jsonable(obj: Any) -> Any:
    """JSON-safe copy (floats like inf/nan kept as strings, tuples as lists)."""
    import json

    return json.loads(json.dumps(obj, default=str))


def _save_eval(model: Model, ds: QADataset, tmp: Path, extra: dict[str, Any] | None = None) -> None:
    _write_eval(evaluate(model, ds), tmp, extra)


def _write_eval(report: EvalReport, tmp: Path, extra: dict[str, Any] | None = None) -> None:
    write_json(tmp / "eval.json", {"fs": report.fs, "rs": report.rs, "us": report.us, "metric": report.metric,
                                   "detail": report.detail, "counts": report.counts, **(extra or {})})


def _progress_adapter(update: Callable[[int, float], None]) -> Callable[..., None]:
    """The unlearning loop reports (step, row) with the row's loss terms; show the step and the total loss."""

    def cb(step: int, row: Any = None, *_: Any) -> None:
        loss = row.get("loss", float("nan")) if isinstance(row, dict) else row
        update(int(step), float(loss) if isinstance(loss, int | float) else float("nan"))

    return cb


# --- analysis stages (each runs only when its package is present) ---------------------------------------------


def _attribution_stage(run: _Run, ds: QADataset, data: Artifact, base_dir: Path,
                       models: dict[str, tuple[Artifact, Path]], attacked: dict[str, Path]) -> dict[str, Any]:
    """Base vs each unlearned (or oracle) model, and each of those vs its attacked self: `run_attribute`."""
    try:
        from neuronscope.plots.attribution_files import run_attribute
    except ImportError:
        run.log("[yellow]skip[/] attribution: neuronscope.attribution.run_attribute is not available")
        return {"available": False}
    out: dict[str, Any] = {"available": True, "pairs": {}}
    for name, (_art, ckpt) in models.items():
        pairs = [("base", base_dir, name, ckpt)]
        if name in attacked:
            pairs.append((name, ckpt, f"{name}+{run.cfg.attribution_attack}", attacked[name]))
        for a_name, a_dir, b_name, b_dir in pairs:
            def compute(tmp: Path, a_dir: Path = a_dir, b_dir: Path = b_dir) -> None:
                torch.manual_seed(0)
                run_attribute(b_dir, ds, tmp, base=a_dir, **model_placement(run.cfg), patching=run.cfg.patching,
                              report=False, also_targets=("logp",),
                              progress=lambda stage, done, total: run.progress.update(
                                  run.inner, description=f"  attribution: {stage}", completed=done, total=total,
                                  visible=True, info=""))

            inputs = {"data": data.key, "a": _dir_key(a_dir), "b": _dir_key(b_dir), "patching": run.cfg.patching,
                      "targets": ["p", "logp"], "numerics": numerics(run.cfg)}
            art = run.step(f"attribution-{a_name}-vs-{b_name}".replace("+", "-"), inputs, compute,
                           f"attribution {a_name} vs {b_name}")
            out["pairs"][f"{a_name} vs {b_name}"] = {"dir": str(art.path.relative_to(run.out)),
                                                     "summary": read_json(art.path / "summary.json")}
    return out


def _lens_stage(run: _Run, ds: QADataset, data: Artifact, model_dirs: dict[str, Path]) -> dict[str, Any]:
    """Per-layer gold-vs-distractor logit-lens accuracy on the forget base items, per model."""
    try:
        from neuronscope.lens import logit_lens
    except ImportError:
        run.log("[yellow]skip[/] logit lens: neuronscope.lens is not available")
        return {"available": False}
    from neuronscope.lens import summarize_lens, wins_by_layer

    out: dict[str, Any] = {"available": True, "models": {}, "items": {}}
    items = ds.items("forget")
    for name, d in model_dirs.items():
        def compute(tmp: Path, d: Path = d) -> None:
            per_item = logit_lens(load_model(d, **model_placement(run.cfg)), items, seed=0, per_item=True)
            write_json(tmp / "lens.json", _jsonable(summarize_lens(per_item).to_dict(orient="records")))
            # per-item wins (items in forget order) let the verdict compare a model and the oracle item by item
            write_json(tmp / "lens_items.json", wins_by_layer(per_item))

        art = run.step(f"lens-{name}", {"data": data.key, "model": _dir_key(d), "per_item": True,
                                        "numerics": numerics(run.cfg)}, compute, f"logit lens {name}")
        out["models"][name] = read_json(art.path / "lens.json")
        out["items"][name] = read_json(art.path / "lens_items.json")
    return out


def _utility_stage(run: _Run, model_dirs: dict[str, Path]) -> dict[str, Any]:
    """US through lm-evaluation-harness per model ([utility]): its own artifact, so changing the tasks recomputes
    only this, never the models."""
    from neuronscope.lm_eval_utility import lm_eval_utility

    u = run.cfg.utility
    out: dict[str, Any] = {"tasks": list(u.lm_eval), "limit": u.limit, "models": {}}
    for name, d in model_dirs.items():
        def compute(tmp: Path, d: Path = d) -> None:
            score = lm_eval_utility(run.load(d), u.lm_eval, u.limit or None, include_path=u.include or None,
                                    include_defaults=u.defaults)
            write_json(tmp / "utility.json", score.to_json())

        inputs = {"model": _dir_key(d), "utility": asdict(u), "numerics": numerics(run.cfg)}
        art = run.step(f"utility-{name}", inputs, compute, f"lm-eval utility {name}")
        out["models"][name] = read_json(art.path / "utility.json")
    return out


def _calibration_stage(run: _Run, size: str) -> dict[str, Any]:
    """Ground-truth erase / hide models and the verdict of every analysis on them ([calibration]); independent
    of the run's own models, so one artifact per calibration configuration."""
    from neuronscope.verdict.calibration import CalibrationConfig, calibrate, small_config

    ccfg = small_config() if size == "small" else CalibrationConfig()

    def compute(tmp: Path) -> None:
        torch.manual_seed(0)
        result = calibrate(ccfg, log=lambda msg: run.progress.update(run.inner, description=f"  calibration: {msg}",
                                                                      visible=True, info=""))
        write_json(tmp / "calibration.json", _jsonable(result.to_json()))

    art = run.step("calibration", {"calibration": _jsonable(ccfg.to_json())}, compute, "calibration (ground truth)")
    cal = read_json(art.path / "calibration.json")
    return {"size": size, "confusion": cal["confusion"], "analysis_accuracy": cal["analysis_accuracy"],
            "checks": cal["checks"]}


def _dir_key(model_dir: Path) -> str:
    """The cache key of the artifact holding `model_dir`, or a content hash for an external checkpoint."""
    parent = model_dir.parent
    if (parent / "_complete.json").is_file():
        return str(read_json(parent / "_complete.json")["key"])
    return hashlib.sha256(str(dir_fingerprint(model_dir, "*.safetensors")).encode()).hexdigest()[:16]


__all__ = ["GridResult", "UnlearnAPI", "claimed_run_dir", "log_line", "numerics", "remove_partial", "run_grid",
           "unlearn_api"]
