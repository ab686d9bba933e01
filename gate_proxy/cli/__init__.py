"""The `gate-proxy` command line (parser.py lists every command and option)."""

import os
import sys

from gate_proxy.settings import PRIVATE_UMASK

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    os.umask(PRIVATE_UMASK)  # first, before anything can create a file
    from gate_proxy.cli.client import ClientError
    from gate_proxy.cli.local import LocalApi
    from gate_proxy.cli.parser import build_parser

    args = build_parser().parse_args(argv)
    if getattr(args, "database_url", "") is None and args.fn.__name__ != "cmd_serve":
        args.database_url = os.environ.get("GATE_DATABASE_URL")  # serve reads it itself
    try:
        return int(args.fn(args))
    except ClientError as exc:
        print(f"gate-proxy: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    finally:
        LocalApi.close_open()


if __name__ == "__main__":
    sys.exit(main())
