"use strict";
// Symbiont's capability SDK for JavaScript agents.
//
// An agent inside a Symbiont sandbox has no network and a read-only file system: everything it
// does outside goes through its broker, which checks the agent's policy and records the request
// in the signed audit log first. This module speaks the broker's JSON-lines protocol
// (docs/broker-protocol.md) over the socket named by SYMBIONT_BROKER. Every call returns a Promise.
//
//   const symbiont = require("symbiont");
//   const r = await symbiont.net.fetch("https://api.example.com/v1/items");

const netModule = require("net");

class BrokerError extends Error {
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.code = code;
    this.brokerMessage = message;
  }
}
class PolicyDenied extends BrokerError {}

let socket = null;
let buffered = "";
let nextId = 0;
const pending = new Map();

function connection() {
  if (socket) return socket;
  socket = netModule.createConnection(process.env.SYMBIONT_BROKER || "/run/symbiont/broker.sock");
  socket.setEncoding("utf8");
  socket.on("data", (chunk) => {
    buffered += chunk;
    let at;
    while ((at = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, at);
      buffered = buffered.slice(at + 1);
      const reply = JSON.parse(line);
      // An error with no id is about the connection itself (over a limit): every call on it fails
      // with it, and the broker closes it.
      const waiters = reply.id === null && !reply.ok ? [...pending.keys()] : [reply.id];
      for (const id of waiters) {
        const waiter = pending.get(id);
        if (!waiter) continue;
        pending.delete(id);
        if (reply.ok) waiter.resolve(reply.result);
        else {
          const e = reply.error || {};
          const Cls = e.code === "denied" ? PolicyDenied : BrokerError;
          waiter.reject(new Cls(e.code || "failed", e.message || ""));
        }
      }
    }
    if (pending.size === 0) socket.unref();
  });
  const fail = (err) => {
    for (const waiter of pending.values()) waiter.reject(new BrokerError("closed", String(err || "the broker closed the connection")));
    pending.clear();
    socket = null;
  };
  socket.on("error", fail);
  socket.on("close", () => fail());
  return socket;
}

function call(op, params) {
  const id = ++nextId;
  const s = connection();
  s.ref();
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    s.write(JSON.stringify(Object.assign({}, params, { id, op })) + "\n");
  });
}

function response(result) {
  return {
    status: result.status,
    ok: result.status >= 200 && result.status < 400,
    data: result.body,
    text: async () => result.body,
    json: async () => JSON.parse(result.body),
  };
}

async function request(method, url, options = {}) {
  let body = options.body !== undefined ? options.body : options.data;
  const headers = Object.assign({}, options.headers || {});
  if (body !== undefined && typeof body !== "string") {
    body = JSON.stringify(body);
    headers["content-type"] = headers["content-type"] || "application/json";
  }
  return response(await call("http", { method, url, headers, body }));
}

const net = {
  request: (method, url, options) => request(method, url, options),
  fetch: (url, options = {}) => request(options.method || "GET", url, options),
  get: (url, options) => request("GET", url, options),
  post: (url, data, options = {}) => request("POST", url, Object.assign({}, options, { data })),
  put: (url, data, options = {}) => request("PUT", url, Object.assign({}, options, { data })),
  delete: (url, options) => request("DELETE", url, options),
};

const fs = {
  read: async (path) => (await call("file_read", { path })).content,
  readFile: async (path) => (await call("file_read", { path })).content,
  write: async (path, content, append = false) => (await call("file_write", { path, content: String(content), append })).written,
  writeFile: async (path, content) => (await call("file_write", { path, content: String(content), append: false })).written,
  appendFile: async (path, content) => (await call("file_write", { path, content: String(content), append: true })).written,
};

module.exports = {
  net,
  fs,
  env: { get: async (name) => (await call("env_get", { name })).value },
  secrets: { get: async (name) => (await call("secret_get", { name })).value },
  log: async (message, level = "info") => { await call("log", { message: String(message), level }); },
  send: async (to, payload) => (await call("send_message", { to, payload })).delivered,
  receive: async (timeoutMs = 0) => call("receive_message", { timeout_ms: timeoutMs }),
  input: () => JSON.parse(process.env.SYMBIONT_INPUT || "null"),
  BrokerError,
  PolicyDenied,
};
