"""Client commands: they talk to a gate's control API, or, with ``--database-url``, run
the same API in this process on the store (no gate needs to be reachable).

Either way a command goes through the API's own handlers, so authentication, roles and
the review-hash binding are exactly what a running gate enforces.
"""

import argparse
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from gate_proxy.cli.local import LocalApi


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
    key = _key(args)
    if getattr(args, "database_url", None):
        status, answer = LocalApi.for_args(args).call(method, path, key, body)
        if status >= 400:
            detail = answer if isinstance(answer, dict) else {}
            raise ClientError(f"{status} {detail.get('error')}: {detail.get('message')}")
        return answer
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        args.url.rstrip("/") + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
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
            ("tool", "TOOL"),
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
    target = intent["destination"]
    if intent.get("tool"):
        target = f"tool `{intent['tool']}` on {target}"
    print(
        f"{intent['intentId']}: {intent['agent']} -> {target} "
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
