"""The grid end to end on a tiny world with a tiny fake unlearning method: caching, resume after a kill, logs.

The fake method (a few steps of gradient ascent on the forget set) stands in for neuronscope.unlearn so these
tests exercise the grid's mechanics in seconds; tests/test_cli_run.py runs the real methods (small profile).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch

from neuronscope.batching import encode
from neuronscope.data.schema import KINDS
from neuronscope.errors import NeuronscopeError
from neuronscope.experiment import grid as grid_mod
from neuronscope.experiment import methods_api
from neuronscope.experiment.config import parse_config
from neuronscope.experiment.grid import UnlearnAPI, run_grid
from neuronscope.run_results import Results
from neuronscope.scoring import evaluate, multiple_choice_accuracy
from neuronscope.training import answer_nll


@dataclass(frozen=True)
class FakeConfig:
    lr: float = 3e-3
    max_steps: int = 40
    threshold: float = 1 / 3
    seed: int = 0
    eval_kinds: tuple[str, ...] = KINDS  # like the real loop: the final evaluation scores every kind


@dataclass
class FakeResult:
    model: Any
    method: str
    lr: float
    steps: int
    reached: bool
    fs: float
    curve: list[dict[str, float]] = field(default_factory=list)
    report: Any = None

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "lr": self.lr, "steps": self.steps, "reached": self.reached, "fs": self.fs,
                "curve": self.curve}


def fake_unlearn(model, ds, method, cfg, progress=None):  # noqa: ANN001, ANN201
    """Gradient ascent on the forget base items until FS <= threshold (deterministic, seconds)."""
    items = ds.items("forget")
    batch = encode(model.tokenizer, [i.question for i in items], [i.answer for i in items])
    opt = torch.optim.SGD(model.hf.parameters(), lr=cfg.lr * (2 if method == "fake2" else 1))
    fs, step = multiple_choice_accuracy(model, items), 0
    curve = [{"step": 0, "fs": fs}]
    while fs > cfg.threshold and step < cfg.max_steps:
        model.hf.train()
        loss = -answer_nll(model.hf(input_ids=batch.input_ids).logits, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.hf.eval()
        step += 1
        fs = multiple_choice_accuracy(model, items)
        curve.append({"step": step, "fs": fs})
        if progress:
            progress(step, loss.item())
    return FakeResult(model, method, cfg.lr, step, fs <= cfg.threshold, fs, curve,
                      evaluate(model, ds, kinds=cfg.eval_kinds))


FAKE_API = UnlearnAPI(fake_unlearn, FakeConfig, ("fake", "fake2"))

TINY_TOML = """
[run]
name = "tiny"
[data.world]
people = 16
seed = 0
forget = 0.25
retain = 0.25
test = 0.5
cities = 5
countries = 3
companies = 5
universities = 5
arithmetic = 2
[base]
lr = 3e-3
max_epochs = 150
check_every = 5
[base.toy]
d_model = 48
n_layers = 2
n_heads = 2
d_mlp = 96
[unlearn]
methods = ["fake"]
lr = 0.01
max_steps = 60
[attacks]
seeds = [0, 1]
harmful_p = [0.3]
steps = 6
eval_every = 3
[attribution]
enabled = false
[lens]
enabled = false
"""


def tiny_config(**overrides: Any):  # noqa: ANN201
    import tomllib

    doc = tomllib.loads(TINY_TOML)
    for dotted, value in overrides.items():
        sec, key = dotted.split(".")
        doc.setdefault(sec, {})[key] = value
    return parse_config(doc, "tiny")


@pytest.fixture
def fake_api(monkeypatch: pytest.MonkeyPatch) -> UnlearnAPI:
    monkeypatch.setattr(methods_api, "unlearn_api", lambda: FAKE_API)
    return FAKE_API


def _numbers(results: Any) -> Any:
    """Everything a run produced, without timings (at any depth) and cache counters."""
    if isinstance(results, dict):
        return {k: _numbers(v) for k, v in results.items()
                if k not in ("computed", "skipped", "stage_peak_gib") and "seconds" not in k}
    if isinstance(results, list):
        return [_numbers(v) for v in results]
    return results


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """One uninterrupted run of the tiny grid (shared by the tests below)."""
    mp = pytest.MonkeyPatch()
    mp.setattr(methods_api, "unlearn_api", lambda: FAKE_API)
    try:
        out = tmp_path_factory.mktemp("ref")
        result = run_grid(tiny_config(), out, api=FAKE_API)
    finally:
        mp.undo()
    return out, result.results


def test_grid_produces_table_and_rerun_skips_everything(reference_run, fake_api) -> None:  # noqa: ANN001
    out, results = reference_run
    assert (out / "table.csv").is_file() and (out / "table.md").is_file()
    md = (out / "table.md").read_text()
    assert "oracle" in md and "gap harmful p=0.3" in md and "benign" in md
    assert set(results["attacks"]) == {"oracle", "fake"}
    assert all(len(v) == 2 for m in results["attacks"].values() for v in m.values())  # 2 seeds each
    again = run_grid(tiny_config(), out, api=fake_api)
    assert again.computed == [] and len(again.skipped) == results["computed"]
    assert _numbers(again.results) == _numbers(results)
    log = (out / "run.log").read_text()
    assert "skip" in log and "(cached)" in log


def test_changed_input_recomputes_only_downstream(reference_run, fake_api, tmp_path: Path) -> None:  # noqa: ANN001
    import shutil

    out, results = reference_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    changed = run_grid(tiny_config(**{"attacks.steps": 9}), copy, api=fake_api)
    # data, base, oracle and the unlearned model are reused; only the attacks are recomputed
    assert all(name.startswith("attack-") for name in changed.computed)
    assert not any(name.startswith("attack-") for name in changed.skipped)
    assert len(changed.skipped) == 4


def test_corrupt_and_partial_artifacts_are_recomputed(reference_run, fake_api, tmp_path: Path) -> None:  # noqa: ANN001
    import shutil

    out, results = reference_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    arts = copy / "artifacts"
    unlearned = next(arts.glob("unlearn-fake-*"))
    weights = next(unlearned.glob("model/*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: same size, different content
    weights.write_bytes(bytes(data))
    attack_dir = sorted(arts.glob("attack-oracle-harmful-*"))[0]
    (attack_dir / "_complete.json").unlink()  # as if killed before the manifest was sealed
    (arts / "attack-fake-benign-0000000000000000").mkdir()  # a stray partial directory is ignored
    again = run_grid(tiny_config(), copy, api=fake_api)
    assert unlearned.name in again.computed and attack_dir.name in again.computed
    assert _numbers(again.results) == _numbers(results)
    log = (copy / "run.log").read_text()
    assert "does not match its checksum" in log and "no manifest" in log


def test_changed_dtype_or_threads_recompute_what_they_change(reference_run, fake_api, tmp_path: Path) -> None:  # noqa: ANN001
    """[run] dtype changes every model stage's numbers: those artifacts are recomputed in bfloat16, never reused
    from the float32 run and labelled bfloat16. The toy base and oracle train on the cpu in float32 whatever
    [run] says, so they are reused; the thread count is part of every key (it may change cpu reductions)."""
    import shutil

    out, results = reference_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    bf16 = run_grid(tiny_config(**{"run.dtype": "bfloat16"}), copy, api=fake_api)
    assert sorted(bf16.skipped) == sorted(n for n in bf16.skipped if n.startswith(("data-", "base-", "oracle-")))
    assert len(bf16.skipped) == 3
    assert {n.split("-")[0] for n in bf16.computed} == {"unlearn", "attack"}
    assert len(bf16.computed) == results["computed"] - 3
    assert bf16.results["config"]["dtype"] == "bfloat16"
    keys = {n: json.loads((copy / "artifacts" / n / "_complete.json").read_text())["inputs"]["numerics"]
            for n in bf16.computed}
    assert all(k["dtype"] == "bfloat16" and k["device"] == "cpu" and k["threads"] == 1 for k in keys.values())
    assert grid_mod.numerics(tiny_config(**{"run.threads": 2}), placed=False) != grid_mod.numerics(
        tiny_config(), placed=False)


def test_results_round_trip_through_the_typed_object(reference_run) -> None:  # noqa: ANN001
    """results.json -> Results -> JSON gives the same document, and the typed fields read what the file says."""
    out, results = reference_run
    on_disk = json.loads((out / "results.json").read_text())
    typed = Results.from_json(on_disk)
    assert typed.to_json() == on_disk
    assert typed.models == ["base", "oracle", "fake"]
    assert typed.evals["fake"].fs == on_disk["evals"]["fake"]["fs"]
    assert [r.max_fs for r in typed.attacks["oracle"]["harmful p=0.3"]] == [
        r["max_fs"] for r in on_disk["attacks"]["oracle"]["harmful p=0.3"]]
    assert set(on_disk["stage_seconds"]) == {"data", "base", "oracle", "unlearn", "attack"}
    assert typed.stage_peak_gib == on_disk.get("stage_peak_gib")


def test_unlearned_evaluation_is_the_loops_and_equals_rescoring(reference_run) -> None:  # noqa: ANN001
    """The grid writes the loop's final evaluation instead of reloading and re-scoring the unlearned model: it is
    the saved model's evaluation exactly (scored here afresh from the saved weights)."""
    from neuronscope.data.schema import load_dataset
    from neuronscope.models.handle import load_model

    out, results = reference_run
    art = next((out / "artifacts").glob("unlearn-fake-*"))
    ds = load_dataset(next((out / "artifacts").glob("data-*")) / "data")
    fresh = evaluate(load_model(art / "model", bridge=False), ds)
    written = json.loads((art / "eval.json").read_text())
    assert (written["fs"], written["rs"], written["us"]) == (fresh.fs, fresh.rs, fresh.us)
    assert written["detail"] == fresh.detail and written["counts"] == fresh.counts
    assert results["evals"]["fake"] == written


