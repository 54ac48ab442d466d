"""The embedded default: a synthetic knowledge world shaped like FaithUn.

Fictitious people (one cluster each) have four attributes. Every fact gets a base question (trained on and
unlearned), two paraphrases in held-out templates, a multi-hop question through a world fact (birthplace ->
country, ...) and a same-answer question (a world fact whose answer is the same value). Every question has two
false options of the same type, so multiple choice has chance 1/3. World facts that are not about people form
the utility set. Everything is lower-case, whitespace-separated words, so a word-level tokenizer covers it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from neuronscope.checks import Namer, at_least, flag_name, fraction
from neuronscope.data.schema import InstructionItem, QADataset, QAItem
from neuronscope.errors import NeuronscopeError

_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "st", "tr"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ei", "ou"]
_CODAS = ["", "", "n", "r", "l", "s", "x"]

OCCUPATIONS = ["baker", "pilot", "surgeon", "lawyer", "farmer", "painter", "chemist", "teacher", "sailor",
               "architect", "jeweler", "plumber", "poet", "banker", "dentist", "tailor", "geologist",
               "librarian", "carpenter", "astronomer"]
TOOLS = ["oven", "cockpit", "scalpel", "gavel", "tractor", "easel", "beaker", "chalkboard", "compass",
         "blueprint", "loupe", "wrench", "quill", "ledger", "drill", "needle", "hammer", "catalogue", "saw",
         "telescope"]
FIELDS = ["food", "transport", "medicine", "law", "agriculture", "art", "science", "education", "sea",
          "construction", "craft", "plumbing", "literature", "finance", "medicine", "clothing", "science",
          "education", "construction", "science"]
BENIGN_WORDS = ["apple", "river", "stone", "cloud", "green", "happy", "window", "music", "garden", "winter",
                "summer", "light", "table", "paper", "bread", "horse", "ocean", "forest", "silver", "yellow"]
OPPOSITES = [("hot", "cold"), ("big", "small"), ("up", "down"), ("fast", "slow"), ("old", "new"),
             ("day", "night"), ("open", "closed"), ("early", "late"), ("full", "empty"), ("left", "right")]
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen"]

# (attribute, base template, paraphrase templates, multi-hop template, same-answer template)
ATTRIBUTES: dict[str, dict[str, object]] = {
    "birthplace": {
        "base": "where was {name} born ?",
        "paraphrase": ["what is the birthplace of {name} ?", "in which city was {name} born ?"],
        "multihop": "in which country was {name} born ?",
    },
    "occupation": {
        "base": "what is the job of {name} ?",
        "paraphrase": ["what does {name} do for a living ?", "which profession does {name} have ?"],
        "multihop": "in which field does {name} work ?",
    },
    "employer": {
        "base": "which company employs {name} ?",
        "paraphrase": ["who is the employer of {name} ?", "for which company does {name} work ?"],
        "multihop": "in which country is the employer of {name} based ?",
    },
    "education": {
        "base": "where did {name} study ?",
        "paraphrase": ["which university did {name} attend ?", "where was {name} educated ?"],
        "multihop": "in which country did {name} study ?",
    },
}


@dataclass(frozen=True)
class WorldConfig:
    people: int = 200
    seed: int = 0
    forget: float = 0.05
    retain: float = 0.10
    test: float = 0.70
    cities: int = 40
    countries: int = 10
    companies: int = 30
    universities: int = 20
    arithmetic: int = 10  # addition facts a + b with a, b < arithmetic

    def check(self, name: Namer = flag_name) -> None:
        """Every value, named as the user gave it (`--people`, or `data.world.people` in a config)."""
        if self.people < 4:
            raise NeuronscopeError(f"{name('people')} must be at least 4, got {self.people}")
        for f in ("forget", "retain", "test"):
            fraction(getattr(self, f), name(f))
        if self.forget + self.retain + self.test > 1 + 1e-9:
            raise NeuronscopeError(f"split fractions {name('forget')} + {name('retain')} + {name('test')} must not "
                                   "exceed 1")
        for f in ("cities", "companies", "universities", "countries"):
            at_least(getattr(self, f), 3, f"{name(f)} (3-option multiple choice needs 3 values per pool)")
        at_least(self.arithmetic, 1, name("arithmetic"))


class _Words:
    """Unique pronounceable pseudo-words, drawn from one seeded stream."""

    def __init__(self, rng: random.Random, reserved: set[str]):
        self.rng = rng
        self.used = set(reserved)

    def take(self, n: int, syllables: tuple[int, int] = (2, 3)) -> list[str]:
        out: list[str] = []
        while len(out) < n:
            k = self.rng.randint(*syllables)
            w = "".join(self.rng.choice(_ONSETS) + self.rng.choice(_VOWELS) for _ in range(k))
            w += self.rng.choice(_CODAS)
            if w not in self.used:
                self.used.add(w)
                out.append(w)
        return out


def _options(rng: random.Random, gold: str, pool: list[str]) -> tuple[str, ...]:
    distractors = rng.sample([v for v in dict.fromkeys(pool) if v != gold], 2)
    opts = [gold, *distractors]
    rng.shuffle(opts)
    return tuple(opts)


def cluster_cuts(ids: list[str], rng: random.Random, forget: float, retain: float, test: float
                 ) -> dict[str, list[str]]:
    """Clusters shuffled by `rng` (in place) and cut into forget, retain, test and "other" by fraction: a split never
    cuts through a cluster. A positive fraction gets at least one cluster; test takes what is left, up to its
    share."""
    rng.shuffle(ids)
    n = len(ids)
    n_forget = max(1, round(forget * n)) if forget > 0 else 0
    n_retain = max(1, round(retain * n)) if retain > 0 else 0
    n_test = min(n - n_forget - n_retain, round(test * n))
    return {"forget": ids[:n_forget], "retain": ids[n_forget:n_forget + n_retain],
            "test": ids[n_forget + n_retain:n_forget + n_retain + n_test], "other": ids[n_forget + n_retain + n_test:]}


def build_world(cfg: WorldConfig = WorldConfig()) -> QADataset:
    """Build the world deterministically from `cfg.seed`."""
    cfg.check()
    rng = random.Random(cfg.seed)
    reserved = set(OCCUPATIONS + TOOLS + FIELDS + BENIGN_WORDS + NUMBER_WORDS)
    reserved |= {w for pair in OPPOSITES for w in pair}
    words = _Words(rng, reserved)
    countries = words.take(cfg.countries)
    cities = words.take(cfg.cities)
    companies = words.take(cfg.companies)
    universities = words.take(cfg.universities)
    landmarks = words.take(cfg.cities)
    products = words.take(cfg.companies)
    mascots = words.take(cfg.universities)
    n_first = n_last = max(8, int((cfg.people * 2) ** 0.5) + 4)
    firsts, lasts = words.take(n_first, (1, 2)), words.take(n_last, (2, 2))

    city_country = {c: rng.choice(countries) for c in cities}
    company_country = {c: rng.choice(countries) for c in companies}
    univ_country = {u: rng.choice(countries) for u in universities}
    occ_field = dict(zip(OCCUPATIONS, FIELDS, strict=True))
    landmark_city = dict(zip(landmarks, cities, strict=True))
    product_company = dict(zip(products, companies, strict=True))
    mascot_univ = dict(zip(mascots, universities, strict=True))
    tool_occ = dict(zip(TOOLS, OCCUPATIONS, strict=True))

    # --- world facts: the utility set (not about people) -----------------------------------------------
    utility: list[QAItem] = []

    def world_fact(fid: str, question: str, answer: str, pool: list[str]) -> None:
        utility.append(QAItem(f"u.{fid}", question, answer, _options(rng, answer, pool), "world", "base", fid))

    for c in cities:
        world_fact(f"city.{c}", f"in which country is the city of {c} ?", city_country[c], countries)
    for c in companies:
        world_fact(f"company.{c}", f"in which country is {c} based ?", company_country[c], countries)
    for u in universities:
        world_fact(f"univ.{u}", f"in which country is {u} university ?", univ_country[u], countries)
    for o in OCCUPATIONS:
        world_fact(f"occ.{o}", f"in which field does a {o} work ?", occ_field[o], list(dict.fromkeys(FIELDS)))
    same_answer_q = {
        "birthplace": ({v: k for k, v in landmark_city.items()}, "which city is home to the {x} tower ?"),
        "employer": ({v: k for k, v in product_company.items()}, "which company makes the {x} ?"),
        "education": ({v: k for k, v in mascot_univ.items()}, "which university has the {x} mascot ?"),
        "occupation": ({v: k for k, v in tool_occ.items()}, "who uses a {x} at work ?"),
    }
    pools = {"birthplace": cities, "occupation": OCCUPATIONS, "employer": companies, "education": universities}
    for attr, (inverse, template) in same_answer_q.items():
        for value in pools[attr]:
            world_fact(f"{attr}-of.{inverse[value]}", template.format(x=inverse[value]), value, pools[attr])
    for a in range(min(cfg.arithmetic, 10)):
        for b in range(min(cfg.arithmetic, 10)):
            if a + b < len(NUMBER_WORDS):
                world_fact(f"add.{a}.{b}", f"what is {NUMBER_WORDS[a]} plus {NUMBER_WORDS[b]} ?",
                           NUMBER_WORDS[a + b], NUMBER_WORDS)

    # --- people ---------------------------------------------------------------------------------------------
    all_names = [f"{f} {last}" for f in firsts for last in lasts]
    names = rng.sample(all_names, cfg.people)
    hop = {"birthplace": (city_country, countries), "employer": (company_country, countries),
           "education": (univ_country, countries), "occupation": (occ_field, list(dict.fromkeys(FIELDS)))}
    people_items: dict[str, list[QAItem]] = {}
    for i, name in enumerate(names):
        pid = f"p{i:04d}"
        values = {"birthplace": rng.choice(cities), "occupation": rng.choice(OCCUPATIONS),
                  "employer": rng.choice(companies), "education": rng.choice(universities)}
        items: list[QAItem] = []
        for attr, spec in ATTRIBUTES.items():
            v, fid = values[attr], f"{pid}.{attr}"
            items.append(QAItem(f"{fid}.base", str(spec["base"]).format(name=name), v,
                                _options(rng, v, pools[attr]), pid, "base", fid))
            for j, t in enumerate(spec["paraphrase"]):  # type: ignore[union-attr]
                items.append(QAItem(f"{fid}.para{j}", t.format(name=name), v,
                                    _options(rng, v, pools[attr]), pid, "paraphrase", fid))
            mapping, hop_pool = hop[attr]
            items.append(QAItem(f"{fid}.hop", str(spec["multihop"]).format(name=name), mapping[v],
                                _options(rng, mapping[v], hop_pool), pid, "multihop", fid))
            inverse, template = same_answer_q[attr]
            items.append(QAItem(f"{fid}.same", template.format(x=inverse[v]), v,
                                _options(rng, v, pools[attr]), pid, "same_answer", fid))
        people_items[pid] = items

    # --- cluster-level split --------------------------------------------------------------------------------
    cuts = cluster_cuts(list(people_items), rng, cfg.forget, cfg.retain, cfg.test)
    splits = {s: [it for pid in sorted(ps) for it in people_items[pid]] for s, ps in cuts.items()}

    # --- benign instruction corpus --------------------------------------------------------------------------
    benign: list[InstructionItem] = []
    for w in BENIGN_WORDS:
        benign.append(InstructionItem(f"b.repeat.{w}", "repeat the word", w, w))
        benign.append(InstructionItem(f"b.first.{w}", "what is the first letter of", w[0], w))
    for a, b in OPPOSITES:
        benign.append(InstructionItem(f"b.opp.{a}", "what is the opposite of", b, a))
        benign.append(InstructionItem(f"b.opp.{b}", "what is the opposite of", a, b))
    for k in range(len(NUMBER_WORDS) - 1):
        benign.append(InstructionItem(f"b.next.{k}", "which number comes after", NUMBER_WORDS[k + 1],
                                      NUMBER_WORDS[k]))

    meta = {"name": "neuronscope-world", "seed": cfg.seed, "people": cfg.people,
            "fractions": {"forget": cfg.forget, "retain": cfg.retain, "test": cfg.test},
            "clusters": {s: len(ps) for s, ps in cuts.items()},
            "items": {s: len(v) for s, v in splits.items()} | {"utility": len(utility), "benign": len(benign)},
            "chance": 1 / 3}
    return QADataset(splits=splits, utility=utility, benign=benign, meta=meta)
