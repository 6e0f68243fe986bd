// The Symbiont extension: starts `symbiont-lsp --stdio` for .sym/.symbi files, `symbiont.toml` and
// the agent code (Rust, Python, JavaScript, TypeScript) of the workspace, and adds the commands
// Run Agent, Verify Audit Log, Check Workspace, Restart Server and Show Output, and a status item.
// Highlighting (the TextMate grammar), brackets, comments and snippets work without the server.
import * as vscode from "vscode";
import { ExecuteCommandRequest, LanguageClient, State, type LanguageClientOptions, type ServerOptions } from "vscode-languageclient/node";
import { findCli, findServer, NotFound, type Found } from "./binaries";
import { checkWorkspace } from "./check";
import { Status, type RunSummary } from "./status";

const RUN_AGENT = "symbiont.runAgent";
const VERIFY_AUDIT = "symbiont.verifyAudit";

let client: LanguageClient | undefined;
let server: Found | undefined;
let output: vscode.OutputChannel;
let status: Status;
let extensionUri: vscode.Uri;

function clientOptions(): LanguageClientOptions {
  const config = vscode.workspace.getConfiguration("symbiont");
  return {
    documentSelector: [
      { scheme: "file", language: "symbiont" },
      { scheme: "untitled", language: "symbiont" },
      { scheme: "file", pattern: "**/symbiont.toml" },
      { scheme: "file", language: "python" },
      { scheme: "file", language: "rust" },
      { scheme: "file", language: "javascript" },
      { scheme: "file", language: "typescript" },
    ],
    // VS Code shows pulled and pushed diagnostics both: ask for one kind (docs/editors.md).
    initializationOptions: { diagnostics: config.get<string>("diagnostics", "push") },
    outputChannel: output,
    traceOutputChannel: output,
    middleware: {
      // The code lens runs `symbiont.runAgent` through here too: the status item follows every run.
      executeCommand: async (command, args, next) => {
        if (command !== RUN_AGENT) {
          return next(command, args);
        }
        return trackRun(String(args[0]), () => next(command, args));
      },
    },
  };
}

