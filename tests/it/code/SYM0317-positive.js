// Code built at run time from JavaScript.
const vm = require("vm");
const { runInThisContext } = require("node:vm");

const result = eval(expression); // HIT
vm.runInNewContext("a + 1", { a: 1 }); // HIT
runInThisContext("1 + 1"); // HIT
window.eval("1 + 1"); // HIT

function evaluate(code) {
  return eval(code); // HIT
}

module.exports = { result, evaluate };
