"""The broker's errors as typed exceptions, a denial's rule, and the version handshake."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import symbiont

from .conftest import Start
from .fake_broker import Reply, allow, error, ok

DENIAL = (
    "policy denies file_system_write for agent worker by "
    '`deny: file_system_write(path) if path.ends_with(".key")` (Denied)'
)


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("denied", symbiont.PolicyDenied),
        ("audit_failed", symbiont.AuditFailed),
        ("unidentified", symbiont.Unidentified),
        ("bad_request", symbiont.BadRequest),
        ("limited", symbiont.Limited),
        ("failed", symbiont.Failed),
        ("something_new", symbiont.BrokerError),
    ],
)
def test_each_code_raises_its_error(start: Start, code: str, cls: type[symbiont.BrokerError]) -> None:
    start(lambda req: error(req, code, f"it is {code}"))
    with pytest.raises(symbiont.BrokerError) as raised:
        symbiont.fs.read("a.txt")
    assert type(raised.value) is cls
    assert (raised.value.code, raised.value.message, raised.value.rule) == (code, f"it is {code}", None)
    assert str(raised.value) == f"{code}: it is {code}"


def test_every_call_raises_the_brokers_error(start: Start) -> None:
    start(lambda req: error(req, "failed", "no"))
    calls: list[Callable[[], object]] = [
        lambda: symbiont.net.get("https://x.example/"),
        lambda: symbiont.fs.write("a", "b"),
        lambda: symbiont.fs.append("a", "b"),
        lambda: symbiont.env.get("A"),
        lambda: symbiont.secrets.get("a"),
        lambda: symbiont.log("a"),
        lambda: symbiont.send("b", 1),
        lambda: symbiont.receive(),
    ]
    for call in calls:
        with pytest.raises(symbiont.Failed):
            call()


def test_a_denial_carries_its_rule(start: Start) -> None:
    def script(req: dict[str, Any]) -> Reply:
        return error(req, "denied", DENIAL) if req.get("path") == "id.key" else allow(req)

    start(script)
    with pytest.raises(symbiont.PolicyDenied) as raised:
        symbiont.fs.write("id.key", "x")
    assert raised.value.code == "denied"
    assert raised.value.rule == 'deny: file_system_write(path) if path.ends_with(".key")'
    assert raised.value.message == DENIAL
    # The connection is still good after a denial.
    assert symbiont.fs.write("ok.txt", "x") == 1


def test_a_denial_without_a_rule(start: Start) -> None:
    start(lambda req: error(req, "denied", "policy denies file_read for agent worker (NotAllowed)"))
    with pytest.raises(symbiont.PolicyDenied) as raised:
        symbiont.fs.read("a")
    assert raised.value.rule is None


def test_a_broker_of_another_major_version(start: Start) -> None:
    broker = start(hello=lambda req: ok(req, {"protocol": "2.0", "agent": "tester"}))
    for _ in range(2):
        with pytest.raises(symbiont.VersionMismatch) as raised:
            symbiont.log("never sent")
        assert raised.value.code == "version"
        assert "protocol 2.0" in raised.value.message
        assert "protocol 1.0" in raised.value.message
    # Nothing but the handshake reached the broker: each call failed at once.
    assert broker.ops() == ["hello", "hello"]


def test_a_broker_that_refuses_our_version(start: Start) -> None:
    message = "the broker speaks protocol 2.0; this SDK speaks 1.0: use an SDK of major version 2"
    broker = start(hello=lambda req: error(req, "version", message))
    with pytest.raises(symbiont.VersionMismatch) as raised:
        symbiont.fs.read("a")
    assert raised.value.message == message
    assert broker.ops() == ["hello"]


def test_a_broker_without_the_handshake(start: Start) -> None:
    start(hello=lambda req: error(req, "bad_request", "unknown op `hello`"))
    with pytest.raises(symbiont.VersionMismatch, match=r"does not know the handshake of protocol 1\.0"):
        symbiont.log("a")


def test_a_minor_version_difference_is_fine(start: Start) -> None:
    start(hello=lambda req: ok(req, {"protocol": "1.7", "agent": "tester"}))
    symbiont.log("a")


def test_a_refused_connection_raises_the_brokers_error(start: Start) -> None:
    # Over the cap of connections, the broker answers the first line with an error about the
    # connection (`"id": null`) and closes it.
    broker = start(hello=lambda req: error(None, "limited", "too many connections"))
    with pytest.raises(symbiont.Limited):
        symbiont.log("a")
    broker.hello = lambda req: error(None, "unidentified", "not this agent's sandbox")
    with pytest.raises(symbiont.Unidentified):
        symbiont.log("a")
    assert broker.connections == 2


def test_a_request_too_large_for_the_broker_is_refused_before_sending(start: Start) -> None:
    broker = start()
    with pytest.raises(symbiont.BadRequest, match="at most"):
        symbiont.fs.write("big.txt", "x" * symbiont.MAX_LINE)
    # The connection stays usable.
    assert symbiont.fs.write("small.txt", "x") == 1
    assert broker.ops() == ["hello", "file_write"]
    assert broker.connections == 1


def test_what_json_cannot_carry_is_refused_before_sending(start: Start) -> None:
    broker = start()
    with pytest.raises(symbiont.BadRequest, match="cannot be sent as JSON"):
        symbiont.send("b", {1, 2})
    with pytest.raises(symbiont.BadRequest, match="cannot be sent as JSON"):
        symbiont.send("b", float("nan"))
    with pytest.raises(symbiont.BadRequest, match="cannot be sent as JSON"):
        symbiont.fs.write("a.txt", "\udc80")
    with pytest.raises(symbiont.BadRequest, match="not UTF-8"):
        symbiont.net.post("https://x.example/", data=b"\xff\xfe")
    assert broker.ops() == ["hello"]
