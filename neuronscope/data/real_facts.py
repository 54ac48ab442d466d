"""Real knowledge as a FaithUn-shaped dataset: facts about countries, from packages that ship them.

`countryinfo` gives each country its capital, region, subregion, languages, currencies, demonym and land borders;
`pycountry` turns language and currency codes into names. One cluster per country. Per fact: a base question
(a completion prompt, "The capital of France is" -> "Paris"), two paraphrases, a multi-hop question through a
second fact of the same country ("The currency of the country whose capital is Paris is the" -> "Euro"), and,
where another country shares the answer, a same-answer question about that country. Every question has the gold
answer and two false options of the same type (chance 1/3).

FaithUn keeps only knowledge the model has: `keep_known` drops every fact whose base question the model gets
wrong, every derived question it gets wrong, and every cluster left without facts, and records each drop (in
meta["dropped"]). Utility questions (calendar order, number words, arithmetic, opposites: nothing about
countries) are filtered the same way; the benign corpus (repeat a word, next number) touches neither.
"""

from __future__ import annotations

import calendar
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from neuronscope.data.schema import InstructionItem, QADataset, QAItem
from neuronscope.data.world import BENIGN_WORDS, NUMBER_WORDS, OPPOSITES, cluster_cuts
from neuronscope.errors import NeuronscopeError

# attribute -> base prompt, paraphrase prompts, multi-hop prompt (through the capital), same-answer prompt
TEMPLATES: dict[str, dict[str, Any]] = {
    "capital": {"base": "The capital of {x} is",
                "paraphrase": ["The capital city of {x} is", "The seat of the government of {x} is the city of"],
                "multihop": "The capital of the country of the {demonym} people is",
                "same": None},
    "region": {"base": "{x} is a country in",
               "paraphrase": ["{x} is located in the continent of", "The continent where {x} lies is"],
               "multihop": "The country whose capital is {capital} is located in",
               "same": "The country of {y} lies in"},
    "subregion": {"base": "Geographically, {x} is part of",
                  "paraphrase": ["The region of the world that {x} belongs to is",
                                 "On a map, {x} is found in"],
                  "multihop": "Geographically, the country whose capital is {capital} is part of",
                  "same": "The region of the world that {y} belongs to is"},
    "language": {"base": "The official language of {x} is",
                 "paraphrase": ["In {x}, the official language is", "People in {x} officially speak"],
                 "multihop": "The official language of the country whose capital is {capital} is",
                 "same": "In {y}, the official language is"},
    "currency": {"base": "The currency of {x} is the",
                 "paraphrase": ["In {x}, people pay with the", "The money used in {x} is the"],
                 "multihop": "The currency of the country whose capital is {capital} is the",
                 "same": "In {y}, people pay with the"},
    "demonym": {"base": "A person from {x} is called",
                "paraphrase": ["Someone born in {x} is described as", "The people of {x} are called"],
                "multihop": "A person from the country whose capital is {capital} is called",
                "same": None},
    "border": {"base": "{x} shares a land border with",
               "paraphrase": ["A country that borders {x} is", "One of the neighbours of {x} is"],
               "multihop": "The country whose capital is {capital} shares a land border with",
               "same": None},
}
ATTRIBUTES: tuple[str, ...] = tuple(TEMPLATES)
NEVER_KNOWN = "never_known"  # meta key: base questions of the facts the model got wrong (the floor's material)


@dataclass(frozen=True)
class RealFactsConfig:
    countries: int = 60  # the most populous countries with every attribute (well-known ones first)
    attributes: tuple[str, ...] = ATTRIBUTES
    seed: int = 0
    forget: float = 0.1
    retain: float = 0.2
    test: float = 0.7

    def check(self) -> None:
        if self.countries < 4:
            raise NeuronscopeError(f"countries must be at least 4, got {self.countries}")
        unknown = sorted(set(self.attributes) - set(ATTRIBUTES))
        if unknown or not self.attributes:
            raise NeuronscopeError(f"attributes must be among {', '.join(ATTRIBUTES)}, got {unknown or 'none'}")
        for name in ("forget", "retain", "test"):
            if not 0 <= getattr(self, name) <= 1:
                raise NeuronscopeError(f"split fraction {name} must lie in [0, 1]")
        if self.forget + self.retain + self.test > 1 + 1e-9:
            raise NeuronscopeError("split fractions forget + retain + test must not exceed 1")


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise NeuronscopeError(f"the real-facts dataset needs the package {module}: "
                               "pip install 'neuronscope[smollm2]'") from None


