"""{{ name }}'s tests: its code against the SDK's fake broker, without a sandbox."""

from __future__ import annotations

import pytest
import symbiont
from symbiont.testing import FakeBroker

import {{ name }}
{% for f in functions %}
{% if f.function == "fetch_url" %}


def test_fetch_url_returns_the_body() -> None:
    with FakeBroker(http={"https://example.com/data": (200, "hello")}):
        assert {{ name }}.fetch_url("https://example.com/data") == "hello"
{% elif f.function == "read_file" %}


def test_read_file_reads_the_workspace() -> None:
    with FakeBroker(files={"notes.txt": "hello"}):
        assert {{ name }}.read_file("notes.txt") == "hello"
{% elif f.function == "write_file" %}


def test_write_file_writes_the_workspace() -> None:
    with FakeBroker() as broker:
        assert {{ name }}.write_file("out.txt", "hello") == 5
    assert broker.files["out.txt"] == "hello"
{% elif f.function == "read_env" %}


def test_read_env_reads_declared_variables_only() -> None:
    with FakeBroker(env={"REGION": "eu-west-1"}):
        assert {{ name }}.read_env("REGION") == "eu-west-1"
        assert {{ name }}.read_env("HOME") is None
{% elif f.function == "read_secret" %}


def test_read_secret_reads_by_name() -> None:
    with FakeBroker(secrets={"api_key": "s3cr3t"}):
        assert {{ name }}.read_secret("api_key") == "s3cr3t"
{% elif f.function == "send_message" %}


def test_send_message_sends_the_payload() -> None:
    with FakeBroker() as broker:
        assert {{ name }}.send_message("peer", {"n": 1}) == 1
    assert broker.sent == [("peer", {"n": 1})]
{% elif f.function == "receive_message" %}


def test_receive_message_returns_what_came() -> None:
    with FakeBroker(inbox=[("peer", {"n": 1})]):
        message = {{ name }}.receive_message(100)
    assert message is not None
    assert (message.from_, message.payload) == ("peer", {"n": 1})
{% endif %}
{% if f.broker_op != "receive_message" %}


def test_{{ f.function }}_raises_the_denial_naming_the_rule() -> None:
    rule = 'deny: ["{{ f.operations[0] }}"]'
    with FakeBroker(deny={"{{ f.broker_op }}": rule}), pytest.raises(symbiont.PolicyDenied) as denied:
{% if f.function == "fetch_url" %}
        {{ name }}.fetch_url("https://example.com/data")
{% elif f.function == "write_file" %}
        {{ name }}.write_file("out.txt", "hello")
{% elif f.function == "send_message" %}
        {{ name }}.send_message("peer", {"n": 1})
{% else %}
        {{ name }}.{{ f.function }}("name")
{% endif %}
    assert denied.value.rule == rule
{% endif %}
{% endfor %}


def test_main_does_nothing_unasked_and_logs_done() -> None:
    with FakeBroker(input={}) as broker:
        {{ name }}.main()
    assert broker.logs == [("info", "{{ name }}: done")]
