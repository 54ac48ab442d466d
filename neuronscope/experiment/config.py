"""The experiment config: one TOML file naming data, model, methods, attacks, seeds and analysis stages.

Every value is checked when the config is read, so a mistake is one clear NeuronscopeError naming the key before
any training starts: keys and types by a strict pydantic schema (`extra="forbid"`; the [unlearn] keys are the
loop's knobs and every registered method's settings, typed as the methods declare them), then what needs more
than a type (unknown methods, p outside (0, 1], a missing data directory, each method's own value checks). The
built-in profiles (`PROFILES`, used by `neuronscope demo`) are the same TOML text as configs/demo.toml and
configs/small.toml. Reading the file or a profile's text (torch-free, for a fast error) is `experiment.config_file`.

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
                   that reaches the threshold, via lr_search), stride = k (score the stop check at every k-th check
                   only, with an exact back-off: same steps, scores and weights; the curve has fewer FS points),
                   [unlearn.method.<name>] per-method overrides
    [attacks]      seeds, harmful_p, benign, harmful_lr, benign_lr, steps, eval_every, batch_size, benign_n
    [attribution]  enabled, attack ("benign" or "harmful"): which attacked model is compared with its unlearned one,
                   patching (also run the causal patching test), patch_attacked (also on the unlearned-vs-attacked
                   pairs, which no figure draws; default true)
    [lens]         enabled
    [calibration]  enabled, size ("small" | "full"): ground-truth erase / hide models and every analysis on them;
                   file: a calibration of the run's model (a calibration.json, or shipped:NAME) whose analyses
                   measured wrong there are shown only in the verdict (neuronscope.verdict.trust)
    [utility]      lm_eval = ["paper"] or task names, limit, include, defaults: US through lm-evaluation-harness
"""

from __future__ import annotations

import functools
import tomllib
import types
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin, get_type_hints

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model

from neuronscope.attacks import AttackConfig
from neuronscope.base_model import BaseTrainConfig, FinetuneConfig
from neuronscope.checks import learning_rates
from neuronscope.data.world import WorldConfig
from neuronscope.errors import NeuronscopeError
from neuronscope.experiment.config_file import PROFILES, check_profile, profile_text, read_config  # noqa: F401  (PROFILES: named here too)
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
    patch_attacked: bool = True  # ... on the unlearned-vs-attacked pairs too (no figure draws those curves)
    lens: bool = True
    utility: UtilitySection = UtilitySection()
    calibration: str = ""  # "" (off), "small" or "full": ground-truth erase/hide models (neuronscope.verdict)
    verdict_calibration: str = ""  # [calibration] file: a calibration.json path or shipped:NAME (verdict.trust)
    source: str = ""  # where the config came from (for messages only; not part of any cache key)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("source")
        d.pop("threads")  # keys carry it through grid.numerics, only where the cpu computes
        if not d["verdict_calibration"]:  # read only when the verdict is assembled; runs without one keep their record
            d.pop("verdict_calibration")
        return d


# --- the schema: strict pydantic models with extra="forbid", so an unknown key or a wrong type is refused with the
# key's dotted name; the dataclasses above stay what the rest of neuronscope reads -----------------------------------


class _Table(BaseModel):
    """A TOML table: unknown keys refused, no silent coercion (strings are not numbers, "yes" is not true)."""

    model_config = ConfigDict(extra="forbid", strict=True)


def _as_tuple(value: Any) -> Any:
    """TOML arrays are lists; a tuple field takes a non-empty one."""
    if isinstance(value, list):
        if not value:
            raise ValueError("must be a non-empty list")
        return tuple(value)
    return value


def _field_type(hint: Any) -> Any:
    return Annotated[hint, BeforeValidator(_as_tuple)] if get_origin(hint) is tuple else hint


@functools.cache
def table_of(cls: type, skip: frozenset[str] = frozenset()) -> type[BaseModel]:
    """The strict model of dataclass `cls`'s fields (minus `skip`), with the dataclass's defaults."""
    hints = get_type_hints(cls)
    spec: dict[str, Any] = {}
    for f in fields(cls):
        if f.name in skip:
            continue
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        spec[f.name] = (_field_type(hints[f.name]), default)
    return create_model(f"{cls.__name__}Table", __base__=_Table, **spec)


