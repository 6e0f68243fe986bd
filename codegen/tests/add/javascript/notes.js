"use strict";
const fs = require("fs");

/** Runs the agent. */
async function main() {
    const text = fs.readFileSync(0, "utf8");
    console.log(text.length);
}

main();
