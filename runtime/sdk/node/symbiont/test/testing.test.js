"use strict";
// The public fake broker (symbiont/testing) behaves as the real broker does for an agent's tests:
// the SDK of this process, as an agent requires it, against FakeBroker.start().

const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const test = require("node:test");
const symbiont = require("..");
const { FakeBroker, DENIABLE } = require("../testing");

const RULE = 'deny: thing(name) if name == "x" && `quoted` == "y"';
// Each decided op: a call that makes it, and the operation the real broker's denial names.
const DENIALS = [
  ["http", () => symbiont.net.get("https://api.example.com/"), "policy denies https_request for agent agent"],
  ["http", () => symbiont.net.get("http://api.example.com/"), "policy denies http_request for agent agent"],
  ["file_read", () => symbiont.fs.read("a.txt"), "policy denies file_read for agent agent"],
  ["file_write", () => symbiont.fs.append("a.txt", "x"), "policy denies file_system_write for agent agent"],
  ["env_get", () => symbiont.env.get("HOME"), "policy denies env_access for agent agent"],
  ["secret_get", () => symbiont.secrets.get("DB_PASSWORD"), "policy denies secret_access for agent agent"],
  ["send_message", () => symbiont.send("vault", 1), "policy denies send_message to `vault` for agent agent"],
];

for (const [op, call, says] of DENIALS) {
  test(`a denied ${op} rejects with PolicyDenied carrying the rule (${says.split(" ")[2]})`, async () => {
    const routes = { "https://api.example.com/": { status: 200, body: "" } };
    const broker = await FakeBroker.serve({ files: { "a.txt": "kept" }, http: routes, deny: { [op]: RULE } }, async () => {
      const e = await call().then(() => assert.fail("resolved"), (e) => e);
      assert.ok(e instanceof symbiont.PolicyDenied, String(e));
      assert.equal(e.rule, RULE);
      assert.equal(e.message, `${says} by \`${RULE}\` (Denied)`);
    });
    assert.deepEqual(broker.files, { "a.txt": "kept" }, "a denied request does nothing");
    assert.deepEqual(broker.sent, []);
  });
}

test("a denial with an empty rule names none; a denied receive consumes the message and resolves null", async () => {
  await FakeBroker.serve({ deny: { file_read: "", receive_message: "deny: receive_message" }, inbox: [{ from: "p", payload: 1 }, { from: "p", payload: 2 }] }, async (broker) => {
    const e = await symbiont.fs.read("a").catch((e) => e);
    assert.ok(e instanceof symbiont.PolicyDenied);
    assert.equal(e.rule, null);
    assert.equal(e.message, "policy denies file_read for agent agent (NotAllowed)");
    assert.equal(await symbiont.receive(), null);
    delete broker.deny.receive_message;
    assert.deepEqual(await symbiont.receive(), { from: "p", seq: 2, payload: 2 });
  });
});

test("files round-trip: read, write, append, Node.js's names; a missing file is Failed", async () => {
  const broker = await FakeBroker.serve({ files: { "in/data.txt": "a" } }, async () => {
    assert.equal(await symbiont.fs.read("in/data.txt"), "a");
    assert.equal(await symbiont.fs.write("out/r.txt", "é"), 2);
    assert.equal(await symbiont.fs.append("out/r.txt", "2"), 1);
    await symbiont.fs.appendFile("out/new.txt", "n");
    assert.equal(await symbiont.fs.readFile("out/r.txt"), "é2");
    const e = await symbiont.fs.read("missing.txt").catch((e) => e);
    assert.ok(e instanceof symbiont.Failed, String(e));
    assert.match(e.message, /`missing.txt`: No such file/);
  });
  assert.deepEqual(broker.files, { "in/data.txt": "a", "out/r.txt": "é2", "out/new.txt": "n" });
});

test("a path in another spelling is a BadRequest and writes nothing", async () => {
  const broker = await FakeBroker.serve({}, async () => {
    for (const p of ["", "/etc/passwd", "./a", "a/.", "a/../b", "a//b", "a/", "a\0b"]) {
      const e = await symbiont.fs.write(p, "x").catch((e) => e);
      assert.ok(e instanceof symbiont.BadRequest, `${JSON.stringify(p)}: ${e}`);
      assert.match(e.message, /is refused/);
    }
  });
  assert.deepEqual(broker.files, {});
});

test("http answers by exact URL; another URL is Failed (no such host), another scheme a BadRequest", async () => {
  const routes = { "https://api.example.com/v1/items": { status: 200, body: "[1]" }, "https://api.example.com/v1/gone": { status: 410, body: "gone" } };
  const broker = await FakeBroker.serve({ http: routes }, async () => {
    assert.deepEqual(await (await symbiont.net.get("https://api.example.com/v1/items")).json(), [1]);
    const gone = await symbiont.net.post("https://api.example.com/v1/gone", { a: 1 });
    assert.equal(gone.status, 410);
    assert.equal(gone.ok, false);
    const unknown = await symbiont.net.get("https://unknown.example/v1/items").catch((e) => e);
    assert.ok(unknown instanceof symbiont.Failed, String(unknown));
    assert.match(unknown.message, /the host unknown\.example does not resolve/);
    assert.ok((await symbiont.net.get("https://api.example.com/v1/items?page=2").catch((e) => e)) instanceof symbiont.Failed);
    const ftp = await symbiont.net.get("ftp://api.example.com/").catch((e) => e);
    assert.ok(ftp instanceof symbiont.BadRequest, String(ftp));
  });
  const posted = broker.requests.find((r) => r.method === "POST");
  assert.deepEqual(posted.headers, { "content-type": "application/json" });
  assert.equal(posted.body, '{"a":1}');
});

