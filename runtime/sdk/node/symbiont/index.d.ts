// Types of Symbiont's SDK for JavaScript and TypeScript agents (hand-written; the code is index.js).
// No dependency, not even on @types/node: an agent type-checks with `tsc --strict` alone.

/**
 * The SDK's version, `"0.1.0"` (semantic versioning). The SDK sends it to the broker in its
 * handshake (`hello`).
 */
export declare const VERSION: string;

/**
 * The broker protocol this SDK speaks, `"1.0"` (docs/broker-protocol.md). On each new connection
 * the SDK says it in `hello`; a broker of another major version makes every call reject with
 * {@link VersionMismatch}.
 */
export declare const PROTOCOL: string;

/**
 * Options of an HTTP request made through the broker.
 */
export interface RequestOptions {
  /** Request headers, by name. `Host` may not be set: the broker sends the URL's host. */
  headers?: Record<string, string>;
  /**
   * The request body: a string is sent as it is; anything else is sent as JSON (with
   * `content-type: application/json` unless a content type is given). At most 16 MiB.
   */
  body?: unknown;
}

/**
 * Options of {@link net.fetch}: those of {@link RequestOptions} and the method.
 */
export interface FetchOptions extends RequestOptions {
  /** The HTTP method, `"GET"` by default. */
  method?: string;
}

/**
 * An HTTP response, as the broker returns it: the status and the whole body, as text. The broker
 * follows no redirect, so a 3xx status is the final answer.
 */
export declare class Response {
  /** Makes a response (the SDK does; an agent has no need to). */
  constructor(status: number, body: string);
  /** The HTTP status code, such as `200`. */
  readonly status: number;
  /** The whole response body, as text. */
  readonly body: string;
  /** The body: another name of {@link Response.body}, kept for agents written against SDK 0.0. */
  readonly data: string;
  /** Whether the status is 2xx or 3xx (no redirect is followed, so a 3xx is final). */
  readonly ok: boolean;
  /** The body as text, as `fetch`'s `Response.text()` gives it. */
  text(): Promise<string>;
  /**
   * The body parsed as JSON, as `fetch`'s `Response.json()` gives it.
   * @typeParam T - what the caller knows the JSON to be.
   * @throws SyntaxError if the body is not JSON.
   */
  json<T = any>(): Promise<T>;
}

/**
 * A message another agent sent to this one ({@link receive}).
 * @typeParam T - what the caller knows the payload to be.
 */
export interface Message<T = unknown> {
  /** The sending agent's name (the runtime vouches for it, not the sender). */
  readonly from: string;
  /** The message's sequence number between that sender and this agent (1, 2, …). */
  readonly seq: number;
  /** The payload, any JSON value, as the sender gave it. */
  readonly payload: T;
}

/**
 * HTTP through the broker: each request is decided by the agent's policy (`http_request` or
 * `https_request`) and audited before it is made. A denied request rejects with
 * {@link PolicyDenied}. The broker follows no redirect and gives up after 30 s.
 */
export interface Net {
  /**
   * An HTTP request with any method.
   * @param method - `"GET"`, `"POST"`, `"PATCH"`, … (1 to 16 letters).
   * @param url - an `http` or `https` URL, at most 8 KiB.
   * @example
   * ```ts
   * const r = await symbiont.net.request("PATCH", "https://api.example.com/v1/items/7", { body: { done: true } });
   * ```
   */
  request(method: string, url: string, options?: RequestOptions): Promise<Response>;
  /**
   * An HTTP request in the shape of the global `fetch(url, { method, headers, body })` (the
   * code analysis's fix rewrites `fetch(u)` to it).
   */
  fetch(url: string, options?: FetchOptions): Promise<Response>;
  /**
   * An HTTP GET.
   * @example
   * ```ts
   * const items = await (await symbiont.net.get("https://api.example.com/v1/items")).json();
   * ```
   */
  get(url: string, options?: RequestOptions): Promise<Response>;
  /** An HTTP POST of `body` (a string as it is, anything else as JSON). */
  post(url: string, body?: unknown, options?: RequestOptions): Promise<Response>;
  /** An HTTP PUT of `body` (a string as it is, anything else as JSON). */
  put(url: string, body?: unknown, options?: RequestOptions): Promise<Response>;
  /** An HTTP DELETE. */
  delete(url: string, options?: RequestOptions): Promise<Response>;
}

/** HTTP through the broker (see {@link Net}). */
export declare const net: Net;

/**
 * Files in the agent's workspace, through the broker (`file_read`, `file_system_write`). A path is
 * relative, in one spelling only (no `..`, `.`, `//`, trailing `/`), and no symbolic link is
 * followed; files are at most 16 MiB.
 */
export interface Fs {
  /**
   * The whole content of a workspace file, as text.
   * @throws {@link PolicyDenied} when the policy denies reading it; {@link Failed} when it does
   * not exist; {@link BadRequest} for a path not in its one spelling.
   */
  read(path: string): Promise<string>;
  /**
   * Writes a workspace file whole (atomically), making missing directories.
   * @returns the number of bytes written.
   */
  write(path: string, content: string): Promise<number>;
  /**
   * Appends to a workspace file, making it if missing.
   * @returns the number of bytes written.
   */
  append(path: string, content: string): Promise<number>;
  /** {@link Fs.read} under Node.js's name. */
  readFile(path: string): Promise<string>;
  /** {@link Fs.write} under Node.js's name. */
  writeFile(path: string, content: string): Promise<number>;
  /** {@link Fs.append} under Node.js's name. */
  appendFile(path: string, content: string): Promise<number>;
}

/** Files in the agent's workspace (see {@link Fs}). */
export declare const fs: Fs;

