// Starting processes from TypeScript.
import { exec, spawn } from "node:child_process";
import * as child from "child_process";
import { execa, $ } from "execa";

exec("ls"); // HIT
const proc = spawn("ls", ["-l"]); // HIT
child.execFile("git", ["status"]); // HIT
await execa("npm", ["test"]); // HIT
await $`ls -l`; // HIT

export class Builder {
  async run(cmd: string): Promise<void> {
    await new Promise((resolve) => exec(cmd, resolve)); // HIT
  }
}
