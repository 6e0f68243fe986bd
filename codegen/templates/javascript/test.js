{% if f.function == "fetch_url" %}

test("fetchUrl returns the body", async () => {
  const http = { "https://example.com/data": { status: 200, body: "hello" } };
  await FakeBroker.serve({ http }, async () => assert.equal(await agent.fetchUrl("https://example.com/data"), "hello"));
});
{% elif f.function == "read_file" %}

test("readFile reads the workspace", async () => {
  await FakeBroker.serve({ files: { "notes.txt": "hello" } }, async () => assert.equal(await agent.readFile("notes.txt"), "hello"));
});
{% elif f.function == "write_file" %}

test("writeFile writes the workspace", async () => {
  const broker = await FakeBroker.serve({}, async () => assert.equal(await agent.writeFile("out.txt", "hello"), 5));
  assert.equal(broker.files["out.txt"], "hello");
});
{% elif f.function == "read_env" %}

test("readEnv reads declared variables only", async () => {
  await FakeBroker.serve({ env: { REGION: "eu-west-1" } }, async () => {
    assert.equal(await agent.readEnv("REGION"), "eu-west-1");
    assert.equal(await agent.readEnv("HOME"), null);
  });
});
{% elif f.function == "read_secret" %}

test("readSecret reads by name", async () => {
  await FakeBroker.serve({ secrets: { api_key: "s3cr3t" } }, async () => assert.equal(await agent.readSecret("api_key"), "s3cr3t"));
});
{% elif f.function == "send_message" %}

test("sendMessage sends the payload", async () => {
  const broker = await FakeBroker.serve({}, async () => assert.equal(await agent.sendMessage("peer", { n: 1 }), 1));
  assert.deepEqual(broker.sent, [{ to: "peer", payload: { n: 1 } }]);
});
{% elif f.function == "receive_message" %}

test("receiveMessage returns what came", async () => {
  await FakeBroker.serve({ inbox: [{ from: "peer", payload: { n: 1 } }] }, async () => {
    const message = await agent.receiveMessage(100);
    assert.deepEqual([message?.from, message?.payload], ["peer", { n: 1 }]);
  });
});
{% endif %}
{% if f.broker_op != "receive_message" %}

test("{{ f.camel }} rejects with the denial naming the rule", async () => {
  const rule = 'deny: ["{{ f.operations[0] }}"]';
  await FakeBroker.serve({ deny: { {{ f.broker_op }}: rule } }, async () => {
{% if f.function == "fetch_url" %}
    const call = agent.fetchUrl("https://example.com/data");
{% elif f.function == "write_file" %}
    const call = agent.writeFile("out.txt", "hello");
{% elif f.function == "send_message" %}
    const call = agent.sendMessage("peer", { n: 1 });
{% else %}
    const call = agent.{{ f.camel }}("name");
{% endif %}
    await assert.rejects(call, (error) => error instanceof symbiont.PolicyDenied && error.rule === rule);
  });
});
{% endif %}
