// Reads and look-alikes: nothing here writes a file.
const fs = require("fs");
const data = fs.readFileSync("in.txt");
const exists = fs.existsSync("out.txt");
const stat = fs.statSync("in.txt");
const store = require("./store");
store.writeFileSync("out.txt", "x");
const memfs = { writeFileSync() {} };
memfs.writeFileSync("out.txt", "x");
function writeFileSync(name, text) {
  return [name, text];
}
writeFileSync("out.txt", "x");
// fs.writeFileSync("out.txt", "x")
const doc = "fs.rmSync('build')";
