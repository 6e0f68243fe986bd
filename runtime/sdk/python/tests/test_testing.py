"""The public fake broker (symbiont.testing) behaves as the real broker does for an agent's tests."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest

import symbiont
from symbiont.testing import DENIABLE, FakeBroker, Log, Sent

# Each decided op: a call that makes it, and the operation the real broker's denial names.
DENIALS: list[tuple[str, Callable[[], object], str]] = [
    ("http", lambda: symbiont.net.get("https://api.example.com/"), "policy denies https_request for agent agent"),
    ("http", lambda: symbiont.net.get("http://api.example.com/"), "policy denies http_request for agent agent"),
    ("file_read", lambda: symbiont.fs.read("a.txt"), "policy denies file_read for agent agent"),
    ("file_write", lambda: symbiont.fs.append("a.txt", "x"), "policy denies file_system_write for agent agent"),
    ("env_get", lambda: symbiont.env.get("HOME"), "policy denies env_access for agent agent"),
    ("secret_get", lambda: symbiont.secrets.get("DB_PASSWORD"), "policy denies secret_access for agent agent"),
    ("send_message", lambda: symbiont.send("vault", 1), "policy denies send_message to `vault` for agent agent"),
]
RULE = 'deny: thing(name) if name == "x" && `quoted` == "y"'


@pytest.mark.parametrize(("op", "call", "says"), DENIALS, ids=[f"{d[0]}-{d[2].split()[2]}" for d in DENIALS])
def test_a_denial_carries_its_rule(op: str, call: Callable[[], object], says: str) -> None:
    routes = {"https://api.example.com/": (200, "")}
    with (
        FakeBroker(files={"a.txt": "kept"}, http=routes, deny={op: RULE}) as broker,
        pytest.raises(symbiont.PolicyDenied) as raised,
    ):
        call()
    assert raised.value.rule == RULE
    assert raised.value.message == f"{says} by `{RULE}` (Denied)"
    assert broker.files == {"a.txt": "kept"}, "a denied request does nothing"
    assert broker.sent == []


def test_a_denial_without_a_rule_names_none() -> None:
    with FakeBroker(deny={"file_read": ""}), pytest.raises(symbiont.PolicyDenied) as raised:
        symbiont.fs.read("a.txt")
    assert raised.value.rule is None
    assert raised.value.message == "policy denies file_read for agent agent (NotAllowed)"


def test_a_denied_receive_consumes_the_message_and_answers_none() -> None:
    with FakeBroker(inbox=[("peer", 1), ("peer", 2)], deny={"receive_message": "deny: receive_message"}) as broker:
        assert symbiont.receive() is None
        broker.deny.clear()
        assert symbiont.receive() == symbiont.Message("peer", 2, 2)


def test_files_round_trip_and_a_missing_file_fails() -> None:
    with FakeBroker(files={"in/data.txt": "a"}) as broker:
        assert symbiont.fs.read("in/data.txt") == "a"
        symbiont.fs.write("out/r.txt", "1")
        symbiont.fs.append("out/r.txt", "2")
        symbiont.fs.append("out/new.txt", "n")
        with pytest.raises(symbiont.Failed, match=r"`missing.txt`: No such file"):
            symbiont.fs.read("missing.txt")
    assert broker.files == {"in/data.txt": "a", "out/r.txt": "12", "out/new.txt": "n"}


@pytest.mark.parametrize("path", ["", "/etc/passwd", "./a", "a/.", "a/../b", "a//b", "a/", "a\0b"])
def test_a_path_in_another_spelling_is_a_bad_request(path: str) -> None:
    with FakeBroker() as broker, pytest.raises(symbiont.BadRequest, match="is refused"):
        symbiont.fs.write(path, "x")
    assert broker.files == {}


def test_http_routes_by_exact_url() -> None:
    routes = {"https://api.example.com/v1/items": (200, "[1]"), "https://api.example.com/v1/gone": (410, "gone")}
    with FakeBroker(http=routes) as broker:
        assert symbiont.net.get("https://api.example.com/v1/items").json() == [1]
        assert symbiont.net.post("https://api.example.com/v1/gone", json={}).status == 410
        with pytest.raises(symbiont.Failed, match=r"the host unknown\.example does not resolve"):
            symbiont.net.get("https://unknown.example/v1/items")
        with pytest.raises(symbiont.Failed):
            symbiont.net.get("https://api.example.com/v1/items?page=2")
        with pytest.raises(symbiont.BadRequest, match="only http and https"):
            symbiont.net.get("ftp://api.example.com/")
    assert [r["url"] for r in broker.requests if r["op"] == "http"][:2] == list(routes)


def test_env_and_secrets_as_the_broker_answers_them() -> None:
    with FakeBroker(env={"REGION": "eu"}, secrets={"Db_Password": "pw"}) as broker:
        assert broker.secrets == {"db_password": "pw"}
        assert symbiont.env.get("REGION") == "eu"
        assert symbiont.env.get("region") is None, "variables are read by exact name"
        assert symbiont.secrets.get("DB_PASSWORD") == "pw"
        with pytest.raises(symbiont.BadRequest, match="secret name"):
            symbiont.secrets.get("db-password")


def test_the_inbox_is_first_in_first_out_and_empty_answers_none_at_once() -> None:
    with FakeBroker(inbox=[("a", {"n": 1}), ("b", "x")]) as broker:
        broker.inbox.append(("a", {"n": 2}))
        got = [symbiont.receive(1000), symbiont.receive(), symbiont.receive()]
        started = time.monotonic()
        assert symbiont.receive(30000) is None
        assert time.monotonic() - started < 5
    assert got == [
        symbiont.Message("a", 1, {"n": 1}),
        symbiont.Message("b", 1, "x"),
        symbiont.Message("a", 2, {"n": 2}),
    ]
    assert broker.inbox == []


def test_sent_logs_and_requests_are_recorded() -> None:
    with FakeBroker(agent="writer") as broker:
        assert symbiont.send("reviewer", {"diff": 1}) == 1
        assert symbiont.send("reviewer", 2) == 2
        assert symbiont.send("other", 3) == 1
        symbiont.log("hello")
        symbiont.log("careful", level="WARN")
        with pytest.raises(symbiont.BadRequest, match="log level"):
            symbiont.log("x", level="not a level")
    assert broker.sent == [Sent("reviewer", {"diff": 1}), ("reviewer", 2), ("other", 3)]
    assert broker.sent[0].to == "reviewer"
    assert broker.logs == [Log("info", "hello"), ("warn", "careful")]
    assert broker.requests[0]["op"] == "hello"
    assert [r["op"] for r in broker.requests[1:]] == ["send_message"] * 3 + ["log"] * 3


def test_input_is_set_while_open_and_restored() -> None:
    os.environ["SYMBIONT_INPUT"] = '"outer"'
    try:
        with FakeBroker(input={"name": "x"}):
            assert symbiont.input() == {"name": "x"}
        assert symbiont.input() == "outer"
        with FakeBroker():
            assert symbiont.input() is None
    finally:
        del os.environ["SYMBIONT_INPUT"]


def test_a_second_broker_after_the_first_and_nested_ones() -> None:
    before = os.environ.get("SYMBIONT_BROKER")
    with FakeBroker(files={"a": "first"}) as first:
        assert symbiont.fs.read("a") == "first"
    assert not os.path.exists(first.socket_path), "the socket is removed"
    assert not os.path.exists(os.path.dirname(first.socket_path))
    assert os.environ.get("SYMBIONT_BROKER") == before
    with FakeBroker(files={"a": "second"}) as second:
        assert os.environ["SYMBIONT_BROKER"] == second.socket_path
        assert symbiont.fs.read("a") == "second"
        with FakeBroker(files={"a": "inner"}):
            assert symbiont.fs.read("a") == "inner"
        assert symbiont.fs.read("a") == "second", "the outer broker's connection is back"
    second.close()  # closing twice is harmless


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match=r"deny: \['log'\] are not broker ops"):
        FakeBroker(deny={"log": "deny: log"})
    with pytest.raises(ValueError, match="secret name"):
        FakeBroker(secrets={"no spaces": "x"})
    with pytest.raises(ValueError, match="a route is"):
        FakeBroker(http={"https://a.example/": (99, "")})
    assert "SYMBIONT_BROKER" not in os.environ or os.path.exists(os.environ["SYMBIONT_BROKER"])
    assert set(DENIABLE) == {
        "http",
        "file_read",
        "file_write",
        "env_get",
        "secret_get",
        "send_message",
        "receive_message",
    }
