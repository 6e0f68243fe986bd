// File writes, deletions and renames from JavaScript.
const fs = require("fs");
const { writeFileSync, promises: fsp } = require("node:fs");
const { rm } = require("fs/promises");
const fse = require("fs-extra");
const path = require("path");

fs.writeFileSync("out.txt", "x"); // HIT
writeFileSync(path.join(__dirname, "out.txt"), "x"); // HIT
fs.appendFile("log.txt", "x", () => {}); // HIT
fs.mkdirSync("a/b", { recursive: true }); // HIT
fs.renameSync("a", "b"); // HIT
fs.unlinkSync("old.txt"); // HIT
const stream = fs.createWriteStream("out.log", { flags: "a" }); // HIT
require("fs").rmSync("build", { recursive: true, force: true }); // HIT
fse.outputFile("a/b.txt", "x"); // HIT

async function save(data) {
  await fsp.writeFile("out.json", JSON.stringify(data)); // HIT
  await fs.promises.mkdir("cache", { recursive: true }); // HIT
  await rm("tmp", { recursive: true }); // HIT
}

class Store {
  flush() {
    fs.writeFile(this.path, this.data, (err) => { // HIT
      if (err) throw err;
    });
  }
}

const cleanup = () => fs.rmSync("tmp", { recursive: true }); // HIT
module.exports = { save, Store, cleanup, stream };
