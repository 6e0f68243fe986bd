// A TypeScript test of an agent, as an agent's own tests use symbiont/testing: `tsc -p test`
// checks it against testing.d.ts under --strict (runtime/sdk/node/check). Type-checked, never run.
// Each `@ts-expect-error` line is a wrong use the types must reject.
import * as symbiont from "symbiont";
import { DENIABLE, DeniableOp, FakeBroker, FakeBrokerOptions, HttpRoute, InboxMessage, LogLine, SentMessage } from "symbiont/testing";

async function agent(): Promise<void> {
  const items = await (await symbiont.net.get("https://api.example.com/v1/items")).json<number[]>();
  await symbiont.fs.write("out/summary.txt", `${items.length} items`);
  await symbiont.log("done");
}

async function testAgent(): Promise<boolean> {
  const route: HttpRoute = { status: 200, body: "[1, 2]" };
  const options: FakeBrokerOptions = {
    files: { "in.txt": "hello" },
    env: { REGION: "eu" },
    secrets: { API_TOKEN: "t" },
    http: { "https://api.example.com/v1/items": route },
    deny: { secret_get: 'deny: secret_access(name) if name == "db_password"' },
    inbox: [{ from: "planner", payload: { task: 1 } }, { from: "planner" }],
    input: { name: "x" },
    agent: "summarizer",
  };
  const broker: FakeBroker = await FakeBroker.start(options);
  try {
    await agent();
    await symbiont.secrets.get("DB_PASSWORD").catch((e: unknown) => e instanceof symbiont.PolicyDenied && e.rule);
  } finally {
    await broker.close();
  }
  const written: string | undefined = broker.files["out/summary.txt"];
  const logs: LogLine[] = broker.logs;
  const sent: SentMessage[] = broker.sent;
  const waiting: InboxMessage[] = broker.inbox;
  broker.inbox.push({ from: "peer", payload: [1] });
  broker.deny.file_write = "deny: file_system_write";
  const ops: readonly DeniableOp[] = DENIABLE;
  const first: unknown = broker.requests[0]?.["op"];
  const socket: string = broker.socketPath;
  // @ts-expect-error: a FakeBroker is made by FakeBroker.start
  new FakeBroker();
  // @ts-expect-error: log is not decided by a policy, so it cannot be denied
  await FakeBroker.start({ deny: { log: "deny: log" } });
  // @ts-expect-error: a route is { status, body }
  await FakeBroker.start({ http: { "https://a.example/": [200, ""] } });
  // @ts-expect-error: an inbox message names its sender
  await FakeBroker.start({ inbox: [{ payload: 1 }] });
  // @ts-expect-error: what was sent is the broker's record, not the test's to replace
  broker.sent = [];
  return written === "2 items" && logs.length + sent.length + waiting.length + ops.length > 0 && first === "hello" && socket !== "";
}

export { testAgent };
