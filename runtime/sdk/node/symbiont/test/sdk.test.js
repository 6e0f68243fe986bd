"use strict";
// The SDK against fake brokers speaking the protocol over a real Unix socket: every call against
// the public one (symbiont/testing), and each error code, the handshake, bounds and broken
// connections against the scripted one (fake-broker.js).

const assert = require("node:assert/strict");
const { spawn } = require("node:child_process");
const path = require("node:path");
const test = require("node:test");
const symbiont = require("..");
const { FakeBroker } = require("../testing");
const { fakeBroker, freshSdk, ok, err } = require("./fake-broker");

const MiB = 1024 * 1024;

/** The public fake broker (symbiont/testing), for the calls a well-behaved broker answers; closed after the test. */
async function publicBroker(t, options = {}) {
  const broker = await FakeBroker.start(options);
  t.after(() => broker.close());
  return broker;
}

/** The requests after the handshake. */
const calls = (broker) => broker.requests.filter((r) => r.op !== "hello");

test("each connection opens with hello: protocol 1.0 and the SDK's name and version", async (t) => {
  const { sdk, seen } = await fakeBroker(t, () => ok(null));
  await sdk.log("one");
  await sdk.log("two");
  assert.deepEqual(seen.requests[0], { connection: 1, id: 0, op: "hello", protocol: "1.0", sdk: "javascript 0.1.0" });
  assert.deepEqual(
    seen.requests.map((r) => [r.connection, r.op]),
    [[1, "hello"], [1, "log"], [1, "log"]],
    "one connection, one handshake, then the calls"
  );
  assert.equal(sdk.PROTOCOL, "1.0");
  assert.equal(sdk.VERSION, require("../package.json").version, "index.js and package.json name one version");
});

test("net: get, post, put, delete, request and fetch send the method, URL, headers and body", async (t) => {
  const { sdk, calls } = await fakeBroker(t, (r) => ok({ status: r.method === "DELETE" ? 404 : 200, body: `{"method":"${r.method}"}` }));
  const got = await sdk.net.get("https://api.example.com/items", { headers: { accept: "application/json" } });
  assert.equal(got.status, 200);
  assert.equal(got.ok, true);
  assert.equal(got.body, '{"method":"GET"}');
  assert.equal(got.data, got.body, "data is the body's old name");
  assert.equal(await got.text(), '{"method":"GET"}');
  assert.deepEqual(await got.json(), { method: "GET" });
  assert.ok(got instanceof sdk.Response);

  await sdk.net.post("https://api.example.com/items", { title: "new" });
  await sdk.net.put("https://api.example.com/items/1", "raw", { headers: { "Content-Type": "text/plain" } });
  const deleted = await sdk.net.delete("https://api.example.com/items/1");
  assert.equal(deleted.status, 404);
  assert.equal(deleted.ok, false);
  await sdk.net.request("PATCH", "https://api.example.com/items/1", { body: [1, 2], headers: { "content-type": "application/merge-patch+json" } });
  await sdk.net.fetch("https://api.example.com/", { method: "HEAD" });
  await sdk.net.fetch("https://api.example.com/");
  await sdk.net.post("https://api.example.com/ping");

  assert.deepEqual(
    calls().map(({ method, url, headers, body }) => ({ method, url, headers, body })),
    [
      { method: "GET", url: "https://api.example.com/items", headers: { accept: "application/json" }, body: undefined },
      { method: "POST", url: "https://api.example.com/items", headers: { "content-type": "application/json" }, body: '{"title":"new"}' },
      { method: "PUT", url: "https://api.example.com/items/1", headers: { "Content-Type": "text/plain" }, body: "raw" },
      { method: "DELETE", url: "https://api.example.com/items/1", headers: {}, body: undefined },
      { method: "PATCH", url: "https://api.example.com/items/1", headers: { "content-type": "application/merge-patch+json" }, body: "[1,2]" },
      { method: "HEAD", url: "https://api.example.com/", headers: {}, body: undefined },
      { method: "GET", url: "https://api.example.com/", headers: {}, body: undefined },
      { method: "POST", url: "https://api.example.com/ping", headers: {}, body: undefined },
    ]
  );
  assert.ok(calls().every((r) => r.op === "http"));
});

