// Look-alikes of functions built from strings in TypeScript.
type Fn = Function;
const f: Fn = (a: number) => a * 2;
const ok: boolean = f instanceof Function;
const doc = `new Function("return 1")`;
export { ok, doc };
