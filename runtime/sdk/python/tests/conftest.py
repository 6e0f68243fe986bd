"""Fixtures: a fake broker per test, and the SDK connected to it afresh."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

import symbiont

from .fake_broker import FakeBroker, Memory, Script, hello_1_0

Start = Callable[..., FakeBroker]


@pytest.fixture
def start(monkeypatch: pytest.MonkeyPatch) -> Iterator[Start]:
    """Starts a fake broker with a script (default: an allowing :class:`Memory`) for the SDK to use."""
    brokers: list[FakeBroker] = []
    connection = symbiont._Connection()
    monkeypatch.setattr(symbiont, "_broker", connection)

    def start(script: Script | None = None, hello: Script = hello_1_0) -> FakeBroker:
        broker = FakeBroker(script or Memory(), hello)
        brokers.append(broker)
        monkeypatch.setenv("SYMBIONT_BROKER", broker.path)
        return broker

    yield start
    connection.close()
    for broker in brokers:
        broker.stop()


@pytest.fixture
def memory(start: Start) -> Memory:
    """An allowing broker, started; its state is what the test inspects."""
    memory = Memory()
    start(memory)
    return memory
