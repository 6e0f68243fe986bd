// @ts-check
// Drives code-server (VS Code in the browser) with the Symbiont extension installed, in Debian's
// chromium: `node e2e/test.js URL RELEASE_FILE MACHINE_SETTINGS ARTIFACTS [SCREENSHOTS]` (e2e/run
// passes them). The language server is held back until RELEASE_FILE exists (the setting names a
// wrapper that waits for it); MACHINE_SETTINGS is where that setting is, emptied at the end.
// Each step waits for what a user would see; the first that does not appear fails the run with a
// screenshot in ARTIFACTS.
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const { chromium } = require("playwright-core");

const [url, releaseFile, machineSettings, artifacts, screenshots] = process.argv.slice(2);
if (!url || !releaseFile || !machineSettings || !artifacts) {
  console.error("usage: node e2e/test.js URL RELEASE_FILE MACHINE_SETTINGS ARTIFACTS [SCREENSHOTS]");
  process.exit(2);
}
const TIMEOUT = 60_000;

/** @param {string} name @param {() => Promise<void>} body */
async function step(name, body) {
  const started = Date.now();
  process.stderr.write(`e2e: ${name} … `);
  await body();
  process.stderr.write(`ok (${((Date.now() - started) / 1000).toFixed(1)} s)\n`);
}

/** @param {import("playwright-core").Page} page @param {string} command */
async function runCommand(page, command) {
  await page.keyboard.press("F1");
  const input = page.locator(".quick-input-widget input");
  await input.waitFor({ state: "visible" });
  await input.fill(`>${command}`);
  // Click the command itself: the first row may be another, recently used one.
  await page.locator(".quick-input-list .monaco-list-row", { hasText: command }).first().click();
}

/** The rendered line of the editor that contains `text`. @param {import("playwright-core").Page} page @param {string} text */
function editorLine(page, text) {
  return page.locator(".monaco-editor .view-lines .view-line", { hasText: text }).first();
}

/** The distinct colours of the tokens of a rendered line. @param {import("playwright-core").Locator} line */
function colours(line) {
  return line.evaluate((element) => [...new Set([...element.querySelectorAll("span > span")].map((span) => getComputedStyle(span).color))]);
}

/** @param {import("playwright-core").Locator} line @param {string} token */
function tokenColour(line, token) {
  return line.evaluate(
    (element, wanted) => {
      const span = [...element.querySelectorAll("span > span")].find((s) => s.textContent === wanted);
      return span ? getComputedStyle(span).color : null;
    },
    token,
  );
}

async function main() {
  fs.mkdirSync(artifacts, { recursive: true });
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.setDefaultTimeout(TIMEOUT);
  try {
    await scenario(page);
  } catch (error) {
    await page.screenshot({ path: path.join(artifacts, "failure.png") }).catch(() => undefined);
    throw error;
  } finally {
    await browser.close();
  }
}

