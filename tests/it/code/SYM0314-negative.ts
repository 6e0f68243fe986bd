// Look-alikes of file reads in TypeScript.
import { readFile } from "./blob-store";

export async function load(key: string): Promise<string> {
  return readFile(key);
}

function readdir(path: string): string[] {
  return [path];
}
readdir(".");
const doc: string = "fs.readFile('in.txt')";
