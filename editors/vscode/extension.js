// The Symbiont extension: starts `symbiont-lsp --stdio` for .sym/.symbi files and the agent code
// (Rust, Python, JavaScript, TypeScript) in the workspace, and offers "Symbiont: Run agent".
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
// language client); this command asks for an agent by name and shows the server's answer.
async function runAgentPrompt() {
  if (!client) {
    return;
  }
  const agent = await vscode.window.showInputBox({ prompt: "Agent to run" });
  if (!agent) {
    return;
  }
  try {
    await client.sendRequest(ExecuteCommandRequest.type, { command: "symbiont.runAgent", arguments: [agent] });
  } catch (error) {
    vscode.window.showWarningMessage(error.message || String(error));
  }
}

async function activate(context) {
  context.subscriptions.push(
    vscode.commands.registerCommand("symbiont.runAgentPrompt", runAgentPrompt),
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
