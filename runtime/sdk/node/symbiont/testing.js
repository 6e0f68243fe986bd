"use strict";
// A fake broker for an agent's own unit tests (types and full reference in testing.d.ts): the
// SDK's calls answered from memory, without a sandbox.
//
//   const { FakeBroker } = require("symbiont/testing");
//   const broker = await FakeBroker.start({ files: { "in.txt": "hello" } });
//   try { await runAgent(); } finally { await broker.close(); }
//   assert.deepEqual(broker.logs, [{ level: "info", message: "done" }]);

const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const sdk = require("./index.js");

/** The broker ops a policy decides, and so the keys `deny` takes (`log` and `hello` are not decided). */
const DENIABLE = Object.freeze(["http", "file_read", "file_write", "env_get", "secret_get", "send_message", "receive_message"]);

// The operation the policy decides for each broker op (its name in denial messages and rules).
const OPERATIONS = {
  file_read: "file_read",
  file_write: "file_system_write",
  env_get: "env_access",
  secret_get: "secret_access",
  send_message: "send_message",
  receive_message: "receive_message",
};

/** An error the fake broker answers, with the real broker's code. */
class Refused extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

// Only FakeBroker.start makes one: a broker made otherwise would not be serving.
const STARTING = Symbol("FakeBroker.start");

const own = (object, key) => Object.prototype.hasOwnProperty.call(object, key);

/** The string field `field` of `request`; missing or another type is `bad_request`. */
function text(request, field) {
  const value = request[field];
  if (typeof value !== "string") throw new Refused("bad_request", `the \`${request.op}\` request's \`${field}\` must be a string`);
  return value;
}

/** The request's path, refused unless in the broker's one accepted spelling. */
function checkedPath(request) {
  const p = text(request, "path");
  const names = p.split("/");
  let why = null;
  if (p === "") why = "it is empty";
  else if (p.startsWith("/")) why = "it is absolute: paths are relative to the workspace";
  else if (p.includes("\0")) why = "it holds NUL";
  else if (Buffer.byteLength(p) > 4095) why = "it is longer than 4095 bytes";
  else if (names.some((n) => n === "" || n === "." || n === "..")) why = "it has an empty, `.` or `..` name (write names separated by single `/`)";
  else if (names.some((n) => Buffer.byteLength(n) > 255)) why = "a name is longer than 255 bytes";
  if (why !== null) throw new Refused("bad_request", `the path ${JSON.stringify(p)} is refused: ${why}`);
  return p;
}

/** A secret's canonical name (ASCII letters lowercased), refused unless 1 to 128 of a-z, 0-9 and _. */
function secretName(name) {
  const canonical = name.replace(/[A-Z]/g, (c) => c.toLowerCase());
  if (!/^[a-z0-9_]{1,128}$/.test(canonical)) {
    throw new Refused("bad_request", `the secret name ${JSON.stringify(name)} is refused: it must be 1 to 128 of a-z, 0-9 and _`);
  }
  return canonical;
}

/** The options checked, and copied into the broker's state; anything malformed throws naming it. */
function stateOf(options) {
  const o = options || {};
  const known = ["files", "env", "secrets", "http", "deny", "inbox", "input", "agent"];
  const unknown = Object.keys(o).filter((k) => !known.includes(k));
  if (unknown.length > 0) throw new TypeError(`FakeBroker.start: unknown options ${JSON.stringify(unknown)}; expected ${known.join(", ")}`);
  const denied = Object.keys(o.deny || {}).filter((op) => !DENIABLE.includes(op));
  if (denied.length > 0) throw new TypeError(`deny: ${JSON.stringify(denied)} are not broker ops a policy decides; use one of ${DENIABLE.join(", ")}`);
  for (const [url, route] of Object.entries(o.http || {})) {
    const good = route && Number.isInteger(route.status) && route.status >= 100 && route.status <= 599 && typeof route.body === "string";
    if (!good) throw new TypeError(`http[${JSON.stringify(url)}]: a route is { status: 100-599, body: string }, not ${JSON.stringify(route)}`);
  }
  const secrets = {};
  for (const [name, value] of Object.entries(o.secrets || {})) {
    try {
      secrets[secretName(name)] = value;
    } catch (e) {
      throw new TypeError(`secrets: ${e.message}`);
    }
  }
  for (const message of o.inbox || []) {
    if (!message || typeof message.from !== "string") throw new TypeError(`inbox: a message is { from: string, payload }, not ${JSON.stringify(message)}`);
  }
  return {
    files: Object.assign({}, o.files),
    env: Object.assign({}, o.env),
    secrets,
    http: Object.assign({}, o.http),
    deny: Object.assign({}, o.deny),
    inbox: (o.inbox || []).map((m) => ({ from: m.from, payload: m.payload })),
    agent: o.agent === undefined ? "agent" : String(o.agent),
  };
}

