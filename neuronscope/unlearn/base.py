"""What every unlearning method shares: its configuration, the batch it sees per step, and the Method interface.

A method only defines its loss (and, where needed, a frozen reference model or a trainable-parameter subset);
the loop in `loop.py` owns batching, the optimiser, the stopping rule and logging, so methods stay comparable.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from jaxtyping import Float
from torch import Tensor, nn

from neuronscope.batching import Batch, encode
from neuronscope.checks import SettingError, at_least, fraction, non_negative, positive
from neuronscope.data.schema import KINDS, QADataset, QAItem
from neuronscope.errors import NeuronscopeError
from neuronscope.models.handle import Model
from neuronscope.sparse_logits import answer_logits
from neuronscope.training import answer_nll
from neuronscope.unlearn.catalog import PAPER_REFUSAL  # noqa: F401  (re-exported: the refusal DPO defaults to)

if TYPE_CHECKING:
    from neuronscope.plan import Shape


@dataclass(frozen=True)
class MethodSettings:
    """A method's own settings (subclass per method). `keys` maps each public key, the name a user writes (a CLI
    `--setting` or an `[unlearn]` TOML key), to a field; methods that share a key (NPO and DPO share `beta`) read
    the same value. `help` says what each key does, for the CLI's help."""

    keys: ClassVar[dict[str, str]] = {}
    help: ClassVar[dict[str, str]] = {}

    def check(self) -> None:
        """Reject meaningless values; messages name the public key (the caller adds where it came from)."""

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> MethodSettings:
        """These settings with the values `args` gives for this method's public keys (the rest: defaults)."""
        return cls(**{f: args[k] for k, f in cls.keys.items() if k in args})

    def public(self) -> dict[str, Any]:
        """{public key: value}: what a run records."""
        return {k: getattr(self, f) for k, f in self.keys.items()}


@dataclass(frozen=True)
class NoSettings(MethodSettings):
    """A method without settings of its own (GA, GD)."""


# Settings every run's config has recorded since they were flat fields of this class: kept in each record (with
# the declaring method's default when not given) so that recorded configs and the cache keys made from them stay
# comparable. A new method's settings are recorded only in its own runs (to_json(method)).
RECORDED_KEYS = ("lambda_", "lambda_relative", "beta", "refusal", "rmu_layer", "rmu_c", "rmu_alpha", "rmu_trainable")
LOOP_FIELDS = ("lr", "max_steps", "threshold", "check_every", "rs_every", "batch_size", "seed", "eval_kinds",
               "weight_decay", "grad_clip", "retain_weight")
RUN_ARGS = ("lr_grid", "stride")  # [unlearn] keys that are arguments of lr_search / unlearn, not config fields


