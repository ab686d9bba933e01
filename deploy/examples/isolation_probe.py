#!/usr/bin/env python3
"""Check, from inside an agent's network, that the gate is the only way out.

Runs two kinds of client, both with the Python standard library only (so it runs in any
python:3.x image):

* ``--url URL`` is fetched like a well-behaved agent: urllib honours HTTP_PROXY/HTTPS_PROXY
  (and SSL_CERT_FILE for the gate's CA), so the request goes through the gate.
* each ``--direct URL`` is fetched like a client that ignores the proxy variables (Node's
  built-in fetch does): a direct connection. On an isolated network every one must fail.

Prints one JSON object and exits 0 only when the proxied request got an HTTP answer and no
direct request reached anything. The gate's tests run this same file inside a network
namespace (tests/test_network_isolation.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass


@dataclass
class Attempt:
    url: str
    via_proxy: bool
    reached: bool  # an HTTP answer came back (whatever its status)
    status: int | None = None
    intent_id: str | None = None
    body: str = ""
    error: str | None = None


def fetch(url: str, *, via_proxy: bool, method: str, data: bytes | None, timeout: float) -> Attempt:
    # ProxyHandler() reads the *_proxy variables; ProxyHandler({}) ignores them.
    handler = urllib.request.ProxyHandler() if via_proxy else urllib.request.ProxyHandler({})
    opener = urllib.request.build_opener(handler)
    headers = {"Content-Type": "application/json"} if data is not None else {}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with opener.open(request, timeout=timeout) as response:
            return answered(url, via_proxy, response.status, response.headers, response.read())
    except urllib.error.HTTPError as exc:  # an HTTP answer: the connection was made
        return answered(url, via_proxy, exc.code, exc.headers, exc.read())
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        return Attempt(url, via_proxy, reached=False, error=f"{type(reason).__name__}: {reason}")


def answered(url: str, via_proxy: bool, status: int, headers: object, body: bytes) -> Attempt:
    intent_id = headers.get("X-Gate-Intent-Id") if hasattr(headers, "get") else None
    text = body[:2000].decode("utf-8", "replace")
    return Attempt(url, via_proxy, reached=True, status=status, intent_id=intent_id, body=text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="fetched through the proxy named by HTTP(S)_PROXY")
    parser.add_argument("--direct", action="append", default=[], help="fetched directly")
    parser.add_argument("--method", default="GET")
    parser.add_argument("--data", help="request body (JSON text)")
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args(argv)
    data = args.data.encode() if args.data is not None else None

    proxied = None
    if args.url:
        proxied = fetch(
            args.url, via_proxy=True, method=args.method, data=data, timeout=args.timeout
        )
    direct = [
        fetch(url, via_proxy=False, method=args.method, data=data, timeout=args.timeout)
        for url in args.direct
    ]
    isolated = not any(attempt.reached for attempt in direct)
    ok = isolated and (proxied is None or proxied.reached)
    result = {
        "proxied": asdict(proxied) if proxied else None,
        "direct": [asdict(attempt) for attempt in direct],
        "isolated": isolated,
    }
    print(json.dumps(result, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
