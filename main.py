"""DyGen command line: `python main.py <flags>` (no flags: the embedded demo, offline)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from src.config import parse_config
    from src.errors import UserError

    try:
        config = parse_config(argv)
        from src.pipeline import run

        run(config)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
