"""The one base class of errors a user can cause and fix, and nothing else.

A bad audio file, a bad corpus or option, leaky splits, a run that is missing, locked or corrupted: each error
class of core that a user's input can raise derives from `UserError`. The CLI prints one as a single line
(exit code 2), the app shows it as a message; anything else is a bug, and its traceback is shown.
"""


class UserError(Exception):
    """An error a user can cause and fix; its message says what was expected and what was found."""
