"""The shared loop: stopping rule, step limit, reproducibility, lr search and bad inputs."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from neuronscope.data.schema import KINDS, QADataset
from neuronscope.errors import NeuronscopeError
from neuronscope.scoring import multiple_choice_accuracy
from neuronscope.unlearn import METHODS, UnlearnConfig, lr_search, unlearn
from neuronscope.unlearn.gd import GD
from neuronscope.unlearn.loop import at_or_below

CHANCE = 1 / 3 + 1e-6  # accuracies are float32 means: 8/24 arrives as 0.33333334
FAST = UnlearnConfig(lr=3e-3, max_steps=40, batch_size=8, rs_every=0, eval_kinds=("base",))


@pytest.fixture(scope="module")
def gd_run(tiny_trained, tiny_world):
    return unlearn(tiny_trained.model.clone(), tiny_world, "gd", FAST)


def test_stops_as_soon_as_forget_accuracy_reaches_threshold(gd_run, tiny_world):
    r = gd_run
    assert r.reached and r.fs <= CHANCE and 0 < r.steps < FAST.max_steps
    fs = [row["fs"] for row in r.curve]
    assert len(fs) == r.steps + 1  # step 0 plus one row per step (check_every = 1)
    assert all(f > CHANCE for f in fs[:-1]) and fs[-1] <= CHANCE
    assert multiple_choice_accuracy(r.model, tiny_world.items("forget", "base")) == pytest.approx(r.fs)
    assert {"step", "loss", "forget_nll", "retain_nll"} <= set(r.curve[1])
    assert r.to_json()["steps"] == r.steps and "model" not in r.to_json()


def test_float32_chance_counts_as_reached():
    assert at_or_below(torch.tensor(8 / 24).item(), 1 / 3) and not at_or_below(9 / 24, 1 / 3)


def test_check_every_and_step_limit(tiny_trained, tiny_world):
    cfg = replace(FAST, check_every=4)
    r = unlearn(tiny_trained.model.clone(), tiny_world, "gd", cfg)
    assert r.reached and r.steps % 4 == 0
    assert all("fs" not in row for row in r.curve[1:-1] if row["step"] % 4)
    r2 = unlearn(tiny_trained.model.clone(), tiny_world, "ga",
                 replace(FAST, lr=1e-6, max_steps=3))
    assert r2.steps == 3 and not r2.reached


def test_threshold_already_met_means_zero_steps(tiny_trained, tiny_world):
    model = tiny_trained.model.clone()
    before = [p.detach().clone() for p in model.hf.parameters()]
    r = unlearn(model, tiny_world, "ga", replace(FAST, threshold=1.0))
    assert r.steps == 0 and r.reached
    assert all(torch.equal(a, b) for a, b in zip(before, model.hf.parameters(), strict=True))


def test_same_seed_same_weights(tiny_trained, tiny_world, gd_run):
    again = unlearn(tiny_trained.model.clone(), tiny_world, "gd", FAST)
    assert again.steps == gd_run.steps
    for a, b in zip(gd_run.model.hf.parameters(), again.model.hf.parameters(), strict=True):
        assert torch.equal(a, b)
    other = unlearn(tiny_trained.model.clone(), tiny_world, "gd",
                    replace(FAST, seed=1, max_steps=2))
    assert not all(torch.equal(a, b) for a, b in
                   zip(gd_run.model.hf.parameters(), other.model.hf.parameters(), strict=True))


def test_lr_search_picks_lowest_rate_that_reaches(tiny_trained, tiny_world):
    base = tiny_trained.model
    before = [p.detach().clone() for p in base.hf.parameters()]
    cfg = replace(FAST, max_steps=8)
    r = lr_search(base, tiny_world, "gd", cfg, grid=[3e-3, 1e-7])
    assert [t["lr"] for t in r.trials] == [1e-7, 3e-3]
    assert not r.trials[0]["reached"] and r.trials[1]["reached"] and r.lr == 3e-3
    assert all(torch.equal(a, b) for a, b in zip(before, base.hf.parameters(), strict=True))


def test_lr_search_releases_a_trial_before_the_next(tiny_trained, tiny_world, monkeypatch):
    """A trial that did not reach is dropped before the next rate's clone is made: on a real model two trained
    copies at once are 0.5 GB more at the unlearning stage's peak."""
    import gc
    import weakref

    from neuronscope.unlearn import loop

    trained, alive_at_start = [], []

    def tracked(model, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        gc.collect()
        alive_at_start.append([ref() is not None for ref in trained])
        result = real(model, *args, **kwargs)
        trained.append(weakref.ref(result.model))
        return result

    real = loop.unlearn
    monkeypatch.setattr(loop, "unlearn", tracked)
    r = loop.lr_search(tiny_trained.model, tiny_world, "gd", replace(FAST, max_steps=3), grid=[1e-7, 2e-7])
    assert len(r.trials) == 2 and not r.trials[0]["reached"]
    assert alive_at_start == [[], [False]]  # the first trial's model was gone when the second began
    assert trained[-1]() is r.model


def test_lr_search_scores_every_kind_once_and_equals_a_direct_run(tiny_trained, tiny_world):
    """Trials are scored on "base" only; the kept one gets every kind afterwards. Its report, scores and curve
    equal a direct run at the chosen rate whose final evaluation scores every kind."""
    cfg = replace(FAST, max_steps=8, eval_kinds=KINDS)
    searched = lr_search(tiny_trained.model, tiny_world, "gd", cfg, grid=[3e-3, 1e-7])
    direct = unlearn(tiny_trained.model.clone(), tiny_world, "gd", replace(cfg, lr=3e-3))
    assert searched.lr == 3e-3 and set(searched.report.detail["forget"]) == set(KINDS)
    assert searched.report.to_json() == direct.report.to_json()
    assert (searched.fs, searched.rs, searched.us, searched.steps) == (direct.fs, direct.rs, direct.us, direct.steps)
    assert searched.curve == direct.curve and searched.config == direct.config
    assert [t["fs"] for t in searched.trials][-1] == direct.fs



def test_lr_search_from_a_loader_equals_a_search_from_the_model(tiny_trained, tiny_ckpt, tiny_world):
    """The CLI and the grid give lr_search a loader: each trial trains a freshly loaded model, and no copy is held
    beside it. Trials, weights and scores equal those of a search that clones a model loaded once."""
    import gc
    import weakref

    from neuronscope.models.handle import load_model

    loaded: list[weakref.ref] = []

    def load():
        gc.collect()
        assert all(r() is None for r in loaded), "a model of an earlier trial is still alive"
        model = load_model(tiny_ckpt, bridge=False)
        loaded.append(weakref.ref(model))
        return model

    cfg = replace(FAST, max_steps=8)
    grid = [1e-7, 3e-3]
    from_loader = lr_search(load, tiny_world, "gd", cfg, grid=grid)
    from_model = lr_search(load_model(tiny_ckpt, bridge=False), tiny_world, "gd", cfg, grid=grid)
    assert len(loaded) == 2 and loaded[-1]() is from_loader.model  # one load per trial; the last one is kept

    def timeless(trials):
        return [{k: v for k, v in t.items() if k != "seconds"} for t in trials]

    assert timeless(from_loader.trials) == timeless(from_model.trials)
    assert [t["reached"] for t in from_loader.trials] == [False, True]
    assert (from_loader.lr, from_loader.steps, from_loader.fs, from_loader.rs) == \
        (from_model.lr, from_model.steps, from_model.fs, from_model.rs)
    for a, b in zip(from_loader.model.hf.parameters(), from_model.model.hf.parameters(), strict=True):
        assert torch.equal(a, b)

def test_bad_inputs(tiny_trained, tiny_world, monkeypatch):
    model = tiny_trained.model.clone()
    with pytest.raises(NeuronscopeError, match="unknown method 'nope'"):
        unlearn(model, tiny_world, "nope", FAST)
    with pytest.raises(NeuronscopeError, match="^lr must be a positive number"):  # the setting, not a CLI flag
        unlearn(model, tiny_world, "gd", UnlearnConfig(lr=-1e-3))
    empty = QADataset(splits={"forget": [], "retain": tiny_world.retain})
    with pytest.raises(NeuronscopeError, match="no forget base questions"):
        unlearn(model, empty, "gd", FAST)
    no_retain = QADataset(splits={"forget": tiny_world.forget})
    with pytest.raises(NeuronscopeError, match="needs retain"):
        unlearn(model, no_retain, "gd", FAST)

    gd_loss = GD.loss

    def nan_loss(self, sb, step):
        loss, terms = gd_loss(self, sb, step)
        return loss * float("nan"), terms

    monkeypatch.setattr(METHODS["gd"], "loss", nan_loss)
    with pytest.raises(NeuronscopeError, match="diverged: gd loss is nan at step 1"):
        unlearn(model, tiny_world, "gd", FAST)
    assert all(p.requires_grad for p in model.hf.parameters())  # flags restored after the error
