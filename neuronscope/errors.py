"""One exception type for user mistakes.

The CLI turns a NeuronscopeError into one line on stderr and a non-zero exit; anything else is a bug and
keeps its traceback.
"""


class NeuronscopeError(Exception):
    """A problem with the user's input (file, field, flag), stated in one line."""
