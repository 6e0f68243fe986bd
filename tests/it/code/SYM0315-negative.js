// Look-alikes of process spawning.
const { execSync } = require("./local-shell");
execSync("ls");
const re = /a/;
re.exec("abc");
const db = { exec() {} };
db.exec("SELECT 1");
// child_process.exec("ls")
const doc = "require('child_process').exec('ls')";
