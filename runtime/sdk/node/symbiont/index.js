"use strict";
// Symbiont's SDK for JavaScript and TypeScript agents (CommonJS; types in index.d.ts).
//
// An agent inside a Symbiont sandbox has no network and a read-only file system: everything it
// does outside goes through its broker, which checks the agent's policy and records the request
// in the signed audit log first. This module speaks the broker's JSON-lines protocol
// (docs/broker-protocol.md) over the Unix socket named by SYMBIONT_BROKER. Every call returns a
// Promise; a refusal rejects with a typed error (PolicyDenied, ...), all subclasses of BrokerError.
//
//   const symbiont = require("symbiont");
//   const r = await symbiont.net.get("https://api.example.com/v1/items");

const netModule = require("net");

/** The SDK's version (semantic versioning; package.json says the same, a test checks it). */
const VERSION = "0.1.0";
/** The broker protocol this SDK speaks; a broker of another major version is refused. */
const PROTOCOL = "1.0";
/** The broker refuses (and closes the connection on) a request line longer than this. */
const MAX_LINE = 17 * 1024 * 1024;
const DEFAULT_SOCKET = "/run/symbiont/broker.sock";

class BrokerError extends Error {
  constructor(code, message, rule = null) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.rule = rule;
  }
  /** The broker's message (the name this SDK's first versions gave it). */
  get brokerMessage() {
    return this.message;
  }
}
// Each broker code has its class; the code is fixed by the class.
const withCode = (code) =>
  class extends BrokerError {
    constructor(message, rule = null) {
      super(code, message, rule);
    }
  };
class PolicyDenied extends withCode("denied") {}
class AuditFailed extends withCode("audit_failed") {}
class Unidentified extends withCode("unidentified") {}
class BadRequest extends withCode("bad_request") {}
class Limited extends withCode("limited") {}
class Failed extends withCode("failed") {}
class TransportError extends withCode("transport") {}
class VersionMismatch extends withCode("version") {}

const CLASSES = {
  denied: PolicyDenied,
  audit_failed: AuditFailed,
  unidentified: Unidentified,
  bad_request: BadRequest,
  limited: Limited,
  failed: Failed,
  version: VersionMismatch,
};

/** The deciding rule of a denial: the broker writes "... by `RULE` (REASON)". */
function ruleOf(message) {
  const found = / by `([\s\S]*)` \([A-Za-z]+\)$/.exec(message);
  return found ? found[1] : null;
}

/** The typed error for a reply's `error` object (a code this SDK does not know is a BrokerError). */
function errorOf(error) {
  const e = error && typeof error === "object" ? error : {};
  const code = typeof e.code === "string" ? e.code : "failed";
  const message = typeof e.message === "string" ? e.message : String(e.message ?? "");
  const Cls = CLASSES[code];
  return Cls ? new Cls(message, ruleOf(message)) : new BrokerError(code, message, ruleOf(message));
}

const major = (version) => String(version).split(".")[0];

// Once a broker of another major version is seen, every call fails with the same error: the SDK
// never guesses what the other side means, and does not retry.
let mismatch = null;
let current = null;
let nextId = 0;

/** One connection to the broker: the handshake first, then any number of requests in flight. */
class Connection {
  constructor(path) {
    this.path = path;
    this.pending = new Map();
    this.parts = [];
    this.error = null;
    this.socket = netModule.createConnection(path);
    this.socket.setEncoding("utf8");
    this.socket.on("data", (chunk) => this.received(chunk));
    this.socket.on("error", (e) => this.fail(new TransportError(`cannot talk to the broker at ${path}: ${e.message}`)));
    this.socket.on("close", () => {
      const when = this.parts.length > 0 ? "in the middle of a reply" : "before replying";
      this.fail(new TransportError(`the broker at ${path} closed the connection ${when}`));
    });
    const hello = JSON.stringify({ id: 0, op: "hello", protocol: PROTOCOL, sdk: `javascript ${VERSION}` });
    this.ready = this.send(0, hello + "\n").then(
      (result) => this.checkVersion(result),
      (e) => {
        if (e instanceof VersionMismatch || e instanceof BadRequest) throw this.mismatched(versionError(e));
        throw e;
      }
    );
  }

  checkVersion(result) {
    const theirs = result && typeof result.protocol === "string" ? result.protocol : null;
    if (theirs === null || major(theirs) !== major(PROTOCOL)) {
      const said = theirs === null ? "did not say its protocol version" : `speaks protocol ${theirs}`;
      throw this.mismatched(new VersionMismatch(`the broker ${said}; this SDK (javascript ${VERSION}) speaks protocol ${PROTOCOL}`));
    }
  }

  mismatched(error) {
    mismatch = error;
    this.fail(error);
    return error;
  }

