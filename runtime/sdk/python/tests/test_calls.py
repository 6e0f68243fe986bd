"""Every operation of the SDK, against the public fake broker: what is sent and what comes back."""

from __future__ import annotations

import json
from typing import Any

import pytest

import symbiont
from symbiont.testing import FakeBroker

from .conftest import Start

URL = "https://api.example.com/items"


def last(broker: FakeBroker) -> dict[str, Any]:
    """The last request the broker received, without its id."""
    return {k: v for k, v in broker.requests[-1].items() if k != "id"}


def test_every_connection_starts_with_hello(start: Start) -> None:
    broker = start()
    symbiont.log("one")
    symbiont.log("two")
    assert broker.ops() == ["hello", "log", "log"]
    hello = broker.requests[0]
    assert hello == {"id": 0, "op": "hello", "protocol": "1.0", "sdk": f"python {symbiont.__version__}"}
    assert [r["id"] for r in broker.requests[1:]] == [1, 2]


def test_get() -> None:
    with FakeBroker(http={URL: (200, '{"items": [1]}')}) as broker:
        r = symbiont.net.get(URL, headers={"accept": "application/json"})
    assert (r.status, r.status_code, r.ok, r.text) == (200, 200, True, '{"items": [1]}')
    assert r.json() == {"items": [1]}
    r.raise_for_status()
    assert last(broker) == {
        "op": "http",
        "method": "GET",
        "url": URL,
        "headers": {"accept": "application/json"},
        "body": None,
    }


@pytest.mark.parametrize("method", ["post", "put"])
def test_post_and_put_send_data_or_json(method: str) -> None:
    call = getattr(symbiont.net, method)
    with FakeBroker(http={URL: (201, "")}) as broker:
        assert call(URL, data=b"raw bytes").status == 201
        assert (last(broker)["method"], last(broker)["body"], last(broker)["headers"]) == (
            method.upper(),
            "raw bytes",
            {},
        )
        call(URL, json={"n": 1}, headers={"x-k": "v"})
        assert json.loads(last(broker)["body"]) == {"n": 1}
        assert last(broker)["headers"] == {"x-k": "v", "content-type": "application/json"}


def test_delete_request_and_urlopen() -> None:
    with FakeBroker(http={URL: (204, "")}) as broker:
        symbiont.net.delete(URL)
        assert last(broker)["method"] == "DELETE"
        symbiont.net.request("PATCH", URL, data="d", timeout=5)
        assert (last(broker)["method"], last(broker)["body"]) == ("PATCH", "d")
        symbiont.net.urlopen(URL)
        assert last(broker)["method"] == "GET"
        symbiont.net.urlopen(URL, data="q=1")
        assert last(broker)["method"] == "POST"


def test_response_status_and_errors() -> None:
    with FakeBroker(http={URL: (404, "not json")}):
        r = symbiont.net.get(URL)
    assert (r.status, r.ok, repr(r)) == (404, False, "<Response [404]>")
    with pytest.raises(symbiont.BrokerError) as raised:
        r.raise_for_status()
    assert raised.value.code == "http"
    with pytest.raises(ValueError, match="Expecting value"):
        r.json()


def test_fs_write_read_append() -> None:
    with FakeBroker() as broker:
        assert symbiont.fs.write("out/a.txt", "héllo") == len("héllo".encode())
        assert symbiont.fs.append("out/a.txt", " world") == 6
        assert symbiont.fs.write("out/a.txt", "!", append=True) == 1
        assert symbiont.fs.read("out/a.txt") == "héllo world!"
    assert broker.files == {"out/a.txt": "héllo world!"}


def test_env_get() -> None:
    with FakeBroker(env={"REGION": "eu-west-1"}):
        assert symbiont.env.get("REGION") == "eu-west-1"
        assert symbiont.env.get("HOME") is None
        assert symbiont.env.get("HOME", "/nowhere") == "/nowhere"


def test_secrets_get() -> None:
    with FakeBroker(secrets={"API_KEY": "s3cr3t"}):
        assert symbiont.secrets.get("API_KEY") == "s3cr3t"
        assert symbiont.secrets.get("api_key") == "s3cr3t"
        assert symbiont.secrets.get("other") is None


def test_log() -> None:
    with FakeBroker() as broker:
        symbiont.log("started")
        symbiont.log({"n": 1}, level="warn")
    assert broker.logs == [("info", "started"), ("warn", "{'n': 1}")]


def test_send_returns_the_sequence_number() -> None:
    with FakeBroker() as broker:
        assert symbiont.send("echo", {"question": 6}) == 1
        assert symbiont.send("echo", [1, 2]) == 2
    assert broker.sent == [("echo", {"question": 6}), ("echo", [1, 2])]


def test_receive_returns_a_message() -> None:
    with FakeBroker(inbox=[("echo", {"answer": 42})]):
        m = symbiont.receive(20000)
    assert m == symbiont.Message(from_="echo", seq=1, payload={"answer": 42})
    # Agents written against the dict the SDK used to return keep working.
    assert (m["from"], m["seq"], m["payload"]["answer"]) == ("echo", 1, 42)
    with pytest.raises(KeyError):
        m["to"]


def test_receive_timeout_is_none() -> None:
    with FakeBroker() as broker:
        assert symbiont.receive(timeout_ms=250) is None
    assert last(broker) == {"op": "receive_message", "timeout_ms": 250}


def test_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYMBIONT_INPUT", '{"port": 8080}')
    assert symbiont.input() == {"port": 8080}
    monkeypatch.delenv("SYMBIONT_INPUT")
    assert symbiont.input() is None


def test_raw_call_passes_its_fields() -> None:
    with FakeBroker(env={"REGION": "eu-west-1"}) as broker:
        assert symbiont._broker.call("env_get", name="REGION", agent="tester") == {"value": "eu-west-1"}
    assert broker.requests[-1] == {"id": 1, "op": "env_get", "name": "REGION", "agent": "tester"}


def test_public_names() -> None:
    for name in symbiont.__all__:
        assert getattr(symbiont, name) is not None, name
    for error in ("PolicyDenied", "AuditFailed", "Unidentified", "BadRequest", "Limited", "Failed"):
        assert issubclass(getattr(symbiont, error), symbiont.BrokerError)
    assert issubclass(symbiont.TransportError, symbiont.BrokerError)
    assert issubclass(symbiont.VersionMismatch, symbiont.BrokerError)
