"""Progress off a terminal (neuronscope.progress): periodic plain lines with totals and an ETA, never a flood; and
`--help` without torch or transformers."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from neuronscope.cli import app
from neuronscope.progress import LoggedProgress, duration, eta_seconds, step_total

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_eta_is_the_average_rate_applied_to_what_is_left() -> None:
    assert eta_seconds(25, 100, 50.0) == 150.0  # 25 steps in 50 s: 75 left at 2 s each
    assert eta_seconds(0, 100, 5.0) is None and eta_seconds(3, None, 5.0) is None
    assert eta_seconds(120, 100, 10.0) == 0.0
    assert [duration(s) for s in (7.3, 125, 3725)] == ["7s", "2m05s", "1h02m"]
    assert step_total(100, 32, 3) == 12 and step_total(96, 32, 3) == 9


def test_plain_lines_every_interval_with_total_and_eta() -> None:
    """Off a terminal: one line per interval however many updates, each with done/total, percent and ETA."""
    clock, buf = Clock(), io.StringIO()
    bar = LoggedProgress(console=Console(file=io.StringIO(), force_terminal=False), interval=30.0,
                         lines=Console(file=buf, width=200), clock=clock)
    task = bar.add_task("unlearning ga", total=500, unit="steps", bound=True)
    for step in range(1, 301):  # 300 updates over 150 s
        clock.t = step * 0.5
        bar.update(task, completed=step, info=f"loss {1 / step:.3f}")
    lines = buf.getvalue().splitlines()
    assert len(lines) == 5  # at 30, 60, 90, 120, 150 s: not one per update
    assert re.fullmatch(r"\[30s\] unlearning ga: 60/500 steps \(12%\), ETA \d+m\d\ds \(at most\) \| loss 0\.017",
                        lines[0]), lines[0]
    assert "ETA 3m40s" in lines[0] and "ETA 1m40s" in lines[-1]  # 200 steps left at 0.5 s each


def test_no_plain_lines_on_a_terminal() -> None:
    buf = io.StringIO()
    bar = LoggedProgress(console=Console(file=io.StringIO(), force_terminal=True), interval=0.0,
                         lines=Console(file=buf))
    task = bar.add_task("x", total=3)
    for i in range(3):
        bar.update(task, completed=i + 1)
    assert buf.getvalue() == ""


def test_unlearn_in_a_log_prints_progress_lines_on_stderr(tiny_ckpt: Path, tiny_world_dir: Path, tmp_path: Path,
                                                          monkeypatch) -> None:
    """Issue case: `unlearn` with its output in a file printed nothing for minutes. Now a line with the step total
    and an ETA (here every update: NEURONSCOPE_PROGRESS_SECONDS=0), on stderr, so --json stays parseable."""
    monkeypatch.setenv("NEURONSCOPE_PROGRESS_SECONDS", "0")
    result = runner.invoke(app, ["unlearn", "--method", "ga", "--ckpt", str(tiny_ckpt), "--data", str(tiny_world_dir),
                                 "--out", str(tmp_path / "u"), "--max-steps", "4", "--lr", "1e-5", "--json"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if "unlearning (ga)" in line]
    assert lines and all(re.search(r"unlearning \(ga\): [1-4]/4 steps \(\d+%\)", line) for line in lines), lines
    assert any("ETA" in line for line in lines)
    import json

    assert json.loads(result.stdout)["method"] == "ga"


def test_bad_progress_interval_is_one_error_line(tiny_ckpt: Path, tiny_world_dir: Path, tmp_path: Path,
                                                 monkeypatch) -> None:
    monkeypatch.setenv("NEURONSCOPE_PROGRESS_SECONDS", "often")
    result = runner.invoke(app, ["unlearn", "--method", "ga", "--ckpt", str(tiny_ckpt), "--data", str(tiny_world_dir),
                                 "--out", str(tmp_path / "u"), "--max-steps", "1"])
    assert result.exit_code == 2 and "NEURONSCOPE_PROGRESS_SECONDS must be a number" in result.stderr


def _commands() -> list[str]:
    import typer

    return sorted(typer.main.get_command(app).commands)


@pytest.mark.parametrize("command", ["", *_commands()])
def test_help_imports_neither_torch_nor_transformers(command: str) -> None:
    """`neuronscope --help` took 5-13 s importing torch and transformers; the command modules now import them
    inside the commands, and no command's --help loads them either (`unlearn --help` points to `neuronscope
    methods` instead of reading the method registry). Checked by what is imported, not by a wall-clock time."""
    argv = ["neuronscope", *([command] if command else []), "--help"]
    code = (f"import sys; from neuronscope.cli import main; sys.argv = {argv!r}\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('HEAVY', sorted(m for m in ('torch', 'transformers', 'transformer_lens', 'pandas', 'plotly') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout, out.stdout[-500:]
    assert "Usage" in out.stdout
    if not command:
        assert "unlearn" in out.stdout and "train-base" in out.stdout


def test_train_base_defaults_match_the_recipe() -> None:
    """The CLI writes BaseTrainConfig's and ToyConfig's defaults out (to keep --help light): they must agree."""
    from neuronscope.base_model import BaseTrainConfig
    from neuronscope.cli.base_commands import TRAIN_DEFAULTS
    from neuronscope.models.toy import ToyConfig

    b, t = BaseTrainConfig(), ToyConfig()
    assert {"lr": b.lr, "max_epochs": b.max_epochs, "d_model": t.d_model, "n_layers": t.n_layers,
                              "n_heads": t.n_heads, "d_mlp": t.d_mlp} == TRAIN_DEFAULTS


def test_library_loads_and_saves_draw_no_transformers_bars(tiny_ckpt: Path, tmp_path: Path, capsys) -> None:
    """In a notebook every grid load and save drew transformers' tqdm bars; they are off inside neuronscope's
    load_model and Model.save, and the caller's setting is restored."""
    from transformers.utils import logging as hf_logging

    from neuronscope.models.handle import load_model

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.enable_progress_bar()
    try:
        load_model(tiny_ckpt, bridge=False).save(tmp_path / "copy")
        assert hf_logging.is_progress_bar_enabled()
    finally:
        if not was:
            hf_logging.disable_progress_bar()
    err = capsys.readouterr().err
    assert "Loading weights" not in err and "Writing model shards" not in err, err


def test_a_line_comes_even_when_nothing_updates() -> None:
    """A long stretch without updates (a final evaluation) still shows the run alive in a log."""
    import time

    buf = io.StringIO()
    with LoggedProgress(console=Console(file=io.StringIO(), force_terminal=False), interval=0.2,
                        lines=Console(file=buf, width=200)) as bar:
        bar.add_task("evaluating", total=10, unit="splits")
        time.sleep(0.9)
    lines = buf.getvalue().splitlines()
    assert 2 <= len(lines) <= 5 and all("evaluating: 0/10 splits (0%)" in line for line in lines), lines


def test_a_task_of_unequal_units_shows_no_eta() -> None:
    """The grid's stages differ by 100x in length: their count gets no ETA (it read "3h02m" for a 20-minute run);
    the current stage's steps keep theirs."""
    clock, buf = Clock(), io.StringIO()
    bar = LoggedProgress(console=Console(file=io.StringIO(), force_terminal=False), interval=1.0,
                         lines=Console(file=buf, width=200), clock=clock)
    stages = bar.add_task("grid", total=94, unit="stages", eta=False)
    steps = bar.add_task("unlearning ga", total=500, unit="steps")
    bar.update(steps, completed=25)  # at t = 0: no line yet
    clock.t = 10.0
    bar.update(stages, completed=3)
    assert buf.getvalue().strip() == ("[10s] grid: 3/94 stages (3%) ; unlearning ga: 25/500 steps (5%), ETA 3m10s")


def test_a_second_run_on_one_step_bar_is_shown_again() -> None:
    """An lr search runs the loop once per rate on the same bar: after the first run filled it, the next run's
    steps must show again (a finished task is hidden from the plain progress lines)."""
    from rich.console import Console

    from neuronscope.progress import LoggedProgress, describe, step_callback

    bar = LoggedProgress(console=Console(file=io.StringIO(), force_terminal=False), interval=0)
    task = bar.add_task("unlearning ga", total=30, unit="steps")
    cb = step_callback(bar, task)
    for step in range(1, 31):
        cb(step, {"loss": 1.0})
    assert bar.tasks[0].finished
    cb(2, {"loss": 0.5})
    assert not bar.tasks[0].finished and bar.tasks[0].visible
    assert describe(bar.tasks[0]).startswith("unlearning ga: 2/30 steps (7%)")
