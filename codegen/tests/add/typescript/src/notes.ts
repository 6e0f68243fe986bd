import { readFileSync } from "node:fs";

export async function main(): Promise<void> {
	console.log(readFileSync(0, "utf8").length);
}
