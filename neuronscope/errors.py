"""One exception type for user mistakes.

The CLI turns a NeuronscopeError into one line on stderr and a non-zero exit; anything else is a bug and
keeps its traceback.
"""


from collections.abc import Callable


class NeuronscopeError(Exception):
    """A problem with the user's input (file, field, flag), stated in one line."""


class SettingError(NeuronscopeError):
    """A bad value of one named setting. The library names the setting (`lr`, `batch_size`); the layer that read
    it (a CLI flag, a TOML key) re-words it with `named`, so the user sees the name they wrote.

    `problem` is what follows the name ("must be a positive number, got 0"), or a function of the name for a
    message that names it elsewhere ("... lower batch_size")."""

    def __init__(self, setting: str, problem: str | Callable[[str], str]) -> None:
        self.setting = setting
        self.text: Callable[[str], str] = problem if callable(problem) else (lambda name: f"{name} {problem}")
        super().__init__(self.text(setting))

    def named(self, name: str) -> NeuronscopeError:
        """The same message about `name` (e.g. `--lr`, `small.toml: unlearn.lr`)."""
        return NeuronscopeError(self.text(name))
