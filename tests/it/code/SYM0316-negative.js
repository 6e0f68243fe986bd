// Look-alikes of environment access.
const token = config.env.TOKEN;
const mode = app.process.env;
function run(process) {
  return process.pid;
}
const pid = process.pid;
const argv = process.argv;
// process.env.TOKEN
const doc = "process.env.TOKEN";
