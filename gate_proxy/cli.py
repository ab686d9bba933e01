"""The `gate-proxy` command line."""

import argparse
import asyncio
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from gate_proxy import __version__
from gate_proxy.settings import PRIVATE_UMASK

DEFAULT_URL = "http://127.0.0.1:4000"


# -- client commands (talk to a running gate) --------------------------------------------------


class ClientError(Exception):
    pass


def _key(args: argparse.Namespace) -> str:
    from gate_proxy.key_material import read_admin_key

    key = args.key or os.environ.get("GATE_API_KEY") or read_admin_key(Path(args.data_dir))
    if not key:
        raise ClientError(
            "no API key: pass --key, set GATE_API_KEY or GATE_ADMIN_KEY, "
            f"or run where {Path(args.data_dir) / 'admin.key'} exists"
        )
    return key


def _call(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        args.url.rstrip("/") + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {_key(args)}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read())
            message = f"{exc.code} {detail.get('error')}: {detail.get('message')}"
        except ValueError:
            message = f"HTTP {exc.code}"
        raise ClientError(message) from exc
    except urllib.error.URLError as exc:
        raise ClientError(f"cannot reach the gate at {args.url}: {exc.reason}") from exc


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> None:
    if not rows:
        print("(none)")
        return
    cells = [
        [str(row.get(key) if row.get(key) is not None else "-") for key, _ in columns]
        for row in rows
    ]
    widths = [max(len(title), *(len(c[i]) for c in cells)) for i, (_, title) in enumerate(columns)]
    print("  ".join(title.ljust(widths[i]) for i, (_, title) in enumerate(columns)))
    for line in cells:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)))


def cmd_agents_register(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"name": args.name, "role": args.role, "riskTier": args.risk_tier}
    if args.allowed_policies:
        body["allowed_policies"] = args.allowed_policies.split(",")
    if args.allowed_destinations:
        body["allowed_destinations"] = args.allowed_destinations.split(",")
    if args.environment:
        body["environment"] = args.environment
    result = _call(args, "POST", "/v1/agents/register", body)
    if args.json:
        _print_json(result)
    else:
        print(f"agent {result['agentId']} ({result['name']}, role {result['role']}) registered")
        print(f"API key (shown once, store it now): {result['apiKey']}")
    return 0


def cmd_agents_list(args: argparse.Namespace) -> int:
    agents = _call(args, "GET", "/v1/agents")["agents"]
    if args.json:
        _print_json(agents)
    else:
        _table(
            agents,
            [
                ("agentId", "ID"),
                ("name", "NAME"),
                ("role", "ROLE"),
                ("status", "STATUS"),
                ("riskTier", "TIER"),
                ("createdAt", "CREATED"),
            ],
        )
    return 0


def cmd_agents_show(args: argparse.Namespace) -> int:
    _print_json(_call(args, "GET", f"/v1/agents/{args.agent}"))
    return 0


def cmd_agents_status(args: argparse.Namespace) -> int:
    result = _call(args, "POST", f"/v1/agents/{args.agent}/{args.action}")
    print(f"agent {result['agentId']} is now {result['status']}")
    return 0


def cmd_intents_list(args: argparse.Namespace) -> int:
    query = f"?limit={args.limit}" + (f"&status={args.status}" if args.status else "")
    intents = _call(args, "GET", f"/v1/intents{query}")["intents"]
    if args.json:
        _print_json(intents)
        return 0
    _table(
        intents,
        [
            ("intentId", "ID"),
            ("status", "STATUS"),
            ("agent", "AGENT"),
            ("destination", "DESTINATION"),
            ("policy", "POLICY"),
            ("risk_level", "RISK"),
            ("reason_code", "REASON"),
            ("expiresAt", "EXPIRES"),
        ],
    )
    return 0


def cmd_intents_show(args: argparse.Namespace) -> int:
    intent = _call(args, "GET", f"/v1/intents/{args.intent}")
    intent["audit"] = _call(args, "GET", f"/v1/intents/{args.intent}/audit")
    _print_json(intent)
    return 0


