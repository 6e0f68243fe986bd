"""The calls' signatures are the ones docs/sdk.md lists (the surface every SDK shares)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

import symbiont
import symbiont.testing

# Each call, with its parameters in order and their defaults (`inspect.Parameter.empty`: required).
REQUIRED = inspect.Parameter.empty
SURFACE: list[tuple[Callable[..., Any], list[tuple[str, Any]]]] = [
    (symbiont.net.get, [("url", REQUIRED), ("headers", None)]),
    (symbiont.net.post, [("url", REQUIRED), ("data", None), ("json", None), ("headers", None)]),
    (symbiont.net.put, [("url", REQUIRED), ("data", None), ("json", None), ("headers", None)]),
    (symbiont.net.delete, [("url", REQUIRED), ("headers", None)]),
    (
        symbiont.net.request,
        [("method", REQUIRED), ("url", REQUIRED), ("headers", None), ("data", None), ("json", None)],
    ),
    (symbiont.net.urlopen, [("url", REQUIRED), ("data", None)]),
    (symbiont.fs.read, [("path", REQUIRED)]),
    (symbiont.fs.write, [("path", REQUIRED), ("content", REQUIRED)]),
    (symbiont.fs.append, [("path", REQUIRED), ("content", REQUIRED)]),
    (symbiont.env.get, [("name", REQUIRED), ("default", None)]),
    (symbiont.secrets.get, [("name", REQUIRED)]),
    (symbiont.log, [("message", REQUIRED), ("level", "info")]),
    (symbiont.send, [("to", REQUIRED), ("payload", REQUIRED)]),
    (symbiont.receive, [("timeout_ms", 0)]),
    (symbiont.input, []),
]


@pytest.mark.parametrize(("call", "parameters"), SURFACE, ids=lambda v: getattr(v, "__qualname__", ""))
def test_signature(call: Callable[..., Any], parameters: list[tuple[str, Any]]) -> None:
    signature = inspect.signature(call)
    found = [(p.name, p.default) for p in signature.parameters.values()]
    # The listed parameters come first, in order; any more are optional (`timeout=`, `append=`).
    assert found[: len(parameters)] == parameters
    assert all(default is not REQUIRED for _, default in found[len(parameters) :])
    assert inspect.getdoc(call), f"{call.__qualname__} has no docstring"


def test_every_public_name_is_documented() -> None:
    for name in symbiont.__all__:
        value = getattr(symbiont, name)
        if callable(value) or isinstance(value, type):
            assert inspect.getdoc(value), name
    for error in (symbiont.PolicyDenied, symbiont.TransportError, symbiont.VersionMismatch):
        assert error.__doc__, error.__name__


def test_every_public_name_of_the_testing_module_is_documented() -> None:
    assert inspect.getdoc(symbiont.testing)
    for name in symbiont.testing.__all__:
        assert inspect.getdoc(getattr(symbiont.testing, name)) or name == "DENIABLE", name
    broker = symbiont.testing.FakeBroker
    for member in ("__init__", "close"):
        assert inspect.getdoc(getattr(broker, member)), member
    assert list(inspect.signature(broker).parameters) == [
        "files",
        "env",
        "secrets",
        "http",
        "deny",
        "inbox",
        "input",
        "agent",
    ]
