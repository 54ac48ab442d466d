"""One exception type for user mistakes.

The CLI turns a NeuronscopeError into one line on stderr and a non-zero exit; anything else is a bug and
keeps its traceback.
"""


from collections.abc import Callable


class NeuronscopeError(Exception):
    """A problem with the user's input (file, field, flag), stated in one line."""


class SettingError(NeuronscopeError):
    """A bad value of one setting. `text(name)` is the message with the setting called `name`, so a caller can name
    it as its user knows it (``--batch-size``, ``attribution.batch_size``); str() names the setting itself."""

    def __init__(self, setting: str, text: Callable[[str], str]) -> None:
        self.setting, self.text = setting, text
        super().__init__(text(setting))

    def named(self, name: str) -> NeuronscopeError:
        return NeuronscopeError(self.text(name))