def _reviewed(args: argparse.Namespace) -> str:
    """Show what is being decided, and return the review hash it is bound to."""
    intent = _call(args, "GET", f"/v1/intents/{args.intent}")
    print(
        f"{intent['intentId']}: {intent['agent']} -> {intent['destination']} "
        f"({intent['policy']}), {intent.get('method') or 'API'} {intent.get('url') or ''} "
        f"risk {intent['risk_level']}, reason {intent['reason_code']}"
    )
    if args.review_hash and args.review_hash != intent["reviewHash"]:
        raise ClientError("the intent differs from the review hash you gave; not deciding")
    return args.review_hash or intent["reviewHash"]


def cmd_approve(args: argparse.Namespace) -> int:
    # The vote carries the hash of what was just shown: if the intent changed in between,
    # the gate refuses (409) rather than approving something nobody looked at.
    body: dict[str, Any] = {"reviewHash": _reviewed(args)}
    if args.note:
        body["note"] = args.note
    result = _call(args, "POST", f"/v1/intents/{args.intent}/approve", body)
    if "approvals" in result:
        print(f"intent {args.intent}: {result['approvals']} of {result['required']} approvals")
    else:
        print(f"intent {args.intent}: {result['status']}")
    return 0


def cmd_reject(args: argparse.Namespace) -> int:
    body = {"reason": args.reason, "reviewHash": _reviewed(args)}
    result = _call(args, "POST", f"/v1/intents/{args.intent}/reject", body)
    print(f"intent {args.intent}: {result['status']}")
    return 0


# -- offline commands ---------------------------------------------------------------------------


def cmd_ledger_verify(args: argparse.Namespace) -> int:
    from gate_proxy.keys import load_public_key
    from gate_proxy.ledger import verify_database
    from gate_proxy.store.sqlite import DB_FILE

    data_dir = Path(args.data_dir)
    db = data_dir / DB_FILE
    if not db.exists():
        print(f"no ledger at {db}", file=sys.stderr)
        return 2
    result = verify_database(db, load_public_key(data_dir))
    print(result.describe())
    return 0 if result.ok else 1


def cmd_ledger_export(args: argparse.Namespace) -> int:
    from gate_proxy.ledger import export_jsonl
    from gate_proxy.store.sqlite import DB_FILE

    for line in export_jsonl(Path(args.data_dir) / DB_FILE):
        sys.stdout.write(line + "\n")
    return 0


def cmd_policy_check(args: argparse.Namespace) -> int:
    from gate_proxy.core.policy import PolicyError
    from gate_proxy.loaders.policy_file import load_policy_dir

    directory = Path(args.directory)
    if not directory.is_dir():
        print(f"{directory}: not a directory", file=sys.stderr)
        return 2
    try:
        policies = load_policy_dir(directory)
    except PolicyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for policy_id in sorted(policies):
        print(f"ok  {policy_id}")
    print(f"{len(policies)} policies valid")
    return 0


