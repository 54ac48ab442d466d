"""Ground-truth models whose answer is known, and every analysis measured on them.

Built from the synthetic world (the CLI writes the result; while they are analysed the ground-truth models wait
in a temporary directory, one in memory at a time), either with toy models trained
from scratch or, given a pretrained checkpoint (`CalibrationConfig.ckpt`), with fine-tunes of that checkpoint on the
world's fictitious people (the TOFU-style protocol: "training" below is then fine-tuning the checkpoint):

- **floor**: a model trained without the forget facts (its own seed). Every calibrated analysis compares with it.
- **exact erasure** (truth: erase): the oracle A, trained without the forget facts (seed s), is continued on the
  full world until it knows them: that is the *calibration base*. A itself is then the exact erasure of that base,
  on the same parameter lineage, so neuron-level comparisons between them mean something.
- **planted hiding** (truth: hide): from the calibration base, gradient ascent on the forget answers to the stop
  threshold while training only one late tensor (the last layer's MLP down projection; a second variant: the last
  layer's attention output projection). Everything else is bit-identical to the base, so the facts are still in
  the earlier layers by construction. The objective is the answers' NLL (`objective="answer"`) or, where that
  cannot reach the threshold from one late site (SmolLM2's real facts: docs/verdict.md), the gold option's share
  among the item's options (`objective="options"`, `option_suppression`): the site is what makes the truth
  "hide", not the loss that trains it.
- **no change** (truth: not unlearned): the calibration base fine-tuned a few steps on the benign corpus only.

Each construction is checked (which tensors differ, the forget accuracy, the oracle below the base on the forget
facts) and the checks are part of the result.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import torch
from jaxtyping import Float
from torch import Tensor

from neuronscope.attacks import AttackConfig
from neuronscope.base_model import BaseTrainConfig, finetune_items, train_base
from neuronscope.data.schema import QADataset, QAItem
from neuronscope.data.world import WorldConfig, build_world
from neuronscope.errors import NeuronscopeError
from neuronscope.models.handle import Model, load_model
from neuronscope.models.toy import ToyConfig
from neuronscope.scoring import KINDS, answer_logprobs, evaluate, multiple_choice_accuracy
from neuronscope.sparse_logits import answer_logits
from neuronscope.training import fit
from neuronscope.unlearn.base import StepBatch, UnlearnConfig, encode_items
from neuronscope.unlearn.ga import GA
from neuronscope.unlearn.loop import unlearn
from neuronscope.verdict.assemble import model_verdict
from neuronscope.verdict.checkpoint import attack_records, lens_record
from neuronscope.verdict.trust import HEADLINE

TRUTHS = ("erase", "hide", "not unlearned")
VISIBLE = "forget answers (FS)"
Log = Callable[[str], None]


@dataclass(frozen=True)
class CalibrationConfig:
    """Sizes of the ground-truth constructions. The world keeps a large forget split so that intervals are narrow
    enough to say "absent" when it is true (a 10-person forget set cannot rule much out)."""

    world: WorldConfig = WorldConfig(people=200, seed=0, forget=0.25, retain=0.10, test=0.50)
    base: BaseTrainConfig = BaseTrainConfig(toy=ToyConfig(d_model=192, n_layers=4, n_heads=4, d_mlp=512),
                                            lr=5e-4, batch_size=32, max_epochs=150, target=0.95, check_every=2)
    floor_seed: int = 1  # the floor's training seed (the oracle A uses base.seed)
    planted_lr: float = 1e-3
    planted_max_steps: int = 500
    no_change_steps: int = 30
    no_change_lr: float = 1e-3
    attack: AttackConfig = AttackConfig(kind="harmful", p=0.1, lr=1e-3, steps=30, eval_every=5, batch_size=16)
    benign_attack: bool = True
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    attribution: bool = True
    patching: bool = True
    # A pretrained checkpoint directory: the oracle and the floor are then fine-tunes of it without the forget
    # facts (base.lr / batch_size / max_epochs / target / check_every; base.toy is unused), the world's utility
    # questions are real knowledge it answers, and nothing is fine-tuned on them.
    ckpt: str | None = None
    eval_kinds: tuple[str, ...] = KINDS  # the question kinds each model is scored on (the verdict reads base only)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def small_config() -> CalibrationConfig:
    """A CI-sized calibration (about a minute on 2 cores)."""
    return CalibrationConfig(
        world=WorldConfig(people=100, seed=0, forget=0.4, retain=0.2, test=0.4, cities=8, countries=4, companies=8,
                          universities=8, arithmetic=3),
        base=BaseTrainConfig(toy=ToyConfig(d_model=64, n_layers=3, n_heads=4, d_mlp=128), lr=3e-3, batch_size=32,
                             max_epochs=150, target=0.95, check_every=5),
        attack=AttackConfig(kind="harmful", p=0.1, lr=1e-3, steps=15, eval_every=5, batch_size=16),
        planted_lr=1e-2, seeds=(0, 1, 2), patching=False)


def pretrained_config(ckpt: str) -> CalibrationConfig:
    """Ground truths on a pretrained checkpoint (SmolLM2-135M: about half an hour on one core).

    Every rate is the fine-tune's own (1e-4: the rate at which the model learned the facts), chosen before any
    calibration ran; planted hiding uses the toy's 1e-3 (one tensor); 40 people with 30% of them in the forget
    split (48 base questions) keep the intervals usable at this cost."""
    return CalibrationConfig(
        world=WorldConfig(people=40, seed=0, forget=0.3, retain=0.2, test=0.5),
        base=BaseTrainConfig(lr=1e-4, batch_size=16, max_epochs=15, target=0.95, check_every=1),
        ckpt=ckpt, planted_lr=1e-3, planted_max_steps=300, no_change_lr=1e-4, no_change_steps=30,
        attack=AttackConfig(kind="harmful", p=0.25, lr=1e-4, steps=15, eval_every=5, batch_size=8),
        seeds=(0, 1, 2), patching=False, eval_kinds=("base",))


@dataclass
class GroundTruth:
    name: str
    truth: str
    model: Model
    construction: dict[str, Any]


@dataclass
class CalibrationResult:
    config: dict[str, Any]
    checks: dict[str, Any]
    results: dict[str, Any]  # the grid-shaped record every analysis read (evals, attacks, analyses)
    truths: dict[str, str]
    verdicts: dict[str, dict[str, Any]]
    seconds: dict[str, float] = field(default_factory=dict)

    def confusion(self) -> list[dict[str, Any]]:
        """One row per ground-truth model: its truth, what each analysis says, and the headline verdict."""
        rows = []
        for name, truth in self.truths.items():
            v = self.verdicts[name]
            row: dict[str, Any] = {"model": name, "truth": truth, "verdict": v["label"]}
            for e in v["evidence"]:
                row[e["analysis"]] = e["says"]
            rows.append(row)
        return rows

    def analysis_accuracy(self) -> dict[str, dict[str, Any]]:
        """Per analysis: on how many ground-truth models it said the right thing (present for hide and not
        unlearned, absent for erase), and where it was wrong or could not tell."""
        want = {"erase": "absent", "hide": "present", "not unlearned": "present"}
        # the forget answers themselves are the one reading that must NOT see hidden knowledge
        want_visible = {"erase": "absent", "hide": "absent", "not unlearned": "present"}
        out: dict[str, dict[str, Any]] = {}
        for name, truth in self.truths.items():
            for e in self.verdicts[name]["evidence"]:
                right = (want_visible if e["analysis"] == VISIBLE else want)[truth]
                a = out.setdefault(e["analysis"], {"right": 0, "wrong": [], "unsure": [], "calibrated":
                                                   e["calibrated"]})
                if e["says"] == right:
                    a["right"] += 1
                elif e["says"] in ("present", "absent"):
                    a["wrong"].append(name)
                else:
                    a["unsure"].append(name)
        out[HEADLINE] = {"right": sum(self.verdicts[n]["label"] == t for n, t in self.truths.items()),
                         "wrong": [n for n, t in self.truths.items()
                                   if self.verdicts[n]["label"] not in (t, "undetermined")],
                         "unsure": [n for n in self.truths if self.verdicts[n]["label"] == "undetermined"],
                         "calibrated": True}
        return out

    def to_json(self) -> dict[str, Any]:
        return {"config": self.config, "checks": self.checks, "truths": self.truths, "verdicts": self.verdicts,
                "confusion": self.confusion(), "analysis_accuracy": self.analysis_accuracy(),
                "seconds": self.seconds, "results": self.results}


OBJECTIVES = ("answer", "options")


def option_suppression(model: Model, items: list[QAItem]) -> Float[Tensor, ""]:
    """Mean over `items` of -log(1 - p_gold), p_gold the softmax over the item's option log-likelihoods (summed over
    tokens, as multiple-choice accuracy scores them) at the gold option. Minimising it moves gold below the other
    options, which is what the forget accuracy reads; it is bounded below by 0 (the answers' NLL is not: on
    SmolLM2's real facts it rose from 2.6 to 73.6 in 30 steps of one late tensor while the accuracy only fell to
    0.60, every option of a question pushed down together)."""
    for it in items:
        if len(it.options) < 2 or it.answer not in it.options:
            raise NeuronscopeError(f"item {it.id!r}: the options objective needs >= 2 options, gold among them")
    rows = [it for it in items for _ in it.options]
    batch = encode_items(model, rows, [o for it in items for o in it.options])
    logp = answer_logprobs(*answer_logits(model.hf, batch))
    terms, start = [], 0
    for it in items:
        p_gold = torch.softmax(logp[start:start + len(it.options)], 0)[it.options.index(it.answer)]
        terms.append(-torch.log1p(-p_gold.clamp(max=1 - 1e-6)))  # p_gold = 1 exactly would give +inf
        start += len(it.options)
    return torch.stack(terms).mean()


def _planted(params: tuple[str, ...], objective: str = "answer") -> type[GA]:
    """Gradient ascent restricted to the named parameters (not registered: a calibration device only), on the
    answers' NLL or, with objective "options", descent on `option_suppression`."""
    if objective not in OBJECTIVES:
        raise NeuronscopeError(f"planted hiding: objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")

    class PlantedGA(GA):
        name: ClassVar[str] = "planted-ga"
        trainable: ClassVar[tuple[str, ...]] = params

        def parameters(self) -> list[torch.nn.Parameter]:
            named = dict(self.model.hf.named_parameters())
            missing = [p for p in self.trainable if p not in named]
            if missing:
                raise NeuronscopeError(f"planted hiding: the model has no parameter {missing[0]}")
            return [named[p] for p in self.trainable]

        def loss(self, sb: StepBatch, step: int) -> tuple[Float[Tensor, ""], dict[str, float]]:
            if objective == "answer":
                return super().loss(sb, step)
            value = option_suppression(self.model, sb.forget_items)
            return value, {"loss": value.item()}

    return PlantedGA