def country_table() -> list[dict[str, Any]]:
    """Every country with all seven attributes as names, most populous first (ties by name)."""
    countryinfo, pycountry = _require("countryinfo"), _require("pycountry")
    raw = [c.info() for c in countryinfo.all_countries()]
    by_alpha3 = {r["ISO"]["alpha3"]: r["name"] for r in raw if r.get("ISO", {}).get("alpha3") and r.get("name")}
    rows: list[dict[str, Any]] = []
    for r in raw:
        langs = [getattr(pycountry.languages.get(alpha_2=c), "name", None) for c in r.get("languages") or []]
        currs = [getattr(pycountry.currencies.get(alpha_3=c), "name", None) for c in r.get("currencies") or []]
        borders = sorted(by_alpha3[b] for b in r.get("borders") or [] if b in by_alpha3)
        values = {"name": r.get("name"), "capital": r.get("capital"), "region": r.get("region"),
                  "subregion": r.get("subregion"), "language": langs[0] if langs else None,
                  "currency": currs[0] if currs else None, "demonym": r.get("demonym"),
                  "border": borders[0] if borders else None}
        if all(isinstance(v, str) and v.strip() for v in values.values()):
            values["borders"] = borders
            values["languages"] = [x for x in langs if x]
            values["population"] = int(r.get("population") or 0)
            rows.append(values)
    rows.sort(key=lambda v: (-v["population"], v["name"]))
    return rows


def _options(rng: random.Random, gold: str, pool: Sequence[str], exclude: Sequence[str] = ()) -> tuple[str, ...]:
    candidates = sorted({v for v in pool if v != gold and v not in exclude})
    if len(candidates) < 2:
        raise NeuronscopeError(f"fewer than 2 false options of the same type for {gold!r}")
    opts = [gold, *rng.sample(candidates, 2)]
    rng.shuffle(opts)
    return tuple(opts)


def candidate_facts(cfg: RealFactsConfig = RealFactsConfig()) -> QADataset:
    """Every question about the chosen countries, split by cluster, before any filtering (deterministic)."""
    cfg.check()
    rng = random.Random(cfg.seed)
    every = country_table()
    table = every[:cfg.countries]
    if len(table) < cfg.countries:
        raise NeuronscopeError(f"only {len(table)} countries have every attribute, asked for {cfg.countries}")
    # false options come from every country with complete data, not only the chosen ones
    pools = {a: [c[a] for c in every] for a in ATTRIBUTES}
    pools["border"] = [c["name"] for c in every]
    clusters: dict[str, list[QAItem]] = {}
    for i, c in enumerate(table):
        cid = f"c{i:03d}"
        exclude = {"border": c["borders"] + [c["name"]], "language": c["languages"]}
        items: list[QAItem] = []
        for attr in cfg.attributes:
            t, gold, fid = TEMPLATES[attr], c[attr], f"{cid}.{attr}"
            questions = [("base", t["base"].format(x=c["name"]), "base")]
            questions += [(f"para{j}", p.format(x=c["name"]), "paraphrase") for j, p in enumerate(t["paraphrase"])]
            questions.append(("hop", t["multihop"].format(capital=c["capital"], demonym=c["demonym"]), "multihop"))
            others = [o for o in table if o is not c and o[attr] == gold] if t["same"] else []
            if others:
                questions.append(("same", t["same"].format(y=rng.choice(others)["name"]), "same_answer"))
            for suffix, prompt, kind in questions:
                items.append(QAItem(f"{fid}.{suffix}", prompt, gold,
                                    _options(rng, gold, pools[attr], exclude.get(attr, ())), cid, kind, fid))
        clusters[cid] = items
    cuts = cluster_cuts(list(clusters), rng, cfg.forget, cfg.retain, cfg.test)
    splits = {s: [it for cid in sorted(ps) for it in clusters[cid]] for s, ps in cuts.items()}
    names = {f"c{i:03d}": c["name"] for i, c in enumerate(table)}
    meta = {"name": "neuronscope-real-facts", "format": "world", "source": _sources(), "config": _cfg_json(cfg),
            "clusters": {s: [names[c] for c in sorted(ps)] for s, ps in cuts.items()}, "chance": 1 / 3}
    return QADataset(splits=splits, utility=utility_items(rng), benign=benign_items(), meta=meta)