async function trackRun<T>(agent: string, run: () => Promise<T> | T): Promise<T> {
  status.runStarted(agent);
  try {
    const result = await run();
    status.runEnded(agent, result as RunSummary | undefined, undefined);
    return result;
  } catch (error) {
    status.runEnded(agent, undefined, message(error));
    throw error;
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function start(): Promise<void> {
  try {
    server = findServer(extensionUri.fsPath);
  } catch (error) {
    if (!(error instanceof NotFound)) {
      throw error;
    }
    server = undefined;
    status.setServer("missing", `symbiont-lsp not found: ${error.message}`);
    await explainMissingServer(error.message);
    return;
  }
  output.appendLine(`Starting ${server.path} (${server.source})`);
  status.setServer("starting", `${server.path} (${server.source})`);
  const run = { command: server.path, args: ["--stdio"] };
  const serverOptions: ServerOptions = { run, debug: run };
  const started = new LanguageClient("symbiont", "Symbiont", serverOptions, clientOptions());
  client = started;
  const detail = `${server.path} (${server.source})`;
  started.onDidChangeState((event) => {
    const state = event.newState === State.Running ? "running" : event.newState === State.Starting ? "starting" : "stopped";
    status.setServer(state, detail);
  });
  try {
    await started.start();
  } catch (error) {
    status.setServer("stopped", `${detail}: ${message(error)}`);
    void vscode.window.showErrorMessage(`Symbiont: the language server ${server.path} did not start: ${message(error)}`, "Show Output").then((answer) => {
      if (answer === "Show Output") {
        output.show(true);
      }
    });
  }
}

async function explainMissingServer(why: string): Promise<void> {
  output.appendLine(`symbiont-lsp not found: ${why}`);
  const answer = await vscode.window.showErrorMessage(
    `Symbiont: the language server symbiont-lsp was not found (${why}) Highlighting works; checks, hover and Run Agent need the server. ` +
      "Install the Linux x64 package of this extension (it includes the server), or put symbiont-lsp on PATH " +
      "(cargo install --path lsp in a Symbiont checkout), or set symbiont.server.path.",
    "How to Install",
    "Open Settings",
  );
  if (answer === "How to Install") {
    await vscode.commands.executeCommand("markdown.showPreview", vscode.Uri.joinPath(extensionUri, "README.md"));
  } else if (answer === "Open Settings") {
    await vscode.commands.executeCommand("workbench.action.openSettings", "symbiont.server.path");
  }
}

async function stop(): Promise<void> {
  const running = client;
  client = undefined;
  if (running !== undefined) {
    await running.stop();
    running.dispose();
  }
}

async function restart(): Promise<void> {
  await stop();
  await start();
}

/** Sends `workspace/executeCommand`; the server shows the outcome itself, errors are shown here. */
async function execute(command: string, args: unknown[]): Promise<unknown> {
  if (client === undefined || !client.isRunning()) {
    void vscode.window.showErrorMessage("Symbiont: the language server is not running (Symbiont: Show Output says why).");
    return undefined;
  }
  try {
    return await client.sendRequest(ExecuteCommandRequest.type, { command, arguments: args });
  } catch (error) {
    void vscode.window.showErrorMessage(`Symbiont: ${message(error)}`);
    return undefined;
  }
}

/** The agents of a document: the server's outline (agents are classes), else `agent NAME` lines. */
async function agentsOf(document: vscode.TextDocument): Promise<string[]> {
  const symbols = await vscode.commands.executeCommand<vscode.DocumentSymbol[] | undefined>("vscode.executeDocumentSymbolProvider", document.uri);
  const fromServer = (symbols ?? []).filter((s) => s.kind === vscode.SymbolKind.Class).map((s) => s.name);
  if (fromServer.length > 0) {
    return fromServer;
  }
  return [...document.getText().matchAll(/^agent\s+([A-Za-z_][A-Za-z0-9_]*)/gm)].map((m) => m[1] ?? "");
}

/** Empty (no input) or JSON; anything else is refused before the run. */
function validateInput(text: string): string | undefined {
  if (text.trim() === "") {
    return undefined;
  }
  try {
    JSON.parse(text);
    return undefined;
  } catch (error) {
    return `Not JSON: ${message(error)}`;
  }
}

async function runAgentPrompt(): Promise<void> {
  const document = vscode.window.activeTextEditor?.document;
  if (document === undefined || document.languageId !== "symbiont") {
    void vscode.window.showWarningMessage("Symbiont: open the agent's .sym file first.");
    return;
  }
  const agents = await agentsOf(document);
  if (agents.length === 0) {
    void vscode.window.showWarningMessage(`Symbiont: ${vscode.workspace.asRelativePath(document.uri)} defines no agent.`);
    return;
  }
  const agent = await vscode.window.showQuickPick(agents, { title: "Symbiont: Run Agent", placeHolder: `Agent of ${vscode.workspace.asRelativePath(document.uri)} to run` });
  if (agent === undefined) {
    return;
  }
  const input = await vscode.window.showInputBox({
    title: `Run agent ${agent}`,
    prompt: "The run's input, as JSON (SYMBIONT_INPUT in the sandbox); empty for none",
    placeHolder: '{"target": "src/"}',
    validateInput,
  });
  if (input === undefined) {
    return;
  }
  const args: unknown[] = [agent, document.uri.toString()];
  if (input.trim() !== "") {
    args.push(JSON.parse(input));
  }
  await trackRun(agent, () => execute(RUN_AGENT, args));
}

async function verifyAudit(): Promise<void> {
  const active = vscode.window.activeTextEditor?.document.uri;
  const folder = (active && vscode.workspace.getWorkspaceFolder(active)) ?? vscode.workspace.workspaceFolders?.[0];
  await execute(VERIFY_AUDIT, folder === undefined ? [] : [folder.uri.toString()]);
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  extensionUri = context.extensionUri;
  output = vscode.window.createOutputChannel("Symbiont");
  status = new Status();
  context.subscriptions.push(
    output,
    status,
    vscode.commands.registerCommand("symbiont.runAgentPrompt", runAgentPrompt),
    vscode.commands.registerCommand("symbiont.verifyAuditPrompt", verifyAudit),
    vscode.commands.registerCommand("symbiont.checkWorkspace", () => checkWorkspace(findCli(server, extensionUri.fsPath), output)),
    vscode.commands.registerCommand("symbiont.restartServer", restart),
    vscode.commands.registerCommand("symbiont.showOutput", () => output.show(true)),
    // Trusting the workspace may change which server starts (its symbiont.server.path now counts).
    vscode.workspace.onDidGrantWorkspaceTrust(restart),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration("symbiont.server.path") || event.affectsConfiguration("symbiont.diagnostics")) {
        void restart();
      }
    }),
  );
  await start();
}

export function deactivate(): Promise<void> {
  return stop();
}
