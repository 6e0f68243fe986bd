"""Symbiont's capability SDK for Python agents.

An agent inside a Symbiont sandbox has no network and a read-only file system: everything it
does outside goes through its broker, which checks the agent's policy and records the request
in the signed audit log first. This module speaks the broker's JSON-lines protocol
(docs/broker-protocol.md) over the socket named by ``SYMBIONT_BROKER``. Standard library only.

    import symbiont
    r = symbiont.net.get("https://api.example.com/v1/items")
    symbiont.fs.write("out/report.txt", r.text)

Every call raises a :class:`BrokerError` subclass when it does not succeed: :class:`PolicyDenied`
(with the deciding ``rule``), :class:`AuditFailed`, :class:`Unidentified`, :class:`BadRequest`,
:class:`Limited`, :class:`Failed`, :class:`TransportError` or :class:`VersionMismatch`.
"""

from __future__ import annotations

import contextlib
import json as _json
import os
import re
import socket
import threading
from dataclasses import dataclass
from typing import IO, Any, overload

__version__ = "0.1.0"
PROTOCOL_VERSION = "1.0"
"""The broker protocol this SDK speaks; a broker of another major version is refused."""

__all__ = [
    "PROTOCOL_VERSION",
    "AuditFailed",
    "BadRequest",
    "BrokerError",
    "Failed",
    "Limited",
    "Message",
    "PolicyDenied",
    "Response",
    "TransportError",
    "Unidentified",
    "VersionMismatch",
    "__version__",
    "env",
    "fs",
    "input",
    "log",
    "net",
    "receive",
    "secrets",
    "send",
]

DEFAULT_SOCKET = "/run/symbiont/broker.sock"
# The broker reads a request line of at most 17 MiB and closes the connection past it; a larger
# request is refused here, before it is sent, so that the connection stays usable.
MAX_LINE = 17 << 20


