// {{ name }}'s tests: its code against the SDK's fake broker, without a sandbox (compiled by
// `tsc`, run by `node --test`).
import assert from "node:assert/strict";
import test from "node:test";
import * as symbiont from "symbiont";
import { FakeBroker } from "symbiont/testing";
import * as agent from "./{{ name }}";
{% for f in functions %}
{% include "javascript/test.js" %}
{% endfor %}

test("main does nothing unasked and logs done", async () => {
  const broker = await FakeBroker.serve({ input: {} }, () => agent.main());
  assert.deepEqual(broker.logs, [{ level: "info", message: "{{ name }}: done" }]);
});
