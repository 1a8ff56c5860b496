"""The one exception type for mistakes a user can fix (bad flag, missing file, bad record), and
the one way to warn about input that is used but looks wrong."""

import sys


class UserError(Exception):
    """Raised with a one-line message naming the flag, file or line at fault.

    `main.py` prints it as a single line and exits with code 2.
    """


WARNINGS = {"shown": True}  # off on the ranks of torchrun other than 0 (they warn alike)


def warn(message: str) -> None:
    """A one-line warning on stderr (never silently trusting or changing the user's input)."""
    if WARNINGS["shown"]:
        print(f"warning: {message}", file=sys.stderr)
