"""`--track`: losses, FS/RS/US curves and Table 1 through a real TensorBoard writer, read back from its event files;
MLflow and W&B through their own libraries too; a missing library is one error line."""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from neuronscope.cli import app
from neuronscope.tracking import check_tracker, markdown_table

runner = CliRunner()
pytest.importorskip("tensorboard")


def _events(logdir: Path):  # noqa: ANN202
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def _scalars(acc, tag: str) -> dict[int, float]:  # noqa: ANN001
    return {e.step: e.value for e in acc.Scalars(tag)}


def test_unlearn_track_tensorboard_logs_the_curve_it_wrote(tiny_ckpt: Path, tiny_world_dir: Path,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "u"
    result = runner.invoke(app, ["unlearn", "--method", "gd", "--ckpt", str(tiny_ckpt), "--data", str(tiny_world_dir),
                                 "--out", str(out), "--max-steps", "5", "--lr", "1e-3", "--track", "tensorboard"])
    assert result.exit_code == 0, result.output
    acc = _events(out / "tensorboard")
    curve = list(csv.DictReader((out / "unlearn_curve.csv").open()))
    losses = {int(r["step"]): float(r["loss"]) for r in curve if r.get("loss")}
    assert losses and _scalars(acc, "unlearn/gd/loss") == pytest.approx(losses, rel=1e-6)
    fs = {int(r["step"]): float(r["fs"]) for r in curve if r.get("fs")}
    assert _scalars(acc, "unlearn/gd/fs") == pytest.approx(fs, rel=1e-6)
    summary = json.loads((out / "neuronscope_unlearn.json").read_text())
    for k in ("fs", "rs", "us"):
        assert _scalars(acc, f"eval/gd/{k}")[0] == pytest.approx(summary[k], rel=1e-6)


def test_grid_track_tensorboard_logs_scores_attacks_and_table(small_run: tuple[Path, str], tmp_path: Path) -> None:
    """The small demo again, all cached, with --track: everything is read back from the run's artifacts."""
    run_dir = tmp_path / "small"
    shutil.copytree(small_run[0], run_dir)
    result = runner.invoke(app, ["demo", "--profile", "small", "--out", str(run_dir), "--track", "tensorboard"])
    assert result.exit_code == 0, result.output
    results = json.loads((run_dir / "results.json").read_text())
    acc = _events(run_dir / "tensorboard")
    for model, ev in results["evals"].items():
        for k in ("fs", "rs", "us"):
            assert _scalars(acc, f"eval/{model}/{k}")[0] == pytest.approx(ev[k], rel=1e-6)
    for method, run in results["unlearn"].items():
        losses = {r["step"]: r["loss"] for r in run["curve"] if r.get("loss") is not None}
        assert _scalars(acc, f"unlearn/{method}/loss") == pytest.approx(losses, rel=1e-6)
    first = results["attacks"]["ga"]["benign"][0]
    tag = f"attack/ga/benign/lr{first['lr']:g}/seed{first['seed']}"
    assert _scalars(acc, f"{tag}/fs") == pytest.approx({p["step"]: p["fs"] for p in first["trajectory"]},
                                                       rel=1e-6)
    attack_json = json.loads((run_dir / "artifacts" / first["artifact"] / "attack.json").read_text())
    assert len(_scalars(acc, f"{tag}/loss")) == len(attack_json["losses"]) > 0
    assert "table/text_summary" in acc.Tags()["tensors"]  # Table 1 as text
    assert _scalars(acc, "table/base/FS")[0] == pytest.approx(results["evals"]["base"]["fs"], rel=1e-6)


@pytest.mark.parametrize("kind", ["wandb", "mlflow"])
def test_missing_tracker_library_is_one_error_line(kind: str, tiny_ckpt: Path, tiny_world_dir: Path,
                                                   tmp_path: Path, monkeypatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        return None if name == kind else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)  # as on a machine without the extra
    out = tmp_path / "u"
    result = runner.invoke(app, ["unlearn", "--method", "ga", "--ckpt", str(tiny_ckpt), "--data",
                                 str(tiny_world_dir), "--out", str(out), "--track", kind])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"error: --track {kind}: the {kind} package is not installed; pip install "
                     f"'neuronscope[{kind}]'"]
    assert not out.exists()


def test_check_tracker_names_the_choices() -> None:
    check_tracker(None)
    check_tracker("tensorboard")
    from neuronscope.errors import NeuronscopeError

    with pytest.raises(NeuronscopeError, match="--track must be one of tensorboard, wandb, mlflow, got 'csv'"):
        check_tracker("csv")


def test_markdown_table() -> None:
    assert markdown_table([{"method": "ga", "FS": 0.25}, {"method": "gd", "RS": 1.0}]) == (
        "| method | FS | RS |\n|---|---|---|\n| ga | 0.250 |  |\n| gd |  | 1.000 |")


