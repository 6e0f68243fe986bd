"""Fixtures: a scripted broker per test, and the SDK connected to it afresh."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

import symbiont

from .fake_broker import FakeBroker, Script, allow, hello_1_0

Start = Callable[..., FakeBroker]


@pytest.fixture
def start(monkeypatch: pytest.MonkeyPatch) -> Iterator[Start]:
    """Starts a scripted broker (default: :func:`allow`) for the SDK to use."""
    brokers: list[FakeBroker] = []
    connection = symbiont._Connection()
    monkeypatch.setattr(symbiont, "_broker", connection)

    def start(script: Script = allow, hello: Script = hello_1_0) -> FakeBroker:
        broker = FakeBroker(script, hello)
        brokers.append(broker)
        monkeypatch.setenv("SYMBIONT_BROKER", broker.path)
        return broker

    yield start
    connection.close()
    for broker in brokers:
        broker.stop()
