// Environment variables from TypeScript.
import { env } from "node:process";
import proc from "process";

const token: string | undefined = process.env.TOKEN; // HIT
const key = env.API_KEY; // HIT
const user = proc.env.USER; // HIT
const url = process.env.URL!; // HIT

export class Settings {
  readonly region = process.env["AWS_REGION"] ?? "us-east-1"; // HIT
}
