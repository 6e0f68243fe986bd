// File reads from JavaScript.
const fs = require("fs");
const { readFileSync: read } = require("node:fs");
const fsp = require("fs").promises;

const data = fs.readFileSync("in.txt", "utf8"); // HIT
const config = JSON.parse(read("config.json", "utf8")); // HIT
fs.readFile("in.txt", (err, buf) => console.log(err, buf)); // HIT
const names = fs.readdirSync("."); // HIT
fs.createReadStream("big.csv").pipe(process.stdout); // HIT

async function load() {
  const text = await fsp.readFile("in.txt", "utf8"); // HIT
  const entries = await fs.promises.readdir("."); // HIT
  return [text, entries];
}

module.exports = { data, config, names, load };
