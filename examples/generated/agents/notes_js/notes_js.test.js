// notes_js's tests: its code against the SDK's fake broker, without a sandbox (`node --test`).
"use strict";

const assert = require("node:assert/strict");
const test = require("node:test");
const symbiont = require("symbiont");
const { FakeBroker } = require("symbiont/testing");
const agent = require("./notes_js.js");

test("fetchUrl returns the body", async () => {
  const http = { "https://example.com/data": { status: 200, body: "hello" } };
  await FakeBroker.serve({ http }, async () => assert.equal(await agent.fetchUrl("https://example.com/data"), "hello"));
});

test("fetchUrl rejects with the denial naming the rule", async () => {
  const rule = 'deny: ["https_request"]';
  await FakeBroker.serve({ deny: { http: rule } }, async () => {
    const call = agent.fetchUrl("https://example.com/data");
    await assert.rejects(call, (error) => error instanceof symbiont.PolicyDenied && error.rule === rule);
  });
});

test("readFile reads the workspace", async () => {
  await FakeBroker.serve({ files: { "notes.txt": "hello" } }, async () => assert.equal(await agent.readFile("notes.txt"), "hello"));
});

test("readFile rejects with the denial naming the rule", async () => {
  const rule = 'deny: ["file_read"]';
  await FakeBroker.serve({ deny: { file_read: rule } }, async () => {
    const call = agent.readFile("name");
    await assert.rejects(call, (error) => error instanceof symbiont.PolicyDenied && error.rule === rule);
  });
});

test("writeFile writes the workspace", async () => {
  const broker = await FakeBroker.serve({}, async () => assert.equal(await agent.writeFile("out.txt", "hello"), 5));
  assert.equal(broker.files["out.txt"], "hello");
});

test("writeFile rejects with the denial naming the rule", async () => {
  const rule = 'deny: ["file_system_write"]';
  await FakeBroker.serve({ deny: { file_write: rule } }, async () => {
    const call = agent.writeFile("out.txt", "hello");
    await assert.rejects(call, (error) => error instanceof symbiont.PolicyDenied && error.rule === rule);
  });
});

test("readEnv reads declared variables only", async () => {
  await FakeBroker.serve({ env: { REGION: "eu-west-1" } }, async () => {
    assert.equal(await agent.readEnv("REGION"), "eu-west-1");
    assert.equal(await agent.readEnv("HOME"), null);
  });
});

test("readEnv rejects with the denial naming the rule", async () => {
  const rule = 'deny: ["env_access"]';
  await FakeBroker.serve({ deny: { env_get: rule } }, async () => {
    const call = agent.readEnv("name");
    await assert.rejects(call, (error) => error instanceof symbiont.PolicyDenied && error.rule === rule);
  });
});

test("readSecret reads by name", async () => {
  await FakeBroker.serve({ secrets: { api_key: "s3cr3t" } }, async () => assert.equal(await agent.readSecret("api_key"), "s3cr3t"));
});

test("readSecret rejects with the denial naming the rule", async () => {
  const rule = 'deny: ["secret_access"]';
  await FakeBroker.serve({ deny: { secret_get: rule } }, async () => {
    const call = agent.readSecret("name");
    await assert.rejects(call, (error) => error instanceof symbiont.PolicyDenied && error.rule === rule);
  });
});

test("sendMessage sends the payload", async () => {
  const broker = await FakeBroker.serve({}, async () => assert.equal(await agent.sendMessage("peer", { n: 1 }), 1));
  assert.deepEqual(broker.sent, [{ to: "peer", payload: { n: 1 } }]);
});

test("sendMessage rejects with the denial naming the rule", async () => {
  const rule = 'deny: ["send_message"]';
  await FakeBroker.serve({ deny: { send_message: rule } }, async () => {
    const call = agent.sendMessage("peer", { n: 1 });
    await assert.rejects(call, (error) => error instanceof symbiont.PolicyDenied && error.rule === rule);
  });
});

test("receiveMessage returns what came", async () => {
  await FakeBroker.serve({ inbox: [{ from: "peer", payload: { n: 1 } }] }, async () => {
    const message = await agent.receiveMessage(100);
    assert.deepEqual([message?.from, message?.payload], ["peer", { n: 1 }]);
  });
});

test("main does nothing unasked and logs done", async () => {
  const broker = await FakeBroker.serve({ input: {} }, () => agent.main());
  assert.deepEqual(broker.logs, [{ level: "info", message: "notes_js: done" }]);
});
