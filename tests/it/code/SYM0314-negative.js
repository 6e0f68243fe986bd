// Look-alikes of file reads.
const data = memory.readFileSync("in.txt");
const { readFileSync } = require("./memory-fs");
readFileSync("in.txt");
const fs = require("fs");
fs.writeFileSync("out.txt", "x");
fs.existsSync("in.txt");
const reader = { readFile() {} };
reader.readFile("in.txt");
// fs.readFileSync("in.txt")
const doc = "fs.readFileSync('in.txt')";
