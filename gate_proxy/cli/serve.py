"""`gate-proxy serve`: one gate process, or a supervisor of ``--workers N``."""

import argparse
import asyncio
import sys

from gate_proxy.workers import WORKER_FLAG


def cmd_serve(args: argparse.Namespace) -> int:
    from gate_proxy.loaders.settings_file import load_settings
    from gate_proxy.logs import setup_logging
    from gate_proxy.server import serve
    from gate_proxy.settings import SettingsError

    overrides = {
        "host": args.host,
        "port": args.port,
        "proxy_port": args.proxy_port,
        "reverse_port": args.reverse_port,
        "data_dir": args.data_dir,
        "policy_dir": args.policy_dir,
        "config_dir": args.config_dir,
        "certs_dir": args.certs_dir,
        "environment": args.environment,
        "log_level": args.log_level,
        "database_url": args.database_url,
        "workers": args.workers,
    }
    try:
        settings = load_settings(None, overrides)
    except SettingsError as exc:
        print(f"gate-proxy: cannot start: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)
    if settings.workers > 1 and args.worker_index is None:
        from gate_proxy.workers import supervise

        return supervise(settings, _child_argv())
    return asyncio.run(serve(settings))


def _child_argv() -> list[str]:
    """This command line, for a worker (the supervisor adds --worker-index)."""
    argv = sys.argv[1:]
    if WORKER_FLAG in argv:
        raise RuntimeError("a worker must not supervise")
    return argv
