"""The experiment config: one TOML file naming data, model, methods, attacks, seeds and analysis stages.

Every value is checked when the config is read (unknown keys, unknown methods, p outside (0, 1], a missing data
directory), so a mistake is one clear NeuronscopeError before any training starts. The built-in profiles
(`PROFILES`, used by `neuronscope demo`) are the same TOML text as configs/demo.toml and configs/small.toml.

    [run]          name, device, threads (torch CPU threads; 1 = bit-reproducible, see grid.py), dtype,
                   device_map ("auto": each model spread over the visible GPUs)
    [data]         path = "file or dir" (any format; `dir` is the same key) with format, prompt, template, chat,
                   system, benign, benign_n, seed (DataSection: neuronscope.data.prepare)
                   OR [data.world] (WorldConfig fields: people, seed, forget, ...)
                   OR [data.real_facts] (RealFactsConfig fields: countries, attributes, ...; experiment.builtin)
    [base]         ckpt = "path" [+ [base.finetune] lr, epochs, batch_size, seed: fine-tune it first (TOFU)]
                   ("pretrained:smollm2-135m": the model pulled from its package, experiment.builtin)
                   OR the toy recipe: lr, batch_size, max_epochs, target, check_every, seed, [base.toy]
    [oracle]       enabled: the base recipe without the forget facts (the toy recipe or base.finetune)
    [unlearn]      methods = [...], any UnlearnConfig field (lr, max_steps, ...), lr_grid = [...] (the lowest rate
                   that reaches the threshold, via lr_search), [unlearn.method.<name>] per-method overrides
    [attacks]      seeds, harmful_p, benign, harmful_lr, benign_lr, steps, eval_every, batch_size, benign_n
    [attribution]  enabled, attack ("benign" or "harmful"): which attacked model is compared with its unlearned one,
                   patching (also run the causal patching test)
    [lens]         enabled
    [calibration]  enabled, size ("small" | "full"): ground-truth erase / hide models and every analysis on them
    [utility]      lm_eval = ["paper"] or task names, limit, include, defaults: US through lm-evaluation-harness
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from neuronscope.attacks import AttackConfig
from neuronscope.base_model import BaseTrainConfig, FinetuneConfig
from neuronscope.checks import learning_rates
from neuronscope.data.world import WorldConfig
from neuronscope.errors import NeuronscopeError
from neuronscope.models.toy import ToyConfig


@dataclass(frozen=True)
class AttacksSection:
    seeds: tuple[int, ...] = (0, 1, 2)
    harmful_p: tuple[float, ...] = (0.1, 0.3)
    benign: bool = True
    harmful_lr: tuple[float, ...] = (1e-3,)
    benign_lr: tuple[float, ...] = (1e-3,)
    steps: int = 30
    eval_every: int = 5
    batch_size: int = 16
    benign_n: int = 0

    def configs(self) -> list[AttackConfig]:
        """Every (kind, p, lr, seed) attack, in a fixed order."""
        out: list[AttackConfig] = []
        common = {"steps": self.steps, "eval_every": self.eval_every, "batch_size": self.batch_size}
        for p in self.harmful_p:
            for lr in self.harmful_lr:
                out += [AttackConfig(kind="harmful", p=p, lr=lr, seed=s, **common) for s in self.seeds]
        if self.benign:
            for lr in self.benign_lr:
                out += [AttackConfig(kind="benign", lr=lr, seed=s, benign_n=self.benign_n, **common)
                        for s in self.seeds]
        return out


@dataclass(frozen=True)
class UnlearnSection:
    methods: tuple[str, ...] = ("ga", "gd", "npo", "ssiuu")
    params: dict[str, Any] = field(default_factory=dict)  # UnlearnConfig fields shared by all methods
    per_method: dict[str, dict[str, Any]] = field(default_factory=dict)  # [unlearn.method.<name>] overrides

    def params_for(self, method: str) -> dict[str, Any]:
        return {**self.params, **self.per_method.get(method, {})}


@dataclass(frozen=True)
class DataSection:
    """How real files are prepared (neuronscope.data.prepare.prepare_dataset); ignored for the embedded world."""

    format: str = "auto"  # auto | world | faithun | tofu
    prompt: str = "plain"  # plain | mcqa | mcqa-letters (neuronscope.data.prompts)
    template: str = ""  # custom template over {question} and {options} ("" = the preset's)
    chat: bool = False  # wrap prompts in base.ckpt's chat template (instruction-tuned models)
    system: str = ""
    benign: str = ""  # Alpaca JSON for the benign attack ("" = the data's own benign corpus, if any)
    benign_n: int = 0  # seeded sample of the benign corpus (0 = all)
    seed: int = 0


@dataclass(frozen=True)
class UtilitySection:
    """US of every model through lm-evaluation-harness (the optional extra `lmeval`), next to the data's own."""

    lm_eval: tuple[str, ...] = ()  # lm-eval task names; ["paper"] = MMLU, GSM8K, HellaSwag, ARC-C, Winogrande
    limit: int = 500  # items per task (the paper's 500); 0 = all
    include: str = ""  # a directory of extra task YAMLs (relative to the config file)
    defaults: bool = True  # index lm-eval's built-in tasks too (False: only `include`, faster)


