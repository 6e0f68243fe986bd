{% if f.function == "fetch_url" %}
def fetch_url(url: str) -> str:
    """GET ``url`` through the broker and return its body; an HTTP error status raises."""
    response = symbiont.net.get(url)
    response.raise_for_status()
    return response.text
{% elif f.function == "read_file" %}
def read_file(path: str) -> str:
    """The content of ``path``, a file of the agent's workspace."""
    return symbiont.fs.read(path)
{% elif f.function == "write_file" %}
def write_file(path: str, content: str) -> int:
    """Writes ``content`` to ``path`` in the agent's workspace; the bytes written."""
    return symbiont.fs.write(path, content)
{% elif f.function == "read_env" %}
def read_env(name: str) -> str | None:
    """The environment variable ``name`` the run declares, else ``None``."""
    return symbiont.env.get(name)
{% elif f.function == "read_secret" %}
def read_secret(name: str) -> str | None:
    """The secret ``name``, else ``None``. Never log or print it."""
    return symbiont.secrets.get(name)
{% elif f.function == "send_message" %}
def send_message(to: str, payload: Any) -> int:
    """Sends ``payload`` to the agent ``to``; its sequence number."""
    return symbiont.send(to, payload)
{% elif f.function == "receive_message" %}
def receive_message(timeout_ms: int) -> symbiont.Message | None:
    """The next message for this agent, or ``None`` after ``timeout_ms``."""
    return symbiont.receive(timeout_ms)
{% endif %}
