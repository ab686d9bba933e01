"""The addons also run inside a plain mitmproxy: `mitmdump -s addons/gate.py`."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from gate_process import REPO, TEST_ADMIN_KEY, prepare_root
from upstreams import Upstream, free_port


def test_mitmdump_script(tmp_path: Path) -> None:
    prepare_root(
        tmp_path,
        {
            "auto": "id: auto\nrequire_approval: never\n",
            "manual": "id: manual\nrequire_approval: always\n",
        },
    )
    mitmdump = Path(sys.executable).parent / "mitmdump"
    api_port, proxy_port = free_port(), free_port()
    with Upstream() as upstream:
        (tmp_path / "config" / "destinations.yaml").write_text(f"""
"127.0.0.1:{upstream.port}":
  paths:
    /ok: {{method: POST, destination: a.send, policy: auto}}
    /wait: {{method: POST, destination: b.send, policy: manual}}
""")
        process = subprocess.Popen(
            [
                str(mitmdump),
                "-q",
                "-s",
                str(REPO / "addons" / "gate.py"),
                "--set",
                f"gate_data_dir={tmp_path / 'data'}",
                "--set",
                f"gate_policy_dir={tmp_path / 'policies'}",
                "--set",
                f"gate_config_dir={tmp_path / 'config'}",
                "--set",
                f"gate_api_port={api_port}",
                "--set",
                f"confdir={tmp_path / 'certs'}",
                "--listen-host",
                "127.0.0.1",
                "-p",
                str(proxy_port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "GATE_ADMIN_KEY": TEST_ADMIN_KEY},
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"http://127.0.0.1:{api_port}/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            headers = {"Authorization": f"Bearer {TEST_ADMIN_KEY}"}
            agent = httpx.post(
                f"http://127.0.0.1:{api_port}/v1/agents/register",
                json={"name": "dumped"},
                headers=headers,
            ).json()
            proxy = f"http://{agent['agentId']}:{agent['apiKey']}@127.0.0.1:{proxy_port}"
            with httpx.Client(proxy=proxy, timeout=30) as client:
                ok = client.post(f"{upstream.url}/ok", json={"m": 1})
                pending = client.post(f"{upstream.url}/wait", json={"m": 2})
            with httpx.Client(proxy=f"http://127.0.0.1:{proxy_port}", timeout=30) as anon:
                anonymous = anon.post(f"{upstream.url}/ok", json={"m": 3})
        finally:
            process.terminate()
            process.wait(timeout=20)
    assert ok.status_code == 200
    assert pending.status_code == 202 and pending.headers["X-Gate-Intent-Id"]
    assert anonymous.status_code == 407
    assert [r.path for r in upstream.requests] == ["/ok"]