def _given(table: BaseModel, order: list[str] | None = None) -> dict[str, Any]:
    """The keys the file set, as validated values (tuples for arrays, floats for numbers), in `order` (the file's)
    where given."""
    keys = sorted(table.model_fields_set, key=lambda k: (order or []).index(k) if k in (order or []) else 10**6)
    return {k: getattr(table, k) for k in keys}


class RunTable(_Table):
    name: str = "experiment"
    device: str = "cpu"
    threads: Annotated[int, Field(ge=1)] = 1
    dtype: str = "float32"
    device_map: str = ""


class EnabledTable(_Table):
    enabled: bool = True


class AttributionTable(_Table):
    enabled: bool = True
    attack: str = "benign"
    patching: bool = True
    patch_attacked: bool = True


class CalibrationTable(_Table):
    enabled: bool = False
    size: str = "full"
    file: str = ""  # a calibration of the run's model whose wrong analyses the verdict shows only (verdict.trust)


def _unlearn_api() -> Any:
    """The unlearning package the grid runs: the real registry, or the fake methods tests swap in through the
    seam (`experiment.methods_api.unlearn_api`)."""
    from neuronscope.experiment import methods_api

    return methods_api.unlearn_api()


def _unlearn_tables(api: Any) -> tuple[type[BaseModel], type[BaseModel]]:
    """[unlearn] and [unlearn.method.NAME]: the loop's knobs and every registered method's settings, typed as the
    methods declare them (a new method's keys are accepted without an edit here)."""
    from neuronscope.unlearn import UnlearnConfig
    from neuronscope.unlearn.base import LOOP_FIELDS, setting_owners

    spec: dict[str, Any] = {}
    if api.config_cls is UnlearnConfig:
        hints = get_type_hints(UnlearnConfig)
        spec = {k: (_field_type(hints[k]) | None, None) for k in LOOP_FIELDS}
        for key, owners in setting_owners().items():
            spec[key] = (get_type_hints(owners[0])[owners[0].keys[key]] | None, None)
    else:  # a swapped-in config class: its own fields
        hints = get_type_hints(api.config_cls)
        spec = {f.name: (_field_type(hints[f.name]) | None, None) for f in fields(api.config_cls)}
    spec["lr_grid"] = (_field_type(tuple[float, ...]) | None, None)
    spec["stride"] = (int | None, None)  # the loop's `stride`: a cheaper stop check with the same result
    per_method = create_model("UnlearnMethodTable", __base__=_Table, **spec)
    methods = (_field_type(tuple[str, ...]), UnlearnSection().methods)
    table = create_model("UnlearnTable", __base__=_Table, methods=methods, method=(dict[str, per_method], {}), **spec)
    return table, per_method


def _document_model(api: Any) -> type[BaseModel]:
    """The whole file's model (built per parse: the [unlearn] keys come from the method registry)."""
    data_fields = {k: (_field_type(h) | None, None) for k, h in get_type_hints(DataSection).items()}
    data = create_model("DataTable", __base__=_Table, dir=(str | None, None), path=(str | None, None),
                        world=(table_of(WorldConfig) | None, None), **data_fields)
    base_fields = {f.name: (_field_type(get_type_hints(BaseTrainConfig)[f.name]) | None, None)
                   for f in fields(BaseTrainConfig) if f.name not in ("toy", "exclude_splits")}
    base = create_model("BaseTable", __base__=_Table, ckpt=(str | None, None),
                        finetune=(table_of(FinetuneConfig, frozenset({"exclude_splits"})) | None, None),
                        toy=(table_of(ToyConfig) | None, None), **base_fields)
    unlearn, _ = _unlearn_tables(api)
    return create_model("ExperimentDocument", __base__=_Table, run=(RunTable, RunTable()), data=(data, data()),
                        base=(base, base()), oracle=(EnabledTable, EnabledTable()), unlearn=(unlearn, unlearn()),
                        attacks=(table_of(AttacksSection), table_of(AttacksSection)()),
                        attribution=(AttributionTable, AttributionTable()), lens=(EnabledTable, EnabledTable()),
                        utility=(table_of(UtilitySection), table_of(UtilitySection)()),
                        calibration=(CalibrationTable, CalibrationTable()))