def changed_tensors(a: Model, b: Model) -> list[str]:
    """Names of the parameters that differ (bit for bit) between two models of one architecture."""
    sa, sb = a.hf.state_dict(), b.hf.state_dict()
    return sorted(k for k in sa if not torch.equal(sa[k], sb[k]))


def _last_layer_params(model: Model) -> dict[str, tuple[str, ...]]:
    """The planted-hiding sites: the last layer's MLP down projection; the last layer's attention (q, k, v, o)."""
    n = model.hf.config.num_hidden_layers
    names = dict(model.hf.named_parameters())
    mlp = (f"model.layers.{n - 1}.mlp.down_proj.weight",)
    attn = tuple(f"model.layers.{n - 1}.self_attn.{p}_proj.weight" for p in "qkvo")
    if any(p not in names for p in mlp + attn):
        raise NeuronscopeError("planted hiding needs a Llama-style model (model.layers.N.mlp.down_proj)")
    return {"last MLP down": mlp, "last attention": attn}


def planted_hiding(base: Model, ds: QADataset, lr: float, max_steps: int, seed: int, log: Log,
                   seconds: dict[str, float], failed: dict[str, Any] | None = None, objective: str = "answer"
                   ) -> list[GroundTruth]:
    """Truth "hide": per site of `_last_layer_params`, training only that site's tensors to the stop threshold
    (everything else bit-identical to `base`) on `objective` (`_planted`). A site that does not reach the
    threshold is an error, or, given `failed`, recorded there ({label: what happened}) and left out."""
    truths = []
    for label, params in _last_layer_params(base).items():
        t = time.perf_counter()
        param = ", ".join(params)
        how = _how(param, objective)
        log(f"planting hiding: {how}")
        planted = base.clone()
        result = unlearn(planted, ds, _planted(params, objective),
                         UnlearnConfig(lr=lr, max_steps=max_steps, seed=seed, check_every=5, rs_every=0,
                                       eval_kinds=("base",)))
        seconds[f"planted {label}"] = time.perf_counter() - t
        if not result.reached and failed is not None:
            log(f"planted hiding in {param} did not reach the stop threshold in {max_steps} steps: left out")
            failed[f"planted hiding ({label})"] = {"how": how, "lr": lr,
                                                   "steps": result.steps, "reached": False, "forget_fs": result.fs}
            continue
        if not result.reached:
            raise NeuronscopeError(f"calibration: planted hiding in {param} did not reach the stop threshold in "
                                   f"{max_steps} steps (FS {result.fs:.3f})")
        truths.append(GroundTruth(f"planted hiding ({label})", "hide", planted,
                                  {"how": how, "steps": result.steps, "lr": lr}))
    return truths


