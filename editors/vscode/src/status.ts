// The status bar item: the server's state (starting, running, stopped, not found) and the last
// agent run's outcome. Clicking it shows the "Symbiont" output.
import * as vscode from "vscode";

export type ServerState = "starting" | "running" | "stopped" | "missing";

/** What `symbiont.runAgent` answers (lsp/src/run.rs), the fields shown here. */
export interface RunSummary {
  state?: string;
  exit_code?: number | null;
  tier?: number;
  duration_ms?: number;
}

const ICONS: Record<ServerState, string> = {
  starting: "$(sync~spin)",
  running: "$(check)",
  stopped: "$(debug-stop)",
  missing: "$(error)",
};

export class Status implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem("symbiont.status", vscode.StatusBarAlignment.Left, 0);
  private server: ServerState = "starting";
  private serverDetail = "";
  private lastRun = "";
  private running: string | undefined;

  constructor() {
    this.item.name = "Symbiont";
    this.item.command = "symbiont.showOutput";
    this.render();
    this.item.show();
  }

  setServer(state: ServerState, detail: string): void {
    this.server = state;
    this.serverDetail = detail;
    this.render();
  }

  runStarted(agent: string): void {
    this.running = agent;
    this.render();
  }

  runEnded(agent: string, summary: RunSummary | undefined, error: string | undefined): void {
    this.running = undefined;
    if (summary !== undefined) {
      const exit = summary.exit_code === undefined || summary.exit_code === null ? "" : ` (exit ${summary.exit_code})`;
      this.lastRun = `${agent}: ${(summary.state ?? "unknown").replace(/_/g, " ")}${exit}`;
    } else {
      this.lastRun = `${agent}: did not run${error === undefined ? "" : ` (${error})`}`;
    }
    this.render();
  }

  private render(): void {
    const runIcon = this.running !== undefined ? " $(loading~spin)" : "";
    this.item.text = `${ICONS[this.server]} Symbiont${runIcon}`;
    const lines = [`Symbiont language server: ${this.server}`];
    if (this.serverDetail !== "") {
      lines.push(this.serverDetail);
    }
    if (this.running !== undefined) {
      lines.push(`Running agent ${this.running}…`);
    } else if (this.lastRun !== "") {
      lines.push(`Last run: ${this.lastRun}`);
    }
    this.item.tooltip = lines.join("\n");
    this.item.backgroundColor = this.server === "missing" ? new vscode.ThemeColor("statusBarItem.errorBackground") : undefined;
  }

  dispose(): void {
    this.item.dispose();
  }
}
