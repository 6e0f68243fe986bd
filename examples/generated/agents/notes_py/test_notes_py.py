"""notes_py's tests: its code against the SDK's fake broker, without a sandbox."""

from __future__ import annotations

import pytest
import symbiont
from symbiont.testing import FakeBroker

import notes_py


def test_fetch_url_returns_the_body() -> None:
    with FakeBroker(http={"https://example.com/data": (200, "hello")}):
        assert notes_py.fetch_url("https://example.com/data") == "hello"


def test_fetch_url_raises_the_denial_naming_the_rule() -> None:
    rule = 'deny: ["https_request"]'
    with FakeBroker(deny={"http": rule}), pytest.raises(symbiont.PolicyDenied) as denied:
        notes_py.fetch_url("https://example.com/data")
    assert denied.value.rule == rule


def test_read_file_reads_the_workspace() -> None:
    with FakeBroker(files={"notes.txt": "hello"}):
        assert notes_py.read_file("notes.txt") == "hello"


def test_read_file_raises_the_denial_naming_the_rule() -> None:
    rule = 'deny: ["file_read"]'
    with FakeBroker(deny={"file_read": rule}), pytest.raises(symbiont.PolicyDenied) as denied:
        notes_py.read_file("name")
    assert denied.value.rule == rule


def test_write_file_writes_the_workspace() -> None:
    with FakeBroker() as broker:
        assert notes_py.write_file("out.txt", "hello") == 5
    assert broker.files["out.txt"] == "hello"


def test_write_file_raises_the_denial_naming_the_rule() -> None:
    rule = 'deny: ["file_system_write"]'
    with FakeBroker(deny={"file_write": rule}), pytest.raises(symbiont.PolicyDenied) as denied:
        notes_py.write_file("out.txt", "hello")
    assert denied.value.rule == rule


def test_read_env_reads_declared_variables_only() -> None:
    with FakeBroker(env={"REGION": "eu-west-1"}):
        assert notes_py.read_env("REGION") == "eu-west-1"
        assert notes_py.read_env("HOME") is None


def test_read_env_raises_the_denial_naming_the_rule() -> None:
    rule = 'deny: ["env_access"]'
    with FakeBroker(deny={"env_get": rule}), pytest.raises(symbiont.PolicyDenied) as denied:
        notes_py.read_env("name")
    assert denied.value.rule == rule


def test_read_secret_reads_by_name() -> None:
    with FakeBroker(secrets={"api_key": "s3cr3t"}):
        assert notes_py.read_secret("api_key") == "s3cr3t"


def test_read_secret_raises_the_denial_naming_the_rule() -> None:
    rule = 'deny: ["secret_access"]'
    with FakeBroker(deny={"secret_get": rule}), pytest.raises(symbiont.PolicyDenied) as denied:
        notes_py.read_secret("name")
    assert denied.value.rule == rule


def test_send_message_sends_the_payload() -> None:
    with FakeBroker() as broker:
        assert notes_py.send_message("peer", {"n": 1}) == 1
    assert broker.sent == [("peer", {"n": 1})]


def test_send_message_raises_the_denial_naming_the_rule() -> None:
    rule = 'deny: ["send_message"]'
    with FakeBroker(deny={"send_message": rule}), pytest.raises(symbiont.PolicyDenied) as denied:
        notes_py.send_message("peer", {"n": 1})
    assert denied.value.rule == rule


def test_receive_message_returns_what_came() -> None:
    with FakeBroker(inbox=[("peer", {"n": 1})]):
        message = notes_py.receive_message(100)
    assert message is not None
    assert (message.from_, message.payload) == ("peer", {"n": 1})


def test_main_does_nothing_unasked_and_logs_done() -> None:
    with FakeBroker(input={}) as broker:
        notes_py.main()
    assert broker.logs == [("info", "notes_py: done")]
