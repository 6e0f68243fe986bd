"""A scripted broker for the SDK's transport tests: each reply is whatever the test's script says.

It answers ``hello`` as a broker of protocol 1.0 does (or as ``hello`` says) and every other request as
its script says, on :mod:`symbiont.testing`'s server. A script returns what to send back:

- a dict: one JSON reply line;
- bytes: sent as they are; bytes that do not end a line are followed by closing the connection
  (a broker that closes mid-reply);
- ``None``: the connection is closed without a reply.

Tests of what the SDK sends and receives use the public :class:`symbiont.testing.FakeBroker`; this one
is for what it cannot do: a broker that breaks the protocol, closes mid-reply or speaks another version.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from symbiont.testing import _Server

Reply = dict[str, Any] | bytes | None
Script = Callable[[dict[str, Any]], Reply]


def ok(request: dict[str, Any], result: Any) -> dict[str, Any]:
    """A successful reply to ``request``."""
    return {"id": request.get("id"), "ok": True, "result": result}


def error(request: dict[str, Any] | None, code: str, message: str) -> dict[str, Any]:
    """An error reply to ``request``; ``None`` for an error about the connection (``"id": null``)."""
    return {
        "id": None if request is None else request.get("id"),
        "ok": False,
        "error": {"code": code, "message": message},
    }


def hello_1_0(request: dict[str, Any]) -> Reply:
    """The answer of a broker of protocol 1.0 to ``hello``."""
    return ok(request, {"protocol": "1.0", "agent": "tester"})


def allow(request: dict[str, Any]) -> Reply:
    """A well-formed result for every op: a file reads ``fine``, nothing else holds anything."""
    results: dict[str, Any] = {
        "http": {"status": 200, "body": ""},
        "file_read": {"content": "fine"},
        "file_write": {"written": len(str(request.get("content", "")).encode())},
        "env_get": {"value": None},
        "secret_get": {"value": None},
        "log": None,
        "send_message": {"delivered": 1},
        "receive_message": None,
    }
    return ok(request, results[request["op"]])


class FakeBroker:
    """A broker serving ``script`` on a Unix socket in a temporary directory, until :meth:`stop`."""

    def __init__(self, script: Script, hello: Script = hello_1_0) -> None:
        self.script = script
        self.hello = hello
        self.requests: list[dict[str, Any]] = []
        """Every request received, ``hello`` included, in order."""
        self._lock = threading.Lock()
        self._server = _Server(self._answer)
        self.path = self._server.path

    @property
    def connections(self) -> int:
        """How many connections were accepted."""
        return self._server.connections

    def _answer(self, line: bytes) -> bytes | None:
        request = json.loads(line)
        with self._lock:
            self.requests.append(request)
        reply = (self.hello if request.get("op") == "hello" else self.script)(request)
        if reply is None or isinstance(reply, bytes):
            return reply
        return json.dumps(reply).encode() + b"\n"

    def ops(self) -> list[str]:
        """The ``op`` of every request received, in order."""
        with self._lock:
            return [r["op"] for r in self.requests]

    def stop(self) -> None:
        """Stops serving and removes the socket (once)."""
        self._server.stop()
