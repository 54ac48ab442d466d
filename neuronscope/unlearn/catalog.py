"""What `neuronscope methods` lists, without torch: each method's name, module, summary and settings.

The method classes (one module each, all of which import torch) read their name, summary, setting keys, defaults
and help from here, and the registry refuses a class that disagrees with its row, so the listing and the classes
cannot drift; the listing, an unknown `--method` and the method names of a config need no torch (6 s saved).
Each method's module is imported only when its class is asked for (`registry.all_methods`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from neuronscope.errors import NeuronscopeError

PAPER_REFUSAL = "i can not answer the question"


@dataclass(frozen=True)
class SettingInfo:
    """One public setting: the key users write (`--setting KEY=VALUE`, `[unlearn]` TOML), the settings class's
    field that holds it, its default and one line of help."""

    key: str
    field: str
    default: Any
    help: str


@dataclass(frozen=True)
class MethodInfo:
    """One method: its registered name, the module under `neuronscope.unlearn` that defines it, its summary, its
    settings and `cost`: its unlearning run's seconds (to the stop at chance, final evaluation included) relative
    to GD's, measured on the full demo's base and world at the full profile's `[unlearn]` settings (the seconds:
    docs/experiments.md). The grid on several processes takes the longest chains first by it
    (experiment.parallel.chain_order); nothing else reads it."""

    name: str
    module: str
    summary: str
    settings: tuple[SettingInfo, ...] = ()
    cost: float = 1.0

    def keys(self) -> dict[str, str]:
        """{public key: field}: the settings class's `keys`."""
        return {s.key: s.field for s in self.settings}

    def help(self) -> dict[str, str]:
        """{public key: help}: the settings class's `help`."""
        return {s.key: s.help for s in self.settings}

    def default(self, key: str) -> Any:
        """The default of the public key `key` (the settings class's field default)."""
        return next(s.default for s in self.settings if s.key == key)

    def listing(self) -> dict[str, Any]:
        """The row `neuronscope methods --json` prints."""
        return {"method": self.name, "summary": self.summary,
                "settings": {s.key: {"default": s.default, "help": s.help} for s in self.settings}}


_SSIUU = (SettingInfo("lambda_", "lambda_", None, "regulariser weight (the variant's default)"),
          SettingInfo("lambda_relative", "lambda_relative", False,
                      "weight = lambda_ / L_reg at its first active step"))

# the registry's order (the listing's, and the order a shared key's first declaring method is looked up in)
CATALOG: dict[str, MethodInfo] = {info.name: info for info in (
    MethodInfo("dpo", "dpo", "DPO with a refusal preferred over the true answer", (
        SettingInfo("beta", "beta", 0.1, "inverse temperature (0.1)"),
        SettingInfo("refusal", "refusal", PAPER_REFUSAL,
                    "the preferred answer (the eos token where a word is unknown)")), cost=3.4),
    MethodInfo("ga", "ga", "gradient ascent on the forget answers", cost=0.9),
    MethodInfo("gd", "gd", "gradient ascent on forget + NLL on retain", cost=1.0),
    MethodInfo("rmu", "rmu", "steer one block's output to a random vector on forget, hold it on retain", (
        SettingInfo("rmu_layer", "layer", None, "block whose output is steered (n_layers // 2)"),
        SettingInfo("rmu_c", "c", 20.0, "norm of the control vector (20)"),
        SettingInfo("rmu_alpha", "alpha", 100.0, "weight of the retain activation loss (100)"),
        SettingInfo("rmu_trainable", "trainable", 3, "blocks whose MLP is trained, ending at rmu_layer (3)")),
        cost=4.0),  # at the full demo's lr 1e-3 for RMU (~250 steps; at 1e-4 it does not stop within 500)
    MethodInfo("klue", "klue",
               "GD on the 10% of FFN neurons localised on the forget facts (retain-contrasted attribution)", (
                   SettingInfo("klue_fraction", "fraction", 0.1, "share of FFN neurons updated (0.1)"),
                   SettingInfo("klue_superficial", "superficial", 1.0,
                               "weight of the retain attribution in the score (1)")), cost=2.8),
    MethodInfo("npo", "npo", "negative preference optimisation against a frozen reference", (
        SettingInfo("beta", "beta", 0.1, "inverse temperature (0.1)"),), cost=1.0),
    MethodInfo("simnpo", "simnpo", "reference-free, length-normalised NPO", (
        SettingInfo("simnpo_beta", "beta", 0.5, "inverse temperature (0.5)"),
        SettingInfo("simnpo_gamma", "gamma", 0.0, "reward margin (0)")), cost=0.9),
    MethodInfo("ssiuu", "ssiuu", "GD + a regulariser on the parameters' negative attribution (vs the previous step)",
               _SSIUU, cost=1.4),
    MethodInfo("ssiuu-anchor", "ssiuu_anchor",
               "Ssiuu with the attribution held to the original model's on the same batch", (
                   *_SSIUU,
                   SettingInfo("anchor_fixed_batches", "fixed_batches", False,
                               "reuse the first pass's forget batches (A_0 cache hits)"),
                   SettingInfo("anchor_cache_gib", "cache_gib", 1.0,
                               "memory for the cached A_0 per forget batch, GiB")), cost=1.2),
    MethodInfo("ssiuu-neuron", "ssiuu_neuron", "Ssiuu on hook-point neurons (the main-text form)", _SSIUU, cost=1.2),
)}


def check_method(name: str) -> MethodInfo:
    """`name`'s row; an unknown name is the user's mistake (one line naming the known ones)."""
    if name not in CATALOG:
        raise NeuronscopeError(f"unknown method {name!r}; choose one of {', '.join(CATALOG)}")
    return CATALOG[name]