/**
 * The variables the run declares (`[runtime.env]` and `pass_env` in symbiont.toml), decided as
 * `env_access`. The host's environment is never visible.
 */
export interface Env {
  /** A declared variable's value, or `null` for a name the run does not declare. */
  get(name: string): Promise<string | null>;
}

/** The variables the run declares (see {@link Env}). */
export declare const env: Env;

/**
 * Secrets the host gives the run, decided as `secret_access` (the audit log keeps the name,
 * never the value).
 */
export interface Secrets {
  /**
   * A secret's value, or `null` if the host has none by that name. Names are case-insensitive
   * (`DB_PASSWORD` is `db_password`): 1 to 128 letters, digits and `_`.
   */
  get(name: string): Promise<string | null>;
}

/** Secrets the host gives the run (see {@link Secrets}). */
export declare const secrets: Secrets;

/**
 * Writes a line to the run's log (the audit log keeps its first 1024 bytes). A run has a budget of
 * 10,000 entries or 2 MiB; past it, this rejects with {@link Limited}.
 * @param level - 1 to 16 letters, `"info"` by default (`"debug"`, `"warn"`, `"error"`, …).
 */
export declare function log(message: string, level?: string): Promise<void>;

/**
 * Sends a message to another agent of the same runtime, decided as `send_message` by this
 * agent's policy and as `receive_message` by the recipient's.
 * @param payload - any JSON value.
 * @returns the message's sequence number between this agent and `to`.
 */
export declare function send(to: string, payload: unknown): Promise<number>;

/**
 * The next message sent to this agent, or `null` if none came within `timeoutMs`.
 * @param timeoutMs - how long to wait, 0 (the default: do not wait) to 30000.
 * @typeParam T - what the caller knows the payload to be.
 */
export declare function receive<T = unknown>(timeoutMs?: number): Promise<Message<T> | null>;

/**
 * The run's input (`symbiont run --input JSON`), parsed; `null` when the run has none.
 * @typeParam T - what the caller knows the input to be.
 */
export declare function input<T = unknown>(): T;

/**
 * A refusal or failure of a call, as the broker's reply says it. Each code has its subclass;
 * a code this SDK does not know is a plain `BrokerError`.
 * @example
 * ```ts
 * try {
 *   await symbiont.fs.write("out.txt", "x");
 * } catch (e) {
 *   if (e instanceof symbiont.PolicyDenied) console.log("denied by", e.rule);
 *   else throw e;
 * }
 * ```
 */
export declare class BrokerError extends Error {
  /** Makes an error with a code, a message and the deciding rule (if known). */
  constructor(code: string, message: string, rule?: string | null);
  /**
   * The broker's code: `denied`, `audit_failed`, `unidentified`, `bad_request`, `limited`,
   * `failed`, or this SDK's own `transport` and `version`.
   */
  readonly code: string;
  /**
   * The rule that decided a denial, as the policy writes it (such as
   * `deny: file_system_write(path) if path == "out.txt"`), or `null` when the message names none.
   */
  readonly rule: string | null;
  /** The broker's message (the same as `message`; the name SDK 0.0 gave it). */
  readonly brokerMessage: string;
}

/** The policy denies the operation (`denied`); the denial is in the audit log, and `rule` names it. */
export declare class PolicyDenied extends BrokerError {
  /** Makes the error (the SDK does, from the broker's reply). */
  constructor(message: string, rule?: string | null);
  readonly code: "denied";
}

/** The audit log could not record the request, so nothing was done (`audit_failed`). */
export declare class AuditFailed extends BrokerError {
  /** Makes the error (the SDK does, from the broker's reply). */
  constructor(message: string, rule?: string | null);
  readonly code: "audit_failed";
}

/** The connection is not the agent's sandbox, or the request named another agent (`unidentified`). */
export declare class Unidentified extends BrokerError {
  /** Makes the error (the SDK does, from the broker's reply). */
  constructor(message: string, rule?: string | null);
  readonly code: "unidentified";
}

/**
 * The broker cannot take the request as written (`bad_request`): a missing or mistyped field, a
 * field over its bound, a path not in its one spelling, a URL that is not `http(s)`, or a request
 * over 17 MiB (which the SDK refuses without sending it).
 */
export declare class BadRequest extends BrokerError {
  /** Makes the error (the SDK does, from the broker's reply). */
  constructor(message: string, rule?: string | null);
  readonly code: "bad_request";
}

/**
 * A bound of the agent is reached (`limited`): connections open at once, bytes buffered, the
 * run's log budget. If it ended the connection, the next call opens a new one.
 */
export declare class Limited extends BrokerError {
  /** Makes the error (the SDK does, from the broker's reply). */
  constructor(message: string, rule?: string | null);
  readonly code: "limited";
}

/**
 * Allowed, but acting failed (`failed`): a network error, no such file, a recipient not running,
 * a host that does not resolve.
 */
export declare class Failed extends BrokerError {
  /** Makes the error (the SDK does, from the broker's reply). */
  constructor(message: string, rule?: string | null);
  readonly code: "failed";
}

/**
 * The SDK could not talk with the broker (`transport`): no socket at `SYMBIONT_BROKER` (not running
 * under `symbiont run`?), the connection closed before or in the middle of a reply, or a reply
 * that is not the protocol's. The call's outcome is unknown; the next call opens a new connection.
 */
export declare class TransportError extends BrokerError {
  /** Makes the error (the SDK does). */
  constructor(message: string, rule?: string | null);
  readonly code: "transport";
}

/**
 * The broker speaks another major version of the protocol (`version`); the message names both
 * versions. Every later call rejects with the same error: the SDK never retries.
 */
export declare class VersionMismatch extends BrokerError {
  /** Makes the error (the SDK does, from the handshake). */
  constructor(message: string, rule?: string | null);
  readonly code: "version";
}
