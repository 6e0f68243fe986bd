// Starting processes from JavaScript.
const { execSync } = require("child_process");
const { spawn: run } = require("node:child_process");
const cp = require("child_process");

execSync("ls"); // HIT
run("ls", ["-l"], { stdio: "inherit" }); // HIT
cp.exec("ls", (err, out) => console.log(out)); // HIT
cp.fork("worker.js"); // HIT
require("child_process").execFileSync("git", ["status"]); // HIT

async function build() {
  const out = cp.spawnSync("make", [], { encoding: "utf8" }); // HIT
  return out.stdout;
}

module.exports = { build };