test("a 3xx is ok (no redirect is followed), a 4xx or 5xx is not", async (t) => {
  const statuses = [302, 199, 500];
  const { sdk } = await fakeBroker(t, () => ok({ status: statuses.shift(), body: "" }));
  assert.equal((await sdk.net.get("https://a.example/")).ok, true);
  assert.equal((await sdk.net.get("https://a.example/")).ok, false);
  assert.equal((await sdk.net.get("https://a.example/")).ok, false);
});

test("fs: read, write and append (and Node.js's names for them) speak file_read and file_write", async (t) => {
  const broker = await publicBroker(t, { files: { "notes/a.txt": "content of a", "b.txt": "content of b" } });
  assert.equal(await symbiont.fs.read("notes/a.txt"), "content of a");
  assert.equal(await symbiont.fs.readFile("b.txt"), "content of b");
  assert.equal(await symbiont.fs.write("out.txt", "hello"), 5);
  assert.equal(await symbiont.fs.writeFile("out.txt", "hi"), 2);
  assert.equal(await symbiont.fs.append("log.txt", "line\n"), 5);
  assert.equal(await symbiont.fs.appendFile("log.txt", 42), 2, "content is sent as a string");
  assert.deepEqual(
    calls(broker).map(({ op, path, content, append }) => ({ op, path, content, append })),
    [
      { op: "file_read", path: "notes/a.txt", content: undefined, append: undefined },
      { op: "file_read", path: "b.txt", content: undefined, append: undefined },
      { op: "file_write", path: "out.txt", content: "hello", append: false },
      { op: "file_write", path: "out.txt", content: "hi", append: false },
      { op: "file_write", path: "log.txt", content: "line\n", append: true },
      { op: "file_write", path: "log.txt", content: "42", append: true },
    ]
  );
  assert.deepEqual(broker.files, { "notes/a.txt": "content of a", "b.txt": "content of b", "out.txt": "hi", "log.txt": "line\n42" });
});

test("env.get and secrets.get resolve the value or null", async (t) => {
  const broker = await publicBroker(t, { env: { REGION: "eu-west-1" }, secrets: { api_token: "s3cr3t" } });
  assert.equal(await symbiont.env.get("REGION"), "eu-west-1");
  assert.equal(await symbiont.env.get("HOME"), null);
  assert.equal(await symbiont.secrets.get("api_token"), "s3cr3t");
  assert.equal(await symbiont.secrets.get("missing"), null);
  assert.deepEqual(
    calls(broker).map(({ op, name }) => [op, name]),
    [["env_get", "REGION"], ["env_get", "HOME"], ["secret_get", "api_token"], ["secret_get", "missing"]]
  );
});

test("log sends the message and the level (info by default) and resolves nothing", async (t) => {
  const broker = await publicBroker(t);
  assert.equal(await symbiont.log("started"), undefined);
  await symbiont.log("careful", "warn");
  assert.deepEqual(
    calls(broker).map(({ message, level }) => [message, level]),
    [["started", "info"], ["careful", "warn"]]
  );
});

test("send resolves the sequence number; receive a Message, or null when none came in time", async (t) => {
  const broker = await publicBroker(t, { inbox: [{ from: "planner", payload: { task: [1, 2] } }] });
  assert.equal(await symbiont.send("summarizer", { text: "hi" }), 1);
  assert.equal(await symbiont.send("summarizer", { text: "again" }), 2);
  assert.deepEqual(await symbiont.receive(1000), { from: "planner", seq: 1, payload: { task: [1, 2] } });
  assert.equal(await symbiont.receive(250), null, "a receive that times out resolves null");
  assert.equal(await symbiont.receive(), null);
  assert.deepEqual(
    calls(broker).map(({ op, to, payload, timeout_ms }) => ({ op, to, payload, timeout_ms })),
    [
      { op: "send_message", to: "summarizer", payload: { text: "hi" }, timeout_ms: undefined },
      { op: "send_message", to: "summarizer", payload: { text: "again" }, timeout_ms: undefined },
      { op: "receive_message", to: undefined, payload: undefined, timeout_ms: 1000 },
      { op: "receive_message", to: undefined, payload: undefined, timeout_ms: 250 },
      { op: "receive_message", to: undefined, payload: undefined, timeout_ms: 0 },
    ]
  );
});