@dataclass(frozen=True)
class ExperimentConfig:
    name: str = "experiment"
    device: str = "cpu"
    threads: int = 1  # torch CPU threads during the run: 1 makes every number reproducible (see grid.py)
    dtype: str = "float32"  # weights of every model the grid loads: float32 | bfloat16 | float16 | auto
    device_map: str = ""  # "auto": spread each model over the visible GPUs (accelerate); "" = one device
    data_dir: str | None = None  # a data file or directory (any supported format); None: the embedded world
    data: DataSection = DataSection()
    world: WorldConfig = WorldConfig()
    base_ckpt: str | None = None
    finetune: FinetuneConfig | None = None  # fine-tune base_ckpt on the data first (TOFU)
    base: BaseTrainConfig = BaseTrainConfig()
    oracle: bool = True
    unlearn: UnlearnSection = UnlearnSection()
    attacks: AttacksSection = AttacksSection()
    attribution: bool = True
    attribution_attack: str = "benign"
    patching: bool = True  # attribution: also run the causal patching test (run_attribute's `patching`)
    lens: bool = True
    utility: UtilitySection = UtilitySection()
    calibration: str = ""  # "" (off), "small" or "full": ground-truth erase/hide models (neuronscope.verdict)
    source: str = ""  # where the config came from (for messages only; not part of any cache key)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("source")
        d.pop("threads")  # keys carry it through grid.numerics, only where the cpu computes
        return d


_SECTIONS = {"run", "data", "base", "oracle", "unlearn", "attacks", "attribution", "lens", "utility", "calibration"}


def _fail(where: str, msg: str) -> NeuronscopeError:
    return NeuronscopeError(f"{where}: {msg}")


def _check_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise _fail(where, f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                           f"(allowed: {', '.join(sorted(allowed))})")


def _typed(value: Any, default: Any, where: str) -> Any:
    """Coerce a TOML value to the type of the dataclass default (ints may stand for floats)."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise _fail(where, f"must be true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(where, f"must be an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(where, f"must be a number, got {value!r}")
        return float(value)
    if isinstance(default, str) or default is None:
        if not isinstance(value, str):
            raise _fail(where, f"must be a string, got {value!r}")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, list) or not value:
            raise _fail(where, f"must be a non-empty list, got {value!r}")
        proto = default[0] if default else value[0]
        return tuple(_typed(v, proto, f"{where}[{i}]") for i, v in enumerate(value))
    return value


def _dataclass_from(cls: type, table: dict[str, Any], where: str, skip: set[str] = frozenset()) -> Any:
    names = {f.name for f in fields(cls)} - set(skip)
    _check_keys(table, names, where)
    default = cls()
    kwargs = {k: _typed(v, getattr(default, k), f"{where}.{k}") for k, v in table.items()}
    return type(default)(**{**{k: getattr(default, k) for k in names}, **kwargs})


def _resolve(value: str, base_dir: Path | None) -> Path:
    """A config path: absolute as given, relative to the config file's folder otherwise."""
    return Path(value) if base_dir is None or Path(value).is_absolute() else base_dir / value


def _section(doc: dict[str, Any], name: str) -> dict[str, Any]:
    value = doc.get(name, {})
    if not isinstance(value, dict):
        raise _fail(name, "must be a table")
    return dict(value)


