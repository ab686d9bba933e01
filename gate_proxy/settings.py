"""Gate settings: defaults, overridden by `<config-dir>/gate.yaml`, overridden by flags.

``gate_proxy.loaders.settings_file.load_settings`` reads them.
"""

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from gate_proxy.core.located import LocatedError

MIB = 1024 * 1024
# Every file and directory the gate or the CLI creates (database with its WAL and
# shared-memory files, keys, certificates, exports) is private to its user: 0600 / 0700.
PRIVATE_UMASK = 0o077


class SettingsError(LocatedError):
    """A bad setting, named by where it came from: "config/gate.yaml:3: port: ...",
    "--port: port: ..." or "GATE_HOLD_TIMEOUT_MS: hold_timeout_ms: ..."."""


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 4000
    proxy_port: int = 4001
    reverse_port: int = 4002
    data_dir: Path = Path("data")
    policy_dir: Path = Path("policies")
    config_dir: Path = Path("config")
    certs_dir: Path = Path("certs")
    # Server-side environment for policy `environments` blocks. An agent's registration
    # may set its own; nothing in a request can choose it.
    environment: str | None = None
    api_body_limit: int = 1 * MIB
    proxy_body_limit: int = 10 * MIB
    hold_timeout_ms: int = 900_000
    upstream_timeout_s: float = 60.0
    # mitmproxy's idle timeout; held requests are kept alive past it deliberately.
    tcp_timeout_s: int = 600
    # Slowloris guard, on the control API and the proxy listeners: a connection must deliver
    # a complete request head this long after connecting or after its previous response,
    # else it is closed. Also the idle keep-alive limit. A request in progress (a held one
    # included) is never cut by it.
    request_header_timeout_s: float = 30.0
    # A fleet's shared PostgreSQL ("postgresql://user@host:5432/db"; also GATE_DATABASE_URL).
    # None: the embedded SQLite file in data_dir. A secret when it holds a password: it is
    # never logged.
    database_url: str | None = None
    # Gate processes on this box sharing the listeners (SO_REUSEPORT) and the store.
    workers: int = 1
    # "normal": a committed event survives a crash of the gate process (SQLite WAL).
    # "full": it also survives power loss, at the cost of an fsync per commit.
    durability: str = "normal"
    # Older alias: CIDRs added to egress_allow for webhooks and Slack only.
    webhook_allow_cidrs: list[str] = field(default_factory=list)
    webhook_timeout_s: float = 5.0
    upstream_ca_bundle: Path | None = None
    log_level: str = "INFO"
    # "enforce" acts on decisions; "shadow" records them (marked shadow) and forwards anyway.
    enforce: str = "enforce"
    # Hosts not in config/destinations.yaml are blocked unless the registry's default says so.
    registry_file: str = "destinations.yaml"
    enable_proxy: bool = True
    # Dashboard (/dashboard): the URL people reach it at (links in notifications; default
    # http://<host>:<port>), session lifetimes, and the live stream's heartbeat.
    dashboard_url: str | None = None
    session_ttl_s: int = 8 * 3600
    session_idle_s: int = 30 * 60
    dashboard_heartbeat_s: float = 15.0
    # Slack-compatible incoming webhook for new pending intents (checked like webhooks:
    # private targets need egress_allow, as for webhooks). The URL is a secret: it is never
    # logged.
    slack_webhook_url: str | None = None

    # SSRF-safe egress for proxied requests (addons/egress.py, docs/analyzers.md): every
    # address a destination resolves to must be public, or allowlisted here as a CIDR
    # ("10.0.0.0/8", "::1/128"), an address, or a host name ("db.internal",
    # "*.corp.example"). The gate's own listeners stay denied. false turns the check off.
    egress_check: bool = True
    egress_allow: list[str] = field(default_factory=list)

    def allowed_webhook_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(cidr, strict=False) for cidr in self.webhook_allow_cidrs]

    @property
    def hold_timeout_s(self) -> float:
        return self.hold_timeout_ms / 1000
