// Look-alikes of dynamic code.
const result = JSON.parse(expression);
const model = { eval() {} };
model.eval();
const vm = require("./view-model");
vm.runInNewContext("x");
// eval(expression)
const doc = "eval('1 + 1')";
