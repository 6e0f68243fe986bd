"""The connection: large payloads, a broker that closes or says nonsense, reconnecting, threads."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import symbiont
from symbiont.testing import FakeBroker

from .conftest import Start
from .fake_broker import Reply, Script, allow, error, ok


def first_then(first: Reply, op: str = "file_read") -> Script:
    """A script that answers the first ``op`` with ``first`` and everything else as :func:`allow`."""
    answered: list[bool] = []

    def script(req: dict[str, Any]) -> Reply:
        if req["op"] == op and not answered:
            answered.append(True)
            return first
        return allow(req)

    return script


def test_a_16_mib_payload_round_trip() -> None:
    content = "é" + "x" * ((16 << 20) - 3) + "\n"
    assert len(content.encode()) == 16 << 20
    with FakeBroker() as broker:
        assert symbiont.fs.write("big.txt", content) == 16 << 20
        assert symbiont.fs.read("big.txt") == content
        assert symbiont.send("peer", {"blob": content}) == 1
    assert broker.sent[0].payload["blob"] == content


def test_no_socket(monkeypatch: pytest.MonkeyPatch, start: Start) -> None:
    monkeypatch.setenv("SYMBIONT_BROKER", "/nonexistent/broker.sock")
    with pytest.raises(
        symbiont.TransportError, match=r"cannot reach the broker at /nonexistent/broker\.sock"
    ) as raised:
        symbiont.log("a")
    assert raised.value.code == "transport"


@pytest.mark.parametrize(
    ("reply", "says"),
    [
        (b'{"id": 1, "ok": true, "result": {"con', "closed the connection mid-reply"),
        (None, "closed the connection without replying"),
        (b"this is not JSON\n", "malformed reply"),
        (b"[1, 2]\n", "malformed reply"),
        (b'{"id": 1, "result": {}}\n', "malformed reply"),
        (b'{"id": 7, "ok": true, "result": {"content": "x"}}\n', "answered request 7 to request 1"),
        (b'{"id": 1, "ok": false, "error": "denied"}\n', "its error is 'denied'"),
    ],
)
def test_a_broken_reply_is_a_transport_error_and_the_next_call_reconnects(
    start: Start, reply: Reply, says: str
) -> None:
    broker = start(first_then(reply))
    with pytest.raises(symbiont.TransportError, match=says):
        symbiont.fs.read("a.txt")
    assert symbiont.fs.read("a.txt") == "fine"
    assert broker.connections == 2
    assert broker.ops() == ["hello", "file_read", "hello", "file_read"]


def test_a_result_without_its_field(start: Start) -> None:
    start(first_then(ok({"id": 1}, {"text": "x"})))
    with pytest.raises(symbiont.TransportError, match="no 'content' in"):
        symbiont.fs.read("a.txt")
    assert symbiont.fs.read("a.txt") == "fine"


def test_a_broker_that_closes_mid_hello(start: Start) -> None:
    start(hello=lambda req: b'{"id": 0, "ok": tr')
    with pytest.raises(symbiont.TransportError, match="mid-reply"):
        symbiont.log("a")


def test_reconnect_after_an_error_about_the_connection(start: Start) -> None:
    # A reply with `"id": null` is the broker's last line on that connection.
    broker = start(first_then(error(None, "limited", "too many bytes buffered")))
    with pytest.raises(symbiont.Limited, match="too many bytes buffered"):
        symbiont.fs.read("a.txt")
    assert symbiont.fs.read("a.txt") == "fine"
    assert broker.connections == 2
    assert broker.ops() == ["hello", "file_read", "hello", "file_read"]


def test_an_error_with_its_id_keeps_the_connection(start: Start) -> None:
    broker = start(first_then(error({"id": 1}, "failed", "no such file")))
    with pytest.raises(symbiont.Failed):
        symbiont.fs.read("a.txt")
    assert symbiont.fs.read("a.txt") == "fine"
    assert broker.connections == 1


def test_a_broker_that_restarts_between_calls(start: Start) -> None:
    first = start()
    symbiont.log("a")
    first.stop()
    with pytest.raises(symbiont.TransportError):
        symbiont.log("b")
    second = start()
    symbiont.log("c")
    assert second.ops() == ["hello", "log"]


def test_threads_take_turns(start: Start) -> None:
    broker = start(lambda req: ok(req, {"content": req["path"]}))
    seen: dict[str, str] = {}

    def reader(n: int) -> None:
        for i in range(25):
            path = f"t{n}/{i}"
            seen[path] = symbiont.fs.read(path)

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 200
    assert all(path == content for path, content in seen.items())
    assert broker.connections == 1