def _how(param: str, objective: str) -> str:
    """A construction's description; the answer objective keeps the words earlier calibrations recorded."""
    if objective == "answer":
        return f"gradient ascent on {param} only"
    return f"descent on the gold option's share among the options (option_suppression), training {param} only"


def no_change(base: Model, ds: QADataset, lr: float, steps: int, seed: int, log: Log,
              seconds: dict[str, float]) -> GroundTruth:
    """Truth "not unlearned": `base` fine-tuned `steps` AdamW steps on the benign corpus only."""
    t = time.perf_counter()
    log("no change: a benign fine-tune of the calibration base")
    unchanged = base.clone()
    benign = list(ds.benign)
    if not benign:
        raise NeuronscopeError("calibration needs the world's benign corpus")
    fit(unchanged, [b.prompt for b in benign], [b.output for b in benign], lr=lr, batch_size=16,
        max_epochs=steps, max_steps=steps, seed=seed)
    unchanged.hf.eval()
    seconds["no change"] = time.perf_counter() - t
    return GroundTruth("no change", "not unlearned", unchanged,
                       {"how": f"{steps} AdamW steps on the benign corpus only"})


def construction_checks(base: Model, truths: list[GroundTruth], forget: list[QAItem]) -> dict[str, Any]:
    """Per ground truth: which tensors differ from `base`, its forget accuracy and how it was built."""
    checks: dict[str, Any] = {}
    for gt in truths:
        changed = changed_tensors(base, gt.model)
        checks[gt.name] = {"changed_tensors": len(changed), "of": len(base.hf.state_dict()),
                           "changed": changed if len(changed) <= 4 else changed[:4] + ["..."],
                           "forget_accuracy": multiple_choice_accuracy(gt.model, forget), **gt.construction}
    return checks


