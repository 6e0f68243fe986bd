// An agent in TypeScript that uses every call and error class of the SDK: `tsc -p test` checks it
// against index.d.ts under --strict (runtime/sdk/node/check). It is type-checked, never run.
// Each `@ts-expect-error` line is a wrong use the types must reject (tsc fails if one is accepted).
import * as symbiont from "symbiont";
import { BrokerError, Message, PolicyDenied, Response } from "symbiont";

interface Input {
  port: number;
  peer: string;
}

interface Task {
  id: number;
  title: string;
}

async function http(base: string): Promise<number> {
  const got: Response = await symbiont.net.get(`${base}/items`, { headers: { accept: "application/json" } });
  const items = await got.json<Task[]>();
  const first: string | undefined = items[0]?.title;
  const text: string = await got.text();
  const body: string = got.body + got.data;
  const posted = await symbiont.net.post(`${base}/items`, { title: "new" }, { headers: { "x-trace": "1" } });
  const put = await symbiont.net.put(`${base}/items/1`, "raw text");
  const deleted = await symbiont.net.delete(`${base}/items/1`);
  const patched = await symbiont.net.request("PATCH", `${base}/items/1`, { body: { done: true } });
  const fetched = await symbiont.net.fetch(`${base}/items`, { method: "HEAD" });
  const ok: boolean = posted.ok && put.ok && deleted.ok && patched.ok && fetched.ok;
  // @ts-expect-error: headers are strings
  await symbiont.net.get(base, { headers: { retries: 3 } });
  // @ts-expect-error: a URL is a string
  await symbiont.net.get(new Array<string>());
  // @ts-expect-error: status is read-only
  got.status = 500;
  // @ts-expect-error: there is no such HTTP call
  await symbiont.net.head(base);
  return ok ? text.length + body.length + (first?.length ?? 0) : got.status;
}

async function files(): Promise<void> {
  const notes: string = await symbiont.fs.read("notes.txt");
  const written: number = await symbiont.fs.write("out/summary.txt", notes.toUpperCase());
  const appended: number = await symbiont.fs.append("out/log.txt", `${written}\n`);
  await symbiont.fs.writeFile("b.txt", await symbiont.fs.readFile("a.txt"));
  await symbiont.fs.appendFile("b.txt", String(appended));
  // @ts-expect-error: read resolves a string, not a number
  const size: number = await symbiont.fs.read("notes.txt");
  // @ts-expect-error: content is a string
  await symbiont.fs.write("out.bin", new Uint8Array(4));
  void size;
}

async function config(): Promise<string> {
  const region: string | null = await symbiont.env.get("REGION");
  const token = await symbiont.secrets.get("API_TOKEN");
  // @ts-expect-error: a secret may be missing (null)
  const sure: string = await symbiont.secrets.get("API_TOKEN");
  void sure;
  return `${region ?? "eu-west-1"}:${token === null ? "anonymous" : "token"}`;
}

async function messages(peer: string): Promise<void> {
  const seq: number = await symbiont.send(peer, { task: { id: 1, title: "sum" } });
  const untyped = await symbiont.receive(1000);
  if (untyped !== null) {
    // @ts-expect-error: an untyped payload is unknown until narrowed
    untyped.payload.id;
  }
  const message: Message<Task> | null = await symbiont.receive<Task>(5000);
  if (message === null) {
    await symbiont.log(`no reply to message ${seq}`, "warn");
    return;
  }
  await symbiont.log(`${message.from} #${message.seq}: ${message.payload.title}`);
  // @ts-expect-error: receive may resolve null
  (await symbiont.receive()).from;
}

function describe(e: unknown): string {
  if (e instanceof symbiont.PolicyDenied) return `denied by ${e.rule ?? "an unnamed rule"}`;
  if (e instanceof symbiont.AuditFailed) return `not audited, not done: ${e.message}`;
  if (e instanceof symbiont.Unidentified) return `unidentified: ${e.message}`;
  if (e instanceof symbiont.BadRequest) return `bad request: ${e.message}`;
  if (e instanceof symbiont.Limited) return `limited: ${e.message}`;
  if (e instanceof symbiont.Failed) return `failed: ${e.message}`;
  if (e instanceof symbiont.TransportError) return `no broker: ${e.message}`;
  if (e instanceof symbiont.VersionMismatch) return `wrong SDK: ${e.message}`;
  if (e instanceof BrokerError) return `${e.code}: ${e.brokerMessage}`;
  return String(e);
}

function codes(): string[] {
  const denied: "denied" = new PolicyDenied("policy denies x by `deny: x` (Denied)", "deny: x").code;
  const custom = new BrokerError("teapot", "short and stout");
  const base: BrokerError = new symbiont.Failed("no such file");
  // @ts-expect-error: a PolicyDenied's code is "denied"
  const wrong: "failed" = new PolicyDenied("m").code;
  void wrong;
  return [denied, custom.code, base.code, symbiont.VERSION, symbiont.PROTOCOL];
}

async function main(): Promise<void> {
  const input = symbiont.input<Input>();
  // @ts-expect-error: an untyped input is unknown until narrowed
  symbiont.input().port;
  try {
    await http(`http://127.0.0.1:${input.port}`);
    await files();
    await symbiont.log(await config(), "debug");
    await messages(input.peer);
    await symbiont.log(codes().join(","));
  } catch (e) {
    await symbiont.log(describe(e), "error");
  }
  // @ts-expect-error: log takes a message and a level, both strings
  await symbiont.log("x", 3);
}

void main();
