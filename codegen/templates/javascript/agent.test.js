// {{ name }}'s tests: its code against the SDK's fake broker, without a sandbox (`node --test`).
"use strict";

const assert = require("node:assert/strict");
const test = require("node:test");
const symbiont = require("symbiont");
const { FakeBroker } = require("symbiont/testing");
const agent = require("./{{ name }}.js");
{% for f in functions %}
{% include "javascript/test.js" %}
{% endfor %}

test("main does nothing unasked and logs done", async () => {
  const broker = await FakeBroker.serve({ input: {} }, () => agent.main());
  assert.deepEqual(broker.logs, [{ level: "info", message: "{{ name }}: done" }]);
});
