"""The machine's state is the user's to fix, not a bug: a full or read-only output path and an unreadable
checkpoint are each one `error:` line and exit code 2, with nothing half-written left behind.

The disk-full and read-only cases run the real command on a small tmpfs, mounted in a private user and mount
namespace (`unshare -Urm`) so no privileges are needed; where the machine does not allow that, the same commands
run with the write failing by a simulated ENOSPC / EROFS instead.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_experiment_grid import TINY_TOML
from typer.testing import CliRunner

from neuronscope.cli import app

runner = CliRunner()

DRIVER = """
import sys
sys.path.insert(0, {tests!r})
from test_experiment_grid import FAKE_API
from neuronscope.experiment import grid
from neuronscope.experiment import methods_api
methods_api.unlearn_api = lambda: FAKE_API
from neuronscope.cli import main
sys.argv = ["neuronscope", *sys.argv[1:]]
main()
"""

# mount a tmpfs of size $1 on $2 (read-only if $3 = ro), run the command, then list what it left on the tmpfs
MOUNT = ('mount -t tmpfs -o size="$1" tmpfs "$2" || exit 97; if [ "$3" = ro ]; then mount -o remount,ro "$2" '
         '|| exit 97; fi; listing="$4"; mnt="$2"; shift 4; "$@"; rc=$?; ls -A "$mnt" > "$listing"; exit $rc')


def _tmpfs_allowed(tmp: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-Urm", "sh", "-c", MOUNT, "sh", "16k", str(tmp), "ro", str(tmp / "ls"),
                            "true"], capture_output=True)
    return probe.returncode == 0


@pytest.fixture(scope="module")
def tmpfs(tmp_path_factory: pytest.TempPathFactory) -> bool:
    d = tmp_path_factory.mktemp("probe")
    (d / "mnt").mkdir()
    return _tmpfs_allowed(d / "mnt")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    return {**env, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def _on_tmpfs(tmp: Path, size: str, mode: str, args: list[str]) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run `neuronscope ARGS` (fake unlearning methods) with a tmpfs on tmp/mnt: (result, what it left there)."""
    driver = tmp / "driver.py"
    driver.write_text(textwrap.dedent(DRIVER).format(tests=str(Path(__file__).parent)))
    (tmp / "mnt").mkdir(exist_ok=True)
    listing = tmp / "left.txt"
    result = subprocess.run(["unshare", "-Urm", "sh", "-c", MOUNT, "sh", size, str(tmp / "mnt"), mode, str(listing),
                             sys.executable, str(driver), *args], env=_env(), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode != 97, result.stderr
    return result, listing.read_text().split()


def _one_error_line(text: str, *needles: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), text[-3000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _simulate(monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    """Every atomic write fails as the full or read-only disk would make it fail."""
    import neuronscope.io as io_mod

    def failing(path, text):  # noqa: ANN001, ANN202
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(io_mod, "write_text", failing)


@pytest.mark.parametrize("mode,code,reason", [("rw", errno.ENOSPC, "No space left on device"),
                                              ("ro", errno.EROFS, "Read-only file system")])
def test_full_or_read_only_run_directory(tmpfs: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str,
                                         code: int, reason: str) -> None:
    (tmp_path / "grid.toml").write_text(TINY_TOML)
    out = tmp_path / "mnt" / "run"
    args = ["run", str(tmp_path / "grid.toml"), "--out", str(out)]
    if tmpfs:
        result, left = _on_tmpfs(tmp_path, "24k", mode, args)
        assert result.returncode == 2, result.stderr[-3000:]
        _one_error_line(result.stderr, reason)
        assert "Traceback" not in result.stderr + result.stdout
        assert not [name for name in left if name.endswith(".tmp")]
        if mode == "rw":  # the run directory itself was made; no half-written file was left in it or above it
            assert left == ["run"]
    else:
        from test_experiment_grid import FAKE_API

        from neuronscope.experiment import methods_api

        monkeypatch.setattr(methods_api, "unlearn_api", lambda: FAKE_API)
        _simulate(monkeypatch, code)
        result = runner.invoke(app, args)
        assert result.exit_code == 2
        _one_error_line(result.output, reason)


def test_unlearn_onto_a_full_disk(tmpfs: bool, tiny_ckpt: Path, tiny_world_dir: Path, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The tiny checkpoint's weights (~450 kB) do not fit a 128 kB tmpfs: the unlearned model cannot be saved."""
    out = tmp_path / "mnt" / "unlearned"
    args = ["unlearn", "--method", "ga", "--max-steps", "1", "--ckpt", str(tiny_ckpt), "--data", str(tiny_world_dir),
            "--out", str(out)]
    if tmpfs:
        result, left = _on_tmpfs(tmp_path, "128k", "rw", args)
        assert result.returncode == 2, result.stderr[-3000:]
        _one_error_line(result.stderr, "cannot write the weights")
        assert left == []  # the temporary checkpoint directory was removed
    else:
        import transformers

        def full(self, directory, **kwargs):  # noqa: ANN001, ANN003, ANN202
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(directory))

        monkeypatch.setattr(transformers.PreTrainedModel, "save_pretrained", full)
        result = runner.invoke(app, args)
        assert result.exit_code == 2
        _one_error_line(result.output, "No space left on device")
        assert not out.exists() and list(out.parent.iterdir()) == []


@pytest.mark.parametrize("damage", ["half", "header", "empty"])
def test_eval_of_a_truncated_checkpoint(tiny_ckpt: Path, tiny_world_dir: Path, tmp_path: Path, damage: str) -> None:
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_ckpt, ckpt)
    weights = ckpt / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes({"half": data[:len(data) // 2], "header": data[:5], "empty": b""}[damage])
    result = runner.invoke(app, ["eval", "--ckpt", str(ckpt), "--data", str(tiny_world_dir)])
    assert result.exit_code == 2, result.output
    _one_error_line(result.output, str(ckpt), "cannot read the weights")


def test_unreadable_config_is_one_line(tiny_ckpt: Path, tiny_world_dir: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_ckpt, ckpt)
    (ckpt / "config.json").write_bytes(b"\xff\xfe\x00garbage")
    result = runner.invoke(app, ["eval", "--ckpt", str(ckpt), "--data", str(tiny_world_dir)])
    assert result.exit_code == 2, result.output
    _one_error_line(result.output, "config.json")
