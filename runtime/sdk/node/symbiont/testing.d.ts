// Types of `symbiont/testing`, the SDK's fake broker for an agent's own tests (hand-written; the
// code is testing.js). No dependency, not even on @types/node.

/**
 * A fake broker for an agent's own unit tests: the SDK's calls answered from memory, without a
 * sandbox.
 *
 * `FakeBroker.start(options)` serves the broker protocol 1.0 on a Unix socket in a private
 * temporary directory and points this process's SDK at it (`SYMBIONT_BROKER`, and a fresh
 * connection), so the code under test calls `symbiont.fs.read(...)` as it does in its sandbox.
 * What it answers comes from the options; what the code did is recorded (`sent`, `logs`,
 * `requests`, and the files it wrote), all readable after the code ran. `await broker.close()`
 * stops it, removes its socket and points the SDK back where it was, so the next test's broker
 * gets a fresh connection.
 *
 * ```js
 * const assert = require("node:assert/strict");
 * const test = require("node:test");
 * const symbiont = require("symbiont");
 * const { FakeBroker } = require("symbiont/testing");
 *
 * test("the agent writes its report", async () => {
 *   const broker = await FakeBroker.start({ http: { "https://api.example.com/v1/items": { status: 200, body: "[1, 2]" } } });
 *   try {
 *     await runAgent(); // the agent's code, calling symbiont.*
 *   } finally {
 *     await broker.close();
 *   }
 *   assert.deepEqual(broker.files, { "out/summary.txt": "2 items" });
 * });
 * ```
 *
 * @module
 */

/** The broker ops a policy decides: the keys {@link FakeBrokerOptions.deny} takes. */
export type DeniableOp = "http" | "file_read" | "file_write" | "env_get" | "secret_get" | "send_message" | "receive_message";

/** The broker ops a policy decides, in the protocol's order (`log` and `hello` are not decided). */
export declare const DENIABLE: readonly DeniableOp[];

/** What the fake broker answers to an HTTP request for one URL. */
export interface HttpRoute {
  /** The HTTP status, 100 to 599. */
  status: number;
  /** The response body, as text. */
  body: string;
}

/** A message waiting for the code under test's `symbiont.receive()`. */
export interface InboxMessage {
  /** The sending agent. */
  from: string;
  /** The JSON value sent (`null` when left out). */
  payload?: unknown;
}

/** A message the code under test sent with `symbiont.send(to, payload)`. */
export interface SentMessage {
  /** The recipient agent. */
  to: string;
  /** The JSON value sent. */
  payload: unknown;
}

/** A line the code under test logged with `symbiont.log(message, level)`. */
export interface LogLine {
  /** The level, in lower case as the broker keeps it (`"info"`, `"warn"`…). */
  level: string;
  /** The message, as sent. */
  message: string;
}

/** What a {@link FakeBroker} answers from; each is copied into the broker's property of that name. */
export interface FakeBrokerOptions {
  /** The workspace's files at the start, path → content. */
  files?: Record<string, string>;
  /** The variables the run declares, name → value; any other name answers `null`. */
  env?: Record<string, string>;
  /** The host's secrets, name → value, kept under the canonical lower-case name. */
  secrets?: Record<string, string>;
  /**
   * HTTP routes, exact URL → `{ status, body }`, for any method. A URL with no route rejects with
   * `Failed`, as the real broker does for a host that does not resolve.
   */
  http?: Record<string, HttpRoute>;
  /**
   * Denials, broker op → the deciding rule as written in a policy
   * (`'deny: secret_access(name) if name == "db_password"'`). Every request of that op rejects
   * with `PolicyDenied` whose `rule` is this text (an empty text: a denial naming no rule, `rule`
   * `null`). A denied `receive_message` consumes the next message and resolves `null`, as the real
   * broker does.
   */
  deny?: Partial<Record<DeniableOp, string>>;
  /**
   * Messages for `symbiont.receive()`, first in first out, each with the next sequence number of
   * its sender (1, 2…). Empty, `receive` resolves `null` at once, whatever its timeout.
   */
  inbox?: InboxMessage[];
  /** What `symbiont.input()` returns while the broker is open (`SYMBIONT_INPUT`); `null` when left out. */
  input?: unknown;
  /** The agent's name, in the `hello` answer and denial messages (default `"agent"`). */
  agent?: string;
}

/**
 * A broker of protocol 1.0 answering from memory, which this process's SDK talks to while it is
 * open. Made and started by {@link FakeBroker.start}; stopped by {@link FakeBroker.close}.
 *
 * Like the real broker it rejects a path in another spelling (`./a`, `a//b`, `/etc/x`), a
 * malformed secret name or log level with `BadRequest`, and a missing file with `Failed`; its
 * denials name their rule in the real broker's words, so `PolicyDenied.rule` carries it. Its
 * properties are its state: the test may read them after the code ran, or change them between
 * calls. One process has one SDK connection: tests that use a FakeBroker must not run at once
 * (`node --test` runs a file's tests one after another).
 */
export declare class FakeBroker {
  private constructor();

  /**
   * Starts a fake broker with `options` and points this process's SDK at it.
   *
   * ```js
   * const broker = await FakeBroker.start({ files: { "in.txt": "hello" }, env: { REGION: "eu" } });
   * ```
   *
   * Rejects with a `TypeError` naming the option for an unknown option, a `deny` key that is not
   * a decided op, a malformed route, secret name or inbox message.
   */
  static start(options?: FakeBrokerOptions): Promise<FakeBroker>;

  /**
   * Runs `body(broker)` against a broker started with `options`, closes it whatever happens (the
   * scoped form of {@link FakeBroker.start} and {@link FakeBroker.close}), and resolves to the
   * broker, whose records then say what the code did.
   *
   * ```js
   * const broker = await FakeBroker.serve({}, () => agent.writeReport());
   * assert.equal(broker.files["report.txt"], "done");
   * ```
   */
  static serve(options: FakeBrokerOptions, body: (broker: FakeBroker) => unknown): Promise<FakeBroker>;

  /** Stops serving, removes the socket, and points the SDK back where it was. Closing twice does nothing. */
  close(): Promise<void>;

  /** The workspace's files, path → content: what the code read, and after it ran, what it wrote. */
  files: Record<string, string>;
  /** The variables the run declares, name → value. */
  env: Record<string, string>;
  /** The secrets, by canonical (lower-case) name. */
  secrets: Record<string, string>;
  /** The HTTP routes, exact URL → `{ status, body }`. */
  http: Record<string, HttpRoute>;
  /** The denials, broker op → the rule's text. */
  deny: Partial<Record<DeniableOp, string>>;
  /** The messages not yet received, first in first out; push more at any time. */
  inbox: InboxMessage[];
  /** What the code sent, `{ to, payload }`, in order. */
  readonly sent: SentMessage[];
  /** What the code logged, `{ level, message }`, in order. */
  readonly logs: LogLine[];
  /** Every request as received (`hello` included, with its `id`), in order. */
  readonly requests: Array<Record<string, unknown>>;
  /** The agent's name the broker answers with. */
  readonly agent: string;
  /** The socket it serves, also in `SYMBIONT_BROKER` while it is open (for a child process). */
  readonly socketPath: string;
}
