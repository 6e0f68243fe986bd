// The Symbiont extension: starts `symbiont-lsp --stdio` for .sym/.symbi files and the agent code
// (Rust, Python, JavaScript, TypeScript) in the workspace, and offers "Symbiont: Run agent" and
// "Symbiont: Verify audit log". The server runs agents through `symbiont run`: progress shows in
// the status bar, the agent's output in the "Symbiont" output channel, the result as a message.
const vscode = require("vscode");
const { LanguageClient, ExecuteCommandRequest } = require("vscode-languageclient/node");

let client;

function start() {
  const config = vscode.workspace.getConfiguration("symbiont");
  const command = config.get("server.path", "symbiont-lsp");
  const serverOptions = { run: { command, args: ["--stdio"] }, debug: { command, args: ["--stdio"] } };
  const clientOptions = {
    documentSelector: [
      { scheme: "file", language: "symbiont" },
      { scheme: "untitled", language: "symbiont" },
      { scheme: "file", pattern: "**/symbiont.toml" },
      { scheme: "file", language: "python" },
      { scheme: "file", language: "rust" },
      { scheme: "file", language: "javascript" },
      { scheme: "file", language: "typescript" },
    ],
    initializationOptions: { diagnostics: config.get("diagnostics", "push") },
  };
  client = new LanguageClient("symbiont", "Symbiont", serverOptions, clientOptions);
  return client.start();
}

// The code lens above each agent runs the server's `symbiont.runAgent` (registered by the
// language client); this command asks for an agent of the active .sym file by name.
async function runAgentPrompt() {
  const editor = vscode.window.activeTextEditor;
  if (!client || !editor || editor.document.languageId !== "symbiont") {
    vscode.window.showWarningMessage("Open the agent's .sym file first.");
    return;
  }
  const agent = await vscode.window.showInputBox({ prompt: "Agent to run" });
  if (!agent) {
    return;
  }
  await execute("symbiont.runAgent", [agent, editor.document.uri.toString()]);
}

async function verifyAudit() {
  const folder = vscode.workspace.workspaceFolders && vscode.workspace.workspaceFolders[0];
  await execute("symbiont.verifyAudit", folder ? [folder.uri.toString()] : []);
}

async function execute(command, args) {
  if (!client) {
    return;
  }
  try {
    await client.sendRequest(ExecuteCommandRequest.type, { command, arguments: args });
  } catch (error) {
    vscode.window.showWarningMessage(error.message || String(error));
  }
}

async function activate(context) {
  context.subscriptions.push(
    vscode.commands.registerCommand("symbiont.runAgentPrompt", runAgentPrompt),
    vscode.commands.registerCommand("symbiont.verifyAuditPrompt", verifyAudit),
    vscode.commands.registerCommand("symbiont.restartServer", async () => {
      if (client) {
        await client.stop();
      }
      await start();
    }),
  );
  await start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
