// Look-alikes of file writes in TypeScript.
import { readFileSync } from "fs";
import { writeFile } from "./virtual-fs";

const data: Buffer = readFileSync("in.txt");
writeFile("out.txt", "x");
const editor = { writeFile: (p: string) => p };
editor.writeFile("out.txt");
const doc = `fs.writeFileSync("out.txt")`;
