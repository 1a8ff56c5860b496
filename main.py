"""DyGen command line: `python main.py <flags>` (no flags: the embedded demo, offline)."""

from __future__ import annotations

import errno
import os
import sys


def main(argv: list[str] | None = None) -> int:
    from src.config import parse_config
    from src.errors import UserError

    try:
        config = parse_config(argv)
        from src.accel.distributed import join, launched_by_torchrun, leave

        if config.describe and launched_by_torchrun():
            raise UserError("--describe: run it as one process (python main.py ... --describe), not under torchrun")
        if config.describe:  # the data only: no model is loaded, nothing is written
            import json

            from src.data import describe_splits
            from src.pipeline import load_noisy_data

            splits, _ = load_noisy_data(config, config.model_name(), local_only=True)  # a run's checks
            print(json.dumps(describe_splits(splits)))
            return 0
        from src.pipeline import run

        world = join(config)  # under torchrun: this process's rank (ranks other than 0 fall quiet)
        try:
            run(config, world)
        finally:
            leave(world)
    except UserError as exc:
        # always one line, in one write (the ranks of torchrun share one stderr)
        sys.stderr.write("error: " + " ".join(str(exc).split()) + "\n")
        sys.stderr.flush()
        return 2
    except BrokenPipeError:  # the reader went away (`... --describe | head`): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except OSError as exc:
        if exc.errno not in WRITE_FAILURES:
            raise  # not the user's to fix: a bug, with its traceback
        where = f"{exc.filename}: " if exc.filename else ""
        message = f"{where}{exc.strerror or os.strerror(exc.errno)} (nothing half-written is kept; free " \
                  f"some space, or write elsewhere with --cache_dir / --model_dir)"
        print("error: " + " ".join(message.split()), file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: what was being written is removed by its writer
        print("interrupted", file=sys.stderr)
        return 130
    return 0


# A write that the disk refused (full, over quota or a file-size limit, read-only): one line.
WRITE_FAILURES = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}


if __name__ == "__main__":
    sys.exit(main())