def utility_items(rng: random.Random) -> list[QAItem]:
    """General knowledge far from countries: calendar order, number order, sums, opposites (for US)."""
    days, months = list(calendar.day_name), list(calendar.month_name)[1:]
    out: list[QAItem] = []

    def u(fid: str, prompt: str, gold: str, pool: Sequence[str]) -> None:
        out.append(QAItem(f"u.{fid}", prompt, gold, _options(rng, gold, pool), "utility", "base", fid))

    for i, d in enumerate(days):
        u(f"day.{d}", f"The day after {d} is", days[(i + 1) % 7], days)
    for i, m in enumerate(months):
        u(f"month.{m}", f"The month after {m} is", months[(i + 1) % 12], months)
    for k in range(1, 10):
        u(f"next.{k}", f"Counting up, the number after {NUMBER_WORDS[k]} is", NUMBER_WORDS[k + 1], NUMBER_WORDS)
    for a in range(1, 5):
        for b in range(1, 5):
            u(f"add.{a}.{b}", f"{NUMBER_WORDS[a].capitalize()} plus {NUMBER_WORDS[b]} equals",
              NUMBER_WORDS[a + b], NUMBER_WORDS[:12])
    flat = [w for pair in OPPOSITES for w in pair]
    for a, b in OPPOSITES:
        u(f"opp.{a}", f"The opposite of {a} is", b, flat)
    return out


def benign_items() -> list[InstructionItem]:
    """Instruction-style items for the benign attack: nothing about countries, calendars or sums."""
    out = [InstructionItem(f"b.repeat.{w}", "Repeat the word:", w, w) for w in BENIGN_WORDS]
    out += [InstructionItem(f"b.first.{w}", "The first letter of the word", w[0], w) for w in BENIGN_WORDS]
    out += [InstructionItem(f"b.upper.{w}", "Write in capital letters:", w.upper(), w) for w in BENIGN_WORDS]
    return out


