// Look-alikes of process spawning in TypeScript.
import { spawn } from "./actors";

spawn("worker");
const match = /x/.exec("xyz");
function exec(command: string): string {
  return command;
}
exec("ls");
const doc: string = "spawn('ls')";
