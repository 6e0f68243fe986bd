"use strict";
// A scripted broker for the SDK's transport tests: a Unix socket in a temporary directory that
// speaks the protocol's JSON lines (docs/broker-protocol.md), each test scripting the replies, down
// to a reply cut short. Tests of what a well-behaved broker answers use symbiont/testing instead.

const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");

const ok = (result) => ({ ok: true, result });
const err = (code, message) => ({ ok: false, error: { code, message } });

/** The answer of a broker of protocol 1.0 to `hello`. */
const welcome = () => ok({ protocol: "1.0", agent: "worker" });

/**
 * Starts a fake broker and points SYMBIONT_BROKER at it. `script(request, io)` answers each
 * request but `hello` (answered by `hello(request)`, by default as a 1.0 broker): it returns the
 * reply without its id (`ok(...)`, `err(...)`), or nothing when it wrote (or withheld) the reply
 * itself through `io.socket`. Returns what the broker saw and a fresh copy of the SDK.
 */
async function fakeBroker(t, script, { hello = welcome } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "symbiont-sdk-test-"));
  const socketPath = path.join(dir, "broker.sock");
  const seen = { connections: 0, requests: [], lines: [] };
  const sockets = new Set();
  const server = net.createServer((socket) => {
    const connection = ++seen.connections;
    sockets.add(socket);
    socket.setEncoding("utf8");
    socket.on("error", () => {});
    socket.on("close", () => sockets.delete(socket));
    let parts = [];
    socket.on("data", (chunk) => {
      let at;
      while ((at = chunk.indexOf("\n")) >= 0) {
        parts.push(chunk.slice(0, at));
        const line = parts.join("");
        parts = [];
        chunk = chunk.slice(at + 1);
        seen.lines.push(line);
        const request = JSON.parse(line);
        seen.requests.push(Object.assign({ connection }, request));
        const io = { socket, connection, write: (reply) => socket.write(JSON.stringify(reply) + "\n") };
        const reply = request.op === "hello" ? hello(request, io) : script(request, io);
        if (reply !== undefined && !socket.destroyed) io.write(Object.assign({ id: request.id }, reply));
      }
      if (chunk.length > 0) parts.push(chunk);
    });
  });
  await new Promise((resolve, reject) => server.listen(socketPath, resolve).on("error", reject));
  t.after(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
    fs.rmSync(dir, { recursive: true, force: true });
  });
  process.env.SYMBIONT_BROKER = socketPath;
  return { seen, socketPath, sdk: freshSdk(), calls: () => seen.requests.filter((r) => r.op !== "hello") };
}

/** The SDK as a new process loads it: no connection, no version seen. */
function freshSdk() {
  const main = require.resolve("..");
  delete require.cache[main];
  return require(main);
}

module.exports = { fakeBroker, freshSdk, ok, err, welcome };
