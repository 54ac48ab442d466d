"""Train the toy base model on a world until it knows the forget and retain facts."""

from __future__ import annotations

import shutil
import tempfile
import time
import weakref
from dataclasses import asdict, dataclass
from pathlib import Path

from neuronscope.budget import check_dataset
from neuronscope.checks import Namer, at_least, flag_name, fraction, positive
from neuronscope.data.schema import QADataset
from neuronscope.errors import NeuronscopeError
from neuronscope.models.handle import Model
from neuronscope.models.quiet import quiet_bars
from neuronscope.models.tokenizer import build_word_tokenizer
from neuronscope.models.toy import ToyConfig, build_toy_model
from neuronscope.scoring import EvalReport, evaluate, multiple_choice_accuracy


@dataclass(frozen=True)
class BaseTrainConfig:
    toy: ToyConfig = ToyConfig()
    lr: float = 5e-4
    batch_size: int = 32
    max_epochs: int = 150
    target: float = 0.95  # base-question accuracy required on forget and on retain facts
    check_every: int = 2  # epochs between accuracy checks
    seed: int = 0
    exclude_splits: tuple[str, ...] = ()  # e.g. ("forget",) trains the oracle that never saw the forget facts

    def check(self, name: Namer = flag_name) -> None:
        """Every value a training run needs, before it starts (a zero check_every divides by zero at epoch 1; a
        target above 1 is never reached, after max_epochs of training)."""
        positive(self.lr, name("lr"))
        at_least(self.batch_size, 1, name("batch_size"))
        at_least(self.max_epochs, 1, name("max_epochs"))
        at_least(self.check_every, 1, name("check_every"))
        fraction(self.target, name("target"), open_low=True)
        self.toy.check(lambda f: name(f"toy.{f}"))


@dataclass
class BaseTrainResult:
    model: Model
    report: EvalReport
    epochs: int
    steps: int
    seconds: float
    reached_target: bool
    n_params: int

    def summary(self) -> dict:
        return {"epochs": self.epochs, "steps": self.steps, "seconds": round(self.seconds, 2),
                "reached_target": self.reached_target, "n_params": self.n_params, **self.report.to_json()}


@quiet_bars
def new_toy_model(ds: QADataset, cfg: ToyConfig = ToyConfig(), seed: int = 0) -> Model:
    """A fresh, untrained toy model whose tokenizer covers the dataset's words."""
    from transformers import PreTrainedTokenizerFast

    tok = build_word_tokenizer(ds.all_text())
    hf = build_toy_model(tok, cfg, seed)
    # Round-trip the tokenizer through disk so it carries a name_or_path, as a loaded one does; the bridge reads
    # the config from the same directory. The directory lives as long as the tokenizer (shared by clones).
    tmp = Path(tempfile.mkdtemp(prefix="neuronscope-tok-"))
    tok.save_pretrained(tmp)
    hf.config.save_pretrained(tmp)
    tok = PreTrainedTokenizerFast.from_pretrained(tmp)
    model = Model(hf, tok, tmp)
    weakref.finalize(tok, shutil.rmtree, tmp, ignore_errors=True)  # clones share the tokenizer
    return model


def train_base(ds: QADataset, cfg: BaseTrainConfig = BaseTrainConfig(), progress=None) -> BaseTrainResult:
    """Train from scratch on `ds.training_items()`; stop once forget and retain base accuracy reach the target.

    With `exclude_splits=("forget",)` the target is checked on retain only (the forget facts were never seen).
    """
    from neuronscope.training import fit

    cfg.check()
    items = ds.training_items(cfg.exclude_splits)
    model = new_toy_model(ds, cfg.toy, cfg.seed)
    check_dataset(model, ds)  # every question within base.toy.max_len positions, before training
    check_splits = [s for s in ("forget", "retain") if s not in cfg.exclude_splits and ds.items(s)]
    if not check_splits:
        raise NeuronscopeError("the dataset has no forget or retain base questions to train towards")

    def reached(epoch: int) -> bool:
        if epoch % cfg.check_every:
            return False
        return all(multiple_choice_accuracy(model, ds.items(s)) >= cfg.target for s in check_splits)

    t0 = time.perf_counter()
    fit_result = fit(model, [it.question for it in items], [it.answer for it in items], lr=cfg.lr,
                     batch_size=cfg.batch_size, max_epochs=cfg.max_epochs, seed=cfg.seed, on_epoch=reached,
                     progress=progress)
    seconds = time.perf_counter() - t0
    model.hf.config.neuronscope = {"base_train": asdict(cfg) | {"toy": asdict(cfg.toy)}}
    report = evaluate(model, ds)
    return BaseTrainResult(model, report, fit_result.epochs, fit_result.steps, seconds,
                           fit_result.stopped_early, model.n_params)


@dataclass(frozen=True)
class FinetuneConfig:
    """TOFU's fine-tune-first step (docs/method.md section 5: lr 1e-5, 5 epochs) on a given pretrained checkpoint."""

    lr: float = 1e-5
    epochs: int = 5
    batch_size: int = 16
    seed: int = 0
    exclude_splits: tuple[str, ...] = ()  # ("forget",) gives TOFU's retain-only model: the oracle

    def check(self) -> None:
        positive(self.lr, "fine-tune lr")
        if self.epochs < 1 or self.batch_size < 1:
            raise NeuronscopeError("fine-tune epochs and batch_size must be at least 1")


def finetune_items(ds: QADataset, exclude_splits: tuple[str, ...] = ()) -> list:
    """The base questions of every split not excluded. Utility questions are never fine-tuned on: on TOFU they
    are the real-world evaluation sets (real authors, world facts)."""
    return ds.training_items(exclude_splits, utility=False)


def finetune_base(model: Model, ds: QADataset, cfg: FinetuneConfig = FinetuneConfig(), progress=None
                  ) -> BaseTrainResult:
    """Fine-tune `model` IN PLACE on the dataset's QA pairs for a fixed number of epochs (no early stop)."""
    from neuronscope.training import fit

    cfg.check()
    check_dataset(model, ds)
    items = finetune_items(ds, cfg.exclude_splits)
    if not items:
        raise NeuronscopeError("nothing to fine-tune on: the dataset has no base questions outside "
                               f"{', '.join(cfg.exclude_splits) or 'the excluded splits'}")
    fit_result = fit(model, [it.question for it in items], [it.answer for it in items], lr=cfg.lr,
                     batch_size=cfg.batch_size, max_epochs=cfg.epochs, seed=cfg.seed, progress=progress)
    model.hf.config.neuronscope = {"finetune": asdict(cfg) | ({"note": fit_result.notes[0]} if fit_result.notes
                                                              else {})}
    report = evaluate(model, ds)
    return BaseTrainResult(model, report, fit_result.epochs, fit_result.steps, fit_result.seconds, True,
                           model.n_params)