_TYPE_WORDS = {"bool_type": "must be true or false", "int_type": "must be an integer",
               "float_type": "must be a number", "string_type": "must be a string",
               "tuple_type": "must be a non-empty list", "model_type": "must be a table",
               "dict_type": "must be a table",
               "model_attributes_type": "must be a table"}


def _model_at(model: type[BaseModel], path: list[str]) -> type[BaseModel] | None:
    """The model of the table at `path` (through optional tables and per-name dicts), for its allowed keys."""
    current: Any = model
    i = 0
    while i < len(path):
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or path[i] not in current.model_fields:
            return None
        current = current.model_fields[path[i]].annotation
        if isinstance(current, types.UnionType):  # an optional table
            current = next(a for a in get_args(current) if a is not type(None))
        if get_origin(current) is dict:  # a per-name table: skip the name
            current = get_args(current)[1]
            i += 1
        i += 1
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _validation_error(e: ValidationError, where: str, model: type[BaseModel]) -> NeuronscopeError:
    """One line naming the first bad key as the file spells it (`source: unlearn.lr: must be a number, got 'x'`)."""
    errors = e.errors()
    first = errors[0]
    loc = [str(x) for x in first["loc"]]
    if first["type"] == "extra_forbidden":
        parent = loc[:-1]
        unknown = sorted(str(x["loc"][-1]) for x in errors
                         if x["type"] == "extra_forbidden" and [str(y) for y in x["loc"][:-1]] == parent)
        table = _model_at(model, parent)
        allowed = f" (allowed: {', '.join(sorted(table.model_fields))})" if table is not None else ""
        at = f"{where}: {'.'.join(parent)}" if parent else where
        return NeuronscopeError(f"{at}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}{allowed}")
    at = f"{where}: {'.'.join(loc)}" if loc else where
    kind, value = first["type"], first.get("input")
    if kind in _TYPE_WORDS:
        return NeuronscopeError(f"{at}: {_TYPE_WORDS[kind]}, got {value!r}")
    if kind == "greater_than_equal":
        return NeuronscopeError(f"{at}: must be at least {first['ctx']['ge']}, got {value!r}")
    if kind == "value_error":
        return NeuronscopeError(f"{at}: {first['ctx']['error']}, got {value!r}")
    return NeuronscopeError(f"{at}: {first['msg']}, got {value!r}")


def _validate(model: type[BaseModel], table: Any, where: str) -> Any:
    try:
        return model.model_validate(table)
    except ValidationError as e:
        raise _validation_error(e, where, model) from None


def _fail(where: str, msg: str) -> NeuronscopeError:
    return NeuronscopeError(f"{where}: {msg}")


def dataclass_from(cls: type, table: dict[str, Any], where: str, skip: set[str] = frozenset()) -> Any:
    """Dataclass `cls` from a TOML table: every key checked against its fields and typed, named under `where`."""
    if not isinstance(table, dict):
        raise _fail(where, f"must be a table, got {table!r}")
    validated = _validate(table_of(cls, frozenset(skip)), table, where)
    return cls(**_given(validated))


def _resolve(value: str, base_dir: Path | None) -> Path:
    """A config path: absolute as given, relative to the config file's folder otherwise."""
    return Path(value) if base_dir is None or Path(value).is_absolute() else base_dir / value


