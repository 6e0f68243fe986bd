// Environment variables from JavaScript.
const token = process.env.TOKEN; // HIT
const home = process.env["HOME"]; // HIT
const { PATH, SHELL } = process.env; // HIT
const all = { ...process.env }; // HIT
const port = Number(process.env.PORT || 3000); // HIT
const region = globalThis.process.env.AWS_REGION; // HIT

function config() {
  return { debug: process.env.DEBUG === "1" }; // HIT
}

process.env.NODE_ENV = "production"; // HIT
const trimmed = process.env.NAME.trim(); // HIT
module.exports = { token, home, PATH, SHELL, all, port, region, config, trimmed };
