{% if f.function == "fetch_url" %}
/// GETs `url` through the broker and returns its body; an HTTP error status is an error.
pub fn fetch_url(url: &str) -> Result<String, Box<dyn std::error::Error>> {
    let response = symbiont::net::get(url)?;
    if !response.is_success() {
        return Err(format!("GET {url}: HTTP {}", response.status).into());
    }
    Ok(response.text()?)
}
{% elif f.function == "read_file" %}
/// The content of `path`, a file of the agent's workspace.
pub fn read_file(path: &str) -> symbiont::Result<String> {
    symbiont::fs::read(path)
}
{% elif f.function == "write_file" %}
/// Writes `content` to `path` in the agent's workspace; the bytes written.
pub fn write_file(path: &str, content: &str) -> symbiont::Result<usize> {
    symbiont::fs::write(path, content)
}
{% elif f.function == "read_env" %}
/// The environment variable `name` the run declares, else `None`.
pub fn read_env(name: &str) -> symbiont::Result<Option<String>> {
    symbiont::env::get(name)
}
{% elif f.function == "read_secret" %}
/// The secret `name`, else `None`. Never log or print it.
pub fn read_secret(name: &str) -> symbiont::Result<Option<String>> {
    symbiont::secrets::get(name)
}
{% elif f.function == "send_message" %}
/// Sends `payload` to the agent `to`; its sequence number.
pub fn send_message(to: &str, payload: &serde_json::Value) -> symbiont::Result<u64> {
    symbiont::send(to, payload)
}
{% elif f.function == "receive_message" %}
/// The next message for this agent, or `None` after `timeout_ms`.
pub fn receive_message(timeout_ms: u64) -> symbiont::Result<Option<symbiont::Message>> {
    symbiont::receive(std::time::Duration::from_millis(timeout_ms))
}
{% endif %}