def parse_config(doc: dict[str, Any], source: str = "<config>", base_dir: Path | None = None) -> ExperimentConfig:
    """Build and check an ExperimentConfig from parsed TOML; relative paths resolve against `base_dir`."""
    _check_keys(doc, _SECTIONS, source)
    from neuronscope.experiment.builtin import resolve_builtins

    doc = resolve_builtins(doc, source, base_dir)  # pretrained:NAME and [data.real_facts] -> paths (cached)

    run = _section(doc, "run")
    _check_keys(run, {"name", "device", "threads", "dtype", "device_map"}, f"{source}: [run]")
    threads = _typed(run.get("threads", 1), 1, f"{source}: run.threads")
    if threads < 1:
        raise _fail(f"{source}: run.threads", f"must be at least 1, got {threads}")
    name = _typed(run.get("name", "experiment"), "", f"{source}: run.name")
    device = _typed(run.get("device", "cpu"), "", f"{source}: run.device")
    dtype = _typed(run.get("dtype", "float32"), "", f"{source}: run.dtype")
    device_map = _typed(run.get("device_map", ""), "", f"{source}: run.device_map")
    from neuronscope.models.device import DEVICE_MAP_STRATEGIES, DTYPES, check_device_spec

    check_device_spec(device, f"{source}: run.device")
    if dtype != "auto" and dtype not in DTYPES:
        raise _fail(f"{source}: run.dtype", f"must be auto or one of {', '.join(DTYPES)}, got {dtype!r}")
    if device_map and device_map not in DEVICE_MAP_STRATEGIES:
        raise _fail(f"{source}: run.device_map", f"must be {', '.join(DEVICE_MAP_STRATEGIES)}, got {device_map!r}")

    data = _section(doc, "data")
    prep_keys = {f.name for f in fields(DataSection)}
    _check_keys(data, {"dir", "path", "world"} | prep_keys, f"{source}: [data]")
    if "dir" in data and "path" in data:
        raise _fail(f"{source}: [data]", "give either dir or path, not both")
    key = "path" if "path" in data else "dir"
    data_dir = data.get(key)
    prep = _dataclass_from(DataSection, {k: v for k, v in data.items() if k in prep_keys}, f"{source}: data")
    if data_dir is not None:
        if "world" in data:
            raise _fail(f"{source}: [data]", f"give either {key} or [data.world], not both")
        data_dir = _typed(data_dir, "", f"{source}: data.{key}")
        path = _resolve(data_dir, base_dir)
        from neuronscope.data.loaders import FORMATS, detect_format

        if prep.format not in FORMATS:
            raise _fail(f"{source}: data.format", f"must be one of {', '.join(FORMATS)}, got {prep.format!r}")
        try:
            if prep.format == "auto":
                detect_format(path)
            elif not path.exists():
                raise NeuronscopeError(f"{path}: file or directory not found")
        except NeuronscopeError as e:
            raise _fail(f"{source}: data.{key}", str(e)) from None
        data_dir = str(path.resolve())
        if prep.benign:
            benign = _resolve(prep.benign, base_dir)
            if not benign.is_file():
                raise _fail(f"{source}: data.benign", f"Alpaca file {benign} not found")
            prep = DataSection(**{**asdict(prep), "benign": str(benign.resolve())})
    elif any(k in data for k in prep_keys):
        raise _fail(f"{source}: [data]", f"{', '.join(sorted(set(data) & prep_keys))} need data.path (real files)")
    from neuronscope.data.prompts import prompt_format

    try:
        prompt_format(prep.prompt, chat=prep.chat, system=prep.system, template=prep.template or None)
    except NeuronscopeError as e:
        raise _fail(f"{source}: data.prompt", str(e)) from None
    world = _dataclass_from(WorldConfig, _section(data, "world"), f"{source}: data.world")
    try:
        world.check(lambda f: f"data.world.{f}")
    except NeuronscopeError as e:
        raise _fail(source, str(e)) from None

    base = _section(doc, "base")
    base_ckpt = base.pop("ckpt", None)
    finetune_t = base.pop("finetune", None)
    toy = _dataclass_from(ToyConfig, _section(base, "toy"), f"{source}: base.toy")
    base.pop("toy", None)
    train = _dataclass_from(BaseTrainConfig, base, f"{source}: base", skip={"toy", "exclude_splits"})
    train = BaseTrainConfig(**{**asdict(train), "toy": toy, "exclude_splits": ()})
    try:  # every value now: a zero check_every or a target above 1 would fail only after the base's training
        train.check(lambda f: f"base.{f}")
    except NeuronscopeError as e:
        raise _fail(source, str(e)) from None
    if base_ckpt is not None:
        base_ckpt = _typed(base_ckpt, "", f"{source}: base.ckpt")
        path = _resolve(base_ckpt, base_dir)
        if not (path / "config.json").is_file():
            raise _fail(f"{source}: base.ckpt", f"{path} is not an HF checkpoint directory")
        base_ckpt = str(path.resolve())
    finetune = None
    if finetune_t is not None:
        if not isinstance(finetune_t, dict):
            raise _fail(f"{source}: base.finetune", "must be a table")
        if base_ckpt is None:
            raise _fail(f"{source}: base.finetune", "fine-tunes a given checkpoint: set base.ckpt")
        finetune = _dataclass_from(FinetuneConfig, finetune_t, f"{source}: base.finetune", skip={"exclude_splits"})
        try:
            finetune.check()
        except NeuronscopeError as e:
            raise _fail(f"{source}: base.finetune", str(e)) from None
    if prep.chat and base_ckpt is None:
        raise _fail(f"{source}: data.chat", "renders prompts with base.ckpt's chat template: set base.ckpt")

    oracle_t = _section(doc, "oracle")
    _check_keys(oracle_t, {"enabled"}, f"{source}: [oracle]")
    oracle = _typed(oracle_t.get("enabled", True), True, f"{source}: oracle.enabled")
    if oracle and base_ckpt is not None and finetune is None:
        raise _fail(f"{source}: [oracle]", "the oracle is the base recipe without the forget facts (the toy trained "
                                           "from scratch, or base.finetune); with a given base.ckpt and no "
                                           "[base.finetune], disable it (enabled = false)")

    unlearn = _parse_unlearn(_section(doc, "unlearn"), source)
    attacks = _dataclass_from(AttacksSection, _section(doc, "attacks"), f"{source}: attacks")
    learning_rates(attacks.harmful_lr, f"{source}: attacks.harmful_lr")
    learning_rates(attacks.benign_lr, f"{source}: attacks.benign_lr")
    if len(set(attacks.seeds)) != len(attacks.seeds):
        raise _fail(f"{source}: attacks.seeds", "seeds must be distinct")
    for p in attacks.harmful_p:
        if not 0 < p <= 1:
            raise _fail(f"{source}: attacks.harmful_p", f"fraction p must lie in (0, 1], got {p}")
    for cfg in attacks.configs():
        try:
            cfg.check()
        except NeuronscopeError as e:
            raise _fail(f"{source}: [attacks]", str(e)) from None

    attr = _section(doc, "attribution")
    _check_keys(attr, {"enabled", "attack", "patching"}, f"{source}: [attribution]")
    patching = _typed(attr.get("patching", True), True, f"{source}: attribution.patching")
    attribution = _typed(attr.get("enabled", True), True, f"{source}: attribution.enabled")
    attribution_attack = _typed(attr.get("attack", "benign"), "", f"{source}: attribution.attack")
    if attribution_attack not in ("benign", "harmful"):
        raise _fail(f"{source}: attribution.attack", f"must be 'benign' or 'harmful', got {attribution_attack!r}")
    if attribution and attribution_attack == "benign" and not attacks.benign:
        raise _fail(f"{source}: attribution.attack", "is 'benign' but the benign attack is disabled")
    lens_t = _section(doc, "lens")
    _check_keys(lens_t, {"enabled"}, f"{source}: [lens]")
    lens = _typed(lens_t.get("enabled", True), True, f"{source}: lens.enabled")
    cal_t = _section(doc, "calibration")
    _check_keys(cal_t, {"enabled", "size"}, f"{source}: [calibration]")
    calibration = ""
    if _typed(cal_t.get("enabled", False), False, f"{source}: calibration.enabled"):
        calibration = _typed(cal_t.get("size", "full"), "", f"{source}: calibration.size")
        if calibration not in ("small", "full"):
            raise _fail(f"{source}: calibration.size", f"must be 'small' or 'full', got {calibration!r}")
    utility = _dataclass_from(UtilitySection, _section(doc, "utility"), f"{source}: utility")
    if utility.lm_eval:
        from neuronscope.lm_eval_utility import PAPER_TASKS

        tasks = tuple(dict.fromkeys(t for name in utility.lm_eval for t in (PAPER_TASKS if name == "paper" else
                                                                             (name,))))
        if utility.limit < 0:
            raise _fail(f"{source}: utility.limit", f"must be >= 0 (0 = all items), got {utility.limit}")
        include = str(_resolve(utility.include, base_dir).resolve()) if utility.include else ""
        if include and not Path(include).is_dir():
            raise _fail(f"{source}: utility.include", f"task directory {include} not found")
        utility = UtilitySection(lm_eval=tasks, limit=utility.limit, include=include, defaults=utility.defaults)

    return ExperimentConfig(name=name, device=device, threads=threads, dtype=dtype, device_map=device_map,
                            data_dir=data_dir, data=prep, world=world,
                            base_ckpt=base_ckpt, finetune=finetune, base=train, oracle=oracle, unlearn=unlearn,
                            attacks=attacks,
                            attribution=attribution, attribution_attack=attribution_attack, patching=patching,
                            lens=lens, utility=utility, calibration=calibration, source=source)


