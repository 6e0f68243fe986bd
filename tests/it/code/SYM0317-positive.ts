// Code built at run time from TypeScript.
import * as vm from "node:vm";
import { compileFunction } from "vm";

export function run(code: string): unknown {
  return eval(code); // HIT
}
const context = vm.createContext({});
vm.runInContext("x = 1", context); // HIT
const f = compileFunction("return 1"); // HIT
