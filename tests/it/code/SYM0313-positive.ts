// File writes from TypeScript.
import * as fs from "node:fs";
import { writeFile, appendFile as append } from "fs/promises";
import fsDefault from "fs";
import { promises as fsp } from "fs";

fs.writeFileSync("out.txt", "x"); // HIT
fsDefault.copyFileSync("a", "b"); // HIT

export async function save(data: Record<string, unknown>): Promise<void> {
  await writeFile("out.json", JSON.stringify(data), "utf8"); // HIT
  await append("log.txt", "saved\n"); // HIT
  await fsp.rename("out.json", "final.json"); // HIT
}

export class Cache {
  constructor(private readonly dir: string) {}

  clear(): void {
    fs.rmSync(this.dir, { recursive: true, force: true }); // HIT
  }
}