def _training_items(ds: QADataset, cfg: CalibrationConfig, exclude: tuple[str, ...]) -> list:
    """What the models are trained on: every base question outside `exclude`; a fine-tune of a pretrained model
    leaves the utility questions out (real knowledge it already has, the measure of what unlearning spares)."""
    return finetune_items(ds, exclude) if cfg.ckpt is not None else ds.training_items(exclude)


def _without_forget(ds: QADataset, cfg: CalibrationConfig, seed: int) -> tuple[Model, bool]:
    """A model that never saw the forget facts, trained with `seed`, and whether it learned the retain facts."""
    if cfg.ckpt is None:
        trained = train_base(ds, BaseTrainConfig(**{**asdict(cfg.base), "toy": cfg.base.toy, "seed": seed,
                                                     "exclude_splits": ("forget",)}))
        return trained.model, trained.reached_target
    from neuronscope.models.handle import load_model

    model = load_model(cfg.ckpt)
    items, retain = _training_items(ds, cfg, ("forget",)), ds.items("retain")

    def knows(epoch: int) -> bool:
        return not epoch % cfg.base.check_every and multiple_choice_accuracy(model, retain) >= cfg.base.target

    fitted = fit(model, [it.question for it in items], [it.answer for it in items], lr=cfg.base.lr,
                 batch_size=cfg.base.batch_size, max_epochs=cfg.base.max_epochs, seed=seed, on_epoch=knows)
    return model, fitted.stopped_early


