"""`block_if_terms` against evasion, end to end (issue 9, item 11, and the term scan of 18).

A real gate with ``block_if_terms: [sue, legal action]`` on a registry path; an agent sends
the terms through the forward proxy disguised with look-alike letters from other scripts
(Unicode TR39 confusables), control and format characters inside the word, JSON escapes of
both, spacing, and at the end of large bodies. Every disguise must be refused with 403 and
the upstream must receive nothing; ordinary words that merely contain a term (``issue``,
``pursue``) or that a naive skeleton fold would turn into one (``turn``/``tum``) must still
be forwarded, byte for byte.
"""

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from gate_process import GateProcess, running_gate
from upstreams import Upstream

POLICIES = {
    "support-reply": (
        "id: support-reply\nblock_if_terms: [sue, legal action, tum]\nauto_approve_under: 1\n"
    ),
}


def registry(port: int) -> str:
    return (
        f'default:\n  action: block\n"127.0.0.1:{port}":\n  paths:\n'
        "    /v1/replies: {method: POST, destination: zendesk.reply, policy: support-reply}\n"
    )


class Env:
    def __init__(self, gate: GateProcess, upstream: Upstream) -> None:
        self.gate, self.upstream = gate, upstream
        self.agent = gate.register(f"terms-{time.monotonic_ns()}")

    def client(self) -> httpx.Client:
        agent = self.agent
        proxy = f"http://{agent['agentId']}:{agent['apiKey']}@127.0.0.1:{self.gate.proxy_port}"
        return httpx.Client(proxy=proxy, timeout=60)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.upstream.port}/v1/replies"

    def received(self, mark: str) -> list[Any]:
        return [r for r in self.upstream.requests if mark.encode() in r.body]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("terms")
    with Upstream() as upstream:
        config = {"destinations.yaml": registry(upstream.port)}
        with running_gate(root, policies=POLICIES, config=config) as gate:
            yield Env(gate, upstream)


def mark() -> str:
    return f"t{time.monotonic_ns()}"


DISGUISES = [
    ("cyrillic a", "we will take leg\u0430l action"),
    ("cyrillic dze", "we will \u0455ue you"),
    ("cyrillic capitals", "WE WILL \u0405U\u0415"),
    ("greek capital alpha", "Legal \u0391ction follows"),
    ("cyrillic a and es", "legal \u0430\u0441tion"),
    ("armenian u", "\u0455\u057d\u0435 them"),
    ("spaced look-alikes", "\u0455 u \u0435"),
    ("look-alike and accent", "\u0455\u0300ue"),
    ("math bold", "\U0001d42c\U0001d42e\U0001d41e"),
    ("NUL", "s\x00ue"),
    ("DEL", "s\x7fue"),
    ("SOH", "s\x01ue"),
    ("ESC", "s\x1bue"),
    ("unit separator", "s\x1fue"),
    ("C1 control", "s\x9fue"),
    ("left-to-right mark", "s\u200eue"),
    ("arabic letter mark", "s\u061cue"),
    ("zero-width space", "s\u200bue"),
    ("tag character", "s\U000e0041ue"),
    ("NUL in a two-word term", "l\x00egal act\x00ion"),
    ("control and look-alike", "\u0455\x00u\u200b\u0435"),
]


@pytest.mark.parametrize(("name", "text"), DISGUISES, ids=[name for name, _ in DISGUISES])
def test_disguised_term_in_json_is_refused(env: Env, name: str, text: str) -> None:
    tag = mark()
    with env.client() as client:
        # json= escapes controls and non-ASCII as \uXXXX: the gate must decode them.
        response = client.post(env.url, json={"m": f"{tag} {text}"})
    assert response.status_code == 403, (name, response.text)
    assert response.json()["reason_code"] == "blocked_term_detected"
    assert not env.received(tag)


@pytest.mark.parametrize(("name", "text"), DISGUISES, ids=[name for name, _ in DISGUISES])
def test_disguised_term_in_raw_text_is_refused(env: Env, name: str, text: str) -> None:
    tag = mark()
    body = f"{tag} {text}".encode()  # the raw characters on the wire, not escapes
    with env.client() as client:
        response = client.post(
            env.url, content=body, headers={"Content-Type": "text/plain; charset=utf-8"}
        )
    assert response.status_code == 403, (name, response.text)
    assert not env.received(tag)


def test_disguised_term_at_the_end_of_a_large_body_is_refused(env: Env) -> None:
    tag = mark()
    filler = "Your issue is one we pursue in turn. " * 110_000  # about 4 MiB
    body = json.dumps({"m": tag, "pad": filler, "tail": "we will \u0455\x00ue"})
    with env.client() as client:
        response = client.post(env.url, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 403, response.text
    assert response.json()["reason_code"] == "blocked_term_detected"
    assert not env.received(tag)


ORDINARY = [
    "Your issue has been resolved.",
    "We will pursue this in turn.",
    "Modern tissue and suede",
    "turn",  # a TR39 skeleton would read "tum", a blocked term here
    "I\u0455\u0455ue",  # look-alikes keep word boundaries: "Issue"
    "\u0441\u0443\u0435\u0442\u0430",  # Russian "суета" is not "sue"
    "is\x00sue",  # a dropped control does not split a word
]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_words_are_forwarded_unchanged(env: Env, text: str) -> None:
    tag = mark()
    body = json.dumps({"m": f"{tag} {text}"}).encode()
    with env.client() as client:
        response = client.post(env.url, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    received = env.received(tag)
    assert len(received) == 1
    assert received[0].body == body


def test_large_ordinary_body_is_forwarded(env: Env) -> None:
    tag = mark()
    body = json.dumps({"m": tag, "pad": "Your issue is one we pursue in turn. " * 110_000})
    with env.client() as client:
        response = client.post(env.url, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    received = env.received(tag)
    assert len(received) == 1
    assert received[0].body == body.encode()