def _parse_unlearn(table: dict[str, Any], source: str) -> UnlearnSection:
    from neuronscope.checks import SettingError
    from neuronscope.unlearn import METHODS, UnlearnConfig
    from neuronscope.unlearn.base import LOOP_FIELDS, coerce_setting

    where = f"{source}: unlearn"
    methods = _typed(table.pop("methods", list(UnlearnSection().methods)), ("",), f"{where}.methods")
    per_method = table.pop("method", {})
    if not isinstance(per_method, dict):
        raise _fail(f"{where}.method", "must be a table of per-method tables")
    known = tuple(METHODS)
    for m in methods:
        if m not in known:
            raise _fail(f"{where}.methods", f"unknown method {m!r} (known: {', '.join(known)})")
    if len(set(methods)) != len(methods):
        raise _fail(f"{where}.methods", "methods must be distinct")
    for m, params in per_method.items():
        if m not in methods:
            raise _fail(f"{where}.method.{m}", f"overrides a method that is not in unlearn.methods: {m!r}")
        if not isinstance(params, dict):
            raise _fail(f"{where}.method.{m}", "must be a table")
    allowed = set(UnlearnConfig.field_names()) | {"lr_grid"}
    loop_default = UnlearnConfig()
    for w, params in [(where, table), *((f"{where}.method.{m}", p) for m, p in per_method.items())]:
        _check_keys(params, allowed, w)
        for k, v in params.items():
            if k == "lr_grid":
                params[k] = _typed(v, (1.0,), f"{w}.{k}")
            elif k in LOOP_FIELDS:
                default = getattr(loop_default, k)
                params[k] = _typed(v, default, f"{w}.{k}") if default is not None else v
            else:
                try:
                    params[k] = coerce_setting(k, v)
                except SettingError as e:
                    raise e.where(f"{w}.{k}") from None
        learning_rates(params.get("lr_grid", ()), f"{w}.lr_grid")
    section = UnlearnSection(methods=methods, params=dict(table), per_method={k: dict(v) for k, v in
                                                                                per_method.items()})
    for m in methods:  # the trainer's own checks (positive lr, ...), now rather than after the base is trained
        params = {k: v for k, v in section.params_for(m).items() if k != "lr_grid"}
        try:
            ucfg = UnlearnConfig(**params)
            ucfg.check()
            ucfg.settings(METHODS[m])
        except SettingError as e:  # named as the TOML key it came from
            key = f"method.{m}.{e.setting}" if e.setting in per_method.get(m, {}) else e.setting
            raise e.where(f"{where}.{key}") from None
        except NeuronscopeError as e:
            raise _fail(f"{where} ({m})", str(e)) from None
        except (TypeError, ValueError) as e:
            raise _fail(f"{where} ({m})", f"invalid value ({e})") from None
    return section