test("input is the run's SYMBIONT_INPUT, parsed, or null", async (t) => {
  t.after(() => delete process.env.SYMBIONT_INPUT);
  const sdk = freshSdk();
  delete process.env.SYMBIONT_INPUT;
  assert.equal(sdk.input(), null);
  process.env.SYMBIONT_INPUT = '{"port": 8080, "items": ["a"]}';
  assert.deepEqual(sdk.input(), { port: 8080, items: ["a"] });
});

test("each error code rejects with its class, carrying the code and the broker's message", async (t) => {
  const codes = {
    denied: "PolicyDenied",
    audit_failed: "AuditFailed",
    unidentified: "Unidentified",
    bad_request: "BadRequest",
    limited: "Limited",
    failed: "Failed",
  };
  const { sdk } = await fakeBroker(t, (r) => err(r.path, `the broker says ${r.path}`));
  for (const [code, name] of Object.entries(codes)) {
    const e = await sdk.fs.read(code).then(
      () => assert.fail(`${code} resolved`),
      (e) => e
    );
    assert.ok(e instanceof sdk[name], `${code} is ${name}`);
    assert.ok(e instanceof sdk.BrokerError && e instanceof Error);
    assert.equal(e.name, name);
    assert.equal(e.code, code);
    assert.equal(e.message, `the broker says ${code}`);
    assert.equal(e.brokerMessage, e.message);
    assert.equal(e.rule, null, "no rule named");
    assert.match(String(e), new RegExp(`^${name}: the broker says ${code}$`));
  }
  const unknown = await sdk.fs.read("teapot").catch((e) => e);
  assert.equal(unknown.constructor, sdk.BrokerError, "a code the SDK does not know is a plain BrokerError");
  assert.equal(unknown.code, "teapot");
});

test("a denial carries the deciding rule parsed from the broker's message", async (t) => {
  await publicBroker(t, { deny: { file_write: 'deny: file_system_write(path) if path == "out.txt"', send_message: 'deny: send_message(to) if to == "auditor"' } });
  const e = await symbiont.fs.write("out.txt", "x").catch((e) => e);
  assert.ok(e instanceof symbiont.PolicyDenied);
  assert.equal(e.rule, 'deny: file_system_write(path) if path == "out.txt"');
  assert.equal(e.message, 'policy denies file_system_write for agent agent by `deny: file_system_write(path) if path == "out.txt"` (Denied)');
  const s = await symbiont.send("auditor", 1).catch((e) => e);
  assert.equal(s.rule, 'deny: send_message(to) if to == "auditor"');
  assert.equal(s.message, 'policy denies send_message to `auditor` for agent agent by `deny: send_message(to) if to == "auditor"` (Denied)');
});

test("16 MiB go through whole both ways, in one reply read to its end", async (t) => {
  const big = "x".repeat(16 * MiB - 2) + "é"; // 16 MiB of UTF-8, a two-byte character last
  const { sdk, calls } = await fakeBroker(t, (r) => {
    if (r.op === "file_read") return ok({ content: big });
    return r.op === "file_write" ? ok({ written: Buffer.byteLength(r.content) }) : ok(null);
  });
  assert.equal(await sdk.fs.write("big.txt", big), 16 * MiB);
  assert.equal(calls()[0].content, big);
  const read = await sdk.fs.read("big.txt");
  assert.equal(read.length, big.length);
  assert.ok(read === big);
  assert.equal(await sdk.log("after"), undefined, "the connection still serves");
});

