"""The utility score (US) of a real model through lm-evaluation-harness: `pip install 'neuronscope[lmeval]'`.

The paper measures utility (US, docs/method.md section 5) as the mean accuracy over MMLU, GSM8K, HellaSwag,
ARC-Challenge and Winogrande, 500 items each. `lm_eval_utility` evaluates the model already loaded in memory
(lm_eval's HFLM wraps `model.hf` and `model.tokenizer`), so an unlearned model is scored as it is, with no round
trip through disk.

lm-eval is optional and imported lazily. Its benchmarks are HF datasets: offline (neuronscope's CLI sets
HF_HUB_OFFLINE=1) they must already be in the HF datasets cache. Every task's data is loaded before any model
call, so a missing benchmark fails in seconds, naming the task, rather than after hours of evaluation.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neuronscope.errors import NeuronscopeError
from neuronscope.models.handle import Model

PAPER_TASKS: tuple[str, ...] = ("mmlu", "gsm8k", "hellaswag", "arc_challenge", "winogrande")
PAPER_LIMIT = 500
# The accuracy reported per task: the first metric the task has (the Open LLM Leaderboard's choice: acc_norm for
# ARC and HellaSwag, acc for MMLU and Winogrande, strict exact match for GSM8K).
METRICS: tuple[str, ...] = ("acc_norm,none", "acc,none", "exact_match,strict-match", "exact_match,flexible-extract",
                            "exact_match,none")
INSTALL_HINT = "install the extra: pip install 'neuronscope[lmeval]'"


@dataclass(frozen=True)
class TaskScore:
    task: str
    accuracy: float
    metric: str  # the lm-eval metric key the accuracy was read from, e.g. "acc_norm,none"
    n: int | None  # items evaluated (after the limit); None when lm-eval did not report it


@dataclass(frozen=True)
class UtilityScore:
    tasks: dict[str, TaskScore]
    us: float  # the unweighted mean of the tasks' accuracies
    limit: int | None

    def to_json(self) -> dict[str, Any]:
        return {"us": self.us, "limit": self.limit,
                "tasks": {t: {"accuracy": s.accuracy, "metric": s.metric, "n": s.n} for t, s in self.tasks.items()}}


def require_lm_eval() -> Any:
    """The lm_eval package, or one NeuronscopeError line saying how to install it."""
    try:
        import lm_eval
        import lm_eval.evaluator  # noqa: F401  (simple_evaluate)
        import lm_eval.tasks  # noqa: F401  (TaskManager, get_task_dict)
    except ImportError as e:
        raise NeuronscopeError(f"lm-evaluation-harness is not installed ({e}); {INSTALL_HINT}") from None
    return lm_eval


def parse_tasks(text: str) -> tuple[str, ...]:
    """'mmlu, gsm8k' -> ('mmlu', 'gsm8k'); 'paper' -> the paper's five tasks."""
    names = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    if not names:
        raise NeuronscopeError("--lm-eval: give task names separated by commas, e.g. mmlu,gsm8k (or 'paper')")
    return PAPER_TASKS if names == ("paper",) else names