def parse_config(doc: dict[str, Any], source: str = "<config>", base_dir: Path | None = None) -> ExperimentConfig:
    """Build and check an ExperimentConfig from parsed TOML; relative paths resolve against `base_dir`.

    Keys and types are checked by the pydantic schema (`_document_model`); what needs more than a type (a device
    that exists, a data path, fractions, the methods' own value checks) is checked after it, in order."""
    from neuronscope.experiment.builtin import resolve_builtins

    api = _unlearn_api()
    model = _document_model(api)
    unknown = sorted(set(doc) - set(model.model_fields))
    if unknown:  # a misspelt section before a builder may start pulling a model
        raise _fail(source, f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                            f"(allowed: {', '.join(sorted(model.model_fields))})")
    # pretrained:NAME and [data.real_facts] -> paths (cached)
    doc = resolve_builtins(doc, source, base_dir, dataclass_from)
    d = _validate(model, doc, source)  # every key and type of every table

    run = d.run
    from neuronscope.models.device import DEVICE_MAP_STRATEGIES, DTYPES, check_device_spec

    check_device_spec(run.device, f"{source}: run.device")
    if run.dtype != "auto" and run.dtype not in DTYPES:
        raise _fail(f"{source}: run.dtype", f"must be auto or one of {', '.join(DTYPES)}, got {run.dtype!r}")
    if run.device_map and run.device_map not in DEVICE_MAP_STRATEGIES:
        raise _fail(f"{source}: run.device_map",
                    f"must be {', '.join(DEVICE_MAP_STRATEGIES)}, got {run.device_map!r}")

    data = d.data
    prep_keys = {f.name for f in fields(DataSection)}
    given = data.model_fields_set
    if "dir" in given and "path" in given:
        raise _fail(f"{source}: [data]", "give either dir or path, not both")
    key = "path" if "path" in given else "dir"
    data_dir = getattr(data, key)
    prep = DataSection(**{k: v for k, v in _given(data).items() if k in prep_keys})
    if data_dir is not None:
        if "world" in given:
            raise _fail(f"{source}: [data]", f"give either {key} or [data.world], not both")
        path = _resolve(data_dir, base_dir)
        from neuronscope.data.formats import FORMATS, detect_format

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
    elif given & prep_keys:
        raise _fail(f"{source}: [data]", f"{', '.join(sorted(given & prep_keys))} need data.path (real files)")
    from neuronscope.data.prompts import prompt_format

    try:
        prompt_format(prep.prompt, chat=prep.chat, system=prep.system, template=prep.template or None)
    except NeuronscopeError as e:
        raise _fail(f"{source}: data.prompt", str(e)) from None
    world = WorldConfig(**_given(data.world)) if data.world is not None else WorldConfig()
    try:
        world.check(lambda f: f"data.world.{f}")
    except NeuronscopeError as e:
        raise _fail(source, str(e)) from None

    base = d.base
    toy = ToyConfig(**_given(base.toy)) if base.toy is not None else ToyConfig()
    train_given = {k: v for k, v in _given(base).items() if k not in ("ckpt", "finetune", "toy")}
    train = BaseTrainConfig(**{**train_given, "toy": toy, "exclude_splits": ()})
    try:  # every value now: a zero check_every or a target above 1 would fail only after the base's training
        train.check(lambda f: f"base.{f}")
    except NeuronscopeError as e:
        raise _fail(source, str(e)) from None
    base_ckpt = base.ckpt
    if base_ckpt is not None:
        path = _resolve(base_ckpt, base_dir)
        if not (path / "config.json").is_file():
            raise _fail(f"{source}: base.ckpt", f"{path} is not an HF checkpoint directory")
        base_ckpt = str(path.resolve())
    finetune = None
    if base.finetune is not None:
        if base_ckpt is None:
            raise _fail(f"{source}: base.finetune", "fine-tunes a given checkpoint: set base.ckpt")
        finetune = FinetuneConfig(**_given(base.finetune))
        try:
            finetune.check()
        except NeuronscopeError as e:
            raise _fail(f"{source}: base.finetune", str(e)) from None
    if prep.chat and base_ckpt is None:
        raise _fail(f"{source}: data.chat", "renders prompts with base.ckpt's chat template: set base.ckpt")

    oracle = d.oracle.enabled
    if oracle and base_ckpt is not None and finetune is None:
        raise _fail(f"{source}: [oracle]", "the oracle is the base recipe without the forget facts (the toy trained "
                                           "from scratch, or base.finetune); with a given base.ckpt and no "
                                           "[base.finetune], disable it (enabled = false)")

    raw = doc.get("unlearn", {})
    unlearn = _parse_unlearn(d.unlearn, list(raw) + [k for t in raw.get("method", {}).values() for k in t], source,
                             api)
    attacks = AttacksSection(**_given(d.attacks))
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

    attr = d.attribution
    if attr.attack not in ("benign", "harmful"):
        raise _fail(f"{source}: attribution.attack", f"must be 'benign' or 'harmful', got {attr.attack!r}")
    if attr.enabled and attr.attack == "benign" and not attacks.benign:
        raise _fail(f"{source}: attribution.attack", "is 'benign' but the benign attack is disabled")
    calibration = ""
    if d.calibration.enabled:
        calibration = d.calibration.size
        if calibration not in ("small", "full"):
            raise _fail(f"{source}: calibration.size", f"must be 'small' or 'full', got {calibration!r}")
    verdict_calibration = d.calibration.file
    if verdict_calibration:
        from neuronscope.verdict.trust import SHIPPED_PREFIX, calibration_ref

        if not verdict_calibration.startswith(SHIPPED_PREFIX):
            verdict_calibration = str(_resolve(verdict_calibration, base_dir))
        try:
            verdict_calibration = calibration_ref(verdict_calibration)
        except NeuronscopeError as e:
            raise _fail(f"{source}: calibration.file", str(e)) from None
    utility = UtilitySection(**_given(d.utility))
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

    return ExperimentConfig(name=run.name, device=run.device, threads=run.threads, dtype=run.dtype,
                            device_map=run.device_map, data_dir=data_dir, data=prep, world=world,
                            base_ckpt=base_ckpt, finetune=finetune, base=train, oracle=oracle, unlearn=unlearn,
                            attacks=attacks, attribution=attr.enabled, attribution_attack=attr.attack,
                            patching=attr.patching, patch_attacked=attr.patch_attacked, lens=d.lens.enabled,
                            utility=utility, calibration=calibration, verdict_calibration=verdict_calibration,
                            source=source)


