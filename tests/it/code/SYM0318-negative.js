// Look-alikes of functions built from strings.
const f = (a) => a * 2;
const bound = Function.prototype.bind.call(f, null);
const named = f.name;
const isFn = f instanceof Function;
class Script {}
const s = new Script("x");
// new Function("return 1")
const doc = "new Function('return 1')";
module.exports = { bound, named, isFn, s };