def test_attack_track_tensorboard_logs_each_trajectory(tiny_ckpt: Path, tiny_world_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "a"
    result = runner.invoke(app, ["attack", "--kind", "benign", "--ckpt", str(tiny_ckpt), "--data", str(tiny_world_dir),
                                 "--out", str(out), "--seeds", "1", "--steps", "4", "--eval-every", "2",
                                 "--track", "tensorboard"])
    assert result.exit_code == 0, result.output
    run = json.loads((out / "attack-benign-lr0.001-seed0.json").read_text())
    acc = _events(out / "tensorboard")
    tag = "attack/benign-lr0.001-seed0"
    assert _scalars(acc, f"{tag}/fs") == pytest.approx({p["step"]: p["fs"] for p in run["trajectory"]}, rel=1e-6)
    assert _scalars(acc, f"{tag}/loss") == pytest.approx(dict(enumerate(run["losses"], start=1)), rel=1e-5)
    assert _scalars(acc, "attack/lr0.001/max_fs_mean")[0] == pytest.approx(run["max_fs"], rel=1e-6)


def _unlearn_tracked(kind: str, ckpt: Path, data: Path, out: Path) -> tuple[dict[int, float], dict[int, float], dict]:
    """`unlearn --track kind`; returns the loss and fs curves and the summary the command wrote itself."""
    result = runner.invoke(app, ["unlearn", "--method", "gd", "--ckpt", str(ckpt), "--data", str(data),
                                 "--out", str(out), "--max-steps", "4", "--lr", "1e-3", "--track", kind])
    assert result.exit_code == 0, result.output
    curve = list(csv.DictReader((out / "unlearn_curve.csv").open()))
    losses = {int(r["step"]): float(r["loss"]) for r in curve if r.get("loss")}
    fs = {int(r["step"]): float(r["fs"]) for r in curve if r.get("fs")}
    assert losses and fs
    return losses, fs, json.loads((out / "neuronscope_unlearn.json").read_text())


def test_unlearn_track_mlflow_logs_the_curve_it_wrote(tiny_ckpt: Path, tiny_world_dir: Path, tmp_path: Path) -> None:
    """Through MLflow itself: its SQLite store read back with MLflow's own client."""
    pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    from mlflow.tracking import MlflowClient

    out = tmp_path / "u"
    losses, fs, summary = _unlearn_tracked("mlflow", tiny_ckpt, tiny_world_dir, out)
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    exp = client.get_experiment_by_name("neuronscope")
    (run,) = client.search_runs([exp.experiment_id])

    def history(key: str) -> dict[int, float]:
        return {m.step: m.value for m in client.get_metric_history(run.info.run_id, key)}

    assert history("unlearn/gd/loss") == pytest.approx(losses, rel=1e-6)
    assert history("unlearn/gd/fs") == pytest.approx(fs, rel=1e-6)
    for k in ("fs", "rs", "us"):
        assert history(f"eval/gd/{k}")[0] == pytest.approx(summary[k], rel=1e-6)
    assert json.loads(run.data.params["lr"]) == pytest.approx(1e-3)
    assert not (out / "mlruns").exists()  # MLflow 3 refuses the old file store: nothing is written there


def test_unlearn_track_wandb_writes_an_offline_run(tiny_ckpt: Path, tiny_world_dir: Path, tmp_path: Path,
                                                   monkeypatch) -> None:
    """Through W&B itself, offline: the run's summary holds the last logged values; its files stay under --out."""
    pytest.importorskip("wandb")
    import wandb

    monkeypatch.delenv("WANDB_MODE", raising=False)
    finished = []
    real_finish = wandb.sdk.wandb_run.Run.finish

    def finish(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        finished.append({k: self.summary[k] for k in self.summary.keys()})  # noqa: SIM118 (no __iter__)
        return real_finish(self, *args, **kwargs)

    monkeypatch.setattr(wandb.sdk.wandb_run.Run, "finish", finish)
    out = tmp_path / "u"
    losses, fs, summary = _unlearn_tracked("wandb", tiny_ckpt, tiny_world_dir, out)
    (last,) = finished
    assert last["unlearn/gd/loss"] == pytest.approx(losses[max(losses)], rel=1e-6)
    assert last["unlearn/gd/fs"] == pytest.approx(fs[max(fs)], rel=1e-6)
    for k in ("fs", "rs", "us"):
        assert last[f"eval/gd/{k}"] == pytest.approx(summary[k], rel=1e-6)
    (run_dir,) = (out / "wandb").glob("offline-run-*")
    assert [f.stat().st_size > 0 for f in run_dir.glob("run-*.wandb")] == [True]
