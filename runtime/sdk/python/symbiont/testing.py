"""A fake broker for an agent's own unit tests: the SDK's calls answered from memory, no sandbox.

:class:`FakeBroker` serves the broker protocol 1.0 (docs/broker-protocol.md) on a Unix socket in a
private temporary directory and points this process's SDK at it, so the code under test calls
``symbiont.fs.read(...)`` as it does in its sandbox. What it answers comes from the options (files,
environment, secrets, HTTP routes, denials, messages to receive); what the code did is recorded
(``sent``, ``logs``, ``requests``, and the files it wrote), all inspectable after the code ran::

    import symbiont
    from symbiont.testing import FakeBroker

    def test_report() -> None:
        with FakeBroker(
            files={"in.txt": "hello"},
            http={"https://api.example.com/v1/items": (200, '["x"]')},
            deny={"secret_get": 'deny: secret_access(name) if name == "db_password"'},
        ) as broker:
            run()  # the agent's code, calling symbiont.*
        assert broker.files["out/report.txt"] == "HELLO"
        assert broker.logs == [("info", "done")]

Like the real broker it refuses a path in another spelling (``./a``, ``a//b``, ``/etc/x``) and a
malformed secret name or log level as ``bad_request``, canonicalises secret names to lower case,
answers ``failed`` for a file it does not have or a URL it has no route for (as the real broker does
for a host that does not resolve), and names the deciding rule of a denial in its message exactly as
the real broker does, so the SDK's :class:`symbiont.PolicyDenied` carries it as ``rule``.

One process has one SDK connection: a :class:`FakeBroker` replaces it while open and puts the
previous one back when closed, so brokers opened one after another (or nested) each get a fresh
connection. Tests that use it must not run concurrently in one process (pytest runs one at a time).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import symbiont

__all__ = ["DENIABLE", "FakeBroker", "Log", "Sent"]

DENIABLE = ("http", "file_read", "file_write", "env_get", "secret_get", "send_message", "receive_message")
"""The broker ops a policy decides, and so the keys ``deny`` takes (``log`` and ``hello`` are not decided)."""

# The operation the policy decides for each broker op (its name in denial messages and rules).
_OPERATIONS = {
    "file_read": "file_read",
    "file_write": "file_system_write",
    "env_get": "env_access",
    "secret_get": "secret_access",
    "send_message": "send_message",
    "receive_message": "receive_message",
}
_SECRET_NAME = re.compile(r"[a-z0-9_]{1,128}\Z")
_LEVEL = re.compile(r"[A-Za-z]{1,16}\Z")


class Sent(NamedTuple):
    """A message the code under test sent with ``symbiont.send(to, payload)``."""

    to: str
    """The recipient agent."""
    payload: Any
    """The JSON value sent."""


class Log(NamedTuple):
    """A line the code under test logged with ``symbiont.log(message, level)``."""

    level: str
    """The level, in lower case as the broker keeps it (``info``, ``warn``...)."""
    message: str
    """The message, as sent."""


class _Refused(Exception):
    """A request the fake broker answers with an error ``code``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _Server:
    """A Unix socket in a private temporary directory; each request line is answered by ``answer``.

    ``answer`` returns the bytes to write back: a line, or bytes without the final newline (written,
    then the connection is closed: a broker that closes mid-reply), or ``None`` (closed, no reply).
    """

    def __init__(self, answer: Callable[[bytes], bytes | None]) -> None:
        self.answer = answer
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
                data = self.answer(line)
                if data is None:
                    return
                try:
                    conn.sendall(data)
                except OSError:
                    return
                if not data.endswith(b"\n"):
                    return

    def stop(self) -> None:
        """Stops serving, ends every connection and removes the socket and its directory (once)."""
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


def _reply_line(reply: dict[str, Any]) -> bytes:
    return json.dumps(reply, ensure_ascii=False).encode() + b"\n"