test("a request over the broker's 17 MiB line is refused before it is sent", async (t) => {
  const { sdk, seen } = await fakeBroker(t, () => ok({ written: 0 }));
  const e = await sdk.fs.write("huge.txt", "x".repeat(17 * MiB)).catch((e) => e);
  assert.ok(e instanceof sdk.BadRequest, String(e));
  assert.match(e.message, /over the broker's limit of 17825792 bytes/);
  assert.equal(seen.requests.length, 0, "nothing sent, not even a connection's hello");
});

test("a broker that closes mid-reply rejects with TransportError; the next call reconnects", async (t) => {
  const { sdk, seen } = await fakeBroker(t, (r, io) => {
    if (r.path === "cut") {
      io.socket.end('{"id": ' + r.id + ', "ok": true, "result": {"content": "par');
      return undefined;
    }
    return ok({ content: "whole" });
  });
  const e = await sdk.fs.read("cut").catch((e) => e);
  assert.ok(e instanceof sdk.TransportError, String(e));
  assert.equal(e.code, "transport");
  assert.match(e.message, /closed the connection in the middle of a reply/);
  assert.equal(await sdk.fs.read("again"), "whole");
  assert.equal(seen.connections, 2);
});

test("a broker that closes before replying rejects every call in flight", async (t) => {
  let held = 0;
  const { sdk } = await fakeBroker(t, (r, io) => {
    if (++held === 3) io.socket.destroy();
    return undefined;
  });
  const results = await Promise.allSettled([sdk.fs.read("a"), sdk.fs.read("b"), sdk.fs.read("c")]);
  for (const r of results) {
    assert.equal(r.status, "rejected");
    assert.ok(r.reason instanceof sdk.TransportError);
    assert.match(r.reason.message, /closed the connection before replying/);
  }
});

test("a malformed reply rejects with TransportError: not JSON, not a reply, an id never sent", async (t) => {
  const bad = ["{not json", '["an", "array"]', '{"id": 1}', '{"id": 999, "ok": true, "result": null}'];
  const { sdk } = await fakeBroker(t, (r, io) => {
    io.socket.write(bad[Number(r.path)] + "\n");
    return undefined;
  });
  const messages = [];
  for (let i = 0; i < bad.length; i++) {
    const e = await sdk.fs.read(String(i)).catch((e) => e);
    assert.ok(e instanceof sdk.TransportError, `${bad[i]}: ${e}`);
    messages.push(e.message);
  }
  assert.match(messages[0], /not JSON/);
  assert.match(messages[1], /malformed reply/);
  assert.match(messages[2], /malformed reply/);
  assert.match(messages[3], /never sent \(id 999\)/);
});

test("no broker socket rejects with TransportError naming the path", async () => {
  process.env.SYMBIONT_BROKER = path.join(__dirname, "no-such-dir", "broker.sock");
  const sdk = freshSdk();
  const e = await sdk.env.get("X").catch((e) => e);
  assert.ok(e instanceof sdk.TransportError, String(e));
  assert.match(e.message, /no-such-dir\/broker\.sock.*ENOENT/);
});

test("an error with id null ends the connection: calls in flight reject with it, the next call reconnects", async (t) => {
  let first = true;
  const { sdk, seen } = await fakeBroker(t, (r, io) => {
    if (first && r.path === "b") {
      first = false;
      io.write({ id: null, ok: false, error: { code: "limited", message: "the connection is over its budget" } });
      io.socket.end();
      return undefined;
    }
    if (first) return undefined; // held until the connection ends
    return ok({ content: r.path });
  });
  const results = await Promise.allSettled([sdk.fs.read("a"), sdk.fs.read("b")]);
  assert.equal(results[0].status, "rejected");
  assert.ok(results[0].reason instanceof sdk.Limited, String(results[0].reason));
  assert.match(results[0].reason.message, /over its budget/);
  assert.ok(results[1].reason instanceof sdk.Limited);
  assert.equal(await sdk.fs.read("c"), "c", "the next call opens a new connection");
  assert.equal(seen.connections, 2);
  assert.deepEqual(
    seen.requests.filter((r) => r.connection === 2).map((r) => r.op),
    ["hello", "file_read"],
    "the new connection opens with its own hello"
  );
});

test("a broker of another major version: VersionMismatch naming both, at once and for every later call", async (t) => {
  const refusal = "the broker speaks protocol 2.0; this SDK speaks 1.0: use an SDK of major version 2";
  const { sdk, seen } = await fakeBroker(t, () => ok(null), { hello: () => err("version", refusal) });
  const e = await sdk.log("x").catch((e) => e);
  assert.ok(e instanceof sdk.VersionMismatch, String(e));
  assert.ok(e instanceof sdk.BrokerError);
  assert.equal(e.code, "version");
  assert.equal(e.message, refusal);
  assert.deepEqual(seen.requests.map((r) => r.op), ["hello"], "no request follows a refused hello");
  const again = await sdk.env.get("X").catch((e) => e);
  assert.equal(again, e, "later calls fail the same, without retrying");
  assert.equal(seen.connections, 1);
});

test("a broker answering hello with another major version is refused by the SDK itself", async (t) => {
  const { sdk, seen } = await fakeBroker(t, () => ok(null), { hello: () => ok({ protocol: "2.1", agent: "worker" }) });
  const e = await sdk.log("x").catch((e) => e);
  assert.ok(e instanceof sdk.VersionMismatch, String(e));
  assert.match(e.message, /speaks protocol 2\.1; this SDK \(javascript 0\.1\.0\) speaks protocol 1\.0/);
  assert.deepEqual(seen.requests.map((r) => r.op), ["hello"]);
});

test("a broker of the same major and a newer minor is accepted", async (t) => {
  const { sdk } = await fakeBroker(t, () => ok({ value: "v" }), { hello: () => ok({ protocol: "1.7", agent: "worker" }) });
  assert.equal(await sdk.env.get("X"), "v");
});

test("a broker that does not know hello (before 1.0) is a VersionMismatch", async (t) => {
  const { sdk } = await fakeBroker(t, () => ok(null), {
    hello: () => err("bad_request", "unknown op `hello`: expected http, file_read"),
  });
  const e = await sdk.log("x").catch((e) => e);
  assert.ok(e instanceof sdk.VersionMismatch, String(e));
  assert.match(e.message, /unknown op `hello`.*older than protocol 1\.0.*speaks protocol 1\.0/);
});

test("a hello answered without a version is a VersionMismatch", async (t) => {
  const { sdk } = await fakeBroker(t, () => ok(null), { hello: () => ok({ agent: "worker" }) });
  const e = await sdk.log("x").catch((e) => e);
  assert.ok(e instanceof sdk.VersionMismatch, String(e));
  assert.match(e.message, /did not say its protocol version/);
});

test("an unidentified connection rejects the call with Unidentified, not a version error", async (t) => {
  const { sdk } = await fakeBroker(t, () => ok(null), {
    hello: (r, io) => {
      io.write({ id: null, ok: false, error: { code: "unidentified", message: "this connection is not from the agent's sandbox" } });
      io.socket.end();
      return undefined;
    },
  });
  const e = await sdk.log("x").catch((e) => e);
  assert.ok(e instanceof sdk.Unidentified, String(e));
});

test("calls in flight at once share one connection and each gets its own reply", async (t) => {
  const { sdk, seen } = await fakeBroker(t, (r) => ok({ content: `file ${r.path}` }));
  const names = Array.from({ length: 50 }, (_, i) => String(i));
  const contents = await Promise.all(names.map((n) => sdk.fs.read(n)));
  assert.deepEqual(contents, names.map((n) => `file ${n}`));
  assert.equal(seen.connections, 1);
  assert.equal(seen.requests.filter((r) => r.op === "hello").length, 1);
});

test("an agent process exits by itself when its calls are done (the idle connection keeps no one waiting)", { timeout: 20000 }, async (t) => {
  const { socketPath } = await fakeBroker(t, () => ok({ value: "here" }));
  const agent = `const s = require(${JSON.stringify(path.join(__dirname, ".."))}); s.env.get("X").then((v) => console.log(v));`;
  const child = spawn(process.execPath, ["-e", agent], { env: { SYMBIONT_BROKER: socketPath }, stdio: ["ignore", "pipe", "inherit"] });
  t.after(() => child.exitCode === null && child.kill("SIGKILL"));
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  const code = await new Promise((resolve) => child.on("exit", resolve));
  assert.equal(code, 0);
  assert.equal(out, "here\n");
});
