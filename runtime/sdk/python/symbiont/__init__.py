"""Symbiont's capability SDK for Python agents.

An agent inside a Symbiont sandbox has no network and a read-only file system: everything it
does outside goes through its broker, which checks the agent's policy and records the request
in the signed audit log first. This module speaks the broker's JSON-lines protocol
(docs/broker-protocol.md) over the socket named by SYMBIONT_BROKER.

    import symbiont
    r = symbiont.net.get("https://api.example.com/v1/items")
    symbiont.fs.write("out/report.txt", r.text)
"""

import json
import os
import socket
import threading

__all__ = ["net", "fs", "env", "secrets", "log", "send", "receive", "input", "PolicyDenied", "BrokerError"]


class BrokerError(Exception):
    """The broker refused or could not carry out a request."""

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class PolicyDenied(BrokerError):
    """The agent's policy denies the request (the denial is in the audit log)."""


class _Connection:
    def __init__(self):
        self._lock = threading.Lock()
        self._sock = None
        self._file = None
        self._next = 0

    def call(self, op, **params):
        with self._lock:
            if self._sock is None:
                path = os.environ.get("SYMBIONT_BROKER", "/run/symbiont/broker.sock")
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self._sock.connect(path)
                self._file = self._sock.makefile("rb")
            self._next += 1
            request = dict(params, id=self._next, op=op)
            try:
                self._sock.sendall(json.dumps(request).encode() + b"\n")
            except OSError:
                pass  # closed by the broker, which may have said why: read on
            try:
                line = self._file.readline()
            except OSError:
                line = b""
            reply = json.loads(line) if line else None
            # A connection the broker closed is forgotten, so that the next call connects again;
            # an error with no id is about the connection itself (over a limit), and its last line.
            if reply is None or (reply.get("id") is None and not reply.get("ok")):
                self._sock.close()
                self._sock = None
        if reply is None:
            raise BrokerError("closed", "the broker closed the connection")
        if reply.get("ok"):
            return reply.get("result")
        error = reply.get("error") or {}
        cls = PolicyDenied if error.get("code") == "denied" else BrokerError
        raise cls(error.get("code", "failed"), error.get("message", ""))


_broker = _Connection()


class Response:
    def __init__(self, result):
        self.status_code = result["status"]
        self.status = self.status_code
        self.text = result["body"]
        self.ok = 200 <= self.status_code < 400

    def json(self):
        return json.loads(self.text)

    def raise_for_status(self):
        if not self.ok:
            raise BrokerError("http", f"HTTP {self.status_code}")


class _Net:
    """HTTP through the broker: the names of requests/httpx, so that rewrites keep arguments."""

    def request(self, method, url, headers=None, data=None, json_body=None, **_ignored):
        body = data
        if json_body is not None:
            body = json.dumps(json_body)
            headers = dict(headers or {}, **{"content-type": "application/json"})
        if isinstance(body, bytes):
            body = body.decode()
        return Response(_broker.call("http", method=method, url=url, headers=headers or {}, body=body))

    def get(self, url, **kw):
        return self.request("GET", url, **kw)

    def post(self, url, data=None, json=None, **kw):
        return self.request("POST", url, data=data, json_body=json, **kw)

    def put(self, url, data=None, json=None, **kw):
        return self.request("PUT", url, data=data, json_body=json, **kw)

    def delete(self, url, **kw):
        return self.request("DELETE", url, **kw)

    def urlopen(self, url, data=None, **kw):
        return self.request("POST" if data else "GET", url, data=data, **kw)


class _Fs:
    def read(self, path):
        return _broker.call("file_read", path=path)["content"]

    def write(self, path, content, append=False):
        return _broker.call("file_write", path=path, content=content, append=append)["written"]


class _Env:
    def get(self, name, default=None):
        value = _broker.call("env_get", name=name)["value"]
        return default if value is None else value


class _Secrets:
    def get(self, name):
        return _broker.call("secret_get", name=name)["value"]


net = _Net()
fs = _Fs()
env = _Env()
secrets = _Secrets()


def log(message, level="info"):
    _broker.call("log", message=str(message), level=level)


def send(to, payload):
    return _broker.call("send_message", to=to, payload=payload)["delivered"]


def receive(timeout_ms=0):
    return _broker.call("receive_message", timeout_ms=timeout_ms)


def input():
    """The run's input (`symbiont run --input JSON`)."""
    return json.loads(os.environ.get("SYMBIONT_INPUT", "null"))