/** @param {import("playwright-core").Page} page */
async function scenario(page) {
  await step("code-server opens the examples workspace", async () => {
    await page.goto(url);
    await page.locator(".monaco-workbench").waitFor();
    await page.locator(".explorer-folders-view .monaco-list-row", { hasText: "agents" }).first().waitFor();
  });

  await step("reviewer.sym opens with TextMate colours before the server starts", async () => {
    await page.keyboard.press("Control+P");
    await page.locator(".quick-input-widget input").fill("reviewer.sym");
    await page.locator(".quick-input-list .monaco-list-row", { hasText: "reviewer.sym" }).first().waitFor();
    await page.keyboard.press("Enter");
    const line = editorLine(page, "agent reviewer(");
    await line.waitFor();
    // The keyword, the agent's name and the type each have their colour: the grammar's, since the
    // server is held back (no semantic tokens yet) until release-server exists.
    await waitUntil(async () => {
      const keyword = await tokenColour(line, "agent");
      const name = await tokenColour(line, "reviewer");
      return keyword !== null && name !== null && keyword !== name && (await colours(line)).length >= 4;
    }, "the line `agent reviewer(…` to show distinct colours for the keyword, the name and the types");
    await statusSays(page, "language server: starting", "gated-lsp (setting)");
    if (fs.existsSync(releaseFile)) {
      throw new Error("the server was released before the colours were checked");
    }
    if (screenshots) {
      await page.screenshot({ path: path.join(screenshots, "vscode-textmate.png") });
    }
  });

  fs.writeFileSync(releaseFile, "");

  await step("the server starts (status item running)", async () => {
    await page.locator(".statusbar-item", { hasText: "Symbiont" }).locator(".codicon-check").first().waitFor();
    await page.locator(".codelens-decoration", { hasText: "Run agent" }).first().waitFor();
  });

  await step("an unresolved policy shows in the Problems panel", async () => {
    await editorLine(page, "policies = [secure_development]").click();
    await page.keyboard.press("End");
    await page.keyboard.press("ArrowLeft");
    for (let i = 0; i < 3; i++) {
      await page.keyboard.press("Backspace");
    }
    await page.keyboard.type("nt");
    await editorLine(page, "policies = [secure_developmnt]").waitFor();
    await page.keyboard.press("Control+Shift+M");
    await page.locator(".markers-panel .monaco-list-row", { hasText: "secure_developmnt" }).first().waitFor();
    await page.locator(".monaco-editor .squiggly-error").first().waitFor();
    if (screenshots) {
      await page.screenshot({ path: path.join(screenshots, "vscode-diagnostics.png") });
    }
  });

  await step("its quick fix restores the name and the problem goes", async () => {
    await editorLine(page, "policies = [secure_developmnt]").click();
    await page.keyboard.press("End");
    await page.keyboard.press("ArrowLeft");
    await page.keyboard.press("ArrowLeft");
    await page.keyboard.press("Control+.");
    const fix = page.locator(".action-widget .monaco-list-row", { hasText: "secure_development" }).first();
    await fix.waitFor();
    await fix.click();
    await editorLine(page, "policies = [secure_development]").waitFor();
    await page.locator(".markers-panel .monaco-list-row", { hasText: "secure_developmnt" }).first().waitFor({ state: "detached" });
    await page.keyboard.press("Control+S");
  });

  await step("the code lens runs the agent and its output arrives", async () => {
    await page.locator(".codelens-decoration a", { hasText: "Run agent" }).first().click();
    // The server's message when the run ends, and the agent's output in the "Symbiont" output.
    const outcome = page.locator(".notifications-toasts .notification-list-item", { hasText: "Agent reviewer" }).first();
    await outcome.waitFor({ timeout: 180_000 });
    const text = (await outcome.textContent()) ?? "";
    if (!text.includes("Agent reviewer completed (exit 0)")) {
      throw new Error(`the run did not complete: ${text}`);
    }
    await runCommand(page, "Symbiont: Show Output");
    // The review the agent prints: its finding about the diff's TODO.
    await page.locator(".panel .view-line", { hasText: "TODO left in code" }).first().waitFor();
    await statusSays(page, "Last run: reviewer: completed (exit 0)");
    if (screenshots) {
      await page.screenshot({ path: path.join(screenshots, "vscode-run.png") });
    }
  });

  await step("Symbiont: Run Agent offers the file's agents, takes the input as JSON and runs", async () => {
    await page.locator(".notifications-toasts .notification-list-item", { hasText: "Agent reviewer" }).first().waitFor({ state: "detached", timeout: 30_000 }).catch(() => undefined);
    await editorLine(page, "agent reviewer(").click();
    await runCommand(page, "Symbiont: Run Agent");
    await page.locator(".quick-input-list .monaco-list-row", { hasText: "reviewer" }).first().click();
    const input = page.locator(".quick-input-widget input");
    await input.fill("{not json");
    await page.locator(".quick-input-message", { hasText: "Not JSON" }).first().waitFor();
    await input.fill('{"target": "other.diff"}');
    await page.keyboard.press("Enter");
    await page.locator(".notifications-toasts .notification-list-item", { hasText: "Agent reviewer completed (exit 0)" }).first().waitFor({ timeout: 180_000 });
    // The agent reviewed the file the input named.
    await page.locator(".panel .view-line", { hasText: '"file": "other.diff"' }).first().waitFor();
    await statusSays(page, "Last run: reviewer: completed (exit 0)");
  });

  await step("Symbiont: Verify Audit Log verifies the runs' entries", async () => {
    await runCommand(page, "Symbiont: Verify Audit Log");
    await page.locator(".notifications-toasts .notification-list-item", { hasText: "verifies:" }).first().waitFor();
  });

  await step("Symbiont: Check Workspace reports symbiont check's findings", async () => {
    await runCommand(page, "Symbiont: Check Workspace");
    await page.locator(".notifications-toasts .notification-list-item", { hasText: "files checked: 0 errors" }).first().waitFor();
  });

  await step("without the setting, the server bundled in the package starts", async () => {
    fs.writeFileSync(machineSettings, "{}\n");
    await statusSays(page, "language server: running", "/server/linux-x64/symbiont-lsp (bundled)");
  });

  await step("a server that is not there: a message says how to install one", async () => {
    fs.writeFileSync(machineSettings, JSON.stringify({ "symbiont.server.path": "/nonexistent/symbiont-lsp" }));
    const message = page.locator(".notifications-toasts .notification-list-item", { hasText: "symbiont-lsp was not found" }).first();
    await message.waitFor();
    await message.locator(".monaco-button", { hasText: "How to Install" }).first().waitFor();
    await statusSays(page, "language server: missing", "/nonexistent/symbiont-lsp");
  });
}

/**
 * Waits until the status item's accessible label (its text and tooltip) holds every part.
 * @param {import("playwright-core").Page} page @param {string[]} parts
 */
async function statusSays(page, ...parts) {
  const item = page.locator(".statusbar-item", { hasText: "Symbiont" }).first();
  let label = "";
  await waitUntil(async () => {
    label = (await item.getAttribute("aria-label")) ?? "";
    return parts.every((part) => label.includes(part));
  }, `the status item to say ${parts.join(" and ")}`).catch((error) => {
    throw new Error(`${error.message}; it says: ${label}`);
  });
}

/** @param {() => Promise<boolean>} condition @param {string} what */
async function waitUntil(condition, what) {
  const deadline = Date.now() + TIMEOUT;
  while (Date.now() < deadline) {
    if (await condition()) {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`timed out waiting for ${what}`);
}

main().then(
  () => process.stderr.write("e2e: passed\n"),
  (error) => {
    process.stderr.write(`\ne2e: FAILED: ${error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(1);
  },
);