test("env by exact name; secrets by canonical lower-case name", async () => {
  await FakeBroker.serve({ env: { REGION: "eu" }, secrets: { Db_Password: "pw" } }, async (broker) => {
    assert.deepEqual(broker.secrets, { db_password: "pw" });
    assert.equal(await symbiont.env.get("REGION"), "eu");
    assert.equal(await symbiont.env.get("region"), null);
    assert.equal(await symbiont.env.get("toString"), null, "no inherited property is a variable");
    assert.equal(await symbiont.secrets.get("DB_PASSWORD"), "pw");
    assert.ok((await symbiont.secrets.get("db-password").catch((e) => e)) instanceof symbiont.BadRequest);
  });
});

test("the inbox is first in first out, numbered per sender; empty, receive resolves null at once", async () => {
  const broker = await FakeBroker.serve({ inbox: [{ from: "a", payload: { n: 1 } }, { from: "b", payload: "x" }] }, async (broker) => {
    broker.inbox.push({ from: "a", payload: { n: 2 } });
    assert.deepEqual(await symbiont.receive(1000), { from: "a", seq: 1, payload: { n: 1 } });
    assert.deepEqual(await symbiont.receive(), { from: "b", seq: 1, payload: "x" });
    assert.deepEqual(await symbiont.receive(), { from: "a", seq: 2, payload: { n: 2 } });
    const started = Date.now();
    assert.equal(await symbiont.receive(30000), null);
    assert.ok(Date.now() - started < 5000);
  });
  assert.deepEqual(broker.inbox, []);
});

test("what the code sent, logged and asked is recorded", async () => {
  const broker = await FakeBroker.serve({ agent: "writer" }, async () => {
    assert.equal(await symbiont.send("reviewer", { diff: 1 }), 1);
    assert.equal(await symbiont.send("reviewer", 2), 2);
    assert.equal(await symbiont.send("other", 3), 1);
    await symbiont.log("hello");
    await symbiont.log("careful", "WARN");
    assert.ok((await symbiont.log("x", "not a level").catch((e) => e)) instanceof symbiont.BadRequest);
  });
  assert.deepEqual(broker.sent, [{ to: "reviewer", payload: { diff: 1 } }, { to: "reviewer", payload: 2 }, { to: "other", payload: 3 }]);
  assert.deepEqual(broker.logs, [{ level: "info", message: "hello" }, { level: "warn", message: "careful" }]);
  assert.deepEqual(broker.requests[0], { id: 0, op: "hello", protocol: "1.0", sdk: `javascript ${symbiont.VERSION}` });
  assert.deepEqual(broker.requests.slice(1).map((r) => r.op), ["send_message", "send_message", "send_message", "log", "log", "log"]);
});

test("input is set while the broker is open and restored after", async () => {
  process.env.SYMBIONT_INPUT = '"outer"';
  try {
    await FakeBroker.serve({ input: { name: "x" } }, async () => assert.deepEqual(symbiont.input(), { name: "x" }));
    assert.equal(symbiont.input(), "outer");
    await FakeBroker.serve({}, async () => assert.equal(symbiont.input(), null));
  } finally {
    delete process.env.SYMBIONT_INPUT;
  }
});

test("a second broker after the first gets a fresh connection; closing removes the socket", async () => {
  const before = process.env.SYMBIONT_BROKER;
  const first = await FakeBroker.serve({ files: { a: "first" } }, async () => assert.equal(await symbiont.fs.read("a"), "first"));
  assert.equal(fs.existsSync(first.socketPath), false);
  assert.equal(fs.existsSync(path.dirname(first.socketPath)), false);
  assert.equal(process.env.SYMBIONT_BROKER, before);
  const second = await FakeBroker.serve({ files: { a: "second" } }, async (broker) => {
    assert.equal(process.env.SYMBIONT_BROKER, broker.socketPath);
    assert.equal(await symbiont.fs.read("a"), "second");
    await FakeBroker.serve({ files: { a: "inner" } }, async () => assert.equal(await symbiont.fs.read("a"), "inner"));
    assert.equal(await symbiont.fs.read("a"), "second", "the outer broker serves again once the inner one closed");
  });
  assert.equal(second.requests.filter((r) => r.op === "hello").length, 2, "a new connection, with its own hello");
  await second.close(); // closing twice does nothing
});

test("bad options are refused, naming what is wrong; a FakeBroker is made only by start", async () => {
  const refusals = [
    [{ deny: { log: "deny: log" } }, /deny: \["log"\] are not broker ops/],
    [{ secrets: { "no spaces": "x" } }, /secrets: the secret name "no spaces" is refused/],
    [{ http: { "https://a.example/": { status: 99, body: "" } } }, /a route is/],
    [{ http: { "https://a.example/": [200, ""] } }, /a route is/],
    [{ inbox: [{ payload: 1 }] }, /inbox: a message is/],
    [{ file: {} }, /unknown options \["file"\]/],
  ];
  for (const [options, says] of refusals) {
    await assert.rejects(FakeBroker.start(options), (e) => e instanceof TypeError && says.test(e.message));
  }
  assert.throws(() => new FakeBroker(), /FakeBroker\.start/);
  assert.deepEqual(DENIABLE, ["http", "file_read", "file_write", "env_get", "secret_get", "send_message", "receive_message"]);
});