def _text(request: dict[str, Any], field: str) -> str:
    """The string field ``field`` of ``request``; missing or another type is ``bad_request``."""
    value = request.get(field)
    if not isinstance(value, str):
        raise _Refused("bad_request", f"the `{request.get('op')}` request's `{field}` must be a string")
    return value


def _path(request: dict[str, Any]) -> str:
    """The request's path, refused unless in the broker's one accepted spelling."""
    path = _text(request, "path")
    why = None
    if not path:
        why = "it is empty"
    elif path.startswith("/"):
        why = "it is absolute: paths are relative to the workspace"
    elif "\0" in path:
        why = "it holds NUL"
    elif len(path.encode()) > 4095:
        why = "it is longer than 4095 bytes"
    elif any(name in ("", ".", "..") for name in path.split("/")):
        why = "it has an empty, `.` or `..` name (write names separated by single `/`)"
    elif any(len(name.encode()) > 255 for name in path.split("/")):
        why = "a name is longer than 255 bytes"
    if why is not None:
        raise _Refused("bad_request", f"the path {json.dumps(path)} is refused: {why}")
    return path


def _secret_name(name: str) -> str:
    """A secret's canonical name (ASCII letters lowercased), refused unless 1 to 128 of ``a-z0-9_``."""
    canonical = "".join(c.lower() if c.isascii() else c for c in name)
    if not _SECRET_NAME.match(canonical):
        raise _Refused(
            "bad_request", f"the secret name {json.dumps(name)} is refused: it must be 1 to 128 of a-z, 0-9 and _"
        )
    return canonical


