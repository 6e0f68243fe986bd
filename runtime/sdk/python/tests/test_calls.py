"""Every operation of the SDK, against an allowing fake broker: what is sent and what comes back."""

from __future__ import annotations

import json
from typing import Any

import pytest

import symbiont

from .conftest import Start
from .fake_broker import Memory, ok


def sent(reply_text: str) -> dict[str, Any]:
    """The HTTP request as the fake broker saw it (it echoes it as the body)."""
    echoed: dict[str, Any] = json.loads(reply_text)
    return echoed


def test_every_connection_starts_with_hello(start: Start) -> None:
    broker = start()
    symbiont.log("one")
    symbiont.log("two")
    assert broker.ops() == ["hello", "log", "log"]
    hello = broker.requests[0]
    assert hello == {"id": 0, "op": "hello", "protocol": "1.0", "sdk": f"python {symbiont.__version__}"}
    assert [r["id"] for r in broker.requests[1:]] == [1, 2]


def test_get(memory: Memory) -> None:
    r = symbiont.net.get("https://api.example.com/items", headers={"accept": "text/plain"})
    assert (r.status, r.status_code, r.ok) == (200, 200, True)
    assert sent(r.text) == {
        "method": "GET",
        "url": "https://api.example.com/items",
        "headers": {"accept": "text/plain"},
        "body": None,
    }
    assert r.json()["method"] == "GET"
    r.raise_for_status()


@pytest.mark.parametrize("method", ["post", "put"])
def test_post_and_put_send_data_or_json(memory: Memory, method: str) -> None:
    call = getattr(symbiont.net, method)
    with_data = sent(call("https://x.example/a", data=b"raw bytes").text)
    assert (with_data["method"], with_data["body"], with_data["headers"]) == (method.upper(), "raw bytes", {})
    with_json = sent(call("https://x.example/a", json={"n": 1}, headers={"x-k": "v"}).text)
    assert json.loads(with_json["body"]) == {"n": 1}
    assert with_json["headers"] == {"x-k": "v", "content-type": "application/json"}


def test_delete(memory: Memory) -> None:
    assert sent(symbiont.net.delete("https://x.example/a/1").text)["method"] == "DELETE"


def test_request_with_any_method(memory: Memory) -> None:
    echoed = sent(symbiont.net.request("PATCH", "https://x.example/a", data="d", timeout=5).text)
    assert (echoed["method"], echoed["body"]) == ("PATCH", "d")


def test_urlopen_gets_or_posts(memory: Memory) -> None:
    assert sent(symbiont.net.urlopen("https://x.example/").text)["method"] == "GET"
    assert sent(symbiont.net.urlopen("https://x.example/", data="q=1").text)["method"] == "POST"


def test_response_status_and_errors(start: Start) -> None:
    start(lambda req: ok(req, {"status": 404, "body": "not json"}))
    r = symbiont.net.get("https://x.example/")
    assert (r.status, r.ok, repr(r)) == (404, False, "<Response [404]>")
    with pytest.raises(symbiont.BrokerError) as raised:
        r.raise_for_status()
    assert raised.value.code == "http"
    with pytest.raises(ValueError, match="Expecting value"):
        r.json()


def test_fs_write_read_append(memory: Memory) -> None:
    assert symbiont.fs.write("out/a.txt", "héllo") == len("héllo".encode())
    assert symbiont.fs.append("out/a.txt", " world") == 6
    assert symbiont.fs.write("out/a.txt", "!", append=True) == 1
    assert symbiont.fs.read("out/a.txt") == "héllo world!"
    assert memory.files == {"out/a.txt": "héllo world!"}


def test_env_get(memory: Memory) -> None:
    assert symbiont.env.get("REGION") == "eu-west-1"
    assert symbiont.env.get("HOME") is None
    assert symbiont.env.get("HOME", "/nowhere") == "/nowhere"


def test_secrets_get(memory: Memory) -> None:
    assert symbiont.secrets.get("API_KEY") == "s3cr3t"
    assert symbiont.secrets.get("other") is None


def test_log(memory: Memory) -> None:
    symbiont.log("started")
    symbiont.log({"n": 1}, level="warn")
    assert memory.logs == [("info", "started"), ("warn", "{'n': 1}")]


def test_send_returns_the_sequence_number(memory: Memory) -> None:
    assert symbiont.send("echo", {"question": 6}) == 1
    assert symbiont.send("echo", [1, 2]) == 2
    assert memory.sent == [("echo", {"question": 6}), ("echo", [1, 2])]


def test_receive_returns_a_message(memory: Memory) -> None:
    memory.inbox.put({"from": "echo", "seq": 3, "payload": {"answer": 42}})
    m = symbiont.receive(20000)
    assert m == symbiont.Message(from_="echo", seq=3, payload={"answer": 42})
    assert m is not None
    # Agents written against the dict the SDK used to return keep working.
    assert (m["from"], m["seq"], m["payload"]["answer"]) == ("echo", 3, 42)
    with pytest.raises(KeyError):
        m["to"]


def test_receive_timeout_is_none(start: Start) -> None:
    broker = start()
    assert symbiont.receive(timeout_ms=250) is None
    assert broker.requests[-1] == {"id": 1, "op": "receive_message", "timeout_ms": 250}


def test_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYMBIONT_INPUT", '{"port": 8080}')
    assert symbiont.input() == {"port": 8080}
    monkeypatch.delenv("SYMBIONT_INPUT")
    assert symbiont.input() is None


def test_raw_call_passes_its_fields(start: Start) -> None:
    broker = start()
    assert symbiont._broker.call("env_get", name="REGION", agent="tester") == {"value": "eu-west-1"}
    assert broker.requests[-1] == {"id": 1, "op": "env_get", "name": "REGION", "agent": "tester"}


def test_public_names() -> None:
    for name in symbiont.__all__:
        assert getattr(symbiont, name) is not None, name
    for error in ("PolicyDenied", "AuditFailed", "Unidentified", "BadRequest", "Limited", "Failed"):
        assert issubclass(getattr(symbiont, error), symbiont.BrokerError)
    assert issubclass(symbiont.TransportError, symbiont.BrokerError)
    assert issubclass(symbiont.VersionMismatch, symbiont.BrokerError)
