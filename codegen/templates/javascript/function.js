{% if f.function == "fetch_url" %}
/**
 * GET `url` through the broker and return its body; an HTTP error status throws.
 * @param {string} url
 * @returns {Promise<string>}
 */
async function fetchUrl(url) {
  const response = await symbiont.net.get(url);
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
  return response.text();
}
{% elif f.function == "read_file" %}
/**
 * The content of `path`, a file of the agent's workspace.
 * @param {string} path
 * @returns {Promise<string>}
 */
async function readFile(path) {
  return symbiont.fs.read(path);
}
{% elif f.function == "write_file" %}
/**
 * Writes `content` to `path` in the agent's workspace; the bytes written.
 * @param {string} path
 * @param {string} content
 * @returns {Promise<number>}
 */
async function writeFile(path, content) {
  return symbiont.fs.write(path, content);
}
{% elif f.function == "read_env" %}
/**
 * The environment variable `name` the run declares, else `null`.
 * @param {string} name
 * @returns {Promise<string | null>}
 */
async function readEnv(name) {
  return symbiont.env.get(name);
}
{% elif f.function == "read_secret" %}
/**
 * The secret `name`, else `null`. Never log or print it.
 * @param {string} name
 * @returns {Promise<string | null>}
 */
async function readSecret(name) {
  return symbiont.secrets.get(name);
}
{% elif f.function == "send_message" %}
/**
 * Sends `payload` to the agent `to`; its sequence number.
 * @param {string} to
 * @param {unknown} payload
 * @returns {Promise<number>}
 */
async function sendMessage(to, payload) {
  return symbiont.send(to, payload);
}
{% elif f.function == "receive_message" %}
/**
 * The next message for this agent, or `null` after `timeoutMs`.
 * @param {number} timeoutMs
 * @returns {Promise<import("symbiont").Message | null>}
 */
async function receiveMessage(timeoutMs) {
  return symbiont.receive(timeoutMs);
}
{% endif %}