class FakeBroker:
    """A broker of protocol 1.0 answering from memory, which this process's SDK talks to while it is open.

    It starts serving when made and stops at :meth:`close` (or the end of its ``with`` block). Every
    option is copied into the attribute of the same name, which the test may read, or change between
    calls; the broker reads and updates these attributes as it answers.

    Attributes:
        files: workspace files, path -> content; ``file_read`` reads them, ``file_write`` replaces or
            appends (creating the file), so after the code ran it holds what it wrote.
        env: the variables the run declares, name -> value; any other name answers ``None``.
        secrets: secrets by canonical name (lower case), name -> value; any other answers ``None``.
        http: routes, URL -> ``(status, body)``, matched on the exact URL the code sent, any method;
            a URL with no route answers ``failed`` (``symbiont.Failed``), as the real broker does for a
            host that does not resolve.
        deny: broker op (one of :data:`DENIABLE`) -> the rule that denies it, as written in a policy;
            every request of that op answers ``denied`` naming the rule, so ``symbiont.PolicyDenied``
            carries it as ``rule`` (an empty rule: a denial that names none, ``rule`` is ``None``). A
            denied ``receive_message`` consumes the next message and answers ``None``, as the real
            broker does.
        inbox: messages for ``symbiont.receive`` to return, ``(from, payload)``, first in first out,
            each with the next sequence number of its sender (1, 2...); empty, ``receive`` answers
            ``None`` at once, whatever its timeout.
        sent: what the code sent, :class:`Sent` ``(to, payload)``, in order.
        logs: what the code logged, :class:`Log` ``(level, message)``, in order.
        requests: every request as received (``hello`` included), in order.
        agent: the agent's name the broker gives in its ``hello`` answer and denial messages.
        socket_path: the socket it serves (also in ``SYMBIONT_BROKER`` while it is open).
    """

    def __init__(
        self,
        *,
        files: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        secrets: Mapping[str, str] | None = None,
        http: Mapping[str, tuple[int, str]] | None = None,
        deny: Mapping[str, str] | None = None,
        inbox: Iterable[tuple[str, Any]] | None = None,
        input: Any = None,
        agent: str = "agent",
    ) -> None:
        """Starts serving and points the SDK at this broker.

        Args:
            files: the workspace's files at the start, path -> content.
            env: the run's declared variables, name -> value.
            secrets: the host's secrets, name -> value (any case: kept under the canonical lower-case name).
            http: routes, URL -> ``(status, body)``.
            deny: broker op -> the deciding rule's text.
            inbox: messages to receive, ``(from, payload)``.
            input: the run's input, which ``symbiont.input()`` returns while the broker is open
                (``SYMBIONT_INPUT`` is set to its JSON; ``None``: unset).
            agent: the agent's name.

        Raises:
            ValueError: a ``deny`` key that is not a decided broker op, a malformed secret name, an
                HTTP status outside 100-599 or a body that is not text.
        """
        unknown = sorted(set(deny or {}) - set(DENIABLE))
        if unknown:
            raise ValueError(f"deny: {unknown} are not broker ops a policy decides; use one of {list(DENIABLE)}")
        for url, route in (http or {}).items():
            if not (isinstance(route, tuple) and len(route) == 2):
                raise ValueError(f"http[{url!r}]: a route is (status, body), not {route!r}")
            status, body = route
            if not (isinstance(status, int) and 100 <= status <= 599 and isinstance(body, str)):
                raise ValueError(f"http[{url!r}]: a route is (status 100-599, body text), not {route!r}")
        self.secrets: dict[str, str] = {}
        for name, value in (secrets or {}).items():
            try:
                self.secrets[_secret_name(name)] = value
            except _Refused as e:
                raise ValueError(f"secrets: {e.message}") from None
        self.files: dict[str, str] = dict(files or {})
        self.env: dict[str, str] = dict(env or {})
        self.http: dict[str, tuple[int, str]] = dict(http or {})
        self.deny: dict[str, str] = dict(deny or {})
        self.inbox: list[tuple[str, Any]] = list(inbox or [])
        self.sent: list[Sent] = []
        self.logs: list[Log] = []
        self.requests: list[dict[str, Any]] = []
        self.agent = agent
        self._sequences: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._server = _Server(self._answer)
        self.socket_path = self._server.path
        self._before = (os.environ.get("SYMBIONT_BROKER"), os.environ.get("SYMBIONT_INPUT"), symbiont._broker)
        self._closed = False
        os.environ["SYMBIONT_BROKER"] = self.socket_path
        _set_env("SYMBIONT_INPUT", None if input is None else json.dumps(input))
        symbiont._broker = symbiont._Connection()

    def close(self) -> None:
        """Stops serving, removes the socket, and gives the SDK back its previous broker and connection."""
        if self._closed:
            return
        self._closed = True
        symbiont._broker.close()
        broker, input, connection = self._before
        symbiont._broker = connection
        _set_env("SYMBIONT_BROKER", broker)
        _set_env("SYMBIONT_INPUT", input)
        self._server.stop()

    def __enter__(self) -> FakeBroker:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _answer(self, line: bytes) -> bytes:
        """The reply line to one request line."""
        try:
            request = json.loads(line)
        except ValueError as e:
            return _reply_line({"id": None, "ok": False, "error": {"code": "bad_request", "message": f"not JSON: {e}"}})
        if not isinstance(request, dict):
            message = "a request is a JSON object"
            return _reply_line({"id": None, "ok": False, "error": {"code": "bad_request", "message": message}})
        with self._lock:
            self.requests.append(request)
            try:
                reply = {"id": request.get("id"), "ok": True, "result": self._result(request)}
            except _Refused as e:
                reply = {"id": request.get("id"), "ok": False, "error": {"code": e.code, "message": e.message}}
        return _reply_line(reply)

    def _result(self, request: dict[str, Any]) -> Any:
        """The result of ``request``, or :class:`_Refused` with the error the real broker would give."""
        op = request.get("op")
        if op == "hello":
            return self._hello(request)
        if op == "log":
            return self._log(request)
        acts: dict[str, Callable[[dict[str, Any]], Any]] = {
            "http": self._http,
            "file_read": self._file_read,
            "file_write": self._file_write,
            "env_get": self._env_get,
            "secret_get": self._secret_get,
            "send_message": self._send,
            "receive_message": self._receive,
        }
        if not isinstance(op, str) or op not in acts:
            raise _Refused("bad_request", f"unknown op {json.dumps(op)}: expected hello, log or one of {DENIABLE}")
        return acts[op](request)

    def _decide(self, op: str, operation: str, target: str = "") -> None:
        """Refuses ``request`` as ``denied`` when ``deny`` names its op, in the real broker's words."""
        if op not in self.deny:
            return
        rule = self.deny[op]
        by, reason = (f" by `{rule}`", "Denied") if rule else ("", "NotAllowed")
        raise _Refused("denied", f"policy denies {operation}{target} for agent {self.agent}{by} ({reason})")

    def _hello(self, request: dict[str, Any]) -> dict[str, str]:
        theirs = str(request.get("protocol", ""))
        if theirs.split(".")[0] != symbiont.PROTOCOL_VERSION.split(".")[0]:
            raise _Refused(
                "version",
                f"the broker speaks protocol {symbiont.PROTOCOL_VERSION}; this SDK speaks {theirs}: "
                f"use an SDK of major version {symbiont.PROTOCOL_VERSION.split('.')[0]}",
            )
        return {"protocol": symbiont.PROTOCOL_VERSION, "agent": self.agent}

    def _log(self, request: dict[str, Any]) -> None:
        level = request.get("level", "info")
        if not isinstance(level, str) or not _LEVEL.match(level):
            raise _Refused("bad_request", f"the log level {json.dumps(level)} is refused: 1 to 16 letters")
        self.logs.append(Log(level.lower(), _text(request, "message")))

    def _http(self, request: dict[str, Any]) -> dict[str, Any]:
        url = _text(request, "url")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _Refused(
                "bad_request", f"the URL {json.dumps(url)} is refused: only http and https URLs are accepted"
            )
        self._decide("http", f"{parts.scheme}_request")
        if url not in self.http:
            raise _Refused(
                "failed", f"the host {parts.hostname} does not resolve: the fake broker has no route for {url}"
            )
        status, body = self.http[url]
        return {"status": status, "body": body}

    def _file_read(self, request: dict[str, Any]) -> dict[str, str]:
        path = _path(request)
        self._decide("file_read", "file_read")
        if path not in self.files:
            raise _Refused("failed", f"`{path}`: No such file or directory (os error 2)")
        return {"content": self.files[path]}

    def _file_write(self, request: dict[str, Any]) -> dict[str, int]:
        path = _path(request)
        content = _text(request, "content")
        self._decide("file_write", "file_system_write")
        before = self.files.get(path, "") if request.get("append") else ""
        self.files[path] = before + content
        return {"written": len(content.encode())}

    def _env_get(self, request: dict[str, Any]) -> dict[str, str | None]:
        name = _text(request, "name")
        self._decide("env_get", "env_access")
        return {"value": self.env.get(name)}

    def _secret_get(self, request: dict[str, Any]) -> dict[str, str | None]:
        name = _secret_name(_text(request, "name"))
        self._decide("secret_get", "secret_access")
        return {"value": self.secrets.get(name)}

    def _send(self, request: dict[str, Any]) -> dict[str, int]:
        to = _text(request, "to")
        if "payload" not in request:
            raise _Refused("bad_request", "the `send_message` request lacks its `payload`")
        self._decide("send_message", "send_message", f" to `{to}`")
        self.sent.append(Sent(to, request["payload"]))
        return {"delivered": self._next_seq(self.agent, to)}

    def _receive(self, request: dict[str, Any]) -> dict[str, Any] | None:
        if not self.inbox:
            return None
        sender, payload = self.inbox.pop(0)
        seq = self._next_seq(sender, self.agent)
        if "receive_message" in self.deny:
            return None  # the real broker consumes a message its policy refuses and answers nothing
        return {"from": sender, "seq": seq, "payload": payload}

    def _next_seq(self, sender: str, recipient: str) -> int:
        seq = self._sequences.get((sender, recipient), 0) + 1
        self._sequences[(sender, recipient)] = seq
        return seq


def _set_env(name: str, value: str | None) -> None:
    """Sets ``name`` to ``value``, or unsets it for ``None``."""
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