@functools.lru_cache(maxsize=4)
def _task_manager(include_path: str | None, include_defaults: bool) -> Any:
    """Indexing lm-eval's ~15k task configs takes seconds: done once per process and include path."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=include_path, include_defaults=include_defaults)


_CHECKED: set[tuple[str | None, bool, str]] = set()  # (include path, defaults, task) whose data loaded fine


def check_tasks(tasks: tuple[str, ...] | list[str], include_path: str | Path | None = None,
                include_defaults: bool = True) -> Any:
    """Known task names and their data loadable (offline: from the HF cache); returns lm-eval's TaskManager.

    Meant to run before any expensive work (the CLI calls it before loading the model). An unknown name or an
    offline miss is one NeuronscopeError line naming the task.
    """
    require_lm_eval()
    from lm_eval.tasks import get_task_dict

    if include_path is not None and not Path(include_path).is_dir():
        raise NeuronscopeError(f"--lm-eval-include: task directory {include_path} not found")
    where = str(include_path) if include_path is not None else None
    manager = _task_manager(where, include_defaults)
    known = set(manager.all_tasks)
    for name in tasks:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise NeuronscopeError(f"--lm-eval: unknown lm-eval task {name!r}{hint}; `lm_eval ls tasks` lists them")
    for name in tasks:
        if (where, include_defaults, name) in _CHECKED:
            continue
        try:
            get_task_dict([name], manager)
        # what datasets / huggingface_hub raise when the data is neither cached nor reachable, found by trying:
        # ConnectionError (OfflineModeIsEnabled; "Couldn't reach '<repo>' on the Hub") and FileNotFoundError
        # (DatasetNotFoundError, LocalEntryNotFoundError)
        except (ConnectionError, FileNotFoundError) as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise NeuronscopeError(
                f"lm-eval task {name!r}: its data is not available offline ({first}); pre-download it into the HF "
                "datasets cache (run once with HF_HUB_OFFLINE=0 where the Hub is reachable) or set "
                "HF_DATASETS_CACHE to a cache that holds it") from None
        _CHECKED.add((where, include_defaults, name))
    return manager


def pick_accuracy(task: str, metrics: dict[str, Any]) -> tuple[str, float]:
    """The task's accuracy metric (METRICS order) from lm-eval's results entry."""
    for key in METRICS:
        value = metrics.get(key)
        if isinstance(value, int | float):
            return key, float(value)
    found = ", ".join(k for k, v in metrics.items() if isinstance(v, int | float) and "stderr" not in k)
    raise NeuronscopeError(f"lm-eval task {task!r} reports no accuracy metric (has: {found or 'none'}); "
                           f"use a task scored by one of {', '.join(METRICS)}")


def lm_eval_utility(model: Model, tasks: tuple[str, ...] | list[str] = PAPER_TASKS, limit: int | None = PAPER_LIMIT,
                    *, num_fewshot: int | None = None, batch_size: int = 8, include_path: str | Path | None = None,
                    include_defaults: bool = True, seed: int = 0) -> UtilityScore:
    """Per-task accuracy of `model` on lm-eval `tasks` (at most `limit` items each) and their mean as US.

    `include_path` adds a directory of task YAMLs (your own benchmarks); `include_defaults=False` leaves out
    lm-eval's built-in tasks (faster to index). `num_fewshot` None keeps each task's own default.
    """
    tasks = tuple(tasks)
    if limit is not None and limit < 1:
        raise NeuronscopeError(f"--lm-eval-limit must be at least 1, got {limit}")
    manager = check_tasks(tasks, include_path, include_defaults)
    from lm_eval.evaluator import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model.hf, tokenizer=model.tokenizer, batch_size=batch_size)
    out = simple_evaluate(model=lm, tasks=list(tasks), limit=limit, num_fewshot=num_fewshot, task_manager=manager,
                          log_samples=False, bootstrap_iters=0, random_seed=seed, numpy_random_seed=seed,
                          torch_random_seed=seed, fewshot_random_seed=seed)
    results, n_samples = out["results"], out.get("n-samples", {})
    scores: dict[str, TaskScore] = {}
    for name in tasks:
        metric, acc = pick_accuracy(name, results.get(name, {}))
        n = n_samples.get(name, {}).get("effective") if isinstance(n_samples.get(name), dict) else None
        scores[name] = TaskScore(name, acc, metric, n)
    return UtilityScore(scores, sum(s.accuracy for s in scores.values()) / len(scores), limit)


__all__ = ["PAPER_LIMIT", "PAPER_TASKS", "TaskScore", "UtilityScore", "check_tasks", "lm_eval_utility",
           "parse_tasks", "require_lm_eval"]
