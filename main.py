"""DyGen command line: `python main.py <flags>` (no flags: the embedded demo, offline)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from src.config import parse_config
    from src.errors import UserError

    try:
        config = parse_config(argv)
        if config.describe:  # the data only: no model is loaded, nothing is written
            import json

            from src.data import describe

            print(json.dumps(describe(config.dataset, config.path, config.noise_type,
                                      config.noise_ratio, config.seed)))
            return 0
        from src.pipeline import run

        run(config)
    except UserError as exc:
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)  # always one line
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
