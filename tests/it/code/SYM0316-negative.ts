// Look-alikes of environment access in TypeScript.
const process = { env: { TOKEN: "fixed" } };
const token: string = process.env.TOKEN;
const doc = `process.env.TOKEN`;
export { token, doc };
