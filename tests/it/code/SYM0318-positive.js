// Functions built from strings in JavaScript.
const vm = require("vm");

const f = new Function("a", "return a * 2"); // HIT
const g = Function("return this")(); // HIT
const script = new vm.Script("x + 1"); // HIT
const h = new globalThis.Function("return 1"); // HIT

class Compiler {
  compile(src) {
    return new Function(src); // HIT
  }
}

module.exports = { f, g, script, h, Compiler };
