"""The one exception type that carries a message a user can act on."""


class PromptLabError(Exception):
    """A problem the user can fix; its message is shown as it is, without a traceback."""
