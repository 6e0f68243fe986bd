// @ts-check
// Expands every snippet with its defaults (a choice takes its first option, a mirror the value of
// its placeholder) into DIR/snippets.sym: the top-level ones as they are, the rule snippets inside
// a policy. `symbiont check DIR` must then find no error: the defaults make a workspace that
// checks (the schedule runs the agent snippet's agent, the narrower policy extends the policy's). Usage: node test/snippets.js SNIPPETS DIR
"use strict";
const fs = require("node:fs");
const path = require("node:path");

const [snippetsPath, dir] = process.argv.slice(2);
if (!snippetsPath || !dir) {
  console.error("usage: node test/snippets.js SNIPPETS DIR");
  process.exit(2);
}
const RULE_KINDS = ["allow", "deny", "require", "audit", "conditions"];

/** @param {string} body */
function expand(body) {
  /** @type {Map<string, string>} */
  const values = new Map();
  // Innermost placeholders first, so that `${6:${1}.py}` sees `${1}` replaced.
  let text = body;
  for (let previous = ""; previous !== text; ) {
    previous = text;
    text = text
      .replace(/\$\{(\d+)\|([^|}]*)\|\}/g, (_, n, options) => {
        const first = options.split(",")[0];
        values.set(n, first);
        return first;
      })
      .replace(/\$\{(\d+):([^${}]*)\}/g, (_, n, value) => (values.set(n, value), value))
      .replace(/\$\{(\d+)\}|\$(\d+)/g, (whole, a, b) => {
        const n = a ?? b;
        return values.get(n) ?? (n === "0" ? "" : whole);
      });
  }
  if (/\$\{|\$\d/.test(text)) {
    throw new Error(`cannot expand: ${body}`);
  }
  return text.replace(/\t/g, "    ");
}

/** @type {Record<string, {prefix: string, body: string[]}>} */
const snippets = JSON.parse(fs.readFileSync(snippetsPath, "utf8"));
/** @type {string[]} */
const items = [];
/** @type {string[]} */
const rules = [];
for (const [name, snippet] of Object.entries(snippets)) {
  const text = `// ${name}\n${expand(snippet.body.join("\n"))}`;
  (RULE_KINDS.includes(snippet.prefix.split(" ")[0] ?? "") ? rules : items).push(text);
}
fs.mkdirSync(dir, { recursive: true });
const rulesPolicy = `policy snippet_rules {\n${rules.map((r) => r.replace(/^/gm, "    ")).join("\n")}\n}\n`;
fs.writeFileSync(path.join(dir, "snippets.sym"), `${items.join("\n\n")}\n\n${rulesPolicy}`);
console.log(`${path.join(dir, "snippets.sym")}: ${items.length} items and ${rules.length} rules`);
