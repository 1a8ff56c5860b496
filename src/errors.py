"""The one exception type for mistakes a user can fix (bad flag, missing file, bad record)."""


class UserError(Exception):
    """Raised with a one-line message naming the flag, file or line at fault.

    `main.py` prints it as a single line and exits with code 2.
    """