def test_parallel_chains_equal_the_serial_run(reference_run, fake_api, tmp_path: Path) -> None:  # noqa: ANN001
    """The oracle's and the method's chains on two processes give every number of the serial run, and count
    every artifact as computed once."""
    from neuronscope.experiment.parallel import run_grid_parallel

    out, results = reference_run
    par = run_grid_parallel(tiny_config(), tmp_path / "par", api=fake_api, workers=2)
    assert _numbers(par.results) == _numbers(results)
    assert par.results["computed"] == results["computed"] and par.results["skipped"] == 0
    # each stage kind's peak memory, over both processes (a fresh run: every stage computed in this invocation)
    peaks = par.results["stage_peak_gib"]
    assert set(peaks) == {"data", "base", "oracle", "unlearn", "attack"}
    assert all(0.05 < gib < 24 for gib in peaks.values())
    assert sorted(par.computed) == sorted(p.name for p in (tmp_path / "par" / "artifacts").iterdir())
    assert "on 2 processes" in (tmp_path / "par" / "run.log").read_text()


def test_the_floor_s_attacks_on_two_processes_equal_the_serial_run(fake_api, tmp_path: Path) -> None:  # noqa: ANN001
    """Without an oracle, each attack of the never-known floor is a chain of its own, taken by whichever process
    is free: the floor's numbers (and every other) equal the serial run's, each attack computed once in its chain."""
    from neuronscope.data.schema import save_dataset
    from neuronscope.data.world import build_world
    from neuronscope.experiment.parallel import chain_order, run_grid_parallel

    world = tiny_config().world
    ds = build_world(world)
    # stand-ins for facts the base never knew: test questions whose gold is moved to another option, so the
    # harmful attack finds wrong answers to train on
    ds.meta["never_known"] = [{**it.to_json(), "answer": next(o for o in it.options if o != it.answer)}
                              for it in ds.items("test")[:6]]
    data = save_dataset(ds, tmp_path / "facts")
    import tomllib

    doc = tomllib.loads(TINY_TOML)
    doc["data"] = {"path": str(data)}
    doc["oracle"], doc["lens"] = {"enabled": False}, {"enabled": True}
    cfg = parse_config(doc, "tiny-floor")
    assert chain_order(cfg) == ["fake", "floor-1", "floor-2", "floor-3", "floor-4", "base"]
    serial = run_grid(cfg, tmp_path / "serial", api=fake_api).results
    par = run_grid_parallel(cfg, tmp_path / "par", api=fake_api, workers=2)
    assert _numbers(par.results) == _numbers(serial)
    assert {label: len(runs) for label, runs in serial["floor"].items()} == {"harmful p=0.3": 2, "benign": 2}
    log = (tmp_path / "par" / "run.log").read_text()
    floor_lines = [line for line in log.splitlines() if ": done floor-" in line]
    assert len(floor_lines) == 4  # each floor attack computed once, in its own chain
    assert {line.split()[2] for line in floor_lines} == {"floor-1:", "floor-2:", "floor-3:", "floor-4:"}


