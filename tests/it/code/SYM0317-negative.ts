// Look-alikes of dynamic code in TypeScript.
import { evaluate } from "mathjs";

const value: number = evaluate("1 + 1");
const evalResult = { eval: (s: string) => s.length };
evalResult.eval("x");
const doc: string = "vm.runInNewContext('x')";