@dataclass(frozen=True)
class UnlearnConfig:
    """The loop's knobs, plus `method_args`: the methods' own settings by public key (see `MethodSettings`).

    Settings may also be given as keyword arguments (`UnlearnConfig(beta=0.3, rmu_layer=1)`) and read as
    attributes (`cfg.beta`: the value given, else the default of the first registered method declaring it):
    the flat names that CLI flags and `[unlearn]` TOML keys have always used.
    """

    lr: float = 1e-4
    max_steps: int = 500
    threshold: float | None = None  # stop once FS <= this; None: the dataset's own (chance, TOFU's 0.1971)
    check_every: int = 1  # steps between forget-accuracy checks (the stopping rule)
    rs_every: int = 10  # steps between retain/test accuracy logs in the curve (0: only at the end)
    batch_size: int = 16  # forget and retain batch size
    seed: int = 0
    eval_kinds: tuple[str, ...] = KINDS  # question kinds scored at the end (FS/RS/US use only "base")
    weight_decay: float = 0.0
    grad_clip: float | None = None  # max global grad norm; None: no clipping
    retain_weight: float = 1.0  # weight of the retain NLL (every method with a retain term)
    method_args: Mapping[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        """A method setting by its public key: the value given, else its declared default."""
        if name.startswith("_") or name == "method_args":
            raise AttributeError(name)
        owners = setting_owners().get(name)
        if not owners:
            raise AttributeError(f"{type(self).__name__} has no loop field or method setting {name!r}")
        if name in self.method_args:
            return self.method_args[name]
        cls = owners[0]
        return getattr(cls(), cls.keys[name])

    def check(self) -> None:
        """Reject values that would silently give a meaningless run; messages name the setting."""
        positive(self.lr, "lr")
        at_least(self.max_steps, 1, "max_steps")
        if self.threshold is not None:
            fraction(self.threshold, "threshold")
        at_least(self.check_every, 1, "check_every")
        at_least(self.rs_every, 0, "rs_every")
        at_least(self.batch_size, 1, "batch_size")
        non_negative(self.retain_weight, "retain_weight")
        non_negative(self.weight_decay, "weight_decay")
        if self.grad_clip is not None:
            positive(self.grad_clip, "grad_clip")
        if "base" not in self.eval_kinds:
            raise SettingError("eval_kinds", "must include 'base' (FS, RS and US are read from it)")
        owners = setting_owners()
        for key in self.method_args:
            if key not in owners:
                raise SettingError(key, f"is not a setting of any method (known: {', '.join(sorted(owners))})")
        for cls in dict.fromkeys(c for key in self.method_args for c in owners[key]):
            settings_for(cls, self.method_args).check()

    def settings(self, method: type[Method]) -> MethodSettings:
        """`method`'s settings from `method_args` (checked)."""
        out = settings_for(method.settings_cls, self.method_args)
        out.check()
        return out

    def to_json(self, method: type[Method] | None = None) -> dict[str, Any]:
        """The loop's knobs, the flat keys every run records (`RECORDED_KEYS`), `method`'s own settings and any
        other setting given, each by public key."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "method_args"}
        d |= {key: getattr(self, key) for key in RECORDED_KEYS}
        if method is not None:
            d |= self.settings(method).public()
        return d | dict(self.method_args)

    @classmethod
    def field_names(cls) -> list[str]:
        """Every accepted keyword: the loop's knobs and the methods' public setting keys."""
        return list(LOOP_FIELDS) + list(setting_owners())


_dataclass_init = UnlearnConfig.__init__


def _init(self: UnlearnConfig, *args: Any, method_args: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
    settings = {k: kwargs.pop(k) for k in list(kwargs) if k not in LOOP_FIELDS}
    _dataclass_init(self, *args, method_args={**(method_args or {}), **settings}, **kwargs)


UnlearnConfig.__init__ = _init  # type: ignore[method-assign]


def setting_owners() -> dict[str, list[type[MethodSettings]]]:
    """{public key: the settings classes declaring it}, in the catalog's order (imported late: no cycle)."""
    from neuronscope.unlearn.registry import all_methods

    out: dict[str, list[type[MethodSettings]]] = {}
    for method in all_methods().values():
        for key in method.settings_cls.keys:
            if method.settings_cls not in out.setdefault(key, []):
                out[key].append(method.settings_cls)
    return out


def settings_for(cls: type[MethodSettings], args: Mapping[str, Any]) -> MethodSettings:
    try:
        return cls.from_args(args)
    except TypeError as e:
        raise SettingError(next(iter(cls.keys), "method_args"), f"invalid value ({e})") from None


@dataclass
class StepBatch:
    """One step's data: a forget batch (gold answers) and, when the method uses one, a retain batch."""

    forget: Batch
    forget_items: list[QAItem]
    retain: Batch | None
    retain_items: list[QAItem]
    forget_index: tuple[int, ...] = ()  # positions in the forget list (a cache key for per-batch constants)


class Method:
    """Base class: subclasses set `name` and define `loss`; they may narrow `parameters` or hold a reference.

    What the dry run needs is declared here too, so the planner asks the method instead of knowing it:
    `needs_reference` (a frozen copy of the model is held), `sequences_per_step` (training sequences with a graph
    per step, in batches of batch_size), `trainable_count` and `extra_state`.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""  # one line for the CLI's method help
    needs_retain: ClassVar[bool] = True
    needs_reference: ClassVar[bool] = False
    sequences_per_step: ClassVar[int] = 2  # forget + retain
    settings_cls: ClassVar[type[MethodSettings]] = NoSettings

    def __init__(self, model: Model, ds: QADataset, cfg: UnlearnConfig):
        self.model, self.ds, self.cfg = model, ds, cfg
        self.settings = cfg.settings(type(self))
        self.notes: list[str] = []  # choices made at run time (e.g. a refusal fallback), copied into the result

    def parameters(self) -> list[nn.Parameter]:
        """The parameters the optimiser updates (default: all of them)."""
        return list(self.model.hf.parameters())

    def loss(self, sb: StepBatch, step: int) -> tuple[Float[Tensor, ""], dict[str, float]]:
        """The scalar to minimise at `step` (1-based) and the named terms to log."""
        raise NotImplementedError

    step_state_names: ClassVar[tuple[str, ...]] = ()  # attributes a step changes (the stop check's back-off)

    def step_state(self) -> dict[str, Any]:
        """What a training step changes in the method, so a step can be undone exactly (default: nothing)."""
        return {k: copy.copy(getattr(self, k)) for k in self.step_state_names}

    def restore_step_state(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, copy.copy(v))

    def finish(self) -> None:
        """Undo what the method attached to the model (gradient hooks); the loop calls it when training ends."""

    # -- what the planner asks (shapes only: no model is loaded) ----------------------------------------------
    @classmethod
    def trainable_count(cls, shape: Shape, settings: MethodSettings) -> int:
        """Parameters the optimiser updates (default: all of them)."""
        return shape.n_params

    @classmethod
    def setup_passes(cls, forget: int, retain: int, batch_size: int) -> int:
        """Forward + backward passes the method runs before its first step (KLUE's localisation; default none)."""
        return 0

    @classmethod
    def extra_state(cls, shape: Shape, settings: MethodSettings, trainable: int, nbytes: int, max_steps: int
                    ) -> list[tuple[str, int, str]]:
        """(item, bytes, how) rows of state the method keeps besides weights, optimiser and a reference copy."""
        return []

    # -- helpers shared by several methods -------------------------------------------------------------
    def answer_logits(self, batch: Batch, model: Model | None = None
                      ) -> tuple[Float[Tensor, "batch kept vocab"], Batch]:
        """The logits of `model` (default: the trained one) on `batch`, with the batch they pair with: from the first
        answer-predicting position on for a large vocabulary, else all of them and `batch` itself (the toy's
        numbers unchanged). Every loss reads its logits here (neuronscope.sparse_logits.answer_logits)."""
        return answer_logits((model or self.model).hf, batch)

    def retain_nll(self, sb: StepBatch) -> Float[Tensor, ""]:
        if sb.retain is None:
            raise NeuronscopeError(f"method {self.name} needs retain items, but the dataset has none")
        return answer_nll(*self.answer_logits(sb.retain))


def frozen_copy(model: Model) -> Model:
    """An independent, frozen copy of `model` in eval mode: the reference of DPO, NPO, RMU and ssiuu-anchor."""
    ref = model.clone()
    ref.hf.eval()
    for p in ref.hf.parameters():
        p.requires_grad_(False)
    return ref


def encode_items(model: Model, items: list[QAItem], answers: list[str] | None = None) -> Batch:
    answers = answers if answers is not None else [it.answer for it in items]
    return encode(model.tokenizer, [it.question for it in items], answers).to(model.device)


def tokenises_cleanly(model: Model, text: str) -> bool:
    """True when no word of `text` becomes the unknown token (word-level toy tokenizers lack most words)."""
    unk = model.tokenizer.unk_token_id
    ids = model.tokenizer(" " + text, add_special_tokens=False)["input_ids"]
    return bool(ids) and (unk is None or unk not in ids)


def seeded_generator(seed: int, salt: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + salt)


def coerce_setting(key: str, value: Any, *, text: bool = False) -> Any:
    """`value` as the type `key`'s declaring settings field has (`text`: parse it from a command-line string).

    The one place a method setting's type is known, so the CLI and the TOML config accept the same values."""
    import types
    import typing

    owners = setting_owners().get(key)
    if not owners:
        raise SettingError(key, f"is not a setting of any method (known: {', '.join(sorted(setting_owners()))})")
    hint = typing.get_type_hints(owners[0])[owners[0].keys[key]]
    allowed = set(typing.get_args(hint)) if isinstance(hint, types.UnionType) else {hint}
    if text:
        low = str(value).strip().lower()
        if low == "none" and type(None) in allowed:
            return None
        if bool in allowed:
            if low in ("true", "1", "yes"):
                return True
            if low in ("false", "0", "no"):
                return False
        for kind in (int, float):
            if kind in allowed:
                try:
                    return kind(str(value))
                except ValueError:
                    continue
        if str in allowed:
            return str(value)
    else:
        if bool in allowed and isinstance(value, bool):
            return value
        if not isinstance(value, bool):
            if int in allowed and isinstance(value, int):
                return value
            if float in allowed and isinstance(value, int | float):
                return float(value)
        if str in allowed and isinstance(value, str):
            return value
    names = " or ".join(sorted({"true or false" if t is bool else "an integer" if t is int else "a number"
                                if t is float else "a string" for t in allowed if t is not type(None)}))
    raise SettingError(key, f"must be {names}, got {value!r}")


def settings_help() -> dict[str, str]:
    """{public key: 'help (methods)'} over every registered method, for the CLI."""
    from neuronscope.unlearn.registry import all_methods

    out: dict[str, tuple[str, list[str]]] = {}
    for name, cls in all_methods().items():
        for key in cls.settings_cls.keys:
            text, users = out.setdefault(key, (cls.settings_cls.help.get(key, ""), []))
            users.append(name)
    return {k: f"{text} ({', '.join(users)})" for k, (text, users) in out.items()}