_DRIVER = """
import sys, json
sys.path.insert(0, {tests!r})
from test_experiment_grid import FAKE_API, tiny_config
from neuronscope.experiment import grid
from neuronscope.experiment import methods_api
methods_api.unlearn_api = lambda: FAKE_API
grid.run_grid(tiny_config(), {out!r}, api=FAKE_API)
"""


def _driver(out: Path) -> list[str]:
    code = textwrap.dedent(_DRIVER).format(tests=str(Path(__file__).parent), out=str(out))
    return [sys.executable, "-c", code]


def test_resume_after_kill_gives_identical_results(tmp_path: Path) -> None:
    out = tmp_path / "killed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(_driver(out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    # kill once the base and the oracle are sealed and the grid is busy with later work
    while time.time() < deadline and proc.poll() is None:
        if len(list((out / "artifacts").glob("[!.]*/_complete.json"))) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"the grid finished before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "results.json").exists()
    done_before = {p.parent.name for p in (out / "artifacts").glob("[!.]*/_complete.json")}
    resumed = subprocess.run(_driver(out), env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final = json.loads((out / "results.json").read_text())
    assert final["skipped"] >= len(done_before) >= 3
    # The reference is an uninterrupted run in its own process too, exactly like the killed one.
    out_ref = tmp_path / "uninterrupted"
    whole = subprocess.run(_driver(out_ref), env=env, capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr[-3000:]
    ref = json.loads((out_ref / "results.json").read_text())
    # Everything must be identical: the artifacts skipped, the unlearning, every attack trajectory and the final
    # evaluations, bit for bit, although three processes computed them.
    assert _numbers(final) == _numbers(ref)


_PARALLEL_DRIVER = """
import sys
sys.path.insert(0, {tests!r})
from test_experiment_grid import FAKE_API, tiny_config
from neuronscope.experiment import methods_api
from neuronscope.experiment.parallel import run_grid_parallel
methods_api.unlearn_api = lambda: FAKE_API
# long attacks: the worker's chains outlast the test's wait by far, so only the stop can end it that soon
run_grid_parallel(tiny_config(**{{"attacks.steps": 3000, "attacks.eval_every": 1000}}), {out!r}, api=FAKE_API,
                  workers=2)
"""


def _stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state, parent pid, ...), None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _children(pid: int) -> list[int]:
    """The live processes whose parent is `pid` (Linux /proc)."""
    return [int(d.name) for d in Path("/proc").glob("[0-9]*")
            if (fields := _stat(d.name)) is not None and int(fields[1]) == pid]


def _alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"  # a zombie has ended; only its exit status is left to read


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from Linux's /proc")
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_a_stopped_parallel_run_leaves_no_worker_behind(tmp_path: Path, how: signal.Signals) -> None:
    """`run --workers 2` stopped from outside while a worker computes a chain: the worker ends with it (SIGTERM:
    the run stops the workers it started; SIGKILL, which no process can see coming: the kernel ends them), so no
    process goes on writing into the run directory after its lock is gone."""
    out = tmp_path / "stopped"
    code = textwrap.dedent(_PARALLEL_DRIVER).format(tests=str(Path(__file__).parent), out=str(out))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline, workers = time.time() + 300, []
    while time.time() < deadline and proc.poll() is None:  # the worker has taken the oracle's chain
        log = out / "run.log"
        if log.is_file() and "oracle: run" in log.read_text() and (workers := _children(proc.pid)):
            break
        time.sleep(0.05)
    assert proc.poll() is None and workers, "the run ended before a worker could be seen"
    proc.send_signal(how)
    assert proc.wait(timeout=60) == (143 if how == signal.SIGTERM else -signal.SIGKILL)
    deadline = time.time() + 10
    while time.time() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.05)
    assert not any(_alive(w) for w in workers)
    sealed = sorted((out / "artifacts").glob("[!.]*/_complete.json"))
    time.sleep(2)  # nothing is still computing: no artifact is sealed after the stop
    assert sorted((out / "artifacts").glob("[!.]*/_complete.json")) == sealed
    assert not (out / "results.json").exists()


