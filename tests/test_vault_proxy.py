"""Credential injection end to end: real gate, real upstream, real vault protocols."""

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from gate_process import GateProcess, running_gate
from upstreams import Upstream
from vault_fake import MOTO_ENV, FakeVault, start_moto_server

POLICIES = {
    "auto": "id: auto\nrequire_approval: never\n",
    "manual": "id: manual\nrequire_approval: always\n",
}
ENV_SECRET = "sk_live_envSecretValue0123456789"
VAULT_SECRET = "hvault-secret-ABCDEF0123456789"
AWS_SECRET = "aws-secret-token-9876543210zyx"


def registry(port: int) -> str:
    return f"""
"127.0.0.1:{port}":
  paths:
    /env: {{method: POST, destination: env.send, policy: auto}}
    /strict: {{method: POST, destination: strict.send, policy: auto}}
    /hashicorp: {{method: POST, destination: hc.send, policy: auto}}
    /aws: {{method: POST, destination: aws.send, policy: auto}}
    /held: {{method: POST, destination: env.send, policy: manual}}
"""


def proxy_client(gate: GateProcess, agent: dict[str, Any]) -> httpx.Client:
    proxy = f"http://{agent['agentId']}:{agent['apiKey']}@127.0.0.1:{gate.proxy_port}"
    return httpx.Client(proxy=proxy, timeout=30)


def wait_last_event(gate: GateProcess, event: str) -> list[dict[str, Any]]:
    with gate.admin() as admin:
        intent_id = admin.get("/v1/intents", params={"limit": 1}).json()["intents"][0]["intentId"]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            trail = admin.get(f"/v1/intents/{intent_id}/audit").json()
            if trail[-1]["eventType"] == event:
                return trail
            time.sleep(0.05)
    raise AssertionError(f"{event} never recorded: {[e['eventType'] for e in trail]}")


def no_trace(gate: GateProcess, *secrets: str) -> None:
    for path in [*gate.data_dir.rglob("*"), *gate.root.glob("gate-*.log")]:
        if path.is_file():
            data = path.read_bytes()
            for secret in secrets:
                assert secret.encode() not in data, f"{secret[:6]}… found in {path.name}"


@pytest.fixture
def fake_vault() -> Iterator[FakeVault]:
    vault = FakeVault().start()
    vault.put("gate/hc", {"api_key": VAULT_SECRET})
    try:
        yield vault
    finally:
        vault.stop()


def test_env_injection_strip_and_echo_scrub(tmp_path: Path) -> None:
    with Upstream() as upstream:  # echoes what it received, headers included
        config = {
            "destinations.yaml": registry(upstream.port),
            "vault.yaml": """
provider: env
credentials:
  env.send: {ref: GATE_TEST_SECRET, inject: header, template: "Bearer {secret}"}
  strict.send: {ref: GATE_TEST_SECRET, on_agent_credential: reject}
""",
        }
        with running_gate(
            tmp_path, policies=POLICIES, config=config, env={"GATE_TEST_SECRET": ENV_SECRET}
        ) as gate:
            agent = gate.register("mailer")
            with proxy_client(gate, agent) as client:
                response = client.post(
                    f"{upstream.url}/env",
                    json={"m": "hi"},
                    headers={"Authorization": "Bearer agent-own-token"},
                )
                strict = client.post(
                    f"{upstream.url}/strict",
                    json={"m": "hi"},
                    headers={"Authorization": "Bearer agent-own-token"},
                )
            check = gate.cli(
                "vault",
                "check",
                "--config-dir",
                str(gate.config_dir),
                env={"GATE_TEST_SECRET": ENV_SECRET},
            )
        logs = gate.logs()
    assert response.status_code == 200
    (received,) = upstream.requests
    assert received.header("Authorization") == f"Bearer {ENV_SECRET}"
    assert "agent-own-token" not in json.dumps(received.to_json())
    assert ENV_SECRET not in response.text and "[REDACTED]" in response.text
    assert strict.status_code == 400
    assert strict.json()["reason_code"] == "agent_credential_not_allowed"
    assert check.returncode == 0, check.stdout + check.stderr
    assert "env.send" in check.stdout and ENV_SECRET not in check.stdout + check.stderr
    assert ENV_SECRET not in logs
    no_trace(gate, ENV_SECRET)


