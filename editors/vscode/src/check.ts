// "Symbiont: Check Workspace": `symbiont check --format json` over a workspace folder, as CI runs
// it, its diagnostics written to the output as `path:line:column` (links in VS Code) and summed up
// in a message. The Problems panel already holds the server's diagnostics for the same files, so
// they are not added a second time there.
import { execFile } from "node:child_process";
import * as path from "node:path";
import * as vscode from "vscode";

/** One diagnostic of `symbiont check --format json` (docs/cli.md), the fields used here. */
interface CheckDiagnostic {
  code: string;
  severity: string;
  message: string;
  path: string;
  range: { start: { line: number; column: number } };
}

interface CheckReport {
  version: number;
  files_checked: number;
  summary: { errors: number; warnings: number; infos: number; hints: number };
  diagnostics: CheckDiagnostic[];
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cli: string, cwd: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(cli, ["check", "--format", "json", "."], { cwd, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error !== null && typeof error.code !== "number") {
        reject(new Error(`cannot start ${cli}: ${error.message}`));
        return;
      }
      resolve({ code: error === null ? 0 : (error.code as number), stdout, stderr });
    });
  });
}

/** Parses the report; anything else is an error saying what came back. */
function parseReport(stdout: string): CheckReport {
  const report = JSON.parse(stdout) as Partial<CheckReport>;
  if (report.version !== 1 || !Array.isArray(report.diagnostics) || report.summary === undefined) {
    throw new Error(`unexpected output of symbiont check (schema version ${String(report.version)}; this extension reads version 1)`);
  }
  return report as CheckReport;
}

function formatDiagnostic(root: string, d: CheckDiagnostic): string {
  const file = path.resolve(root, d.path);
  return `${file}:${d.range.start.line}:${d.range.start.column}: ${d.severity} ${d.code}: ${d.message}`;
}

export async function checkWorkspace(cli: string | undefined, output: vscode.OutputChannel): Promise<void> {
  const folder = pickFolder();
  if (folder === undefined) {
    void vscode.window.showWarningMessage("Symbiont: open a folder to check it.");
    return;
  }
  if (cli === undefined) {
    void vscode.window.showErrorMessage("Symbiont: the `symbiont` command line was not found beside the language server, in this package or on PATH.");
    return;
  }
  const root = folder.uri.fsPath;
  const result = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Window, title: "symbiont check" },
    () => run(cli, root),
  );
  if (result.code !== 0 && result.code !== 1) {
    output.appendLine(`symbiont check in ${root} failed (exit ${String(result.code)}):\n${result.stderr}`);
    void vscode.window.showErrorMessage(`Symbiont: symbiont check failed: ${result.stderr.trim().split("\n")[0] ?? ""}`);
    return;
  }
  const report = parseReport(result.stdout);
  output.appendLine(`symbiont check in ${root}: ${report.files_checked} files`);
  for (const d of report.diagnostics) {
    output.appendLine(formatDiagnostic(root, d));
  }
  const s = report.summary;
  const text = `Symbiont: ${report.files_checked} files checked: ${s.errors} errors, ${s.warnings} warnings, ${s.infos + s.hints} notes.`;
  const show = report.diagnostics.length > 0 ? ["Show Output"] : [];
  const answer = await (s.errors > 0 ? vscode.window.showErrorMessage(text, ...show) : vscode.window.showInformationMessage(text, ...show));
  if (answer === "Show Output") {
    output.show(true);
  }
}

/** The folder of the active file, else the first folder. */
function pickFolder(): vscode.WorkspaceFolder | undefined {
  const active = vscode.window.activeTextEditor?.document.uri;
  const own = active === undefined ? undefined : vscode.workspace.getWorkspaceFolder(active);
  return own ?? vscode.workspace.workspaceFolders?.[0];
}