def keep_known(ds: QADataset, known: Callable[[list[QAItem]], list[bool]]) -> QADataset:
    """Keep only what the model knows (FaithUn's filter); every dropped fact, question and cluster is recorded.

    A fact stays if its base question is answered (`known`: True per item); a derived question (paraphrase,
    multi-hop, same-answer) of a kept fact stays if it is answered too; a cluster stays if a fact of it does.
    Utility questions stay if answered.
    """
    pool = [it for items in ds.splits.values() for it in items] + list(ds.utility)
    flags = known(pool)
    if len(flags) != len(pool):
        raise ValueError("known() must return one flag per item")
    ok = {it.id: bool(f) for it, f in zip(pool, flags, strict=True)}
    base_ok = {it.fact: ok[it.id] for items in ds.splits.values() for it in items if it.kind == "base"}
    dropped: dict[str, list[str]] = {"facts": [], "questions": [], "clusters": [], "utility": []}
    splits: dict[str, list[QAItem]] = {}
    for split, items in ds.splits.items():
        kept_items: list[QAItem] = []
        for it in items:
            if not base_ok.get(it.fact, False):
                if it.kind == "base":
                    dropped["facts"].append(it.fact)
            elif ok[it.id]:
                kept_items.append(it)
            else:
                dropped["questions"].append(it.id)
        clusters = dict.fromkeys(it.cluster for it in items)
        kept_clusters = {it.cluster for it in kept_items}
        dropped["clusters"] += [c for c in clusters if c not in kept_clusters]
        splits[split] = kept_items
    utility = [it for it in ds.utility if ok[it.id]]
    dropped["utility"] = [it.id for it in ds.utility if not ok[it.id]]
    counts = {s: {"clusters": len({it.cluster for it in v}), "items": len(v),
                  "facts": sum(it.kind == "base" for it in v)} for s, v in splits.items()}
    candidates = {"facts": len(base_ok), "questions": sum(len(v) for v in ds.splits.values()),
                  "utility": len(ds.utility)}
    # the base questions of dropped facts: what the model never knew, the relearning floor's material
    never = [it.to_json() for items in ds.splits.values() for it in items
             if it.kind == "base" and not base_ok.get(it.fact, False)]
    meta = ds.meta | {"filter": "multiple choice, gold option wins", "candidates": candidates,
                      "kept": counts | {"utility": len(utility)}, "dropped": dropped, NEVER_KNOWN: never}
    out = replace(ds, splits=splits, utility=utility, meta=meta)
    if not out.items("forget"):
        raise NeuronscopeError("the model knows none of the forget facts: nothing to unlearn")
    return out


def never_known_items(ds: QADataset) -> list[QAItem]:
    """The base questions of the facts the filter dropped (meta["never_known"]), as QA items."""
    return [QAItem.from_json(row, f"meta {NEVER_KNOWN} item {i}") for i, row in enumerate(ds.meta.get(NEVER_KNOWN, []))]


def never_known_dataset(ds: QADataset) -> QADataset | None:
    """The never-known facts as a forget split (with the data's benign corpus), or None if there are fewer than 2:
    what a relearning attack is measured on when no oracle can exist (the never-known floor)."""
    items = never_known_items(ds)
    if len(items) < 2:
        return None
    return QADataset(splits={"forget": items}, benign=list(ds.benign), meta={"name": "never-known", "chance": 1 / 3})


def build_real_facts(model: Any, cfg: RealFactsConfig = RealFactsConfig()) -> QADataset:
    """The candidate facts filtered to what `model` (a neuronscope Model) answers correctly."""
    from neuronscope.scoring import multiple_choice_correct

    ds = keep_known(candidate_facts(cfg), lambda items: multiple_choice_correct(model, items, batch_size=64)
                    .tolist())
    ds.meta["model"] = str(model.source)
    return ds


def synthetic_people(model: Any, world: Any) -> QADataset:
    """TOFU-style data for a pretrained model: the synthetic world's fictitious people (facts no model can know
    before fine-tuning) with real-knowledge utility questions the model answers (US), not the world's invented
    geography, which a pretrained model does not know and is never fine-tuned on."""
    from neuronscope.data.world import build_world
    from neuronscope.scoring import multiple_choice_correct

    ds = build_world(world)
    utility = utility_items(random.Random(world.seed))
    ok = multiple_choice_correct(model, utility, batch_size=64).tolist()
    kept = [it for it, k in zip(utility, ok, strict=True) if k]
    meta = ds.meta | {"utility": "real knowledge the base model answers (neuronscope.data.real_facts)",
                      "dropped": {"utility": [it.id for it, k in zip(utility, ok, strict=True) if not k]},
                      "model": str(model.source)}
    return replace(ds, utility=kept, meta=meta)


def _cfg_json(cfg: RealFactsConfig) -> dict[str, Any]:
    d = asdict(cfg)
    d["attributes"] = list(cfg.attributes)
    return d


def _sources() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for dist in ("countryinfo", "pycountry"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = "unknown"
    return out


__all__ = ["ATTRIBUTES", "NEVER_KNOWN", "RealFactsConfig", "benign_items", "build_real_facts", "candidate_facts",
           "country_table", "keep_known", "never_known_dataset", "never_known_items", "synthetic_people",
           "utility_items"]