def test_hashicorp_injection_and_outage(tmp_path: Path, fake_vault: FakeVault) -> None:
    with Upstream() as upstream:
        config = {
            "destinations.yaml": registry(upstream.port),
            "vault.yaml": f"""
hashicorp:
  url: {fake_vault.url}
  auth: token
  token_env: VAULT_TOKEN
  timeout_seconds: 2
credentials:
  hc.send: {{provider: hashicorp, path: gate/hc, key: api_key, inject: header,
            header: X-Api-Key, ttl_seconds: 0}}
""",
        }
        token = fake_vault.issue_token()
        with running_gate(
            tmp_path, policies=POLICIES, config=config, env={"VAULT_TOKEN": token}
        ) as gate:
            agent = gate.register("hc-agent")
            with proxy_client(gate, agent) as client:
                ok = client.post(f"{upstream.url}/hashicorp", json={"m": "one"})
                assert ok.status_code == 200, ok.text
                fake_vault.stop()  # the vault goes away
                outage = client.post(f"{upstream.url}/hashicorp", json={"m": "two"})
            trail = wait_last_event(gate, "execution_failed")
            logs = gate.logs()
    assert upstream.requests[0].header("X-Api-Key") == VAULT_SECRET
    assert outage.status_code == 503
    assert outage.json()["reason_code"] == "credential_unavailable"
    assert len(upstream.requests) == 1  # nothing forwarded without the credential
    assert trail[-1]["metadata"]["error"] == "credential_unavailable"
    assert VAULT_SECRET not in logs and token not in logs
    no_trace(gate, VAULT_SECRET)


def test_aws_secrets_manager_through_moto(tmp_path: Path) -> None:
    moto = start_moto_server()
    try:
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        session.client("secretsmanager", endpoint_url=moto.url).create_secret(
            Name="prod/aws-send", SecretString=json.dumps({"token": AWS_SECRET})
        )
        with Upstream() as upstream:
            config = {
                "destinations.yaml": registry(upstream.port),
                "vault.yaml": f"""
aws:
  region: us-east-1
  endpoint_url: {moto.url}
credentials:
  aws.send: {{provider: aws, ref: prod/aws-send, key: token, inject: query,
             query_param: api_key}}
""",
            }
            with running_gate(tmp_path, policies=POLICIES, config=config, env=MOTO_ENV) as gate:
                agent = gate.register("aws-agent")
                with proxy_client(gate, agent) as client:
                    response = client.post(
                        f"{upstream.url}/aws?api_key=agent-guess", json={"m": "x"}
                    )
                logs = gate.logs()
    finally:
        moto.stop()
    assert response.status_code == 200, response.text
    (received,) = upstream.requests
    assert f"api_key={AWS_SECRET}" in received.path
    assert "agent-guess" not in received.path
    assert AWS_SECRET not in response.text  # the echo of the path is scrubbed
    assert AWS_SECRET not in logs
    no_trace(gate, AWS_SECRET)


def test_held_request_is_injected_on_replay(tmp_path: Path) -> None:
    import threading

    with Upstream() as upstream:
        config = {
            "destinations.yaml": registry(upstream.port),
            "vault.yaml": "credentials:\n  env.send: {ref: GATE_TEST_SECRET}\n",
        }
        with running_gate(
            tmp_path, policies=POLICIES, config=config, env={"GATE_TEST_SECRET": ENV_SECRET}
        ) as gate:
            agent = gate.register("holder")
            results: list[httpx.Response] = []

            def send() -> None:
                with proxy_client(gate, agent) as client:
                    results.append(
                        client.post(
                            f"{upstream.url}/held",
                            json={"m": "wait"},
                            headers={"X-Gate-Wait": "true"},
                        )
                    )

            thread = threading.Thread(target=send, daemon=True)
            thread.start()
            with gate.admin() as admin:
                deadline = time.monotonic() + 10
                held: list[dict[str, Any]] = []
                while not held and time.monotonic() < deadline:
                    held = admin.get("/v1/proxy/held").json()["held"]
                    time.sleep(0.05)
                assert held
                admin.post(f"/v1/intents/{held[0]['intentId']}/approve", json={})
            thread.join(timeout=20)
    assert results[0].status_code == 200
    assert upstream.requests[0].header("Authorization") == f"Bearer {ENV_SECRET}"
    assert ENV_SECRET not in results[0].text