def _parse_unlearn(table: BaseModel, order: list[str], source: str, api: Any) -> UnlearnSection:
    """[unlearn] (already typed by the schema): known, distinct methods; each method's loop and own settings checked
    by the methods themselves, named as the TOML key they came from."""
    from neuronscope.checks import SettingError
    from neuronscope.unlearn import METHODS
    from neuronscope.unlearn.base import RUN_ARGS

    where = f"{source}: unlearn"
    known = tuple(api.methods)
    methods = tuple(table.methods)  # type: ignore[attr-defined]
    per_method = {m: _given(t, order) for m, t in table.method.items()}  # type: ignore[attr-defined]
    for m in methods:
        if m not in known:
            raise _fail(f"{where}.methods", f"unknown method {m!r} (known: {', '.join(known)})")
    if len(set(methods)) != len(methods):
        raise _fail(f"{where}.methods", "methods must be distinct")
    for m in per_method:
        if m not in methods:
            raise _fail(f"{where}.method.{m}", f"overrides a method that is not in unlearn.methods: {m!r}")
    params = {k: v for k, v in _given(table, order).items() if k not in ("methods", "method")}
    for w, p in [(where, params), *((f"{where}.method.{m}", p) for m, p in per_method.items())]:
        learning_rates(p.get("lr_grid", ()), f"{w}.lr_grid")
        if p.get("stride", 1) < 1:
            raise _fail(f"{w}.stride", f"must be at least 1 (got {p['stride']})")
    section = UnlearnSection(methods=methods, params=params, per_method=per_method)
    for m in methods:  # the trainer's own checks (positive lr, ...), now rather than after the base is trained
        given = {k: v for k, v in section.params_for(m).items() if k not in RUN_ARGS}
        try:
            ucfg = api.config_cls(**given)
            if hasattr(ucfg, "check"):
                ucfg.check()
            if hasattr(ucfg, "settings") and m in METHODS:
                ucfg.settings(METHODS[m])
        except SettingError as e:  # named as the TOML key it came from
            key = f"method.{m}.{e.setting}" if e.setting in per_method.get(m, {}) else e.setting
            raise e.named(f"{where}.{key}") from None
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
    return parse_config(read_config(path), str(path), path.parent)


def profile(name: str) -> ExperimentConfig:
    """The built-in config `name`: package data, identical to configs/{demo,small,smollm2-faithun,smollm2-tofu}.toml
    (the SmolLM2 ones pull the model and build their data on first use: docs/real-model.md)."""
    check_profile(name)
    return parse_config(tomllib.loads(profile_text(name)), f"profile {name}")