class BrokerError(Exception):
    """The broker refused or could not carry out a request.

    Attributes:
        code: the broker's error code (``denied``, ``bad_request``, ``unidentified``,
            ``audit_failed``, ``failed``, ``limited``), or ``transport``, ``version``, ``http``
            for errors this SDK finds itself.
        message: what the broker (or the SDK) said, for a person.
        rule: the policy rule that decided a denial, as the broker names it; ``None`` otherwise.
    """

    def __init__(self, code: str, message: str, rule: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.rule = rule


class PolicyDenied(BrokerError):
    """The agent's policy denies the request; the denial is in the audit log (``denied``)."""


class AuditFailed(BrokerError):
    """The audit log could not record the request, so nothing was done (``audit_failed``)."""


class Unidentified(BrokerError):
    """The broker does not take this process for its agent, or the request named another (``unidentified``)."""


class BadRequest(BrokerError):
    """The request is malformed or over a bound: a path in another spelling, a bad URL (``bad_request``)."""


class Limited(BrokerError):
    """A bound of the agent is reached: connections, buffered bytes, the log budget (``limited``)."""


class Failed(BrokerError):
    """Allowed, but acting failed: a network error, no such file, a recipient not running (``failed``)."""


class TransportError(BrokerError):
    """The broker could not be reached or its reply was cut or malformed (``transport``)."""

    def __init__(self, message: str) -> None:
        super().__init__("transport", message)


class VersionMismatch(BrokerError):
    """The broker speaks another major version of the protocol (``version``); never retried."""

    def __init__(self, message: str) -> None:
        super().__init__("version", message)


_ERRORS: dict[str, type[BrokerError]] = {
    "denied": PolicyDenied,
    "audit_failed": AuditFailed,
    "unidentified": Unidentified,
    "bad_request": BadRequest,
    "limited": Limited,
    "failed": Failed,
}

# A denial names its deciding rule: "policy denies OP for agent A by `RULE` (REASON)".
_DENIED_BY = re.compile(r" by `(.*)` \([^()]*\)\Z", re.DOTALL)


def _error(error: object) -> BrokerError:
    """The typed exception for a reply's ``error`` object."""
    if not isinstance(error, dict):
        return TransportError(f"malformed reply: its error is {error!r}, not an object")
    code = str(error.get("code", "failed"))
    message = str(error.get("message", ""))
    if code == "version":
        return VersionMismatch(message)
    match = _DENIED_BY.search(message) if code == "denied" else None
    return _ERRORS.get(code, BrokerError)(code, message, match.group(1) if match else None)


def _major(version: str) -> str:
    return version.split(".", 1)[0]


class _Connection:
    """One connection to the broker.

    It is opened, with the ``hello`` handshake, at the first call and again after the broker closed
    it. Calls from several threads take turns.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._file: IO[bytes] | None = None
        self._next = 0

    def call(self, op: str, **params: Any) -> Any:
        """Sends one request and returns its ``result``, or raises its error."""
        request = dict(params, id=0, op=op)
        with self._lock:
            sock, file = self._open()
            self._next += 1
            request["id"] = self._next
            return self._exchange(sock, file, request)

    def close(self) -> None:
        """Forgets the connection, so that the next call connects again."""
        if self._file is not None:
            self._file.close()
        if self._sock is not None:
            self._sock.close()
        self._sock = None
        self._file = None

    def _open(self) -> tuple[socket.socket, IO[bytes]]:
        if self._sock is not None and self._file is not None:
            return self._sock, self._file
        path = os.environ.get("SYMBIONT_BROKER", DEFAULT_SOCKET)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
        except OSError as e:
            sock.close()
            raise TransportError(f"cannot reach the broker at {path}: {e.strerror or e}") from e
        file = sock.makefile("rb")
        self._sock, self._file = sock, file
        hello = {"id": 0, "op": "hello", "protocol": PROTOCOL_VERSION, "sdk": f"python {__version__}"}
        try:
            result = self._exchange(sock, file, hello)
        except BrokerError as e:
            self.close()
            if not isinstance(e, BadRequest):
                raise
            raise VersionMismatch(
                f"the broker does not know the handshake of protocol {PROTOCOL_VERSION} ({e.message}); "
                f"this SDK (symbiont-sdk {__version__}) speaks protocol {PROTOCOL_VERSION}"
            ) from e
        theirs = str(result.get("protocol", "")) if isinstance(result, dict) else ""
        if _major(theirs) != _major(PROTOCOL_VERSION):
            self.close()
            raise VersionMismatch(
                f"the broker speaks protocol {theirs or '(none)'}; this SDK (symbiont-sdk {__version__}) "
                f"speaks protocol {PROTOCOL_VERSION}"
            )
        return sock, file

    def _exchange(self, sock: socket.socket, file: IO[bytes], request: dict[str, Any]) -> Any:
        """Writes one request line and reads its reply line; any failure closes the connection."""
        try:
            line = _json.dumps(request, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
        except (TypeError, ValueError, UnicodeEncodeError) as e:
            raise BadRequest("bad_request", f"the request cannot be sent as JSON: {e}") from e
        if len(line) >= MAX_LINE:
            raise BadRequest("bad_request", f"the request is {len(line)} bytes; the broker takes at most {MAX_LINE}")
        try:
            reply = self._reply(sock, file, line + b"\n", request["id"])
        except BrokerError:
            self.close()
            raise
        if reply["ok"]:
            return reply.get("result")
        error = _error(reply.get("error"))
        if reply.get("id") is None or isinstance(error, TransportError):
            # An error with no id is about the connection, and its last line (over a limit).
            self.close()
        raise error

    def _reply(self, sock: socket.socket, file: IO[bytes], line: bytes, id: int) -> dict[str, Any]:
        with contextlib.suppress(OSError):  # closed by the broker, which may have said why first: read on
            sock.sendall(line)
        try:
            reply_line = file.readline()
        except OSError as e:
            raise TransportError(f"reading the broker's reply: {e}") from e
        if not reply_line:
            raise TransportError("the broker closed the connection without replying")
        if not reply_line.endswith(b"\n"):
            raise TransportError(f"the broker closed the connection mid-reply (after {len(reply_line)} bytes)")
        try:
            reply = _json.loads(reply_line)
        except ValueError as e:
            raise TransportError(f"malformed reply from the broker: {e}") from e
        if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
            raise TransportError(f"malformed reply from the broker: {reply_line[:200]!r}")
        if reply.get("id") not in (id, None):
            raise TransportError(f"the broker answered request {reply.get('id')!r} to request {id}")
        return reply


_broker = _Connection()


def _field(result: Any, name: str) -> Any:
    """``result[name]``; a result without it is a malformed reply."""
    if not isinstance(result, dict) or name not in result:
        raise TransportError(f"malformed reply from the broker: no {name!r} in {result!r:.200}")
    return result[name]


class Response:
    """An HTTP response the broker received on the agent's behalf.

    Attributes:
        status: the HTTP status code (``status_code`` is the same, as in ``requests``).
        text: the body, as text.
        ok: whether the status is below 400.
    """

    def __init__(self, status: int, text: str) -> None:
        self.status = status
        self.status_code = status
        self.text = text
        self.ok = 200 <= status < 400

    def json(self) -> Any:
        """The body parsed as JSON (raises ``ValueError`` if it is not)."""
        return _json.loads(self.text)

    def raise_for_status(self) -> None:
        """Raises ``BrokerError`` with code ``http`` if the status is not ok (below 400)."""
        if not self.ok:
            raise BrokerError("http", f"HTTP {self.status}")

    def __repr__(self) -> str:
        return f"<Response [{self.status}]>"


class _Net:
    """HTTP through the broker, under the names of ``requests``: rewritten calls keep their arguments."""

    def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None = None,
        data: str | bytes | None = None,
        json: Any = None,
        timeout: float | None = None,
    ) -> Response:
        """Sends an HTTP request through the broker, which decides it by the agent's policy.

        Args:
            method: the HTTP method (``GET``, ``POST``...).
            url: an ``http`` or ``https`` URL.
            headers: request headers (at most 64; ``Host`` cannot be set).
            data: the body, as text or UTF-8 bytes (at most 16 MiB; other bytes are ``BadRequest``).
            json: a value sent as a JSON body, with ``content-type: application/json``.
            timeout: accepted for code written for ``requests``; the broker bounds every request to 30 s.

        Raises:
            PolicyDenied: the policy denies the request (``rule`` names the deciding rule).
            Failed: the host does not resolve or the request failed.
        """
        del timeout  # the broker's own bound applies
        body = data
        if json is not None:
            body = _json.dumps(json)
            headers = dict(headers or {}, **{"content-type": "application/json"})
        if isinstance(body, bytes):
            try:
                body = body.decode()
            except UnicodeDecodeError as e:
                raise BadRequest("bad_request", f"the body is not UTF-8 text, which the broker carries: {e}") from e
        result = _broker.call("http", method=method, url=url, headers=headers or {}, body=body)
        return Response(int(_field(result, "status")), str(_field(result, "body")))

    def get(self, url: str, headers: dict[str, str] | None = None, timeout: float | None = None) -> Response:
        """``GET url`` through the broker (see :meth:`request`)."""
        return self.request("GET", url, headers=headers, timeout=timeout)

    def post(
        self,
        url: str,
        data: str | bytes | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Response:
        """``POST url`` with ``data`` or a ``json`` body, through the broker (see :meth:`request`)."""
        return self.request("POST", url, headers=headers, data=data, json=json, timeout=timeout)

    def put(
        self,
        url: str,
        data: str | bytes | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Response:
        """``PUT url`` with ``data`` or a ``json`` body, through the broker (see :meth:`request`)."""
        return self.request("PUT", url, headers=headers, data=data, json=json, timeout=timeout)

    def delete(self, url: str, headers: dict[str, str] | None = None, timeout: float | None = None) -> Response:
        """``DELETE url`` through the broker (see :meth:`request`)."""
        return self.request("DELETE", url, headers=headers, timeout=timeout)

    def urlopen(self, url: str, data: str | bytes | None = None, timeout: float | None = None) -> Response:
        """``urllib.request.urlopen``'s call: ``POST`` with ``data``, else ``GET`` (see :meth:`request`)."""
        return self.request("POST" if data else "GET", url, data=data, timeout=timeout)


class _Fs:
    """Files in the agent's workspace, by relative path (``a/b.txt``: no ``..``, ``.``, ``//``)."""

    def read(self, path: str) -> str:
        """The content of the workspace file ``path`` (at most 16 MiB).

        Raises:
            PolicyDenied: the policy denies reading it.
            BadRequest: the path is not in its one accepted spelling.
            Failed: no such file, or a symbolic link on the way.
        """
        return str(_field(_broker.call("file_read", path=path), "content"))

    def write(self, path: str, content: str, append: bool = False) -> int:
        """Writes ``content`` to the workspace file ``path`` atomically, making missing directories.

        Returns the number of bytes written. With ``append=True`` it appends, as :meth:`append`.
        """
        return int(_field(_broker.call("file_write", path=path, content=content, append=append), "written"))

    def append(self, path: str, content: str) -> int:
        """Appends ``content`` to the workspace file ``path``; returns the number of bytes written."""
        return self.write(path, content, append=True)


class _Env:
    """The environment the run declares (``symbiont.toml`` ``[runtime.env]``, ``pass_env``)."""

    @overload
    def get(self, name: str) -> str | None: ...
    @overload
    def get(self, name: str, default: str) -> str: ...

    def get(self, name: str, default: str | None = None) -> str | None:
        """The variable ``name``, or ``default`` if the run does not declare it."""
        value = _field(_broker.call("env_get", name=name), "value")
        return default if value is None else str(value)


class _Secrets:
    """Secrets the host holds for the run (``SYMBIONT_SECRET_NAME``), as the policy allows."""

    def get(self, name: str) -> str | None:
        """The secret ``name`` (case-insensitive), or ``None`` if the host has none by that name.

        Raises:
            PolicyDenied: the policy denies reading it.
        """
        value = _field(_broker.call("secret_get", name=name), "value")
        return None if value is None else str(value)


net = _Net()
"""HTTP through the broker: ``get``, ``post``, ``put``, ``delete``, ``request`` (and ``urlopen``)."""
fs = _Fs()
"""Files in the agent's workspace: ``read``, ``write``, ``append``."""
env = _Env()
"""The run's declared environment: ``get``."""
secrets = _Secrets()
"""Secrets, as the policy allows: ``get``."""


@dataclass(frozen=True)
class Message:
    """A message from another agent of the run.

    Attributes:
        from_: the sending agent's name (``message["from"]`` also works).
        seq: the pair's sequence number, as the sender's ``send`` returned it.
        payload: the JSON value sent.
    """

    from_: str
    seq: int
    payload: Any

    def __getitem__(self, key: str) -> Any:
        """``message["from"]``, ``["seq"]``, ``["payload"]``: the reply's own field names."""
        if key not in ("from", "seq", "payload"):
            raise KeyError(key)
        return self.from_ if key == "from" else getattr(self, key)


def log(message: object, level: str = "info") -> None:
    """Writes ``message`` to the run's log and audit log, at ``level`` (1 to 16 letters).

    Raises:
        Limited: the run's log budget is spent.
    """
    _broker.call("log", message=str(message), level=level)


def send(to: str, payload: Any) -> int:
    """Sends the JSON value ``payload`` to the agent ``to``; returns the pair's sequence number.

    Raises:
        PolicyDenied: the sender's or the recipient's policy denies it.
        Failed: the recipient is not running.
    """
    return int(_field(_broker.call("send_message", to=to, payload=payload), "delivered"))


def receive(timeout_ms: int = 0) -> Message | None:
    """The next message for this agent, waiting at most ``timeout_ms`` (at most 30000); ``None`` if none came."""
    result = _broker.call("receive_message", timeout_ms=timeout_ms)
    if result is None:
        return None
    return Message(str(_field(result, "from")), int(_field(result, "seq")), _field(result, "payload"))


def input() -> Any:
    """The run's input, the JSON value of ``symbiont run --input JSON`` (``None`` without one)."""
    return _json.loads(os.environ.get("SYMBIONT_INPUT", "null"))
