"""The output-directory rule: a command never deletes or overwrites what neuronscope did not write.

The cases are real files in a temporary directory, given to the real commands; each refusal is checked to leave
every byte where it was, with exit code 2 and one `error:` line.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from neuronscope.cli import app
from neuronscope.errors import NeuronscopeError
from neuronscope.outdir import MARKER, check_output, is_marked, open_output

runner = CliRunner()


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file (bytes) and directory (None) under `root`, by relative path."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def user_files(d: Path) -> Path:
    """A directory holding a user's own notes and thesis (not written by neuronscope)."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "my_notes.txt").write_text("do not lose me\n")
    (d / "thesis").mkdir()
    (d / "thesis" / "chapter1.tex").write_bytes(b"\\chapter{One}\n" * 50)
    return d


def refused(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert message in lines[0], lines[0]


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_unlearn_into_a_users_directory_deletes_nothing(tiny_ckpt: Path, tiny_world_dir: Path, tmp_path: Path,
                                                        overwrite: list[str]) -> None:
    out = user_files(tmp_path / "DIR")
    before = snapshot(tmp_path)
    refused(["unlearn", "--method", "ga", "--ckpt", str(tiny_ckpt), "--data", str(tiny_world_dir), "--out", str(out),
             *overwrite], "was not written by neuronscope")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_unlearn_out_above_its_input_checkpoint(tiny_ckpt: Path, tiny_world_dir: Path, tmp_path: Path,
                                                overwrite: list[str]) -> None:
    shutil.copytree(tiny_ckpt, tmp_path / "sb" / "ck" / "base")
    before = snapshot(tmp_path)
    refused(["unlearn", "--method", "ga", "--ckpt", str(tmp_path / "sb/ck/base"), "--data", str(tiny_world_dir),
             "--out", str(tmp_path / "sb/ck"), *overwrite], "contains the input")
    refused(["unlearn", "--method", "ga", "--ckpt", str(tmp_path / "sb/ck/base"), "--data", str(tiny_world_dir),
             "--out", str(tmp_path / "sb/ck/base"), *overwrite], "is the input")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_prepare_out_above_its_source_data(tiny_world_dir: Path, tmp_path: Path, overwrite: list[str]) -> None:
    shutil.copytree(tiny_world_dir, tmp_path / "sb" / "data" / "world")
    before = snapshot(tmp_path)
    refused(["prepare", "--data", str(tmp_path / "sb/data/world"), "--out", str(tmp_path / "sb/data"), *overwrite],
            "contains the input")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_unlearn_out_dot_leaves_the_working_directory(tiny_ckpt: Path, tiny_world_dir: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch, overwrite: list[str]) -> None:
    cwd = user_files(tmp_path / "work")
    monkeypatch.chdir(cwd)
    before = snapshot(tmp_path)
    refused(["unlearn", "--method", "ga", "--ckpt", str(tiny_ckpt), "--data", str(tiny_world_dir), "--out", ".",
             *overwrite], "working directory")
    refused(["unlearn", "--method", "ga", "--ckpt", str(tiny_ckpt), "--data", str(tiny_world_dir), "--out", "..",
             *overwrite], "working directory")
    assert snapshot(tmp_path) == before


def test_train_base_and_finetune_refuse_a_users_directory(tiny_ckpt: Path, tiny_world_dir: Path,
                                                          tmp_path: Path) -> None:
    out = user_files(tmp_path / "DIR")
    before = snapshot(tmp_path)
    refused(["train-base", "--out", str(out), "--data", str(tiny_world_dir), "--overwrite"],
            "was not written by neuronscope")
    refused(["finetune", "--ckpt", str(tiny_ckpt), "--data", str(tiny_world_dir), "--out", str(out), "--overwrite"],
            "was not written by neuronscope")
    refused(["world", "--out", str(out), "--people", "16"], "was not written by neuronscope")
    assert snapshot(tmp_path) == before


def test_train_base_refuses_a_users_world_directory(tmp_path: Path) -> None:
    """Without --data, train-base writes the world next to --out: that directory is checked as well."""
    user_files(tmp_path / "ckpt-world")
    before = snapshot(tmp_path)
    refused(["train-base", "--out", str(tmp_path / "ckpt")], "the world directory of --out")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command", ["unlearn", "train-base", "attack", "lens", "attribute"])
def test_out_naming_an_existing_file_is_refused_before_any_work(command: str, tiny_ckpt: Path, tiny_world_dir: Path,
                                                               tmp_path: Path) -> None:
    target = tmp_path / "results.txt"
    target.write_text("precious\n")
    args = {"unlearn": ["unlearn", "--method", "ga", "--ckpt", str(tiny_ckpt)],
            "train-base": ["train-base"],
            "attack": ["attack", "--kind", "benign", "--ckpt", str(tiny_ckpt)],
            "lens": ["lens", "--ckpt", str(tiny_ckpt)],
            "attribute": ["attribute", "--ckpt", str(tiny_ckpt)]}[command]
    refused([*args, "--data", str(tiny_world_dir), "--out", str(target)], "is an existing file")
    assert target.read_text() == "precious\n" and [p.name for p in tmp_path.iterdir()] == ["results.txt"]


def test_overwrite_replaces_only_neuronscopes_own_output(tiny_ckpt: Path, tiny_world_dir: Path,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "unlearned"
    args = ["unlearn", "--method", "ga", "--ckpt", str(tiny_ckpt), "--data", str(tiny_world_dir), "--out", str(out),
            "--max-steps", "1", "--json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert is_marked(out) and (out / "model.safetensors").is_file()
    (out / "stale.txt").write_text("from before")
    before = snapshot(out)
    refused(args, "pass --overwrite")  # an earlier output: kept unless asked
    assert snapshot(out) == before
    second = runner.invoke(app, [*args, "--overwrite"])
    assert second.exit_code == 0, second.output
    assert is_marked(out) and not (out / "stale.txt").exists() and (out / "model.safetensors").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unlearned"]  # no temporary leftovers


def test_check_and_open_output(tmp_path: Path) -> None:
    assert check_output(tmp_path / "new") == tmp_path / "new"  # absent: fine, and nothing is created
    assert not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()
    check_output(tmp_path / "empty")
    open_output(tmp_path / "empty", "test")
    assert (tmp_path / "empty" / MARKER).is_file()
    (tmp_path / "empty" / "a.csv").write_text("1")
    with pytest.raises(NeuronscopeError, match="pass --overwrite"):
        check_output(tmp_path / "empty")
    check_output(tmp_path / "empty", resume=True)  # a run directory continues
    open_output(check_output(tmp_path / "empty", overwrite=True), "test", replace=True)
    assert sorted(p.name for p in (tmp_path / "empty").iterdir()) == [MARKER]
    mine = user_files(tmp_path / "mine")
    with pytest.raises(NeuronscopeError, match="not written by neuronscope"):
        open_output(mine, "test", replace=True)  # even a caller that skipped the check cannot take it over
    assert not is_marked(mine) and (mine / "my_notes.txt").is_file()


def test_a_run_directory_from_before_markers_is_resumed(tmp_path: Path) -> None:
    """`make demo` on a checkout whose runs/demo predates the marker resumes it; one name more and it is foreign."""
    run = tmp_path / "demo"
    (run / "artifacts" / "data-0123").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (run / "run.log").write_text("")
    (run / ".results.json.x1.tmp").write_text("half")
    with pytest.raises(NeuronscopeError, match="not written by neuronscope"):
        check_output(run)  # only as a run directory
    open_output(check_output(run, resume=True), "run")
    assert is_marked(run)
    other = tmp_path / "other"
    shutil.copytree(run, other)
    (other / MARKER).unlink()
    (other / "my_notes.txt").write_text("mine")
    with pytest.raises(NeuronscopeError, match="not written by neuronscope"):
        check_output(other, resume=True)


def test_a_failed_command_removes_only_the_empty_output_it_created(tmp_path: Path) -> None:
    from neuronscope.outdir import discard_empty_outputs

    fresh, filled = open_output(tmp_path / "fresh", "attribute"), open_output(tmp_path / "filled", "attribute")
    (filled / "partial.parquet").write_text("x")
    empty_before = tmp_path / "empty_before"
    empty_before.mkdir()
    open_output(empty_before, "attribute")  # existed (empty) before: the user's directory, kept
    assert discard_empty_outputs() == [fresh]
    assert not fresh.exists() and (filled / "partial.parquet").is_file() and empty_before.is_dir()
    assert discard_empty_outputs() == []


def test_attribute_with_an_item_past_the_context_leaves_no_output(tiny_ckpt: Path, tiny_world_dir: Path,
                                                                   tmp_path: Path) -> None:
    """The item is checked once the model is loaded (its context is the model's); the marked --out created before
    that is removed again, and the lens refuses the same item with its own line."""
    import json

    data = Path(shutil.copytree(tiny_world_dir, tmp_path / "data"))
    rows = [json.loads(line) for line in (data / "forget.jsonl").read_text().splitlines()]
    rows[0]["question"] = " ".join([rows[1]["question"]] * 200)
    (data / "forget.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for args in (["attribute", "--ckpt", str(tiny_ckpt), "--base", str(tiny_ckpt)], ["lens", "--ckpt", str(tiny_ckpt)]):
        out = tmp_path / f"out-{args[0]}"
        result = runner.invoke(app, [*args, "--data", str(data), "--out", str(out)])
        assert result.exit_code == 2, result.output
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith(f"error: item '{rows[0]['id']}' is ") and "context" in lines[0]
        assert not out.exists()
