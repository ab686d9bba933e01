"""The `gate-proxy` command line: every command, option, help text and default."""

import argparse
import os

from gate_proxy import __version__
from gate_proxy.cli.client import (
    cmd_agents_list,
    cmd_agents_register,
    cmd_agents_show,
    cmd_agents_status,
    cmd_approve,
    cmd_intents_list,
    cmd_intents_show,
    cmd_reject,
)
from gate_proxy.cli.offline import (
    cmd_ledger_export,
    cmd_ledger_verify,
    cmd_policy_check,
    cmd_vault_check,
)
from gate_proxy.cli.serve import cmd_serve
from gate_proxy.workers import WORKER_FLAG

DEFAULT_URL = "http://127.0.0.1:4000"


class Formatter(argparse.HelpFormatter):
    """Shows an option's default unless its help already says it (or there is none)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or default in (None, False, argparse.SUPPRESS)
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)"


def _data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        default=os.environ.get("GATE_DATA_DIR", "data"),
        help="the gate's data directory: its SQLite ledger and keys (env GATE_DATA_DIR)",
    )


def _database_url(p: argparse.ArgumentParser, what: str) -> None:
    # No default from the environment here: help would print a password it holds.
    p.add_argument(
        "--database-url",
        help=f"PostgreSQL store of a fleet (postgresql://user@host:port/db; default: env "
        f"GATE_DATABASE_URL): {what}",
    )


def _client(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument(
        "--url",
        default=os.environ.get("GATE_URL", DEFAULT_URL),
        help="the gate's control API (env GATE_URL)",
    )
    p.add_argument(
        "--key",
        help="API key (default: env GATE_API_KEY, else the admin key from GATE_ADMIN_KEY, "
        "GATE_ADMIN_KEY_FILE or DATA_DIR/admin.key)",
    )
    _data_dir(p)
    _database_url(p, "run the API in this process on that store instead of calling --url")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


def _serve_parser(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser(
        "serve",
        help="run the gate (control API, forward and reverse proxy)",
        description="Settings come from built-in defaults, then CONFIG_DIR/gate.yaml, then "
        "these flags (docs/operations.md lists every setting and its default).",
    )
    flags = (
        ("--host", str, "address every listener binds (gate.yaml host; default 127.0.0.1)"),
        ("--port", int, "control API and dashboard port (default 4000)"),
        ("--proxy-port", int, "forward proxy port, HTTP_PROXY/HTTPS_PROXY (default 4001)"),
        ("--reverse-port", int, "reverse proxy port for `routes:` (default 4002)"),
        ("--data-dir", str, "SQLite ledger, keys (default ./data)"),
        ("--policy-dir", str, "policy YAML files (default ./policies)"),
        ("--config-dir", str, "gate.yaml, destinations.yaml, vault.yaml (default ./config)"),
        ("--certs-dir", str, "the proxy CA (default ./certs)"),
        ("--environment", str, "server-side environment for policy `environments:` blocks"),
        ("--log-level", str, "DEBUG, INFO, WARNING or ERROR (default INFO)"),
        (
            "--database-url",
            str,
            "PostgreSQL for a fleet of replicas (env GATE_DATABASE_URL; default: SQLite in "
            "the data dir)",
        ),
        ("--workers", int, "gate processes on this box sharing the ports (default 1)"),
    )
    for flag, kind, text in flags:
        serve.add_argument(flag, type=kind, help=text)
    serve.add_argument(WORKER_FLAG, type=int, help=argparse.SUPPRESS)
    serve.set_defaults(fn=cmd_serve)


def _agents_parser(sub: argparse._SubParsersAction) -> None:
    agents = sub.add_parser("agents", help="register and manage agents and reviewers")
    commands = agents.add_subparsers(dest="sub", required=True)
    reg = _client(
        commands.add_parser(
            "register", help="register an agent (prints its key once)", formatter_class=Formatter
        )
    )
    reg.add_argument("name", help="unique name: letters, digits, . _ @ -")
    reg.add_argument("--role", default="agent", choices=["agent", "reviewer", "admin"])
    reg.add_argument(
        "--risk-tier", default="standard", choices=["standard", "elevated", "restricted"]
    )
    reg.add_argument("--allowed-policies", help="comma-separated policy ids (default: any)")
    reg.add_argument("--allowed-destinations", help="comma-separated destinations (default: any)")
    reg.add_argument(
        "--environment",
        help="the agent's environment for policy `environments:` (default: the gate's)",
    )
    reg.set_defaults(fn=cmd_agents_register)
    lst = _client(
        commands.add_parser("list", help="list agents and their status", formatter_class=Formatter)
    )
    lst.set_defaults(fn=cmd_agents_list)
    show = _client(
        commands.add_parser("show", help="one agent, as JSON", formatter_class=Formatter)
    )
    show.add_argument("agent", help="agent id or name")
    show.set_defaults(fn=cmd_agents_show)
    for action, text in (
        ("suspend", "stop an agent's requests until reactivated (admin)"),
        ("revoke", "end an agent's key for good (admin)"),
        ("reactivate", "let a suspended agent in again (admin)"),
    ):
        p = _client(commands.add_parser(action, help=text, formatter_class=Formatter))
        p.add_argument("agent", help="agent id or name")
        p.set_defaults(fn=cmd_agents_status, action=action)


def _intents_parser(sub: argparse._SubParsersAction) -> None:
    intents = sub.add_parser("intents", help="list and inspect intents")
    commands = intents.add_subparsers(dest="sub", required=True)
    lst = _client(commands.add_parser("list", help="list intents", formatter_class=Formatter))
    lst.add_argument("--status", help="only this status, e.g. pending_approval (default: all)")
    lst.add_argument("--limit", type=int, default=50, help="at most this many, newest first")
    lst.set_defaults(fn=cmd_intents_list)
    show = _client(
        commands.add_parser(
            "show", help="one intent with its audit trail", formatter_class=Formatter
        )
    )
    show.add_argument("intent", help="intent id (int_...)")
    show.set_defaults(fn=cmd_intents_show)
    approve = _client(
        sub.add_parser(
            "approve",
            help="approve a pending intent (shows it first)",
            formatter_class=Formatter,
        )
    )
    approve.add_argument("intent", help="intent id (int_...)")
    approve.add_argument("--note", help="a note recorded with the approval")
    approve.add_argument(
        "--review-hash",
        help="bind the approval to the hash you reviewed (default: the one just shown)",
    )
    approve.set_defaults(fn=cmd_approve)
    reject = _client(
        sub.add_parser("reject", help="reject a pending intent", formatter_class=Formatter)
    )
    reject.add_argument("intent", help="intent id (int_...)")
    reject.add_argument("--reason", required=True, help="why (recorded, shown to the agent)")
    reject.add_argument(
        "--review-hash",
        help="bind the rejection to the hash you reviewed (default: the one just shown)",
    )
    reject.set_defaults(fn=cmd_reject)


def _tools_parser(sub: argparse._SubParsersAction) -> None:
    ledger = sub.add_parser("ledger", help="verify or export the ledger")
    commands = ledger.add_subparsers(dest="sub", required=True)
    for name, text, fn in (
        ("verify", "recompute the hash chain and check the signed checkpoints", cmd_ledger_verify),
        ("export", "print every ledger event as one JSON line", cmd_ledger_export),
    ):
        p = commands.add_parser(name, help=text, formatter_class=Formatter)
        _data_dir(p)
        _database_url(p, f"{name} that ledger instead of DATA_DIR/gate.db")
        if name == "verify":
            p.add_argument(
                "--public-key",
                help="Ed25519 public key (PEM) the checkpoints must verify against (default: "
                "from GATE_SIGNING_KEY_FILE, else DATA_DIR/signing.pub)",
            )
        else:
            p.add_argument("--format", choices=["jsonl"], default="jsonl", help="output format")
        p.set_defaults(fn=fn)

    vault = sub.add_parser("vault", help="credential vault tools")
    check = vault.add_subparsers(dest="sub", required=True).add_parser(
        "check", help="resolve every credential; never prints a value", formatter_class=Formatter
    )
    check.add_argument(
        "--config-dir",
        default=os.environ.get("GATE_CONFIG_DIR", "config"),
        help="where vault.yaml is (env GATE_CONFIG_DIR)",
    )
    check.set_defaults(fn=cmd_vault_check)

    policy = sub.add_parser("policy", help="policy tools")
    pcheck = policy.add_subparsers(dest="sub", required=True).add_parser(
        "check", help="validate a policy directory without starting", formatter_class=Formatter
    )
    pcheck.add_argument("directory", help="a directory of policy YAML files")
    pcheck.set_defaults(fn=cmd_policy_check)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gate-proxy",
        description="Write-path governance for AI agents, enforced at the network.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    _agents_parser(sub)
    _intents_parser(sub)
    _tools_parser(sub)
    return parser
