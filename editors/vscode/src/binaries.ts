// Where the `symbiont-lsp` and `symbiont` binaries come from: the setting when the user set one,
// else the server bundled in the platform package (server/linux-x64/), else PATH.
import * as fs from "node:fs";
import * as path from "node:path";
import * as vscode from "vscode";

/** A binary found, and how, for messages and the status item's tooltip. */
export interface Found {
  path: string;
  source: "setting" | "bundled" | "PATH";
}

/** Why no server was found: what was tried, for the message that says how to install one. */
export class NotFound extends Error {}

/** The platform directory of the bundled binaries, as `vsce package --target` names platforms. */
function platformDir(): string {
  return `${process.platform}-${process.arch}`;
}

function isFile(file: string): boolean {
  try {
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** A bundled binary may lose its executable bit on the way (some unzip tools drop it). */
function ensureExecutable(file: string): void {
  try {
    fs.accessSync(file, fs.constants.X_OK);
  } catch {
    fs.chmodSync(file, 0o755);
  }
}

function onPath(name: string): string | undefined {
  for (const dir of (process.env["PATH"] ?? "").split(path.delimiter)) {
    const candidate = path.join(dir, name);
    if (dir !== "" && isFile(candidate)) {
      try {
        fs.accessSync(candidate, fs.constants.X_OK);
        return candidate;
      } catch {
        // Not executable: keep looking, as a shell would.
      }
    }
  }
  return undefined;
}

/**
 * The `symbiont.server.path` the user chose. In an untrusted workspace only the user's own
 * (global) value counts: a workspace must not choose which program the editor starts. VS Code
 * already ignores it there (`restrictedConfigurations`); this does not rely on that alone.
 */
function configuredServer(): string | undefined {
  const inspected = vscode.workspace.getConfiguration("symbiont").inspect<string>("server.path");
  const value = vscode.workspace.isTrusted
    ? (inspected?.workspaceFolderValue ?? inspected?.workspaceValue ?? inspected?.globalValue)
    : inspected?.globalValue;
  const trimmed = value?.trim();
  return trimmed === undefined || trimmed === "" ? undefined : trimmed;
}

function expandHome(file: string): string {
  return file === "~" || file.startsWith("~/") ? path.join(process.env["HOME"] ?? "", file.slice(1)) : file;
}

/** The language server to start. Throws `NotFound` saying what was tried. */
export function findServer(extensionPath: string): Found {
  const configured = configuredServer();
  if (configured !== undefined) {
    const expanded = expandHome(configured);
    const resolved = expanded.includes("/") ? path.resolve(expanded) : onPath(expanded);
    if (resolved === undefined || !isFile(resolved)) {
      throw new NotFound(`the setting symbiont.server.path is "${configured}", and there is no such file${expanded.includes("/") ? "" : " on PATH"}.`);
    }
    return { path: resolved, source: "setting" };
  }
  const bundled = path.join(extensionPath, "server", platformDir(), "symbiont-lsp");
  if (isFile(bundled)) {
    ensureExecutable(bundled);
    ensureExecutable(path.join(path.dirname(bundled), "symbiont"));
    return { path: bundled, source: "bundled" };
  }
  const fromPath = onPath("symbiont-lsp");
  if (fromPath !== undefined) {
    return { path: fromPath, source: "PATH" };
  }
  throw new NotFound(`this copy of the extension has no server for ${platformDir()}, symbiont.server.path is not set, and symbiont-lsp is not on PATH.`);
}

/**
 * The `symbiont` command line: beside the server (as the server itself looks for it), else the
 * bundled one, else PATH.
 */
export function findCli(server: Found | undefined, extensionPath: string): string | undefined {
  const candidates = [
    ...(server === undefined ? [] : [path.join(path.dirname(server.path), "symbiont")]),
    path.join(extensionPath, "server", platformDir(), "symbiont"),
  ];
  return candidates.find(isFile) ?? onPath("symbiont");
}
