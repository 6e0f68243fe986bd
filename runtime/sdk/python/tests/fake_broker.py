"""A broker for the SDK's tests: a thread serving a Unix socket, speaking the JSON-lines protocol.

It answers ``hello`` as a broker of protocol 1.0 does and every other request as its script says;
the default script, :class:`Memory`, is a broker that allows everything and keeps files, messages
and logs in memory. A script returns what to send back:

- a dict: one JSON reply line;
- bytes: sent as they are; bytes that do not end a line are followed by closing the connection
  (a broker that closes mid-reply);
- ``None``: the connection is closed without a reply.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import socket
import tempfile
import threading
from collections.abc import Callable
from typing import Any

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


class Memory:
    """A broker that allows everything: files, environment, secrets, messages and logs in memory."""

    def __init__(self) -> None:
        self.files: dict[str, str] = {}
        self.env: dict[str, str] = {"REGION": "eu-west-1"}
        self.secrets: dict[str, str] = {"api_key": "s3cr3t"}
        self.logs: list[tuple[str, str]] = []
        self.inbox: queue.Queue[dict[str, Any]] = queue.Queue()
        self.sent: list[tuple[str, Any]] = []

    def __call__(self, request: dict[str, Any]) -> Reply:
        """The reply of an allowing broker to ``request``."""
        op = request["op"]
        if op == "http":
            echo = {k: request.get(k) for k in ("method", "url", "headers", "body")}
            return ok(request, {"status": 200, "body": json.dumps(echo)})
        if op == "file_read":
            if request["path"] not in self.files:
                return error(request, "failed", f"no such file: {request['path']}")
            return ok(request, {"content": self.files[request["path"]]})
        if op == "file_write":
            before = self.files.get(request["path"], "") if request.get("append") else ""
            self.files[request["path"]] = before + request["content"]
            return ok(request, {"written": len(request["content"].encode())})
        if op == "env_get":
            return ok(request, {"value": self.env.get(request["name"])})
        if op == "secret_get":
            return ok(request, {"value": self.secrets.get(request["name"].lower())})
        if op == "log":
            self.logs.append((request.get("level", "info"), request["message"]))
            return ok(request, None)
        if op == "send_message":
            self.sent.append((request["to"], request["payload"]))
            return ok(request, {"delivered": len(self.sent)})
        if op == "receive_message":
            try:
                return ok(request, self.inbox.get_nowait())
            except queue.Empty:
                return ok(request, None)
        return error(request, "bad_request", f"unknown op {op!r}")


class FakeBroker:
    """A broker serving ``script`` on a Unix socket in a temporary directory, until :meth:`stop`."""

    def __init__(self, script: Script, hello: Script = hello_1_0) -> None:
        self.script = script
        self.hello = hello
        self.requests: list[dict[str, Any]] = []
        """Every request received, ``hello`` included, in order."""
        self.connections = 0
        """How many connections were accepted."""
        # A short directory: a Unix socket's path is at most 107 bytes.
        self._dir = tempfile.mkdtemp(prefix="symsdk")
        self.path = os.path.join(self._dir, "broker.sock")
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self.path)
        self._listener.listen(64)
        self._open: list[socket.socket] = []
        self._stopping = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            conn, _ = self._listener.accept()
            with self._lock:
                if self._stopping:
                    conn.close()
                    return
                self.connections += 1
                self._open.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as lines:
            for line in lines:
                request = json.loads(line)
                with self._lock:
                    self.requests.append(request)
                reply = (self.hello if request.get("op") == "hello" else self.script)(request)
                if reply is None:
                    return
                data = reply if isinstance(reply, bytes) else json.dumps(reply).encode() + b"\n"
                try:
                    conn.sendall(data)
                except OSError:
                    return
                if not data.endswith(b"\n"):
                    return

    def ops(self) -> list[str]:
        """The ``op`` of every request received, in order."""
        with self._lock:
            return [r["op"] for r in self.requests]

    def stop(self) -> None:
        """Stops serving and removes the socket (once)."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
            conns = list(self._open)
        for conn in conns:
            with contextlib.suppress(OSError):  # already closed by its thread
                conn.shutdown(socket.SHUT_RDWR)
        # Wakes the accept loop, which sees it is stopping.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as wake:
            wake.connect(self.path)
        self._thread.join(5)
        self._listener.close()
        os.unlink(self.path)
        os.rmdir(self._dir)
