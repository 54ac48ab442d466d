"""Utility through lm-evaluation-harness (the real library, installed by the dev extra), offline.

No benchmark data can be downloaded here, so the evaluation itself runs on a local lm-eval task built from the
tiny world (a YAML + JSONL in tmp); the offline error path runs on the real `arc_challenge` task with an empty HF
cache. A task's accuracy must equal neuronscope's own multiple-choice accuracy: both score an option by the sum
of its tokens' log-probabilities, so equality shows lm-eval scored the in-memory model, item by item.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from neuronscope.base_model import BaseTrainResult
from neuronscope.cli import app
from neuronscope.data.schema import QADataset
from neuronscope.errors import NeuronscopeError
from neuronscope.lm_eval_utility import PAPER_TASKS, lm_eval_utility, parse_tasks, pick_accuracy, require_lm_eval
from neuronscope.scoring import multiple_choice_accuracy

TASK_YAML = """task: ns_tiny
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{options}}}}"
doc_to_target: "{{{{gold}}}}"
metric_list:
  - metric: acc
"""


@pytest.fixture(scope="module")
def task_dir(tiny_world: QADataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local lm-eval task: the tiny world's forget and test questions as 3-option multiple choice."""
    d = tmp_path_factory.mktemp("lmeval_tasks")
    items = tiny_world.items("forget") + tiny_world.items("test")
    rows = [{"question": i.question, "options": list(i.options), "gold": list(i.options).index(i.answer)}
            for i in items]
    (d / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "ns_tiny.yaml").write_text(TASK_YAML.format(data=d / "items.jsonl"))
    return d


def _noisy(trained: BaseTrainResult, scale: float):  # noqa: ANN202
    """The tiny base model with seeded weight noise: accuracy well between chance and 1, so it discriminates."""
    model = trained.model.clone()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.hf.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
    return model


def test_accuracy_equals_neuronscope_scoring_of_the_same_model(tiny_trained: BaseTrainResult, tiny_world: QADataset,
                                                               task_dir: Path) -> None:
    items = tiny_world.items("forget") + tiny_world.items("test")
    model = _noisy(tiny_trained, 0.05)
    expected = multiple_choice_accuracy(model, items)
    assert 0.45 < expected < 0.9  # the noise makes the check meaningful (neither chance nor perfect)
    score = lm_eval_utility(model, ["ns_tiny"], limit=None, include_path=task_dir, include_defaults=False)
    assert score.tasks["ns_tiny"].accuracy == pytest.approx(expected, abs=1e-9)
    assert score.tasks["ns_tiny"].metric == "acc,none" and score.tasks["ns_tiny"].n == len(items)
    assert score.us == score.tasks["ns_tiny"].accuracy
    limited = lm_eval_utility(tiny_trained.model, ["ns_tiny"], limit=7, include_path=task_dir,
                              include_defaults=False)
    assert limited.tasks["ns_tiny"].n == 7 and limited.limit == 7
    assert limited.tasks["ns_tiny"].accuracy == pytest.approx(multiple_choice_accuracy(tiny_trained.model,
                                                                                       items[:7]), abs=1e-9)