def cmd_vault_check(args: argparse.Namespace) -> int:
    from gate_proxy.vault.cli import vault_check

    return vault_check(Path(args.config_dir))


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
    }
    try:
        settings = load_settings(None, overrides)
    except SettingsError as exc:
        print(f"gate-proxy: cannot start: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)
    return asyncio.run(serve(settings))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gate-proxy", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)

    def client(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--url", default=os.environ.get("GATE_URL", DEFAULT_URL))
        p.add_argument("--key", help="API key (default: GATE_API_KEY, else the admin key)")
        p.add_argument("--data-dir", default=os.environ.get("GATE_DATA_DIR", "data"))
        p.add_argument("--json", action="store_true", help="print JSON")
        return p

    serve = sub.add_parser("serve", help="run the gate (API + proxy)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--proxy-port", type=int)
    serve.add_argument("--reverse-port", type=int)
    serve.add_argument("--data-dir")
    serve.add_argument("--policy-dir")
    serve.add_argument("--config-dir")
    serve.add_argument("--certs-dir")
    serve.add_argument("--environment", help="server-side environment for policy overrides")
    serve.add_argument("--log-level")
    serve.set_defaults(fn=cmd_serve)

    agents = sub.add_parser("agents", help="manage agents").add_subparsers(
        dest="sub", required=True
    )
    reg = client(agents.add_parser("register", help="register an agent (prints its key once)"))
    reg.add_argument("name")
    reg.add_argument("--role", default="agent", choices=["agent", "reviewer", "admin"])
    reg.add_argument(
        "--risk-tier", default="standard", choices=["standard", "elevated", "restricted"]
    )
    reg.add_argument("--allowed-policies", help="comma-separated policy ids")
    reg.add_argument("--allowed-destinations", help="comma-separated destinations")
    reg.add_argument("--environment")
    reg.set_defaults(fn=cmd_agents_register)
    client(agents.add_parser("list")).set_defaults(fn=cmd_agents_list)
    show = client(agents.add_parser("show"))
    show.add_argument("agent")
    show.set_defaults(fn=cmd_agents_show)
    for action, verb in (
        ("suspend", "suspend"),
        ("revoke", "revoke"),
        ("reactivate", "reactivate"),
    ):
        p = client(agents.add_parser(action))
        p.add_argument("agent")
        p.set_defaults(fn=cmd_agents_status, action=verb)

    intents = sub.add_parser("intents", help="list and inspect intents").add_subparsers(
        dest="sub", required=True
    )
    lst = client(intents.add_parser("list"))
    lst.add_argument("--status")
    lst.add_argument("--limit", type=int, default=50)
    lst.set_defaults(fn=cmd_intents_list)
    ishow = client(intents.add_parser("show"))
    ishow.add_argument("intent")
    ishow.set_defaults(fn=cmd_intents_show)

    approve = client(sub.add_parser("approve", help="approve a pending intent"))
    approve.add_argument("intent")
    approve.add_argument("--note")
    approve.add_argument("--review-hash", help="bind the approval to the hash you reviewed")
    approve.set_defaults(fn=cmd_approve)
    reject = client(sub.add_parser("reject", help="reject a pending intent"))
    reject.add_argument("intent")
    reject.add_argument("--reason", required=True)
    reject.add_argument("--review-hash", help="bind the rejection to the hash you reviewed")
    reject.set_defaults(fn=cmd_reject)

    ledger = sub.add_parser("ledger", help="verify or export the ledger").add_subparsers(
        dest="sub", required=True
    )
    verify = ledger.add_parser("verify", help="recompute the hash chain and signatures")
    verify.add_argument("--data-dir", default=os.environ.get("GATE_DATA_DIR", "data"))
    verify.set_defaults(fn=cmd_ledger_verify)
    export = ledger.add_parser("export")
    export.add_argument("--data-dir", default=os.environ.get("GATE_DATA_DIR", "data"))
    export.add_argument("--format", choices=["jsonl"], default="jsonl")
    export.set_defaults(fn=cmd_ledger_export)

    vault = sub.add_parser("vault", help="credential vault tools").add_subparsers(
        dest="sub", required=True
    )
    vcheck = vault.add_parser("check", help="resolve every credential; never prints a value")
    vcheck.add_argument("--config-dir", default=os.environ.get("GATE_CONFIG_DIR", "config"))
    vcheck.set_defaults(fn=cmd_vault_check)

    policy = sub.add_parser("policy", help="policy tools").add_subparsers(dest="sub", required=True)
    check = policy.add_parser("check", help="validate a policy directory without starting")
    check.add_argument("directory")
    check.set_defaults(fn=cmd_policy_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.umask(PRIVATE_UMASK)  # first, before anything can create a file
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except ClientError as exc:
        print(f"gate-proxy: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