def build_ground_truths(ds: QADataset, cfg: CalibrationConfig, log: Log = lambda s: None
                        ) -> tuple[Model, Model, list[GroundTruth], dict[str, Any], dict[str, float]]:
    """(calibration base, floor, ground-truth models, construction checks, seconds per stage)."""
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    log("training the oracle (without the forget facts)")
    oracle, oracle_ok = _without_forget(ds, cfg, cfg.base.seed)
    log("training the floor (without the forget facts, another seed)")
    floor, floor_ok = _without_forget(ds, cfg, cfg.floor_seed)
    if not (oracle_ok and floor_ok):
        raise NeuronscopeError("calibration: the oracle or the floor did not learn the retain facts; raise "
                               "base.max_epochs or base.lr")
    seconds["oracle and floor"] = time.perf_counter() - t

    t = time.perf_counter()
    log("continuing the oracle on the full world: the calibration base")
    base = oracle.clone()
    items = _training_items(ds, cfg, ())
    forget, retain = ds.items("forget"), ds.items("retain")

    def knows(epoch: int) -> bool:
        if epoch % cfg.base.check_every:
            return False
        return (multiple_choice_accuracy(base, forget) >= cfg.base.target
                and multiple_choice_accuracy(base, retain) >= cfg.base.target)

    fitted = fit(base, [it.question for it in items], [it.answer for it in items], lr=cfg.base.lr,
                 batch_size=cfg.base.batch_size, max_epochs=cfg.base.max_epochs, seed=cfg.base.seed + 100,
                 on_epoch=knows)
    if not fitted.stopped_early:
        raise NeuronscopeError("calibration: the calibration base did not learn the forget facts")
    seconds["calibration base"] = time.perf_counter() - t

    truths = [GroundTruth("exact erasure", "erase", oracle,
                          {"how": "the oracle the calibration base was continued from"})]
    truths += planted_hiding(base, ds, cfg.planted_lr, cfg.planted_max_steps, cfg.base.seed, log, seconds)
    truths.append(no_change(base, ds, cfg.no_change_lr, cfg.no_change_steps, cfg.base.seed, log, seconds))

    checks = construction_checks(base, truths, forget)
    checks["calibration base"] = {"forget_accuracy": multiple_choice_accuracy(base, forget),
                                  "retain_accuracy": multiple_choice_accuracy(base, retain),
                                  "epochs_continued": fitted.epochs}
    checks["floor"] = {"forget_accuracy": multiple_choice_accuracy(floor, forget)}
    return base, floor, truths, checks, seconds


def attack_set(attack: AttackConfig, benign_attack: bool) -> list[AttackConfig]:
    """The calibration's attacks: `attack` and, if asked, a benign one with the same rate, steps and batch."""
    benign = AttackConfig(kind="benign", lr=attack.lr, steps=attack.steps, eval_every=attack.eval_every,
                          batch_size=attack.batch_size)
    return [attack] + ([benign] if benign_attack else [])


def attribution_pair(base: Model, model: Model, ds: QADataset, patching: bool,
                     base_scores: dict[str, Any] | None = None) -> dict[str, Any]:
    """The paper's attribution comparison of `model` with `base` on the forget items (both targets, optional
    patching), as the grid's pair summary. `base_scores` ({target: scores}, from `base_attribution`) spares
    recomputing the base's side for every model."""
    from neuronscope.attribution.influence import TOP_M, influence_from_scores, influence_summary
    from neuronscope.attribution.neurons import attribution_scores

    items = ds.items("forget")
    out: dict[str, Any] = {"n_items": len(items)}
    base_scores = base_scores if base_scores is not None else base_attribution(base, ds)
    for target in ("p", "logp"):
        b = base_scores[target]
        m = attribution_scores(model, items, keep_examples=False, target=target)
        influence = influence_from_scores(b, m)
        out["influence" if target == "p" else "influence_logp"] = influence_summary(influence, TOP_M) | {
            "target": target}
        if target == "p" and patching:
            from neuronscope.attribution.patching import patching_curves

            pr = patching_curves(base, model, items, influence, ms=[TOP_M], seed=0)
            out["patching"] = pr.summary(TOP_M)
    return out


def base_attribution(base: Model, ds: QADataset) -> dict[str, Any]:
    """The base's attribution scores on the forget items for both targets (what `attribution_pair` compares with)."""
    from neuronscope.attribution.neurons import attribution_scores

    return {target: attribution_scores(base, ds.items("forget"), keep_examples=False, target=target)
            for target in ("p", "logp")}


def eval_record(model: Model, ds: QADataset, kinds: tuple[str, ...]) -> dict[str, Any]:
    """What the verdict reads of a model's scores (the grid's evals entry): FS, RS, US and the item counts."""
    report = evaluate(model, ds, kinds=kinds)
    return {"fs": report.fs, "rs": report.rs, "us": report.us, "counts": report.counts}