def test_cli_eval_with_lm_eval_json(tiny_ckpt: Path, tiny_world_dir: Path, task_dir: Path) -> None:
    result = CliRunner().invoke(app, ["eval", "--ckpt", str(tiny_ckpt), "--data", str(tiny_world_dir), "--json",
                                      "--lm-eval", "ns_tiny", "--lm-eval-limit", "5",
                                      "--lm-eval-include", str(task_dir)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["lm_eval"]["limit"] == 5 and out["lm_eval"]["tasks"]["ns_tiny"]["n"] == 5
    assert out["lm_eval"]["us"] == out["lm_eval"]["tasks"]["ns_tiny"]["accuracy"] == 1.0  # the trained model
    assert {"fs", "rs", "us"} <= out.keys()  # neuronscope's own scores are still there


def test_unknown_task_is_one_error_line(tiny_ckpt: Path, tiny_world_dir: Path, task_dir: Path) -> None:
    result = CliRunner().invoke(app, ["eval", "--ckpt", str(tiny_ckpt), "--data", str(tiny_world_dir),
                                      "--lm-eval", "ns_tiny,arc_chalenge", "--lm-eval-include", str(task_dir)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("error:") and "unknown lm-eval task 'arc_chalenge'" in lines[-1]
    assert "arc_challenge" in lines[-1]  # the close match is suggested


def test_offline_task_data_names_the_task(tiny_ckpt: Path, tiny_world_dir: Path, tmp_path: Path) -> None:
    """The real arc_challenge task with an empty HF cache, offline: one line naming the task and the fix."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "HF_DATASETS_CACHE": str(tmp_path / "hf" / "datasets"), "HF_HUB_CACHE": str(tmp_path / "hf" / "hub")}
    code = "import sys; from neuronscope.cli import main; sys.argv = ['neuronscope'] + sys.argv[1:]; main()"
    proc = subprocess.run([sys.executable, "-c", code, "eval", "--ckpt", str(tiny_ckpt), "--data",
                           str(tiny_world_dir), "--lm-eval", "arc_challenge"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-2000:]
    assert "lm-eval task 'arc_challenge'" in errors[0] and "not available offline" in errors[0]
    assert "HF_DATASETS_CACHE" in errors[0] and "Traceback" not in proc.stderr
    assert "FS / RS / US" not in proc.stdout  # failed before evaluating anything


def test_missing_lm_eval_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tiny_ckpt: Path,
                                             tiny_world_dir: Path) -> None:
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # `import lm_eval` now raises ImportError
    with pytest.raises(NeuronscopeError, match=r"pip install 'neuronscope\[lmeval\]'"):
        require_lm_eval()
    result = CliRunner().invoke(app, ["eval", "--ckpt", str(tiny_ckpt), "--data", str(tiny_world_dir),
                                      "--lm-eval", "mmlu"])
    assert result.exit_code == 2 and "pip install 'neuronscope[lmeval]'" in result.output


def test_task_list_and_metric_choice() -> None:
    assert parse_tasks("paper") == PAPER_TASKS
    assert parse_tasks(" mmlu, gsm8k ,mmlu,") == ("mmlu", "gsm8k")
    with pytest.raises(NeuronscopeError, match="--lm-eval"):
        parse_tasks(" , ")
    both = {"acc,none": 0.5, "acc_stderr,none": 0.1, "acc_norm,none": 0.6}
    assert pick_accuracy("hellaswag", both) == ("acc_norm,none", 0.6)
    gsm = {"exact_match,flexible-extract": 0.3, "exact_match,strict-match": 0.2}
    assert pick_accuracy("gsm8k", gsm) == ("exact_match,strict-match", 0.2)
    with pytest.raises(NeuronscopeError, match="no accuracy metric"):
        pick_accuracy("x", {"bleu,none": 1.0})


def test_grid_utility_stage_scores_every_model_and_recomputes_nothing_else(tiny_world: QADataset, task_dir: Path,
                                                                           tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """[utility] in a grid: one cached artifact per model, US lm-eval equal to neuronscope's own scoring of the
    same model on the task's items, a Table 1 column; adding it to a finished run computes only those artifacts."""
    from test_experiment_grid import FAKE_API, tiny_config

    from neuronscope.experiment import methods_api
    from neuronscope.experiment.grid import run_grid
    from neuronscope.io import read_json
    from neuronscope.models.handle import load_model

    monkeypatch.setattr(methods_api, "unlearn_api", lambda: FAKE_API)
    out = tmp_path / "run"
    first = run_grid(tiny_config(), out, api=FAKE_API)
    cfg = tiny_config(**{"utility.lm_eval": ["ns_tiny"], "utility.limit": 0, "utility.include": str(task_dir),
                         "utility.defaults": False})
    again = run_grid(cfg, out, api=FAKE_API)
    assert sorted(a.rsplit("-", 1)[0] for a in again.computed) == ["utility-base", "utility-fake", "utility-oracle"]
    assert len(again.skipped) == first.results["computed"]
    models = again.results["analyses"]["utility"]["models"]
    items = tiny_world.items("forget") + tiny_world.items("test")
    base_dir = next((out / "artifacts").glob("base-*")) / "model"
    assert models["base"]["us"] == pytest.approx(multiple_choice_accuracy(load_model(base_dir, bridge=False), items),
                                                 abs=1e-9)
    assert models["base"]["tasks"]["ns_tiny"]["n"] == len(items)
    assert "US lm-eval" in (out / "table.md").read_text()
    assert read_json(out / "results.json")["analyses"]["utility"]["tasks"] == ["ns_tiny"]


def test_grid_refuses_a_missing_benchmark_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from test_experiment_grid import FAKE_API, tiny_config

    from neuronscope.experiment import methods_api
    from neuronscope.experiment.grid import run_grid

    monkeypatch.setattr(methods_api, "unlearn_api", lambda: FAKE_API)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    cfg = tiny_config(**{"utility.lm_eval": ["paper"]})
    assert cfg.utility.lm_eval == PAPER_TASKS
    with pytest.raises(NeuronscopeError, match="its data is not available offline"):
        run_grid(cfg, tmp_path / "run", api=FAKE_API)
    assert not list((tmp_path / "run").glob("artifacts/*"))  # nothing trained
