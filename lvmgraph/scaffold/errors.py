"""The one error ``lvmgraph new`` raises: its message names what is wrong and how to fix it."""


class ScaffoldError(ValueError):
    """A name or path ``lvmgraph new`` cannot use; nothing has been written."""