def _dataset(cfg: CalibrationConfig) -> QADataset:
    if cfg.ckpt is None:
        return build_world(cfg.world)
    from neuronscope.data.real_facts import synthetic_people
    from neuronscope.models.handle import load_model

    return synthetic_people(load_model(cfg.ckpt), cfg.world)


def one_at_a_time(named: list[tuple[str, Model]], directory: str) -> Iterator[tuple[str, Model]]:
    """Each (name, model) of `named`, loaded back from `directory` as it is reached; `named` is emptied as the
    models are saved, so only the one being analysed (and what the caller keeps) stays in memory. On SmolLM2-135M
    each is 0.5 GB and a calibration has five, beside an attack's optimiser. float32 safetensors round-trip
    exactly, so every number is the in-memory model's."""
    saved = []
    while named:
        name, model = named.pop(0)
        saved.append((name, model.save(f"{directory}/{len(saved)}"), model.device,
                      next(model.hf.parameters()).dtype))
        del model
    for name, path, device, dtype in saved:
        yield name, load_model(path, device=device, dtype=dtype)


def calibrate(cfg: CalibrationConfig = CalibrationConfig(), log: Log = lambda s: None,
              ds: QADataset | None = None) -> CalibrationResult:
    """Build the ground-truth models and run every analysis on each; the verdicts and the confusion table."""
    t0 = time.perf_counter()
    ds = ds if ds is not None else _dataset(cfg)
    base, floor, truths, checks, seconds = build_ground_truths(ds, cfg, log)
    labels = {gt.name: gt.truth for gt in truths}
    named = [("floor", floor)] + [(gt.name, gt.model) for gt in truths]
    del floor, truths  # `named` holds the only references: one_at_a_time lets each go once it is on disk
    results: dict[str, Any] = {"methods": list(labels), "evals": {}, "attacks": {},
                               "attack_labels": [], "analyses": {"lens": {"models": {}, "items": {}},
                                                                 "attribution": {"pairs": {}}}}
    t = time.perf_counter()
    log("analysing base")
    results["evals"]["base"] = eval_record(base, ds, cfg.eval_kinds)
    results["analyses"]["lens"]["models"]["base"], results["analyses"]["lens"]["items"]["base"] = lens_record(
        base, ds)
    base_scores = base_attribution(base, ds) if cfg.attribution else None
    with tempfile.TemporaryDirectory(prefix="neuronscope-calibration-") as directory:
        for name, model in one_at_a_time(named, directory):
            log(f"analysing {name}")
            results["evals"][name] = eval_record(model, ds, cfg.eval_kinds)
            results["analyses"]["lens"]["models"][name], results["analyses"]["lens"]["items"][name] = \
                lens_record(model, ds)
            results["attacks"][name] = attack_records(model, ds, attack_set(cfg.attack, cfg.benign_attack),
                                                       cfg.seeds, log)
            if name != "floor" and cfg.attribution:
                results["analyses"]["attribution"]["pairs"][f"base vs {name}"] = {
                    "summary": attribution_pair(base, model, ds, cfg.patching, base_scores)}
            del model
    results["attack_labels"] = list(results["attacks"]["floor"])
    seconds["analyses"] = time.perf_counter() - t
    verdicts = {name: model_verdict(name, results, floor="floor").to_json() for name in labels}
    seconds["total"] = time.perf_counter() - t0
    return CalibrationResult(cfg.to_json(), checks, results, labels, verdicts,
                             {k: round(v, 1) for k, v in seconds.items()})


def confusion_markdown(result: CalibrationResult) -> str:
    """The confusion table (truth x analysis -> what it says) and each analysis's record, as markdown."""
    rows = result.confusion()
    analyses = [c for c in rows[0] if c not in ("model", "truth", "verdict")] if rows else []
    head = ["ground-truth model", "truth", "headline verdict", *analyses]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join([r["model"], r["truth"], r["verdict"], *(r.get(a, "") for a in analyses)])
                     + " |")
    acc = result.analysis_accuracy()
    lines += ["", "| analysis | used by the verdict | right | wrong on | could not tell on |", "|---|---|---|---|---|"]
    for name, a in acc.items():
        lines.append(f"| {name} | {'yes' if a['calibrated'] else 'no'} | {a['right']} of {len(result.truths)} | "
                     f"{', '.join(a['wrong']) or '-'} | {', '.join(a['unsure']) or '-'} |")
    return "\n".join(lines) + "\n"