def check_placement(cfg: ExperimentConfig) -> None:
    """Is `[run] device` here? Asked when a run starts, not when the config is read (a dry run on a CPU machine
    plans a GPU run), and named as the config key, not as a --device flag `run` does not have."""
    if not cfg.device_map:
        from neuronscope.models.device import resolve_device

        resolve_device(cfg.device, flag=f"{cfg.source}: run.device")


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and check a TOML experiment config."""
    path = Path(path)
    if not path.is_file():
        raise NeuronscopeError(f"{path}: config file not found")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise NeuronscopeError(f"{path}: invalid TOML ({e})") from None
    return parse_config(doc, str(path), path.parent)


PROFILES: tuple[str, ...] = ("full", "small", "smollm2-faithun", "smollm2-tofu")


def profile_text(name: str) -> str:
    from importlib import resources

    return resources.files("neuronscope.experiment").joinpath(f"profiles/{name}.toml").read_text("utf-8")


def profile(name: str) -> ExperimentConfig:
    """The built-in config `name`: package data, identical to configs/{demo,small,smollm2-faithun,smollm2-tofu}.toml
    (the SmolLM2 ones pull the model and build their data on first use: docs/real-model.md)."""
    if name not in PROFILES:
        raise NeuronscopeError(f"--profile must be one of {', '.join(PROFILES)}, got {name!r}")
    return parse_config(tomllib.loads(profile_text(name)), f"profile {name}")
