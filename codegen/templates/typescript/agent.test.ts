// {{ name }}'s tests: its code against the SDK's fake broker, without a sandbox (compiled by
// `tsc`, run by `node --test`).
import assert from "node:assert/strict";
import test from "node:test";
import * as symbiont from "symbiont";
import { FakeBroker, type FakeBrokerOptions } from "symbiont/testing";
import * as agent from "./{{ name }}";

/** Runs `body` against a fake broker started with `options`, and returns the broker. */
async function withBroker(options: FakeBrokerOptions, body: (broker: FakeBroker) => Promise<unknown>): Promise<FakeBroker> {
  const broker = await FakeBroker.start(options);
  try {
    await body(broker);
  } finally {
    await broker.close();
  }
  return broker;
}
{% for f in functions %}
{% include "javascript/test.js" %}
{% endfor %}

test("main does nothing unasked and logs done", async () => {
  const broker = await withBroker({ input: {} }, () => agent.main());
  assert.deepEqual(broker.logs, [{ level: "info", message: "{{ name }}: done" }]);
});