/**
 * A broker of protocol 1.0 answering from memory, which this process's SDK talks to while it is
 * open. See testing.d.ts for the options and the state it keeps.
 */
class FakeBroker {
  #dir;
  #sequences = new Map();
  #sockets = new Set();
  #closed = false;
  #before = null;
  #server;
  #input;

  /** Starts a fake broker with `options` and points the SDK at it. */
  static async start(options = {}) {
    const broker = new FakeBroker(STARTING, stateOf(options), options && options.input);
    await broker.listen();
    return broker;
  }

  /**
   * Runs `body(broker)` against a broker started with `options`, closes it whatever happens, and
   * resolves to the broker, whose records then say what the code did.
   */
  static async serve(options, body) {
    const broker = await FakeBroker.start(options);
    try {
      await body(broker);
    } finally {
      await broker.close();
    }
    return broker;
  }

  constructor(token, state, input) {
    if (token !== STARTING) throw new TypeError("a FakeBroker is made by `await FakeBroker.start(options)`, which also starts it");
    Object.assign(this, state);
    this.sent = [];
    this.logs = [];
    this.requests = [];
    this.#dir = fs.mkdtempSync(path.join(os.tmpdir(), "symbiont-fake-broker-"));
    this.socketPath = path.join(this.#dir, "broker.sock");
    this.#input = input === undefined ? null : input;
    this.#server = net.createServer((socket) => this.#serve(socket));
  }

  async listen() {
    try {
      await new Promise((resolve, reject) => this.#server.once("error", reject).listen(this.socketPath, resolve));
    } catch (e) {
      fs.rmSync(this.#dir, { recursive: true, force: true });
      throw e;
    }
    this.#before = { broker: process.env.SYMBIONT_BROKER, input: process.env.SYMBIONT_INPUT };
    process.env.SYMBIONT_BROKER = this.socketPath;
    setEnv("SYMBIONT_INPUT", this.#input === null ? undefined : JSON.stringify(this.#input));
    sdk[Symbol.for("symbiont.testing.reset")]();
  }

  /** Stops serving, removes the socket, and points the SDK back where it was (once). */
  async close() {
    if (this.#closed) return;
    this.#closed = true;
    sdk[Symbol.for("symbiont.testing.reset")]();
    setEnv("SYMBIONT_BROKER", this.#before.broker);
    setEnv("SYMBIONT_INPUT", this.#before.input);
    for (const socket of this.#sockets) socket.destroy();
    await new Promise((resolve) => this.#server.close(() => resolve()));
    fs.rmSync(this.#dir, { recursive: true, force: true });
  }

  #serve(socket) {
    this.#sockets.add(socket);
    socket.setEncoding("utf8");
    socket.on("error", () => {});
    socket.on("close", () => this.#sockets.delete(socket));
    let parts = [];
    socket.on("data", (chunk) => {
      let at;
      while ((at = chunk.indexOf("\n")) >= 0) {
        parts.push(chunk.slice(0, at));
        const line = parts.join("");
        parts = [];
        chunk = chunk.slice(at + 1);
        if (!socket.destroyed) socket.write(JSON.stringify(this.#answer(line)) + "\n");
      }
      if (chunk.length > 0) parts.push(chunk);
    });
  }

  /** The reply to one request line. */
  #answer(line) {
    let request;
    try {
      request = JSON.parse(line);
    } catch (e) {
      return { id: null, ok: false, error: { code: "bad_request", message: `not JSON: ${e.message}` } };
    }
    if (request === null || typeof request !== "object" || Array.isArray(request)) {
      return { id: null, ok: false, error: { code: "bad_request", message: "a request is a JSON object" } };
    }
    this.requests.push(request);
    const id = request.id === undefined ? null : request.id;
    try {
      const result = this.#result(request);
      return { id, ok: true, result: result === undefined ? null : result };
    } catch (e) {
      if (!(e instanceof Refused)) throw e;
      return { id, ok: false, error: { code: e.code, message: e.message } };
    }
  }

  #result(request) {
    switch (request.op) {
      case "hello":
        return this.#hello(request);
      case "log":
        return this.#log(request);
      case "http":
        return this.#http(request);
      case "file_read":
        return this.#fileRead(request);
      case "file_write":
        return this.#fileWrite(request);
      case "env_get": {
        const name = text(request, "name");
        this.#decide("env_get");
        return { value: own(this.env, name) ? this.env[name] : null };
      }
      case "secret_get": {
        const name = secretName(text(request, "name"));
        this.#decide("secret_get");
        return { value: own(this.secrets, name) ? this.secrets[name] : null };
      }
      case "send_message":
        return this.#send(request);
      case "receive_message":
        return this.#receive();
      default:
        throw new Refused("bad_request", `unknown op ${JSON.stringify(request.op)}: expected hello, log or one of ${DENIABLE.join(", ")}`);
    }
  }

  /** Refuses the request as `denied` when `deny` names its op, in the real broker's words. */
  #decide(op, operation = OPERATIONS[op], target = "") {
    if (!own(this.deny, op)) return;
    const rule = this.deny[op];
    const by = rule ? ` by \`${rule}\`` : "";
    throw new Refused("denied", `policy denies ${operation}${target} for agent ${this.agent}${by} (${rule ? "Denied" : "NotAllowed"})`);
  }

  #hello(request) {
    const theirs = String(request.protocol ?? "");
    const major = sdk.PROTOCOL.split(".")[0];
    if (theirs.split(".")[0] !== major) {
      throw new Refused("version", `the broker speaks protocol ${sdk.PROTOCOL}; this SDK speaks ${theirs}: use an SDK of major version ${major}`);
    }
    return { protocol: sdk.PROTOCOL, agent: this.agent };
  }

  #log(request) {
    const level = request.level === undefined ? "info" : request.level;
    if (typeof level !== "string" || !/^[A-Za-z]{1,16}$/.test(level)) {
      throw new Refused("bad_request", `the log level ${JSON.stringify(level)} is refused: 1 to 16 letters`);
    }
    this.logs.push({ level: level.toLowerCase(), message: text(request, "message") });
    return null;
  }

  #http(request) {
    const url = text(request, "url");
    let parsed = null;
    try {
      parsed = new URL(url);
    } catch {
      parsed = null;
    }
    if (!parsed || !["http:", "https:"].includes(parsed.protocol) || !parsed.hostname) {
      throw new Refused("bad_request", `the URL ${JSON.stringify(url)} is refused: only http and https URLs are accepted`);
    }
    this.#decide("http", `${parsed.protocol.slice(0, -1)}_request`);
    if (!own(this.http, url)) {
      throw new Refused("failed", `the host ${parsed.hostname} does not resolve: the fake broker has no route for ${url}`);
    }
    const route = this.http[url];
    return { status: route.status, body: route.body };
  }

  #fileRead(request) {
    const p = checkedPath(request);
    this.#decide("file_read");
    if (!own(this.files, p)) throw new Refused("failed", `\`${p}\`: No such file or directory (os error 2)`);
    return { content: this.files[p] };
  }

  #fileWrite(request) {
    const p = checkedPath(request);
    const content = text(request, "content");
    this.#decide("file_write");
    const before = request.append && own(this.files, p) ? this.files[p] : "";
    this.files[p] = before + content;
    return { written: Buffer.byteLength(content) };
  }

  #send(request) {
    const to = text(request, "to");
    if (!("payload" in request)) throw new Refused("bad_request", "the `send_message` request lacks its `payload`");
    this.#decide("send_message", "send_message", ` to \`${to}\``);
    this.sent.push({ to, payload: request.payload });
    return { delivered: this.#nextSeq(this.agent, to) };
  }

  #receive() {
    const message = this.inbox.shift();
    if (message === undefined) return null;
    const seq = this.#nextSeq(message.from, this.agent);
    // The real broker consumes a message its policy refuses and answers nothing.
    if (own(this.deny, "receive_message")) return null;
    return { from: message.from, seq, payload: message.payload === undefined ? null : message.payload };
  }

  #nextSeq(sender, recipient) {
    const key = JSON.stringify([sender, recipient]);
    const seq = (this.#sequences.get(key) || 0) + 1;
    this.#sequences.set(key, seq);
    return seq;
  }
}

/** Sets `name` to `value`, or unsets it for `undefined`. */
function setEnv(name, value) {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}

module.exports = { FakeBroker, DENIABLE };