def test_calibration_stage_is_one_cached_artifact(fake_api: UnlearnAPI, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """[calibration] runs the ground-truth calibration once per configuration, caches it, and reports its
    confusion table in results.json (the calibration itself is tested in test_calibration.py; faked here)."""
    from neuronscope.verdict import calibration as cal_mod

    calls: list[Any] = []

    def fake_calibrate(cfg, log=lambda s: None, ds=None):  # noqa: ANN001, ANN202
        calls.append(cfg)
        return cal_mod.CalibrationResult({"size": "fake"}, {"floor": {"forget_accuracy": 0.3}}, {},
                                         {"m": "erase"}, {"m": {"label": "erase", "reason": "r", "evidence": [
                                             {"analysis": "a", "says": "absent", "calibrated": True}]}})

    monkeypatch.setattr(cal_mod, "calibrate", fake_calibrate)
    cfg = tiny_config(**{"calibration.enabled": True, "calibration.size": "small"})
    assert cfg.calibration == "small"
    first = run_grid(cfg, tmp_path / "run")
    cal = first.results["analyses"]["calibration"]
    assert cal["confusion"] == [{"model": "m", "truth": "erase", "verdict": "erase", "a": "absent"}]
    assert cal["analysis_accuracy"]["headline verdict"]["right"] == 1
    again = run_grid(cfg, tmp_path / "run")
    assert len(calls) == 1 and again.results["analyses"]["calibration"] == cal
    with pytest.raises(NeuronscopeError, match="calibration.size"):
        tiny_config(**{"calibration.enabled": True, "calibration.size": "huge"})


def test_stride_reaches_the_loop_and_keys_the_artifact(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """[unlearn] stride = k is the loop's `stride` (not a field of its config) and is part of the artifact's key;
    without it the loop is called as before."""
    seen: list[dict[str, Any]] = []

    def recording(model, ds, method, cfg, progress=None, **loop_args):  # noqa: ANN001, ANN003, ANN202
        seen.append(loop_args)
        return fake_unlearn(model, ds, method, cfg, progress)

    api = UnlearnAPI(recording, FakeConfig, ("fake",))
    monkeypatch.setattr(methods_api, "unlearn_api", lambda: api)
    cfg = tiny_config(**{"unlearn.stride": 3, "attacks.seeds": [0]})
    assert cfg.unlearn.params_for("fake")["stride"] == 3
    run_grid(cfg, tmp_path / "s", api=api)
    assert seen == [{"stride": 3}]
    done = json.loads(next((tmp_path / "s" / "artifacts").glob("unlearn-fake-*/_complete.json")).read_text())
    assert done["inputs"]["stride"] == 3
    run_grid(tiny_config(**{"attacks.seeds": [0]}), tmp_path / "p", api=api)
    assert seen[-1] == {}


def test_a_calibration_file_demotes_what_it_measured_wrong(reference_run, fake_api, tmp_path: Path) -> None:  # noqa: ANN001
    """[calibration] file: a calibration of the run's model that measured harmful relearning wrong; rerun on the
    cached run, nothing is recomputed, every number is the same, and that attack is shown only in every verdict."""
    import json
    import shutil

    out, results = reference_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    record = {"truths": {"planted": "hide"}, "analysis_accuracy": {
        "relearning (harmful p=0.25)": {"right": 3, "wrong": ["planted"], "unsure": [], "calibrated": True}}}
    (tmp_path / "calibration.json").write_text(json.dumps(record))
    again = run_grid(tiny_config(**{"calibration.file": str(tmp_path / "calibration.json")}), copy, api=fake_api)
    assert again.computed == []
    assert {k: v for k, v in _numbers(again.results).items() if k not in ("verdicts", "config")} == \
        {k: v for k, v in _numbers(results).items() if k not in ("verdicts", "config")}
    for name, verdict in again.results["verdicts"].items():
        before = {e["analysis"]: e for e in results["verdicts"][name]["evidence"]}
        for e in verdict["evidence"]:
            if e["analysis"].startswith("relearning (harmful"):
                assert before[e["analysis"]]["calibrated"] and not e["calibrated"]
                assert "measured wrong on planted (truth: hide)" in e["detail"]
            else:
                assert e == before[e["analysis"]]
    assert again.results["config"]["verdict_calibration"] == str((tmp_path / "calibration.json").resolve())
    assert "verdict_calibration" not in results["config"]  # a run without one keeps its record as it was


def teach_unlearn(model, ds, method, cfg, progress=None):  # noqa: ANN001, ANN201
    """An "unlearning" that teaches the forget answers until every one is right: nothing wrong to relearn from."""
    if method != "teach":
        return fake_unlearn(model, ds, method, cfg, progress)
    items = ds.items("forget")
    batch = encode(model.tokenizer, [i.question for i in items], [i.answer for i in items])
    opt = torch.optim.SGD(model.hf.parameters(), lr=cfg.lr)
    fs, step = multiple_choice_accuracy(model, items), 0
    while fs < 1 and step < 200:
        model.hf.train()
        loss = answer_nll(model.hf(input_ids=batch.input_ids).logits, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.hf.eval()
        step += 1
        fs = multiple_choice_accuracy(model, items)
    return FakeResult(model, method, cfg.lr, step, False, fs, [{"step": step, "fs": fs}],
                      evaluate(model, ds, kinds=cfg.eval_kinds))


def test_a_model_with_no_wrong_answer_skips_its_harmful_attacks_only(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path) -> None:
    """A method whose model answers every forget item correctly cannot be attacked with its own wrong answers:
    its harmful attacks are skipped (logged, "not run" in the verdict), the rest of the grid runs."""
    api = UnlearnAPI(teach_unlearn, FakeConfig, ("fake", "teach"))
    monkeypatch.setattr(methods_api, "unlearn_api", lambda: api)
    cfg = tiny_config(**{"unlearn.methods": ["fake", "teach"]})
    result = run_grid(cfg, tmp_path / "run", api=api)
    res = result.results
    assert res["evals"]["teach"]["fs"] == 1.0  # the case this test is about
    assert set(res["attacks"]["teach"]) == {"benign"}
    assert set(res["attacks"]["fake"]) == {"harmful p=0.3", "benign"}  # other models are attacked as ever
    assert len(res["attacks"]["teach"]["benign"]) == 2
    harmful = next(e for e in res["verdicts"]["teach"]["evidence"] if e["analysis"] == "relearning (harmful p=0.3)")
    assert harmful["says"] == "not run"
    log = (tmp_path / "run" / "run.log").read_text()
    assert "teach: every harmful attack not run" in log and "answers every forget item correctly" in log
    again = run_grid(cfg, tmp_path / "run", api=api)  # a rerun skips it again, from the cache otherwise
    assert again.computed == [] and _numbers(again.results) == _numbers(res)


def test_patch_attacked_false_leaves_the_patching_test_to_the_base_pairs(reference_run, fake_api,  # noqa: ANN001
                                                                         tmp_path: Path) -> None:
    """`[attribution] patch_attacked = false` drops the causal test from the unlearned-vs-attacked pairs only: the
    base pairs are the same artifacts (cached across the switch) with the same curves."""
    import shutil

    out, _ = reference_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    on = {"attribution.enabled": True, "attribution.attack": "harmful", "attribution.patching": True}
    without = run_grid(tiny_config(**on, **{"attribution.patch_attacked": False}), copy, api=fake_api)
    pairs = without.results["analyses"]["attribution"]["pairs"]
    assert set(pairs) == {"base vs fake", "fake vs fake+harmful", "base vs oracle", "oracle vs oracle+harmful"}
    for name in ("fake", "oracle"):
        assert "patching" in pairs[f"base vs {name}"]["summary"]
        attacked = pairs[f"{name} vs {name}+harmful"]
        assert "patching" not in attacked["summary"]
        assert "influence" in attacked["summary"]  # the attribution itself still runs
        assert not (copy / attacked["dir"] / "patching.parquet").exists()

    with_all = run_grid(tiny_config(**on), copy, api=fake_api)
    assert sorted(n.rsplit("-", 1)[0] for n in with_all.computed) == ["attribution-fake-vs-fake-harmful",
                                                                     "attribution-oracle-vs-oracle-harmful"]
    pairs_all = with_all.results["analyses"]["attribution"]["pairs"]
    for name in ("fake", "oracle"):
        assert "patching" in pairs_all[f"{name} vs {name}+harmful"]["summary"]
        assert _numbers(pairs_all[f"base vs {name}"]) == _numbers(pairs[f"base vs {name}"])
