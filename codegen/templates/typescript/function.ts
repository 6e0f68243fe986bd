{% if f.function == "fetch_url" %}
/** GET `url` through the broker and return its body; an HTTP error status throws. */
export async function fetchUrl(url: string): Promise<string> {
  const response = await symbiont.net.get(url);
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
  return response.text();
}
{% elif f.function == "read_file" %}
/** The content of `path`, a file of the agent's workspace. */
export async function readFile(path: string): Promise<string> {
  return symbiont.fs.read(path);
}
{% elif f.function == "write_file" %}
/** Writes `content` to `path` in the agent's workspace; the bytes written. */
export async function writeFile(path: string, content: string): Promise<number> {
  return symbiont.fs.write(path, content);
}
{% elif f.function == "read_env" %}
/** The environment variable `name` the run declares, else `null`. */
export async function readEnv(name: string): Promise<string | null> {
  return symbiont.env.get(name);
}
{% elif f.function == "read_secret" %}
/** The secret `name`, else `null`. Never log or print it. */
export async function readSecret(name: string): Promise<string | null> {
  return symbiont.secrets.get(name);
}
{% elif f.function == "send_message" %}
/** Sends `payload` to the agent `to`; its sequence number. */
export async function sendMessage(to: string, payload: unknown): Promise<number> {
  return symbiont.send(to, payload);
}
{% elif f.function == "receive_message" %}
/** The next message for this agent, or `null` after `timeoutMs`. */
export async function receiveMessage(timeoutMs: number): Promise<symbiont.Message | null> {
  return symbiont.receive(timeoutMs);
}
{% endif %}