  /** Writes one request line; resolves with its result, rejects with its typed error. */
  send(id, line) {
    if (this.error) return Promise.reject(this.error);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.ref();
      this.socket.write(line);
    });
  }

  received(chunk) {
    let at;
    while ((at = chunk.indexOf("\n")) >= 0) {
      this.parts.push(chunk.slice(0, at));
      const line = this.parts.join("");
      this.parts = [];
      chunk = chunk.slice(at + 1);
      this.reply(line);
      if (this.error) return;
    }
    if (chunk.length > 0) this.parts.push(chunk);
  }

  reply(line) {
    let reply;
    try {
      reply = JSON.parse(line);
    } catch (e) {
      return this.fail(new TransportError(`the broker sent a reply that is not JSON: ${e.message}`));
    }
    if (reply === null || typeof reply !== "object" || typeof reply.ok !== "boolean" || !("id" in reply)) {
      return this.fail(new TransportError(`the broker sent a malformed reply: ${line.slice(0, 200)}`));
    }
    // An error with no id is about the connection itself (a bound reached): every call on it
    // fails with it, and the broker closes it; the next call opens a new one.
    if (reply.id === null && !reply.ok) return this.fail(errorOf(reply.error));
    const waiter = this.pending.get(reply.id);
    if (!waiter) return this.fail(new TransportError(`the broker replied to a request never sent (id ${JSON.stringify(reply.id)})`));
    this.pending.delete(reply.id);
    if (this.pending.size === 0) this.socket.unref();
    if (reply.ok) waiter.resolve(reply.result === undefined ? null : reply.result);
    else waiter.reject(errorOf(reply.error));
  }

  /** Ends the connection: every call in flight rejects with `error`, later ones open another. */
  fail(error) {
    if (this.error) return;
    this.error = error;
    if (current === this) current = null;
    for (const waiter of this.pending.values()) waiter.reject(error);
    this.pending.clear();
    this.socket.destroy();
  }
}

/** A refused `hello` as a VersionMismatch (a broker that does not know `hello` is older than 1.0). */
function versionError(e) {
  if (e instanceof VersionMismatch) return e;
  return new VersionMismatch(`the broker refused the handshake (${e.message}): it is older than protocol 1.0; this SDK (javascript ${VERSION}) speaks protocol ${PROTOCOL}`);
}

/**
 * For symbiont/testing (not part of the API): forgets the connection and any version seen, as a
 * new process would, so the next call connects to $SYMBIONT_BROKER afresh. Calls in flight reject.
 */
function reset() {
  if (current) current.fail(new TransportError("the connection was closed: the SDK was pointed at another broker"));
  current = null;
  mismatch = null;
}

async function call(op, params) {
  if (mismatch) throw mismatch;
  const id = ++nextId;
  const line = JSON.stringify(Object.assign({}, params, { id, op })) + "\n";
  const bytes = Buffer.byteLength(line);
  if (bytes > MAX_LINE) {
    throw new BadRequest(`the ${op} request is ${bytes} bytes, over the broker's limit of ${MAX_LINE} bytes (17 MiB) a request`);
  }
  const connection = current || (current = new Connection(process.env.SYMBIONT_BROKER || DEFAULT_SOCKET));
  await connection.ready;
  return connection.send(id, line);
}

/** An HTTP response, as the broker returns it (the whole body, as text). */
class Response {
  constructor(status, body) {
    this.status = status;
    this.body = body;
  }
  /** 2xx or 3xx: no redirect is followed, so a 3xx is the final answer. */
  get ok() {
    return this.status >= 200 && this.status < 400;
  }
  /** The body (the name this SDK's first versions gave it). */
  get data() {
    return this.body;
  }
  async text() {
    return this.body;
  }
  async json() {
    return JSON.parse(this.body);
  }
}

async function request(method, url, options = {}) {
  const opts = options || {};
  let body = opts.body;
  const headers = Object.assign({}, opts.headers || {});
  if (body !== undefined && body !== null && typeof body !== "string") {
    body = JSON.stringify(body);
    const named = Object.keys(headers).some((h) => h.toLowerCase() === "content-type");
    if (!named) headers["content-type"] = "application/json";
  }
  const params = { method: String(method), url, headers };
  if (body !== undefined && body !== null) params.body = body;
  const result = await call("http", params);
  return new Response(result.status, result.body);
}

const withBody = (options, body) => Object.assign({}, options, { body });

const net = {
  request: (method, url, options) => request(method, url, options),
  fetch: (url, options = {}) => request((options && options.method) || "GET", url, options),
  get: (url, options) => request("GET", url, options),
  post: (url, body, options) => request("POST", url, withBody(options, body)),
  put: (url, body, options) => request("PUT", url, withBody(options, body)),
  delete: (url, options) => request("DELETE", url, options),
};

async function read(path) {
  return (await call("file_read", { path })).content;
}
async function write(path, content) {
  return (await call("file_write", { path, content: String(content), append: false })).written;
}
async function append(path, content) {
  return (await call("file_write", { path, content: String(content), append: true })).written;
}

const fs = { read, write, append, readFile: read, writeFile: write, appendFile: append };

async function receive(timeoutMs = 0) {
  const result = await call("receive_message", { timeout_ms: timeoutMs });
  return result === null ? null : { from: result.from, seq: result.seq, payload: result.payload };
}

module.exports = {
  net,
  fs,
  env: { get: async (name) => (await call("env_get", { name })).value },
  secrets: { get: async (name) => (await call("secret_get", { name })).value },
  log: async (message, level = "info") => {
    await call("log", { message: String(message), level });
  },
  send: async (to, payload) => (await call("send_message", { to, payload })).delivered,
  receive,
  input: () => JSON.parse(process.env.SYMBIONT_INPUT || "null"),
  Response,
  BrokerError,
  PolicyDenied,
  AuditFailed,
  Unidentified,
  BadRequest,
  Limited,
  Failed,
  TransportError,
  VersionMismatch,
  VERSION,
  PROTOCOL,
};
Object.defineProperty(module.exports, Symbol.for("symbiont.testing.reset"), { value: reset });
