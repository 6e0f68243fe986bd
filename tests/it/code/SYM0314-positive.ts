// File reads from TypeScript.
import { readFile, readdir } from "node:fs/promises";
import * as fs from "fs";
import { readFileSync } from "fs";

const text: string = readFileSync("in.txt", "utf8"); // HIT
const dir = fs.opendirSync("."); // HIT

export async function load(path: string): Promise<string[]> {
  const body = await readFile(path, { encoding: "utf8" }); // HIT
  const names = await readdir("."); // HIT
  return [body, ...names];
}

export class Loader {
  read(): Buffer {
    return fs.readFileSync(this.path()); // HIT
  }

  path(): string {
    return "in.txt";
  }
}
