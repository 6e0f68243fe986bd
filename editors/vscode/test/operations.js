// @ts-check
// The grammar highlights the catalogue's operations (policy/src/catalogue.rs), no more and no
// fewer: `node test/operations.js GRAMMAR CATALOGUE` fails naming the difference.
"use strict";
const fs = require("node:fs");

const [grammarPath, cataloguePath] = process.argv.slice(2);
if (!grammarPath || !cataloguePath) {
  console.error("usage: node test/operations.js GRAMMAR CATALOGUE");
  process.exit(2);
}
const catalogue = [...fs.readFileSync(cataloguePath, "utf8").matchAll(/\bop\("([a-z_]+)"/g)].map((m) => m[1]);
const repository = JSON.parse(fs.readFileSync(grammarPath, "utf8")).repository;
/** @param {string} regex */
const names = (regex) => (/\((\w+(?:\|\w+)*)\)/.exec(regex)?.[1] ?? "").split("|");
const lists = { "operation-string": names(repository["operation-string"].match), "operation-name": names(repository["operation-name"].match) };
let failed = false;
for (const [rule, listed] of Object.entries(lists)) {
  const missing = catalogue.filter((op) => !listed.includes(op));
  const extra = listed.filter((op) => !catalogue.includes(op));
  if (catalogue.length === 0 || missing.length > 0 || extra.length > 0) {
    console.error(`${grammarPath}: ${rule} misses [${missing.join(", ")}] and has extra [${extra.join(", ")}] (catalogue: ${catalogue.length} operations)`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
